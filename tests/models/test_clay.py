"""clay: a Lightning checkpoint in the published layout loads; parity with the official
Clay v1.5 ``Encoder`` (the ``claymodel`` 1.5.0 wheel's own files) on the same weights, time,
place, GSD and wavelengths, pooled, batch and grid."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="clay needs the 'models-clay' extra (torch)")
from rs_embed.models import clay  # noqa: E402

S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", clay.CLAY_S2_BANDS)
TINY = {"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp_ratio": 2}


@pytest.fixture(scope="module")
def reference():
    """claymodel 1.5.0's model.py, whose imports name a ``src`` package: the wheel's files
    (unpacked by the Makefile under .venv/refs/claymodel/src) are that package."""
    root = Path(sys.prefix) / "refs" / "claymodel"
    if not (root / "src" / "model.py").is_file():
        pytest.skip("the claymodel reference files are not unpacked (make dev)")
    pytest.importorskip("einops")
    saved = {k: v for k, v in sys.modules.items() if k == "src" or k.startswith("src.")}
    precision = torch.get_float32_matmul_precision()
    sys.path.insert(0, str(root))
    try:
        for k in saved:
            del sys.modules[k]
        model = importlib.import_module("src.model")
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
            del sys.modules[k]
        sys.modules.update(saved)
        torch.set_float32_matmul_precision(precision)  # model.py sets "medium" at import
    return model


def _checkpoint(reference, weights_dir, tiny_variant):
    torch.manual_seed(0)
    enc = reference.Encoder(mask_ratio=0.0, patch_size=8, shuffle=False, **TINY).eval()
    with torch.no_grad():   # the published init draws weights small; make every part matter
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = {f"model.encoder.{k}": v for k, v in enc.state_dict().items()}
    state["model.decoder.mask_patch"] = torch.zeros(4)           # ignored parts of the module
    state["model.teacher.head.weight"] = torch.zeros(2, 2)
    # Lightning's checkpoint layout: {"state_dict", "hyper_parameters", "epoch", ...}
    torch.save({"state_dict": state, "epoch": 3, "global_step": 10, "pytorch-lightning_version": "2.4.0",
                "hyper_parameters": {"model_size": "tiny", "mask_ratio": 0.75, "metadata_path": "configs/metadata.yaml"}},
               weights_dir / "clay-tiny.ckpt")
    tiny_variant(clay, "v1.5", filename="clay-tiny.ckpt", image_size=32,
                 arch={**TINY, "patch_size": 8, "wave_dim": 128, "num_latent_tokens": 128})
    return enc


def _official(enc, xs, ctx, gsd):
    mean = np.asarray(clay.CLAY_S2_MEAN, np.float32)[:, None, None]
    std = np.asarray(clay.CLAY_S2_STD, np.float32)[:, None, None]
    pixels = torch.from_numpy(np.stack([(a - mean) / std for a in xs]))
    time = torch.tensor([clay.time_encoding(c["dates"][0]) for c in ctx])
    latlon = torch.tensor([clay.latlon_encoding(c["center"]) for c in ctx])
    with torch.no_grad():
        tok, *_ = enc({"pixels": pixels, "time": time, "latlon": latlon, "gsd": torch.tensor(gsd),
                       "waves": torch.tensor(clay.CLAY_S2_WAVELENGTHS_UM)})
    return tok


def test_parity_with_the_official_encoder(reference, weights_dir, tiny_variant):
    enc = _checkpoint(reference, weights_dir, tiny_variant)
    emb = clay.ClayEmbedder(variant="tiny", device="cpu")
    xs = dn_patches(3, 10, 32, 32)
    ctx = [{"dates": ["2021-03-17"], "center": (8.5, 47.3)}, {"dates": ["2020-11-02"], "center": (-60.0, -3.1)},
           {"dates": ["2022-07-01"], "center": (150.2, -33.9)}]
    want = _official(enc, xs, ctx, 10.0)
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled(), contexts=ctx)
    np.testing.assert_allclose(np.stack([g.data for g in got]), want[:, 1:].mean(1).numpy(), atol=1e-5, rtol=1e-5)
    mx = emb.embed(xs[1], sensor=S2, output=OutputSpec.pooled("max"), context=ctx[1])
    np.testing.assert_allclose(mx.data, want[1, 1:].max(0).values.numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[2], sensor=S2, output=OutputSpec.grid(), context=ctx[2])
    np.testing.assert_allclose(grid.data, want[2, 1:].reshape(4, 4, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    cls = clay.ClayEmbedder(variant="tiny", device="cpu", pooled_from="cls")
    np.testing.assert_allclose(cls.embed(xs[0], sensor=S2, output=OutputSpec.pooled(), context=ctx[0]).data,
                               want[0, 0].numpy(), atol=1e-5, rtol=1e-5)
    assert got[0].meta["gsd_m"] == 10.0 and got[0].meta["time_encoding"] == clay.time_encoding("2021-03-17")


def test_other_sizes_are_resized_with_the_gsd_scaled(reference, weights_dir, tiny_variant):
    enc = _checkpoint(reference, weights_dir, tiny_variant)
    emb = clay.ClayEmbedder(variant="tiny", device="cpu")
    big = dn_patches(1, 10, 64, 64, seed=5)[0]
    ctx = {"dates": ["2021-06-01"], "center": (0.0, 0.0)}
    res = emb.embed(big, sensor=S2, output=OutputSpec.pooled(), context=ctx)
    assert res.meta["gsd_m"] == 20.0
    x, info = emb._prepare([big], S2, [ctx])
    want = _official(enc, [x[0].numpy() * np.asarray(clay.CLAY_S2_STD, np.float32)[:, None, None]
                           + np.asarray(clay.CLAY_S2_MEAN, np.float32)[:, None, None]], [ctx], 20.0)
    np.testing.assert_allclose(res.data, want[0, 1:].mean(0).numpy(), atol=1e-4, rtol=1e-4)


def test_time_and_place_encodings():
    # ISO week 11 of 2021, hour 0; 47.3 N 8.5 E
    w = 11 * 2 * math.pi / 52
    np.testing.assert_allclose(clay.time_encoding("2021-03-17"), [math.sin(w), math.cos(w), 0.0, 1.0])
    np.testing.assert_allclose(clay.latlon_encoding((8.5, 47.3)),
                               [math.sin(math.radians(47.3)), math.cos(math.radians(47.3)),
                                math.sin(math.radians(8.5)), math.cos(math.radians(8.5))])
    assert clay.time_encoding(None) == [0.0] * 4 and clay.latlon_encoding(None) == [0.0] * 4


def test_published_encoder_shapes_match_the_official_factories(reference):
    import inspect
    for size, shape in clay.CLAY_SHAPES.items():
        src = inspect.getsource(getattr(reference, f"clay_mae_{size}"))
        for k, v in shape.items():
            assert f'"{k}": {v},' in src, (size, k)


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        clay.ClayEmbedder(device="cpu")
    msg = str(err.value)
    assert "clay-v1.5.ckpt" in msg and "made-with-clay/Clay" in msg


def test_a_rectangle_is_the_square_cropped_back_and_pooled_over_its_cells(reference, weights_dir, tiny_variant):
    """A BBox's enclosing square is embedded whole (real pixels, not stretched); the grid
    keeps the ROI's patch tokens and the pooled vector pools them; the CLS option stays
    the square's embedding and says so. Masked pixels get the band mean (0 normalised)."""
    from rs_embed.inference import embed_inputs
    enc = _checkpoint(reference, weights_dir, tiny_variant)
    emb = clay.ClayEmbedder(variant="tiny", device="cpu")
    x = dn_patches(1, 10, 32, 32, seed=4)[0]
    ctx = {"roi": (0, 8, 32, 16), "dates": ["2021-03-17"], "center": (8.5, 47.3)}   # token cols 1..2
    want = _official(enc, [x], [ctx], 10.0)[0, 1:].reshape(4, 4, 32)
    grid = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.grid(), input_prep=None, contexts=[ctx])[0]
    np.testing.assert_allclose(grid.data, want.permute(2, 0, 1).numpy()[:, :, 1:3], atol=1e-5)
    assert grid.meta["grid_geometry"] == {"origin_px": [0.0, 8.0], "cell_px": [8.0, 8.0]}
    pooled = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.pooled(), input_prep=None, contexts=[ctx])[0]
    np.testing.assert_allclose(pooled.data, want[:, 1:3].reshape(-1, 32).mean(0).numpy(), atol=1e-5, rtol=1e-5)
    cls = clay.ClayEmbedder(variant="tiny", device="cpu", pooled_from="cls")
    got = embed_inputs(cls, [x], sensor=S2, output=OutputSpec.pooled(), input_prep=None, contexts=[ctx])[0]
    assert "enclosing square" in got.meta["roi_pooling"]
    valid = np.ones((32, 32), bool)
    valid[:3] = False
    holed = x.copy()
    holed[:, ~valid] = 0.0
    res = emb.embed(holed, sensor=S2, output=OutputSpec.pooled(), context={**ctx, "roi": None, "valid": valid})
    filled = x.copy()
    filled[:, ~valid] = np.asarray(clay.CLAY_S2_MEAN, np.float32)[:, None]
    np.testing.assert_allclose(res.data, _official(enc, [filled], [ctx], 10.0)[0, 1:].mean(0).numpy(), atol=1e-5)
    assert res.meta["nodata_fill"]["pixels"] == 96 and res.meta["nodata_fill"]["values"] == list(clay.CLAY_S2_MEAN)
