"""export_batch with rcf + remoteclip + ssl4eo (tiny checkpoints) on the embedded sample:
every point's patch is fetched once, shared by the three models, and all three are written."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import rs_embed.models as models_registry
from rs_embed.specs import OutputSpec, PointBuffer, SensorSpec, TemporalSpec

torch = pytest.importorskip("torch", reason="needs the 'models' extra (torch)")
open_clip = pytest.importorskip("open_clip", reason="needs the 'models' extra (open_clip_torch)")
tgm = pytest.importorskip("torchgeo.models", reason="needs the 'models' extra (torchgeo)")
local = pytest.importorskip("rs_embed.providers.local", reason="the local provider is not available")

from rs_embed.export import export_batch  # noqa: E402
from rs_embed.models import remoteclip, ssl4eo  # noqa: E402

from .test_remoteclip import TINY as TINY_CLIP  # noqa: E402

L1C_13 = SensorSpec("COPERNICUS/S2_HARMONIZED", ssl4eo.SSL4EO_BANDS, scale_m=10)
#: inside the embedded Sentinel-2 scene (Virginia Eastern Shore)
POINTS = [PointBuffer(-75.65, 37.65, 320), PointBuffer(-75.62, 37.67, 320), PointBuffer(-75.70, 37.61, 320)]
WINDOW = TemporalSpec.range("2015-06-23", "2016-06-11")


class CountingProvider(local.LocalProvider):
    """The local provider, recording every (point, bands) it reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []
        self._count_lock = threading.Lock()

    def fetch(self, spatial, temporal, sensor):
        with self._count_lock:
            self.reads.append((spatial.center, tuple(sensor.bands)))
        return super().fetch(spatial, temporal, sensor)


@pytest.fixture
def tiny_defaults(weights_dir, tiny_variant, monkeypatch):
    """remoteclip and ssl4eo with tiny checkpoints as their default variants."""
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**TINY_CLIP).state_dict(), weights_dir / "RemoteCLIP-tiny.pt")
    tiny_variant(remoteclip, "vit_b32", filename="RemoteCLIP-tiny.pt",
                 arch={"open_clip": "tiny", **TINY_CLIP}, image_size=32)
    net = tgm.resnet18(None, in_chans=13)
    torch.save({k: v for k, v in net.state_dict().items() if not k.startswith("fc.")},
               weights_dir / "ssl4eo-tiny.pth")
    tiny_variant(ssl4eo, "resnet50_moco", filename="ssl4eo-tiny.pth",
                 arch={"builder": "resnet18", "kwargs": {}}, image_size=32,
                 extra={"resize_to": 36, "ssl_method": "moco"})
    monkeypatch.setattr(remoteclip.CATALOG, "default", "tiny")
    monkeypatch.setattr(ssl4eo.CATALOG, "default", "tiny")
    monkeypatch.setattr(models_registry, "_instances", {})   # no embedder from another test


def test_three_models_share_one_fetch_per_point(tiny_defaults, tmp_path):
    provider = CountingProvider()
    manifest = export_batch(spatials=POINTS, temporal=WINDOW, models=["rcf", "remoteclip", "ssl4eo"],
                            backend=provider, sensor=L1C_13, out=str(tmp_path / "run"), layout="combined",
                            device="cpu", show_progress=False, output=OutputSpec.pooled())
    # one read per point: the three models asked for the same patch
    assert sorted(c for c, _ in provider.reads) == sorted(p.center for p in POINTS)
    assert {b for _, b in provider.reads} == {ssl4eo.SSL4EO_BANDS}
    assert manifest["status"] == "ok"
    with np.load(tmp_path / "run.npz") as z:
        emb = {m: z[f"embeddings__{m}"] for m in ("rcf", "remoteclip", "ssl4eo")}
        inputs = z["inputs_bchw__rcf"]
    assert emb["rcf"].shape == (3, 512) and emb["remoteclip"].shape == (3, 16) and emb["ssl4eo"].shape == (3, 512)
    assert inputs.shape == (3, 13, 64, 64)
    assert all(np.isfinite(e).all() for e in emb.values())
    # the exported vectors are the embedders' own output on the saved patch
    sensor = L1C_13
    direct = remoteclip.RemoteCLIPEmbedder(device="cpu").embed_batch(list(inputs), sensor=sensor,
                                                                     output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([d.data for d in direct]), emb["remoteclip"], atol=1e-5)
    saved = json.loads((tmp_path / "run.json").read_text())
    entries = {m["model"]: m for m in saved["models"]}
    assert entries["ssl4eo"]["metas"][0]["variant"] == "tiny"
    assert entries["remoteclip"]["metas"][0]["model_bands"] == ["B4", "B3", "B2"]
