"""galileo: config.json + encoder.pt (the published folder layout) load through the real
loader; parity with the official Galileo ``Encoder`` as shipped on PyPI inside
olmoearth-pretrain (evals/models/galileo/single_file_galileo.py, "copied from" the official
repository) on the same inputs: S2 groups, months, location, a masked empty frame;
pooled (mean, max), batch and grid."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches, load_file_module

torch = pytest.importorskip("torch", reason="galileo needs the 'models-galileo' extra (torch)")
from rs_embed.models import galileo  # noqa: E402

S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", galileo.S2_BANDS)
CFG = {"max_patch_size": 8, "embedding_size": 32, "depth": 2, "mlp_ratio": 2, "num_heads": 2,
       "max_sequence_length": 24}


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("einops")
    pytest.importorskip("olmoearth_pretrain", reason="the reference ships in olmoearth-pretrain")
    # the file imports two training-only names; give it stand-ins and load only this file
    stubs = {"olmo_core": types.ModuleType("olmo_core"), "olmo_core.utils": types.ModuleType("olmo_core.utils"),
             "olmoearth_pretrain.train": types.ModuleType("olmoearth_pretrain.train"),
             "olmoearth_pretrain.train.masking": types.ModuleType("olmoearth_pretrain.train.masking")}
    stubs["olmo_core.utils"].get_default_device = lambda: torch.device("cpu")
    stubs["olmoearth_pretrain.train.masking"].MaskedOlmoEarthSample = object
    saved = {k: sys.modules.get(k) for k in stubs}
    sys.modules.update(stubs)
    try:
        return load_file_module("galileo_official", "olmoearth_pretrain",
                                "evals/models/galileo/single_file_galileo.py")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="module")
def official_encoder(reference):
    torch.manual_seed(0)
    enc = reference.Encoder(**CFG).eval()   # (its constructor caches kernel resizes: slow, so once)
    with torch.no_grad():
        for name, prm in enc.named_parameters():
            if "channel_embed" in name:
                prm.normal_(0, 0.5)
    return enc


@pytest.fixture
def checkpoint(official_encoder, weights_dir, tiny_variant):
    enc = official_encoder
    folder = weights_dir / "galileo-test"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": {"encoder": CFG, "decoder": {}}, "training": {}}))
    torch.save(enc.state_dict(), folder / "encoder.pt")
    tiny_variant(galileo, "nano", variant="test", filename="galileo-test/encoder.pt")
    return enc


def _official_inputs(ref, xs, months, centers, frame_ok):
    """construct_galileo_input's layout for S2 (+ location), normalised as Normalizer(std=True)."""
    b, t = len(xs), xs[0].shape[0]
    h = xs[0].shape[-1]
    st = np.zeros((b, h, h, t, len(ref.SPACE_TIME_BANDS)), np.float32)
    idx = [ref.SPACE_TIME_BANDS.index(f"B{n[1:].zfill(2)}" if n != "B8A" else "B8A") for n in galileo.S2_BANDS]
    mean = np.asarray(galileo.ST_MEAN, np.float32)
    std = np.asarray(galileo.ST_STD, np.float32)
    for i, x in enumerate(xs):
        for j, k in enumerate(idx):
            st[i, :, :, :, k] = x[:, j].transpose(1, 2, 0)
    st[..., :12] = (st[..., :12] - (mean[:12] - 2 * std[:12])) / (4 * std[:12])
    groups = list(ref.SPACE_TIME_BANDS_GROUPS_IDX)
    st_m = np.ones((b, h, h, t, len(groups)), np.float32)
    for gi, g in enumerate(groups):
        if g.startswith("S2"):
            st_m[..., gi] = 0
    st_m[~np.asarray(frame_ok)[:, None, None, :].repeat(h, 1).repeat(h, 2)] = 1
    stat = np.zeros((b, len(ref.STATIC_BANDS)), np.float32)
    stat_m = np.ones((b, len(ref.STATIC_BAND_GROUPS_IDX)), np.float32)
    loc_i = list(ref.STATIC_BAND_GROUPS_IDX).index("location")
    for i, (lon, lat) in enumerate(centers):
        stat[i, ref.STATIC_BAND_GROUPS_IDX["location"]] = galileo.to_cartesian(lat, lon)
        stat_m[i, loc_i] = 0
    T = torch.from_numpy
    return (T(st), torch.zeros(b, h, h, len(ref.SPACE_BANDS)), torch.zeros(b, t, len(ref.TIME_BANDS)), T(stat),
            T(st_m), torch.ones(b, h, h, len(ref.SPACE_BAND_GROUPS_IDX)), torch.ones(b, t, len(ref.TIME_BAND_GROUPS_IDX)),
            T(stat_m), torch.tensor(months))


def _official(ref, enc, inputs, patch=4):
    with torch.no_grad():
        out = enc(*inputs, patch_size=patch, input_resolution_m=10)
    E = ref.Encoder
    mean = E.average_tokens(*out[:8], pooling=ref.PoolingType.MEAN)
    mx = E.average_tokens(*out[:8], pooling=ref.PoolingType.MAX)
    grid = E.apply_mask_and_average_tokens_per_patch(*out[:8])
    return mean.numpy(), mx.numpy(), grid


def test_time_series_parity_with_the_official_encoder(reference, checkpoint):
    emb = galileo.GalileoEmbedder(variant="test", device="cpu")
    xs = [np.stack(dn_patches(3, 10, 16, 16, seed=s)) for s in (1, 2)]              # (T=3, C, H, W)
    dates = ["2021-02-15", "2021-06-15", "2021-10-15"]
    centers = [(8.5, 47.3), (-60.0, -3.1)]
    ctx = [{"dates": dates, "center": c} for c in centers]
    months = [[1, 5, 9]] * 2
    want_mean, want_max, want_grid = _official(reference, checkpoint,
                                               _official_inputs(reference, xs, months, centers, [[True] * 3] * 2))
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled(), contexts=ctx)
    np.testing.assert_allclose(np.stack([g.data for g in got]), want_mean, atol=1e-5, rtol=1e-5)
    mx = emb.embed(xs[1], sensor=S2, output=OutputSpec.pooled("max"), context=ctx[1])
    np.testing.assert_allclose(mx.data, want_max[1], atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[0], sensor=S2, output=OutputSpec.grid(), context=ctx[0])
    assert grid.data.shape == (32, 4, 4)
    np.testing.assert_allclose(grid.data, want_grid[0].reshape(4, 4, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    assert got[0].meta["months"] == [1, 5, 9] and got[0].meta["location_used"]


def test_empty_frame_is_masked_as_the_official_mask_does(reference, checkpoint):
    emb = galileo.GalileoEmbedder(variant="test", device="cpu")
    xs = [np.stack(dn_patches(3, 10, 16, 16, seed=s)) for s in (3, 4)]
    xs[1][2] = 0.0                        # the provider's fill_value: a bin without imagery
    ctx = [{"dates": ["2021-01-10", "2021-05-10", "2021-09-10"], "center": (10.0, 50.0)}] * 2
    ok = [[True] * 3, [True, True, False]]
    inputs = _official_inputs(reference, xs, [[0, 4, 8]] * 2, [(10.0, 50.0)] * 2, ok)
    want_mean, _, _ = _official(reference, checkpoint, inputs)
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled(), contexts=ctx)
    np.testing.assert_allclose(np.stack([g.data for g in got]), want_mean, atol=1e-5, rtol=1e-5)
    assert got[1].meta["frames_encoded"] == 2 and got[1].meta["frames_missing"] == 1


def test_other_patch_sizes_resize_the_kernel_like_the_official_code(reference, checkpoint):
    emb = galileo.GalileoEmbedder(variant="test", device="cpu", patch_size=2)
    xs = [np.stack(dn_patches(1, 10, 8, 8, seed=7))]
    inputs = _official_inputs(reference, xs, [[6]], [(1.0, 2.0)], [[True]])
    want_mean, _, _ = _official(reference, checkpoint, inputs, patch=2)
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled(),
                          contexts=[{"dates": ["2020-07-01"], "center": (1.0, 2.0)}])
    np.testing.assert_allclose(got[0].data, want_mean[0], atol=1e-5, rtol=1e-5)


def test_band_lists_match_the_official_code(reference):
    assert [b.replace("B0", "B") for b in reference.S2_BANDS] == list(galileo.S2_BANDS)
    assert [b.upper() for b in reference.S1_BANDS] == list(galileo.S1_BANDS)
    assert list(reference.SPACE_TIME_BANDS_GROUPS_IDX) == list(galileo.SPACE_TIME_GROUPS)
    assert {k: len(v) for k, v in reference.STATIC_BAND_GROUPS_IDX.items()} == galileo.STATIC_GROUPS


def test_missing_config_and_checkpoint(weights_dir, tiny_variant):
    with pytest.raises(ModelError, match="models/base/encoder.pt"):
        galileo.GalileoEmbedder(device="cpu")
    (weights_dir / "g").mkdir()
    torch.save({}, weights_dir / "g" / "encoder.pt")
    tiny_variant(galileo, "nano", variant="test2", filename="g/encoder.pt")
    with pytest.raises(ModelError, match="config.json"):
        galileo.GalileoEmbedder(variant="test2", device="cpu")


def test_a_rectangle_is_the_square_cropped_back_and_pooled_over_its_cells(reference, checkpoint):
    """A BBox's enclosing square goes in whole; the grid keeps the ROI's cells and the
    pooled vector is the official average_tokens with every other cell's space-time
    tokens masked (the static location token still counts, as it does for the square)."""
    from rs_embed.inference import embed_inputs
    emb = galileo.GalileoEmbedder(variant="test", device="cpu")
    x = np.stack(dn_patches(2, 10, 16, 16, seed=6))                     # (T=2, C, 16, 16): 4 x 4 tokens
    dates, center = ["2021-03-15", "2021-08-15"], (8.5, 47.3)
    ctx = {"roi": (0, 4, 16, 8), "dates": dates, "center": center}      # columns 4..12: token cols 1..2
    inputs = _official_inputs(reference, [x], [[2, 7]], [center], [[True, True]])
    with torch.no_grad():
        out = checkpoint(*inputs, patch_size=4, input_resolution_m=10)
    grid = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.grid(), input_prep=None, contexts=[ctx])[0]
    full = reference.Encoder.apply_mask_and_average_tokens_per_patch(*out[:8])[0].reshape(4, 4, 32)
    np.testing.assert_allclose(grid.data, full.permute(2, 0, 1).numpy()[:, :, 1:3], atol=1e-5)
    assert grid.meta["grid_geometry"] == {"origin_px": [0.0, 4.0], "cell_px": [4.0, 4.0]}
    s_t_m = out[4].clone()
    s_t_m[:, :, [0, 3]] = 1                                             # other columns: masked
    masked = list(out[:8])
    masked[4] = s_t_m
    for pooling, kind in (("mean", reference.PoolingType.MEAN), ("max", reference.PoolingType.MAX)):
        got = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.pooled(pooling), input_prep=None,
                           contexts=[ctx])[0]
        want = reference.Encoder.average_tokens(*masked, pooling=kind)[0].numpy()
        np.testing.assert_allclose(got.data, want, atol=1e-5, rtol=1e-5)
        assert got.meta["roi_pooling"] == "8 of 16 grid cells on the ROI"


def test_nodata_fill_is_recorded(checkpoint):
    emb = galileo.GalileoEmbedder(variant="test", device="cpu")
    x = np.stack(dn_patches(2, 10, 8, 8, seed=2))
    x[1] = np.nan                                                        # an empty bin
    valid = np.ones((2, 8, 8), bool)
    valid[1] = False
    valid[0, :2, :2] = False                                             # and a few masked pixels
    got = emb.embed(x, sensor=S2, output=OutputSpec.pooled(), context={"valid": valid, "dates": ["2021-01-01"] * 2})
    fill = got.meta["nodata_fill"]
    assert fill["pixels"] == 64 + 4 and fill["values"] == [galileo.ST_MEAN[galileo.SPACE_TIME_BANDS.index(b)]
                                                             for b in galileo.S2_BANDS]
    assert "masked" in fill["source"] and got.meta["frames_encoded"] == 1
