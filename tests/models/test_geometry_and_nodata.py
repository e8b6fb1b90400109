"""Rectangles, centre crops, stitched tiles and nodata on pretrained models (tiny checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed import BBox, get_embedding, sample
from rs_embed.geometry import roi_grid
from rs_embed.inference import embed_inputs, patch_context
from rs_embed.providers.base import Patch
from rs_embed.providers.local import LocalProvider
from rs_embed.specs import InputPrepSpec, OutputSpec, SensorSpec

torch = pytest.importorskip("torch", reason="needs the 'models' extra (torch)")
tgm = pytest.importorskip("torchgeo.models", reason="needs the 'models' extra (torchgeo)")
from rs_embed.models import prithvi, ssl4eo  # noqa: E402

L1C = SensorSpec(sample.COLLECTION, sample.BANDS)


@pytest.fixture
def tiny_ssl4eo(weights_dir, tiny_variant):
    """A ResNet-18 SSL4EO variant that resizes to 73 and centre-crops 64 (grid 2 x 2)."""
    torch.manual_seed(0)
    ref = tgm.resnet18(None, in_chans=13).eval()
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")},
               weights_dir / "tiny-resnet18.pth")
    tiny_variant(ssl4eo, "resnet50_moco", filename="tiny-resnet18.pth",
                 arch={"builder": "resnet18", "kwargs": {}}, image_size=64,
                 extra={"resize_to": 73, "ssl_method": "moco"})
    return ssl4eo.SSL4EOEmbedder(variant="tiny", device="cpu")


def _patch(spatial, sensor=L1C):
    return LocalProvider().fetch(spatial, sample.TEMPORAL, sensor)


def test_a_rectangle_is_embedded_from_its_enclosing_square_and_cropped_back(tiny_ssl4eo):
    box = BBox(-75.700, 37.645, -75.650, 37.655)  # about 4.4 km x 1.1 km
    patch = _patch(box)
    row, col, h, w = patch.grid.roi
    assert patch.data.shape[1] == patch.data.shape[2] == max(h, w) and h < w
    # the square is real imagery, not padding (B10 holds a few genuine zeros, read as nodata)
    assert patch.meta["nodata_fraction"] < 1e-3
    ctx = patch_context(patch, None, where=False)
    grid = embed_inputs(tiny_ssl4eo, [patch.data], sensor=L1C, output=OutputSpec.grid(),
                        input_prep=None, contexts=[ctx])[0]
    # the square's 2 x 2 grid, centre-cropped: only the cells whose centres lie on the box stay
    fp = tiny_ssl4eo.grid_footprint(patch.data.shape[1:])
    n = patch.data.shape[1]
    cell = (fp[2] - fp[0]) / 2
    centres = fp[0] + (np.arange(2) + 0.5) * cell
    rows = [i for i, c in enumerate(centres) if row <= c < row + h]
    assert grid.data.shape[1:] == (max(1, len(rows)), 2)
    # pooled = the mean of exactly those cells of the square's grid (ResNet: spatial mean)
    full = embed_inputs(tiny_ssl4eo, [patch.data], sensor=L1C, output=OutputSpec.grid(),
                        input_prep=None)[0]
    pooled = embed_inputs(tiny_ssl4eo, [patch.data], sensor=L1C, output=OutputSpec.pooled(),
                          input_prep=None, contexts=[ctx])[0]
    np.testing.assert_allclose(pooled.data, grid.data.reshape(grid.data.shape[0], -1).mean(1), rtol=1e-5)
    assert not np.allclose(pooled.data, full.data.reshape(full.data.shape[0], -1).mean(1))
    assert "grid cells on the ROI" in pooled.meta["roi_pooling"]
    assert n == patch.grid.width


def test_centre_crop_and_roi_crop_are_in_the_grid_georeferencing(tiny_ssl4eo):
    box = BBox(-75.700, 37.640, -75.650, 37.660)
    emb = get_embedding("ssl4eo", variant="tiny", spatial=box, temporal=sample.TEMPORAL, sensor=L1C,
                        backend="local", output=OutputSpec.grid(), device="cpu")
    geo = emb.meta["grid_georef"]
    square = roi_grid(box, 10)
    n = square.width
    cell_m = 10.0 * (n * 64 / 73) / 2          # the crop covers 64/73 of the square, in 2 cells
    a, _, x0, _, e, y0 = geo["transform"]
    assert a == pytest.approx(cell_m) and e == pytest.approx(-cell_m)
    assert (geo["width"], geo["height"]) == (emb.data.shape[2], emb.data.shape[1])
    # the grid sits on the box (not on the square's corner, not on the stretched box)
    left, bottom, right, top = square.roi_grid().bounds
    sq_left = square.bounds[0]
    assert x0 == pytest.approx(sq_left + 10.0 * n * (1 - 64 / 73) / 2)
    assert bottom - cell_m <= y0 + e * geo["height"] and y0 <= top + cell_m
    assert emb.meta["roi_window"]["width"] > emb.meta["roi_window"]["height"]


def test_stitched_tiles_of_a_centre_cropping_model_line_up_with_each_tile(tiny_ssl4eo):
    """Tiling a 96 px patch with 64 px tiles: every stitched cell is the cell of its owning
    tile at the same place on the ground."""
    spatial = sample.points(480)[20].spatial
    patch = _patch(spatial)
    x = patch.data
    assert x.shape[1:] == (96, 96)
    spec = InputPrepSpec.tile(max_tiles=4)
    stitched = embed_inputs(tiny_ssl4eo, [x], sensor=L1C, output=OutputSpec.grid(), input_prep=spec)[0]
    g = stitched.meta["grid_geometry"]
    cell = 64 * 64 / 73 / 2
    assert g["cell_px"] == pytest.approx([cell, cell])
    assert g["origin_px"] == pytest.approx([(73 - 64) / 73 * 64 / 2] * 2)
    assert stitched.data.shape[1:] == (3, 3)
    own = {o: embed_inputs(tiny_ssl4eo, [x[:, o[0]:o[0] + 64, o[1]:o[1] + 64]], sensor=L1C,
                           output=OutputSpec.grid(), input_prep=None)[0] for o in ((0, 0), (0, 32), (32, 0), (32, 32))}
    for si in range(3):
        for sj in range(3):
            # the stitched cell's centre, in patch pixels; its owner by the midpoint cut (48)
            cy = g["origin_px"][0] + (si + 0.5) * cell
            cx = g["origin_px"][1] + (sj + 0.5) * cell
            ty, tx = (0 if cy < 48 else 32), (0 if cx < 48 else 32)
            og = own[(ty, tx)].meta["grid_geometry"]
            i = min(1, int((cy - ty - og["origin_px"][0]) // cell))
            j = min(1, int((cx - tx - og["origin_px"][1]) // cell))
            np.testing.assert_allclose(stitched.data[:, si, sj], own[(ty, tx)].data[:, i, j], rtol=1e-4, atol=1e-5)
    # and the stitched grid covers the patch but the crop margins of its outer tiles
    geo = stitched.meta["grid_geometry"]
    assert geo["origin_px"][0] + 3 * cell == pytest.approx(96 - (73 - 64) / 73 * 64 / 2, abs=cell / 2)


def test_masked_pixels_take_each_familys_documented_fill(tiny_ssl4eo, weights_dir, tiny_variant):
    patch = _patch(sample.points(320)[20].spatial)
    data = patch.data.copy()
    data[:, :20, :] = 0.0  # a strip the provider marked nodata
    valid = np.ones(data.shape[1:], dtype=bool)
    valid[:20, :] = False
    masked = Patch(data, patch.bands, patch.grid, dict(patch.meta, nodata_fraction=0.3125), valid=valid)
    ctx = patch_context(masked, None, where=False)
    got = embed_inputs(tiny_ssl4eo, [data], sensor=L1C, output=OutputSpec.pooled(), input_prep=None,
                       contexts=[ctx])[0]
    assert got.meta["nodata_fill"]["pixels"] == 20 * 64
    means = [ssl4eo.SSL4EO_S12_L1C_STATS[b][0] for b in ssl4eo.SSL4EO_BANDS]
    filled = data.copy()
    filled[:, :20, :] = np.asarray(means, dtype=np.float32)[:, None, None]
    want = embed_inputs(tiny_ssl4eo, [filled], sensor=L1C, output=OutputSpec.pooled(), input_prep=None)[0]
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5)
    black = embed_inputs(tiny_ssl4eo, [data], sensor=L1C, output=OutputSpec.pooled(), input_prep=None,
                         contexts=[{"valid": np.ones_like(valid)}])[0]
    assert not np.allclose(black.data, got.data)  # the fill is not the black 0 DN of old
    # without a context the mask comes from the data: every band at fill_value is nodata
    again = embed_inputs(tiny_ssl4eo, [data], sensor=L1C, output=OutputSpec.pooled(), input_prep=None)[0]
    np.testing.assert_allclose(again.data, got.data, rtol=1e-5)

    # Prithvi: the band mean, so the standardised input there is 0 (official inference.py)
    torch.manual_seed(0)
    arch = {**prithvi.CATALOG.get("300m").arch, "embed_dim": 32, "depth": 1, "num_heads": 2,
            "patch_size": (1, 16, 16), "img_size": 32}
    net = prithvi._encoder(arch)
    torch.save({f"encoder.{k}": v for k, v in net.state_dict().items()}, weights_dir / "tiny-prithvi.pt")
    tiny_variant(prithvi, "300m", filename="tiny-prithvi.pt", arch=arch, image_size=32)
    emb = prithvi.PrithviEmbedder(variant="tiny", device="cpu")
    hls = SensorSpec(sample.COLLECTION, prithvi.PRITHVI_S2_BANDS, scale_m=30)
    six = data[[sample.BANDS.index(b) for b in prithvi.PRITHVI_S2_BANDS]][:, :32, :32].copy()
    v = np.ones((32, 32), dtype=bool)
    v[:8] = False
    res = emb.embed_batch([six], sensor=hls, output=OutputSpec.pooled(), contexts=[{"valid": v}])[0]
    assert res.meta["nodata_fill"]["values"] == list(prithvi.PRITHVI_V2_MEAN)
    assert "inference.py" in res.meta["nodata_fill"]["source"]
