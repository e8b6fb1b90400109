"""prithvi: the official MAE checkpoint layout loads; parity with the official PrithviViT
(terratorch's prithvi_mae.py) for one and several frames, with and without time-location."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches, load_file_module

torch = pytest.importorskip("torch", reason="prithvi needs the 'models' extra (torch)")
pytest.importorskip("timm", reason="prithvi needs the 'models' extra (timm)")
from rs_embed.models import prithvi  # noqa: E402

HLS = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", prithvi.PRITHVI_S2_BANDS, scale_m=30)
DIMS = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": (1, 16, 16)}


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("einops", reason="the official Prithvi code needs einops")
    # terratorch's package __init__ pulls a training framework; load only prithvi_mae.py.
    return load_file_module("tt_prithvi_mae", "terratorch", "models/backbones/prithvi_mae.py")


def _tiny(reference, weights_dir, tiny_variant, tl: bool, frames: int):
    torch.manual_seed(0)
    coords = ["time", "location"] if tl else []
    mae = reference.PrithviMAE(img_size=32, num_frames=frames, in_chans=6, decoder_embed_dim=16,
                               decoder_depth=1, decoder_num_heads=2, coords_encoding=coords,
                               coords_scale_learn=tl, **DIMS)
    with torch.no_grad():   # learnt coordinate scales start at 0.1; make them matter
        for name, p in mae.named_parameters():
            if name.endswith("embed_enc.scale"):
                p.fill_(0.7)
    torch.save(mae.state_dict(), weights_dir / "prithvi-tiny.pt")   # official Prithvi_EO_V2_*.pt layout
    tiny_variant(prithvi, "300m_tl" if tl else "300m", filename="prithvi-tiny.pt", image_size=32,
                 arch={"img_size": 32, "in_chans": 6, "mlp_ratio": 4.0, **DIMS, "coords_encoding": coords,
                       "coords_scale_learn": tl})
    enc = reference.PrithviViT(img_size=32, num_frames=frames, in_chans=6, coords_encoding=coords,
                               coords_scale_learn=tl, **DIMS)
    enc.load_state_dict({k[8:]: v for k, v in mae.state_dict().items() if k.startswith("encoder.")})
    return enc.eval(), prithvi.PrithviEmbedder(variant="tiny", device="cpu")


def _normalised(x_tchw):
    mean = np.asarray(prithvi.PRITHVI_V2_MEAN, np.float32)[:, None, None]
    std = np.asarray(prithvi.PRITHVI_V2_STD, np.float32)[:, None, None]
    return torch.from_numpy((x_tchw - mean) / std).permute(1, 0, 2, 3)  # (C, T, H, W)


def test_single_frame_parity(reference, weights_dir, tiny_variant):
    enc, emb = _tiny(reference, weights_dir, tiny_variant, tl=False, frames=1)
    xs = dn_patches(3, 6, 32, 32)
    with torch.no_grad():
        want = enc.forward_features(torch.stack([_normalised(a[None]) for a in xs]))[-1][:, 1:]
    got = emb.embed_batch(xs, sensor=HLS, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), want.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[1], sensor=HLS, output=OutputSpec.grid())
    np.testing.assert_allclose(grid.data, want[1].reshape(2, 2, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    assert grid.meta["frames"] == 1 and grid.meta["cls_removed"]


def test_multi_frame_time_location_parity(reference, weights_dir, tiny_variant):
    enc, emb = _tiny(reference, weights_dir, tiny_variant, tl=True, frames=3)
    xs = [np.stack(dn_patches(3, 6, 32, 32, seed=s)) for s in (1, 2)]        # (T=3, C, H, W)
    ctx = [{"center": (8.5, 47.3), "dates": ["2021-01-13", "2021-04-02", "2021-07-30"]},
           {"center": (-60.0, -3.1), "dates": ["2020-02-01", "2020-05-01", "2020-12-31"]}]
    temporal = torch.tensor([[[2021, 13], [2021, 92], [2021, 211]], [[2020, 32], [2020, 122], [2020, 366]]],
                            dtype=torch.float32)
    location = torch.tensor([[47.3, 8.5], [-3.1, -60.0]])
    with torch.no_grad():
        want = enc.forward_features(torch.stack([_normalised(a) for a in xs]), temporal, location)[-1][:, 1:]
    got = emb.embed_batch(xs, sensor=HLS, output=OutputSpec.pooled(), contexts=ctx)
    np.testing.assert_allclose(np.stack([g.data for g in got]), want.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    assert got[0].meta["coords_used"] == {"time": True, "location": True} and got[0].meta["frames"] == 3
    mx = emb.embed(xs[0], sensor=HLS, output=OutputSpec.pooled("max"), context=ctx[0])
    np.testing.assert_allclose(mx.data, want[0].max(0).values.numpy(), atol=1e-5)
    grid = emb.embed(xs[0], sensor=HLS, output=OutputSpec.grid(), context=ctx[0])
    per_frame_mean = want[0].reshape(3, 4, 32).mean(0).reshape(2, 2, 32).permute(2, 0, 1)
    np.testing.assert_allclose(grid.data, per_frame_mean.numpy(), atol=1e-5)
    # without context the coordinates are skipped, as the official forward does with None
    bare = emb.embed(xs[0], sensor=HLS, output=OutputSpec.pooled())
    assert bare.meta["coords_used"] == {"time": False, "location": False}
    assert not np.allclose(bare.data, got[0].data)


def test_mixed_frame_counts_in_one_batch(reference, weights_dir, tiny_variant):
    _, emb = _tiny(reference, weights_dir, tiny_variant, tl=False, frames=1)
    one = dn_patches(1, 6, 32, 32)[0]
    two = np.stack([one, one * 0.9])
    res = emb.embed_batch([two, one, two], sensor=HLS, output=OutputSpec.pooled())
    assert [r.meta["frames"] for r in res] == [2, 1, 2]
    np.testing.assert_allclose(res[1].data, emb.embed(one, sensor=HLS, output=OutputSpec.pooled()).data,
                               atol=1e-6)
    np.testing.assert_allclose(res[0].data, res[2].data, atol=1e-6)


def test_position_embedding_and_constants_match_the_official_code(reference):
    for t, h, w, d in ((1, 14, 14, 64), (4, 14, 14, 1024), (2, 16, 16, 1280)):
        np.testing.assert_allclose(prithvi.sincos_3d(d, t, h, w),
                                   reference.get_3d_sincos_pos_embed(d, (t, h, w))[:], atol=1e-12)
    # PRITHVI_V2_MEAN/STD are read from terratorch in test_encodings.py
    # HLS BLUE GREEN RED NIR_NARROW SWIR_1 SWIR_2 are Sentinel-2 B2 B3 B4 B8A B11 B12
    assert prithvi.PRITHVI_S2_BANDS == ("B2", "B3", "B4", "B8A", "B11", "B12")
    assert prithvi.CATALOG.get("600m").arch["patch_size"] == (1, 14, 14)


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        prithvi.PrithviEmbedder(variant="600m_tl", device="cpu")
    msg = str(err.value)
    assert "Prithvi_EO_V2_600M_TL.pt" in msg and "2,640 MB" in msg
    assert "ibm-nasa-geospatial/Prithvi-EO-2.0-600M-TL" in msg
