"""Tiling and stitching: seams, ownership and pooling weights of rs_embed.input_prep."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError, SpecError
from rs_embed.input_prep import (choose_mode, cut_tile, owned_areas, ownership, plan_tiles,
                                 pool_tiles, stitch_grids, tile_origins)
from rs_embed.specs import InputPrepSpec, OutputSpec


# ----------------------------------------------------------------------- origins
@pytest.mark.parametrize("length, tile, expected", [
    (300, 224, [0, 76]),
    (224, 224, [0]),
    (100, 224, [0]),
    (448, 224, [0, 224]),
    (449, 224, [0, 224, 225]),
    (1000, 224, [0, 224, 448, 672, 776]),
])
def test_tile_origins_cover_shift(length, tile, expected):
    assert tile_origins(length, tile) == expected


@pytest.mark.parametrize("length", [1, 5, 223, 224, 225, 300, 511, 1000])
def test_tiles_cover_every_pixel_and_stay_inside(length):
    tile = 224
    origins = tile_origins(length, tile)
    covered = np.zeros(length, bool)
    for o in origins:
        covered[o:o + tile] = True
        assert o >= 0 and (o + tile <= length or length < tile)
    assert covered.all()


def test_bad_lengths_name_the_argument():
    with pytest.raises(SpecError, match="tile"):
        tile_origins(300, 0)
    with pytest.raises(SpecError, match="length"):
        tile_origins(-3, 224)


def test_plan_tiles_row_major_and_limit():
    assert plan_tiles(300, 300, 224, 4) == [(0, 0), (0, 76), (76, 0), (76, 76)]
    assert plan_tiles(200, 200, 224, 1) == [(0, 0)]
    with pytest.raises(ModelError, match=r"3x3=9 tiles.*max_tiles=4"):
        plan_tiles(500, 500, 224, 4)


# --------------------------------------------------------------------- ownership
@pytest.mark.parametrize("length, tile", [(300, 224), (449, 224), (1000, 224), (72, 32), (64, 32), (20, 32)])
def test_ownership_partitions_the_axis(length, tile):
    origins = tile_origins(length, tile)
    owned = ownership(origins, tile, length)
    assert owned[0][0] == 0 and owned[-1][1] == length
    for (a0, a1), (b0, b1) in zip(owned, owned[1:]):
        assert a1 == b0  # contiguous: no gap, no pixel owned twice
    for o, (s, e) in zip(origins, owned):
        assert o <= s < e <= o + tile  # a tile only owns pixels it saw


def test_ownership_cuts_overlaps_at_the_midpoint():
    # tiles [0, 224) and [76, 300) overlap on [76, 224): cut at 150
    assert ownership([0, 76], 224, 300) == [(0, 150), (150, 300)]
    # no overlap: each tile owns exactly itself
    assert ownership([0, 224], 224, 448) == [(0, 224), (224, 448)]


def test_ownership_rejects_gaps_and_bad_orders():
    with pytest.raises(SpecError, match="gap"):
        ownership([0, 300], 224, 524)
    with pytest.raises(SpecError, match="increasing"):
        ownership([76, 0], 224, 300)
    with pytest.raises(SpecError, match="cover"):
        ownership([0], 224, 300)


def test_owned_areas_sum_to_the_patch():
    for h, w in [(300, 300), (300, 500), (1000, 449), (100, 50)]:
        origins = plan_tiles(h, w, 224, 100)
        areas = owned_areas(origins, 224, h, w)
        assert sum(areas) == h * w
        assert all(a > 0 for a in areas)


# ---------------------------------------------------------------------- stitching
def _pool_map(img: np.ndarray, cell: int) -> np.ndarray:
    """A translation-equivariant 'model': a pointwise map then cell x cell mean pooling."""
    f = np.stack([img[0] * 2.0 - img[1], np.tanh(img[1]), img[0] * img[1]])
    d, h, w = f.shape
    return f.reshape(d, h // cell, cell, w // cell, cell).mean(axis=(2, 4))


@pytest.mark.parametrize("h, w", [(72, 72), (72, 40), (96, 64), (32, 32), (40, 100)])
def test_stitched_tiles_equal_the_whole_image(h, w):
    rng = np.random.default_rng(1)
    img = rng.normal(size=(2, h, w))
    tile, cell = 32, 4
    origins = plan_tiles(h, w, tile, 100)
    grids = [_pool_map(img[:, y:y + tile, x:x + tile], cell) for y, x in origins]
    stitched = stitch_grids(grids, origins, tile, h, w)
    np.testing.assert_array_equal(stitched, _pool_map(img, cell))


def test_partial_last_cell_is_kept_and_aligned_cells_are_exact():
    # 200 px in tiles of 64 with 16 px cells: 12.5 cells -> 13 (round half up), as a
    # model pooling the whole patch into ceil(200 / 16) cells would give.
    rng = np.random.default_rng(5)
    img = rng.normal(size=(2, 200, 200))
    origins = plan_tiles(200, 200, 64, 16)
    stitched = stitch_grids([_pool_map(img[:, y:y + 64, x:x + 64], 16) for y, x in origins],
                            origins, 64, 200, 200)
    assert stitched.shape == (3, 13, 13)
    whole = _pool_map(np.pad(img, ((0, 0), (0, 8), (0, 8))), 16)  # 208 px: 13 cells
    # cells up to 160 px come from tiles on the 16 px lattice (origins 0, 64, 128)
    np.testing.assert_allclose(stitched[:, :10, :10], whole[:, :10, :10], atol=1e-12)


def test_stitching_uses_midpoint_cuts_not_last_tile_wins():
    # Tag every cell with the index of the tile it came from: ownership must follow
    # the midpoint cut (tile 0 keeps [0, 150) of a 300 px axis), not the last writer.
    h, w, tile, cells = 300, 224, 224, 56  # 4 px cells
    origins = plan_tiles(h, w, tile, 9)
    grids = [np.full((1, cells, cells), i, dtype=np.float32) for i in range(len(origins))]
    out = stitch_grids(grids, origins, tile, h, w)
    assert out.shape == (1, 75, 56)
    rows_from_first = int((out[0, :, 0] == 0).sum())
    centres = (np.arange(75) + 0.5) * 4
    assert rows_from_first == int((centres < 150).sum()) == 37  # centre in [0, 150)
    assert set(np.unique(out)) == {0.0, 1.0}


def test_neighbourhood_model_is_seamless_inside_overlaps():
    # A 3x3 box filter is only wrong within 1 px of a tile edge; with midpoint cuts
    # every owned pixel is >= 1 px from the edges of its tile when overlaps are >= 4 px.
    rng = np.random.default_rng(2)
    h = w = 50
    tile = 32
    img = rng.normal(size=(h, w))

    def box(a):
        p = np.pad(a, 1, mode="edge")
        return sum(p[i:i + a.shape[0], j:j + a.shape[1]] for i in range(3) for j in range(3))[None] / 9

    origins = plan_tiles(h, w, tile, 9)
    assert origins == [(0, 0), (0, 18), (18, 0), (18, 18)]
    stitched = stitch_grids([box(img[y:y + tile, x:x + tile]) for y, x in origins], origins, tile, h, w)
    np.testing.assert_allclose(stitched, box(img), atol=1e-12)


def test_small_patch_padded_into_one_tile_is_cropped_back():
    img = np.arange(2 * 20 * 12, dtype=np.float32).reshape(2, 20, 12)
    tile = 32
    padded = cut_tile(img, 0, 0, tile, fill_value=-1)
    assert padded.shape == (2, 32, 32) and (padded[:, 20:] == -1).all()
    stitched = stitch_grids([padded], [(0, 0)], tile, 20, 12)
    np.testing.assert_array_equal(stitched, img)


def test_stitch_rejects_mismatched_inputs():
    g = np.zeros((3, 8, 8))
    with pytest.raises(SpecError, match="2 tile origins"):
        stitch_grids([g], [(0, 0), (0, 10)], 32, 32, 42)
    with pytest.raises(SpecError, match="one shape"):
        stitch_grids([g, np.zeros((3, 4, 4))], [(0, 0), (0, 10)], 32, 32, 42)


# ------------------------------------------------------------------------ pooling
def test_pool_tiles_is_the_area_weighted_mean():
    rng = np.random.default_rng(3)
    h, w, tile = 500, 260, 224  # rows owned: 224, 138, 138 -> unequal weights
    img = rng.normal(size=(4, h, w))
    origins = plan_tiles(h, w, tile, 9)
    ys, xs = sorted({y for y, _ in origins}), sorted({x for _, x in origins})
    own_y, own_x = dict(zip(ys, ownership(ys, tile, h))), dict(zip(xs, ownership(xs, tile, w)))
    # each tile's vector: the mean over the pixels it owns -> pooled = whole-image mean
    vecs = [img[:, slice(*own_y[y]), slice(*own_x[x])].mean(axis=(1, 2)) for y, x in origins]
    pooled = pool_tiles(vecs, owned_areas(origins, tile, h, w))
    np.testing.assert_allclose(pooled, img.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert pooled.dtype == np.float32
    # a plain (unweighted) mean of the tile vectors would be wrong here
    assert not np.allclose(np.mean(vecs, axis=0), img.mean(axis=(1, 2)), atol=1e-6)


def test_pool_tiles_max_and_errors():
    v = [np.array([1.0, 5.0]), np.array([3.0, 2.0])]
    np.testing.assert_array_equal(pool_tiles(v, [1, 1], pooling="max"), [3.0, 5.0])
    with pytest.raises(SpecError, match="owned_areas"):
        pool_tiles(v, [0, 0])
    with pytest.raises(SpecError, match="pooling"):
        pool_tiles(v, [1, 1], pooling="median")


# -------------------------------------------------------------------- choose_mode
GRID, POOLED = OutputSpec.grid(), OutputSpec.pooled()


def test_choose_mode_resize_and_default():
    assert choose_mode(None, 500, 500, 224, GRID) == "resize"
    assert choose_mode(InputPrepSpec.resize(), 500, 500, 224, GRID) == "resize"
    assert choose_mode("resize", 500, 500, 224, "grid") == "resize"


def test_choose_mode_auto_tiles_grids_when_few_tiles():
    auto = InputPrepSpec.auto(max_tiles=4)
    assert choose_mode(auto, 300, 300, 224, GRID) == "tile"        # 4 tiles
    assert choose_mode(auto, 500, 500, 224, GRID) == "resize"      # 9 tiles > 4
    assert choose_mode(auto, 300, 300, 224, POOLED) == "resize"    # pooled: resize
    assert choose_mode(auto, 200, 200, 224, GRID) == "resize"      # fits one tile
    assert choose_mode(InputPrepSpec.auto(max_tiles=4, tile_size=100), 200, 200, 224, GRID) == "tile"


def test_choose_mode_tile():
    assert choose_mode(InputPrepSpec.tile(), 300, 300, 224, POOLED) == "tile"
    assert choose_mode(InputPrepSpec.tile(), 100, 100, 224, GRID) == "tile"  # padded
    assert choose_mode(InputPrepSpec.tile(pad_edges=False), 100, 100, 224, GRID) == "resize"
    with pytest.raises(ModelError, match="max_tiles=9"):
        choose_mode(InputPrepSpec.tile(), 1000, 1000, 224, GRID)  # 25 tiles


def test_choose_mode_any_size_model_gets_the_whole_patch():
    # image_size None (rcf, spectral): nothing to tile against unless tile_size is given
    assert choose_mode(InputPrepSpec.tile(), 1000, 1000, None, GRID) == "resize"
    assert choose_mode(InputPrepSpec.auto(), 1000, 1000, None, GRID) == "resize"
    assert choose_mode(InputPrepSpec.tile(tile_size=500), 1000, 1000, None, GRID) == "tile"


def test_choose_mode_bad_arguments():
    with pytest.raises(SpecError, match="input_prep"):
        choose_mode("stretch", 10, 10, 224, GRID)
    with pytest.raises(SpecError, match="output"):
        choose_mode(InputPrepSpec.auto(), 10, 10, 224, "vector")
