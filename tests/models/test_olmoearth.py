"""olmoearth: a checkpoint in the published layout (config.json + weights.pth) loads through
the real loader; embeddings equal the official packages' own recipe (Normalizer ->
MaskedOlmoEarthSample -> encoder -> pool_unmasked_tokens), for one frame and a time series,
pooled, batch and grid; band order and statistics come from the package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="olmoearth needs the 'models-olmoearth' extra")
oem = pytest.importorskip("olmoearth_pretrain_minimal", reason="olmoearth needs olmoearth-pretrain-minimal")
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1 import olmoearth_pretrain_v1 as OEV1  # noqa: E402
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.nn.flexi_vit import PoolingType  # noqa: E402
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.constants import Modality  # noqa: E402
from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.datatypes import MaskedOlmoEarthSample  # noqa: E402

from rs_embed.models import olmoearth  # noqa: E402

S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", olmoearth.OLMOEARTH_S2_BANDS)
MODALITIES = ["sentinel2_l2a", "sentinel1", "landsat"]


def _official_config(version: str) -> dict:
    """The training config of a nano model, as the Hugging Face repos publish it."""
    captured = {}
    build = OEV1.LatentMIMConfig.build

    def keep(self):
        captured["cfg"] = self
        return build(self)

    OEV1.LatentMIMConfig.build = keep
    try:
        OEV1.OlmoEarthPretrain_v1(model_size="nano", model_version=version,
                                  supported_modality_names=MODALITIES)
    finally:
        OEV1.LatentMIMConfig.build = build
    text = json.dumps(captured["cfg"].as_config_dict())
    # published configs name the training package's classes
    text = text.replace("olmoearth_pretrain_minimal.olmoearth_pretrain_v1.", "olmoearth_pretrain.")
    return {"model": json.loads(text),
            "train_module": {"masking_config": {"strategy_config": {"only_decode_modalities": []}}}}


@pytest.fixture(params=["v1", "v1.2"])
def checkpoint(request, weights_dir, tiny_variant):
    return _make_checkpoint(request.param, weights_dir, tiny_variant)


def _make_checkpoint(version, weights_dir, tiny_variant):
    torch.manual_seed(0)
    cfg = _official_config(version)
    folder = weights_dir / "OlmoEarth-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    net = oem.model_loader._build_model_from_config(cfg)
    torch.save(net.state_dict(), folder / "weights.pth")
    tiny_variant(olmoearth, "nano" if version == "v1" else "nano_v1_2", variant="test", filename="OlmoEarth-tiny/weights.pth",
                 arch={"version": version, "repo": "OlmoEarth-tiny", "config": "config.json"})
    return version, folder


def _official(folder, version, x_bthwc, stamps, patch_size=4, full_package=False):
    """The package's documented recipe on (B, H, W, T, C) DN in Modality band order."""
    if full_package:   # the training package olmoearth-pretrain, its own loader and normaliser
        from olmoearth_pretrain.data.constants import Modality as M
        from olmoearth_pretrain.data.normalize import Normalizer, Strategy
        from olmoearth_pretrain.datatypes import MaskedOlmoEarthSample as Sample
        from olmoearth_pretrain.model_loader import load_model_from_path
        model = load_model_from_path(folder).eval()
        norm = Normalizer(Strategy.COMPUTED, std_multiplier=2.0).normalize(M.SENTINEL2_L2A, x_bthwc)
    else:
        from olmoearth_pretrain_minimal import Normalizer, load_model_from_path
        M, Sample = Modality, MaskedOlmoEarthSample
        model = load_model_from_path(folder).eval()
        norm = Normalizer(model_type=version).normalize(M.SENTINEL2_L2A, x_bthwc)
    b, h, w, t, _ = x_bthwc.shape
    n_sets = model.encoder.patch_embeddings.tokenization_config.get_num_bandsets("sentinel2_l2a")
    sample = Sample(timestamps=torch.tensor(stamps, dtype=torch.long),
                    sentinel2_l2a=torch.from_numpy(np.asarray(norm, np.float32)),
                    sentinel2_l2a_mask=torch.zeros(b, h, w, t, n_sets, dtype=torch.long))
    with torch.no_grad():
        tm = model.encoder(sample, patch_size=patch_size, input_res=10, fast_pass=True)["tokens_and_masks"]
    if full_package:   # every token is encoded here, so instance pooling is the plain mean
        return tm.sentinel2_l2a.mean(dim=(1, 2, 3, 4)).numpy(), None, None
    return (tm.pool_unmasked_tokens(PoolingType.MEAN).numpy(), tm.pool_unmasked_tokens(PoolingType.MAX).numpy(),
            tm.sentinel2_l2a.mean(dim=(3, 4)).permute(0, 3, 1, 2).numpy())


def test_band_order_and_constants_come_from_the_package():
    from rs_embed.sensors import canonical_band as canonical_s2_band
    assert olmoearth.OLMOEARTH_S2_BANDS == tuple(canonical_s2_band(b) for b in Modality.SENTINEL2_L2A.band_order)
    assert olmoearth.OLMOEARTH_S1_BANDS == tuple(b.upper() for b in Modality.SENTINEL1.band_order)
    from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils import constants
    assert olmoearth.INPUT_RES_M == constants.BASE_GSD and olmoearth.MAX_FRAMES == constants.MAX_SEQUENCE_LENGTH
    assert {v.arch["repo"] for v in (olmoearth.CATALOG.get(n) for n in olmoearth.CATALOG.variants())} \
        >= {m.value for m in oem.ModelID}


def test_single_frame_parity_pooled_batch_grid(checkpoint):
    version, folder = checkpoint
    emb = olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")
    xs = dn_patches(3, 12, 16, 16)
    ctx = [{"dates": ["2021-07-15"]}] * 3
    x = np.stack(xs).transpose(0, 2, 3, 1)[:, :, :, None, :]      # (B, H, W, T=1, C)
    mean, mx, grid = _official(folder, version, x, [[(15, 6, 2021)]] * 3)
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled(), contexts=ctx)
    np.testing.assert_allclose(np.stack([g.data for g in got]), mean, atol=1e-5, rtol=1e-5)
    one = emb.embed(xs[1], sensor=S2, output=OutputSpec.pooled("max"), context=ctx[0])
    np.testing.assert_allclose(one.data, mx[1], atol=1e-5, rtol=1e-5)
    g = emb.embed(xs[2], sensor=S2, output=OutputSpec.grid(), context=ctx[0])
    assert g.data.shape == (128, 4, 4)
    np.testing.assert_allclose(g.data, grid[2], atol=1e-5, rtol=1e-5)
    assert got[0].meta["frames_encoded"] == 1 and got[0].meta["timestamps"] == [(15, 6, 2021)]
    if version == "v1":  # the training package's own loader, normaliser and forward agree too
        fmean, _, _ = _official(folder, version, x, [[(15, 6, 2021)]] * 3, full_package=True)
        np.testing.assert_allclose(np.stack([g.data for g in got]), fmean, atol=1e-5, rtol=1e-5)


def test_time_series_parity_and_missing_frames(checkpoint):
    version, folder = checkpoint
    emb = olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")
    series = [np.stack(dn_patches(4, 12, 16, 16, seed=s)) for s in (3, 4)]          # (T=4, C, H, W)
    dates = ["2022-01-16", "2022-04-16", "2022-07-16", "2022-10-16"]
    stamps = [[olmoearth.frame_timestamp(d) for d in dates]] * 2
    x = np.stack(series).transpose(0, 3, 4, 1, 2)                                    # (B, H, W, T, C)
    mean, _, grid = _official(folder, version, x, stamps)
    got = emb.embed_batch(series, sensor=S2, output=OutputSpec.pooled(), contexts=[{"dates": dates}] * 2)
    np.testing.assert_allclose(np.stack([g.data for g in got]), mean, atol=1e-5, rtol=1e-5)
    g = emb.embed(series[0], sensor=S2, output=OutputSpec.grid(), context={"dates": dates})
    np.testing.assert_allclose(g.data, grid[0], atol=1e-5, rtol=1e-5)
    assert got[0].meta["frames_input"] == 4 and got[0].meta["frames_encoded"] == 4
    # an empty frame (no imagery in its bin) is masked, not encoded as zeros
    holed = series[0].copy()
    holed[2] = np.nan
    res = emb.embed(holed, sensor=S2, output=OutputSpec.pooled(), context={"dates": dates})
    assert res.meta["frames_encoded"] == 3 and res.meta["frames_missing"] == 1
    three = emb.embed(series[0][[0, 1, 3]], sensor=S2, output=OutputSpec.pooled(),
                      context={"dates": [dates[0], dates[1], dates[3]]})
    assert np.isfinite(res.data).all() and not np.allclose(res.data, got[0].data)
    assert res.data.shape == three.data.shape


def test_checkpoint_without_its_config_is_refused(weights_dir, tiny_variant):
    (weights_dir / "OlmoEarth-x").mkdir()
    torch.save({}, weights_dir / "OlmoEarth-x" / "weights.pth")
    tiny_variant(olmoearth, "nano", variant="test", filename="OlmoEarth-x/weights.pth")
    with pytest.raises(ModelError, match="config.json"):
        olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        olmoearth.OlmoEarthEmbedder(variant="base_v1_2", device="cpu")
    msg = str(err.value)
    assert "OlmoEarth-v1_2-Base/weights.pth" in msg and "allenai/OlmoEarth-v1_2-Base" in msg and "MB" in msg


def test_describe_and_default_sensor_is_a_time_series():
    d = olmoearth.OlmoEarthEmbedder.describe()
    assert d["defaults"]["frames"] == 12 and d["inputs"]["bands"] == list(olmoearth.OLMOEARTH_S2_BANDS)
    assert set(d["model_config"]) >= {"variant", "weights", "patch_size", "frames"}
    assert "s1" in d["modalities"]


def test_get_embedding_bins_the_window_into_frames(weights_dir, tiny_variant, tmp_path):
    """Through the public API and the real local provider: 3 monthly frames, one empty."""
    import rs_embed
    from rs_embed.providers.local import LocalProvider

    from .scenes import centre_roi, write_scenes
    _make_checkpoint("v1.2", weights_dir, tiny_variant)
    write_scenes(tmp_path / "scenes", ["2021-05-03", "2021-05-20", "2021-07-09"], olmoearth.OLMOEARTH_S2_BANDS)
    provider = LocalProvider(tmp_path / "scenes")
    with pytest.warns(UserWarning, match="1 of 3 frames"):
        emb = rs_embed.get_embedding("olmoearth", spatial=centre_roi(), backend=provider, device="cpu",
                                     temporal=rs_embed.TemporalSpec.range("2021-05-01", "2021-08-01"),
                                     variant="test", frames=3)
    m = emb.meta
    assert emb.data.shape == (128,) and np.isfinite(emb.data).all()
    assert m["input"]["frames_requested"] == 3 and m["input"]["frames_empty"] == [1]
    assert m["frames_input"] == 3 and m["frames_encoded"] == 2 and m["frames_missing"] == 1
    assert m["timestamps"] == [(16, 4, 2021), (16, 5, 2021), (16, 6, 2021)]
    assert m["sensor"]["frames"] == 3


def test_sentinel1_modality_parity(weights_dir, tiny_variant):
    """modality='s1': VV/VH dB through the package's SENTINEL1 normaliser and encoder."""
    from olmoearth_pretrain_minimal import Normalizer, load_model_from_path
    _, folder = _make_checkpoint("v1.2", weights_dir, tiny_variant)
    emb = olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")
    s1 = emb.sensor_for_modality("s1")
    assert s1.bands == olmoearth.OLMOEARTH_S1_BANDS and s1.collection == "COPERNICUS/S1_GRD"
    rng = np.random.default_rng(9)
    xs = [(rng.random((2, 16, 16)) * 20 - 25).astype(np.float32) for _ in range(2)]
    ctx = [{"dates": ["2022-03-01"]}] * 2
    got = emb.embed_batch(xs, sensor=s1, output=OutputSpec.pooled(), contexts=ctx)
    model = load_model_from_path(folder).eval()
    x = np.stack(xs).transpose(0, 2, 3, 1)[:, :, :, None, :]
    norm = Normalizer(model_type="v1.2").normalize(Modality.SENTINEL1, x)
    n_sets = model.encoder.patch_embeddings.tokenization_config.get_num_bandsets("sentinel1")
    sample = MaskedOlmoEarthSample(timestamps=torch.tensor([[(1, 2, 2022)]] * 2, dtype=torch.long),
                                   sentinel1=torch.from_numpy(np.asarray(norm, np.float32)),
                                   sentinel1_mask=torch.zeros(2, 16, 16, 1, n_sets, dtype=torch.long))
    with torch.no_grad():
        tm = model.encoder(sample, patch_size=4, input_res=10, fast_pass=True)["tokens_and_masks"]
    np.testing.assert_allclose(np.stack([g.data for g in got]), tm.pool_unmasked_tokens(PoolingType.MEAN).numpy(),
                               atol=1e-5, rtol=1e-5)
    assert got[0].meta["modality"] == "sentinel1"
    # weights= may name the downloaded repository folder itself
    assert olmoearth.OlmoEarthEmbedder(variant="test", device="cpu", weights=str(folder)).weights_path \
        == folder / "weights.pth"


def _package_tokens(folder, version, x_bthwc, stamps, mask_nan=True):
    """The package's encoder output (TokensAndMasks) on (B, H, W, T, C) DN, NaN = missing."""
    from olmoearth_pretrain_minimal import Normalizer, load_model_from_path
    model = load_model_from_path(folder).eval()
    norm = Normalizer(model_type=version).normalize(Modality.SENTINEL2_L2A, x_bthwc)
    b, h, w, t, _ = x_bthwc.shape
    n_sets = model.encoder.patch_embeddings.tokenization_config.get_num_bandsets("sentinel2_l2a")
    sample = MaskedOlmoEarthSample(timestamps=torch.tensor(stamps, dtype=torch.long),
                                   sentinel2_l2a=torch.from_numpy(np.nan_to_num(np.asarray(norm, np.float32))),
                                   sentinel2_l2a_mask=torch.zeros(b, h, w, t, n_sets, dtype=torch.long))
    with torch.no_grad():
        return model.encoder(sample, patch_size=4, input_res=10, fast_pass=True)["tokens_and_masks"]


def test_a_rectangle_is_the_square_cropped_back_and_pooled_over_its_cells(checkpoint):
    """A BBox's enclosing square goes in whole; the grid keeps the ROI's token rows, the
    pooled vector is the package's pool_unmasked_tokens over the tokens of those cells."""
    from rs_embed.inference import embed_inputs
    from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.datatypes import MaskValue
    version, folder = checkpoint
    emb = olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")
    x = dn_patches(1, 12, 18, 18, seed=5)[0]            # 18 px: centre-cropped to 16 (4 x 4 tokens)
    roi = (5, 1, 8, 16)                                  # rows 5..13 of the square: token rows 1..2
    ctx = {"roi": roi, "dates": ["2021-07-15"]}
    grid = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.grid(), input_prep=None, contexts=[ctx])[0]
    tm = _package_tokens(folder, version, x[:, 1:17, 1:17].transpose(1, 2, 0)[None, :, :, None, :],
                         [[(15, 6, 2021)]])
    full = tm.sentinel2_l2a.mean(dim=(3, 4)).permute(0, 3, 1, 2)[0].numpy()
    np.testing.assert_allclose(grid.data, full[:, 1:3, :], atol=1e-5, rtol=1e-5)
    # where those cells lie: 1 px of centre crop, 4 px a cell, token row 1 starts at row 5
    assert grid.meta["grid_geometry"] == {"origin_px": [5.0, 1.0], "cell_px": [4.0, 4.0]}
    outside = torch.ones(1, 4, 4, dtype=torch.bool)
    outside[:, 1:3, :] = False
    m = tm.sentinel2_l2a_mask.clone()
    m[outside] = MaskValue.MISSING.value
    roi_tm = tm._replace(sentinel2_l2a_mask=m)
    for pooling, kind in (("mean", PoolingType.MEAN), ("max", PoolingType.MAX)):
        got = embed_inputs(emb, [x], sensor=S2, output=OutputSpec.pooled(pooling), input_prep=None,
                           contexts=[ctx])[0]
        np.testing.assert_allclose(got.data, roi_tm.pool_unmasked_tokens(kind)[0].numpy(), atol=1e-5, rtol=1e-5)
        assert got.meta["roi_pooling"] == "8 of 16 grid cells on the ROI"


def test_masked_pixels_are_filled_by_the_package_normaliser(checkpoint):
    """Masked pixels (the provider's valid mask) reach the package's Normalizer as NaN: v1
    copies the nearest band, v1.1+ set 0 after normalising; meta says which and how many."""
    version, folder = checkpoint
    emb = olmoearth.OlmoEarthEmbedder(variant="test", device="cpu")
    x = dn_patches(1, 12, 16, 16, seed=8)[0]
    valid = np.ones((16, 16), bool)
    valid[:4, :6] = False
    holed = x.copy()
    holed[0, ~valid] = 0.0         # what the provider left there (fill_value) ...
    holed[1:, ~valid] = 1234.0     # ... or anything else: the mask decides
    got = emb.embed(holed, sensor=S2, output=OutputSpec.pooled(), context={"valid": valid, "dates": ["2021-07-15"]})
    want = x.copy()
    want[:, ~valid] = np.nan
    tm = _package_tokens(folder, version, want.transpose(1, 2, 0)[None, :, :, None, :], [[(15, 6, 2021)]])
    np.testing.assert_allclose(got.data, tm.pool_unmasked_tokens(PoolingType.MEAN)[0].numpy(), atol=1e-5, rtol=1e-5)
    fill = got.meta["nodata_fill"]
    assert fill["pixels"] == 24 and fill["values"] is None and "Missing Bands" in fill["source"]
    assert ("nearest in wavelength" in fill["source"]) == (version == "v1")
