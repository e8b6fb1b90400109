"""export_batch with olmoearth + clay + terramind (tiny checkpoints) on the embedded sample:
each point's patch is fetched once and shared by the three models; a time series is
fetched once per point too, bin by bin, and recorded in the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rs_embed.models as models_registry
from rs_embed.specs import OutputSpec, SensorSpec

torch = pytest.importorskip("torch", reason="needs the model extras (torch)")
pytest.importorskip("olmoearth_pretrain_minimal", reason="needs the 'models-olmoearth' extra")

from rs_embed.export import export_batch  # noqa: E402
from rs_embed.models import clay, olmoearth, terramind  # noqa: E402

from .test_export_models import POINTS, WINDOW, CountingProvider  # noqa: E402
from .test_olmoearth import _make_checkpoint  # noqa: E402

L1C_13 = SensorSpec("COPERNICUS/S2_HARMONIZED", ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                                  "B10", "B11", "B12"), scale_m=10)


@pytest.fixture
def tiny_defaults(weights_dir, tiny_variant, monkeypatch):
    _make_checkpoint("v1.2", weights_dir, tiny_variant)                    # olmoearth variant "test"
    torch.manual_seed(1)
    c_arch = {"dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "mlp_ratio": 2, "patch_size": 8,
              "wave_dim": 128, "num_latent_tokens": 128}
    enc = clay._encoder(c_arch)
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in enc.state_dict().items()}},
               weights_dir / "clay-tiny.ckpt")
    tiny_variant(clay, "v1.5", filename="clay-tiny.ckpt", image_size=32, arch=c_arch)
    t_arch = {"dim": 32, "depth": 1, "num_heads": 2, "mlp_ratio": 4.0, "patch_size": 16, "img_size": 32}
    tm = terramind._encoder(t_arch, {v["key"]: len(v["bands"]) for v in terramind.MODALITIES.values()})
    torch.save(tm.state_dict(), weights_dir / "TerraMind-tiny.pt")
    tiny_variant(terramind, "base", filename="TerraMind-tiny.pt", image_size=32, arch=t_arch)
    monkeypatch.setattr(olmoearth.CATALOG, "default", "test")
    monkeypatch.setattr(clay.CATALOG, "default", "tiny")
    monkeypatch.setattr(terramind.CATALOG, "default", "tiny")
    monkeypatch.setattr(models_registry, "_instances", {})


def test_three_new_models_share_one_fetch_per_point(tiny_defaults, tmp_path):
    provider = CountingProvider()
    manifest = export_batch(spatials=POINTS, temporal=WINDOW, models=["olmoearth", "clay", "terramind"],
                            backend=provider, sensor=L1C_13, out=str(tmp_path / "run"), layout="combined",
                            device="cpu", show_progress=False, output=OutputSpec.pooled())
    assert sorted(c for c, _ in provider.reads) == sorted(p.center for p in POINTS)
    assert manifest["status"] == "ok"
    with np.load(tmp_path / "run.npz") as z:
        emb = {m: z[f"embeddings__{m}"] for m in ("olmoearth", "clay", "terramind")}
        inputs = z["inputs_bchw__olmoearth"]
        assert not any(k.startswith("inputs_bchw__clay") for k in z.files)   # stored once
    assert {k: v.shape for k, v in emb.items()} == {"olmoearth": (3, 128), "clay": (3, 32), "terramind": (3, 32)}
    assert all(np.isfinite(e).all() for e in emb.values()) and inputs.shape == (3, 13, 64, 64)
    saved = json.loads((tmp_path / "run.json").read_text())
    metas = {m["model"]: m["metas"][0] for m in saved["models"]}
    assert metas["olmoearth"]["frames_encoded"] == 1 and metas["clay"]["gsd_m"] == 20.0
    # the sample is L1C, so TerraMind reads it through its L1C input
    assert metas["terramind"]["terramind_input"] == "untok_sen2l1c@224"


def test_time_series_export_fetches_each_bin_once(tiny_defaults, tmp_path):
    provider = CountingProvider()
    series = SensorSpec("COPERNICUS/S2_HARMONIZED", olmoearth.OLMOEARTH_S2_BANDS, frames=2)
    manifest = export_batch(spatials=POINTS[:2], temporal=WINDOW, models=["olmoearth"], backend=provider,
                            per_model_sensors={"olmoearth": series}, out=str(tmp_path / "ts"),
                            layout="combined", device="cpu", show_progress=False)
    assert len(provider.reads) == 4          # 2 points x 2 bins, one read each
    with np.load(tmp_path / "ts.npz") as z:
        assert z["inputs_bchw__olmoearth"].shape[:3] == (2, 2, 12)
    m = json.loads((tmp_path / "ts.json").read_text())["models"][0]["metas"][0]
    assert m["input"]["frames_requested"] == 2 and m["frames_input"] == 2
    assert m["frames_encoded"] + m["frames_missing"] == 2 and manifest["status"] == "ok"
    assert len(m["input"]["frame_windows"]) == 2
