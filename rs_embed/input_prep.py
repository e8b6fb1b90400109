"""Feeding a patch larger than a model's input size: resize it, or tile and stitch.

A model with a fixed input size (``describe()["defaults"]["image_size"]``, e.g. 224)
either sees the whole patch resized to that size (``resize``: cheap, loses native
resolution) or the patch cut into tiles of that size, each embedded at native
resolution and put back together (``tile``). Everything here is pure numpy on pixel
counts so the engine (``rs_embed.inference``) and the tests share one definition.

Tiling rules:

* **Cover-shift tiles.** Along each axis tiles start every ``tile`` pixels; the last
  one is shifted back so it ends exactly at the image edge instead of running past it
  (300 px at 224 -> origins ``[0, 76]``). No padding is needed unless the image is
  smaller than one tile.
* **Midpoint-cut ownership.** Where two tiles overlap, each owns the half of the
  overlap nearest to itself. Every pixel is owned by exactly one tile, so stitched
  grids have no hard overwrite of one tile by the next and pooled vectors count no
  pixel twice.
* **Grids.** A tile of ``tile`` pixels whose grid has ``h`` cells has cells of
  ``tile / h`` pixels; the stitched grid has ``round(H * h / tile)`` rows (half up, so a
  partial last cell is kept). Each output cell is taken from the tile that owns the
  pixel at the cell's centre. A model that centre-crops (its grid covers ``cells x
  cell`` pixels from ``origin`` inside each tile) stitches onto the lattice of those
  cells: the stitched grid starts ``origin`` pixels into the patch and ends as far
  before its far edge, so it lines up with the imagery.
* **Pooled vectors.** The tiles' vectors are averaged with weights equal to the
  number of pixels each tile owns (``max`` pooling takes the element-wise maximum).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import ModelError, SpecError
from .specs import InputPrepSpec, OutputSpec


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def tile_origins(length: int, tile: int) -> List[int]:
    """Start offsets of the tiles covering ``length`` pixels along one axis.

    Tiles start every ``tile`` pixels and the last one is shifted back to end at
    ``length`` (cover-shift): ``tile_origins(300, 224) == [0, 76]``. A ``length``
    of at most ``tile`` gives the single origin ``[0]`` (the caller pads or resizes).
    """
    length = _positive_int("length", length)
    tile = _positive_int("tile", tile)
    if length <= tile:
        return [0]
    n = math.ceil(length / tile)
    return [i * tile for i in range(n - 1)] + [length - tile]


def plan_tiles(h: int, w: int, tile: int, max_tiles: int) -> List[Tuple[int, int]]:
    """Row-major ``(y0, x0)`` tile origins for an ``h`` x ``w`` patch.

    Raises :class:`ModelError` before any work when more than ``max_tiles`` tiles
    would be needed, saying how many and how to proceed.
    """
    max_tiles = _positive_int("max_tiles", max_tiles)
    ys, xs = tile_origins(h, tile), tile_origins(w, tile)
    n = len(ys) * len(xs)
    if n > max_tiles:
        raise ModelError(
            f"a {h}x{w} px patch needs {len(ys)}x{len(xs)}={n} tiles of {tile} px, more than "
            f"max_tiles={max_tiles}; raise InputPrepSpec.max_tiles, use a smaller ROI, or use "
            f"input_prep='resize'")
    return [(y, x) for y in ys for x in xs]


def ownership(origins: Sequence[int], tile: int, length: int) -> List[Tuple[int, int]]:
    """The half-open pixel range ``[start, end)`` each tile owns along one axis.

    Adjacent tiles that overlap split the overlap at its midpoint; the first tile owns
    from 0 and the last up to ``length``. The ranges partition ``[0, length)``.
    """
    tile = _positive_int("tile", tile)
    length = _positive_int("length", length)
    origins = [int(o) for o in origins]
    if not origins:
        raise SpecError("origins must hold at least one tile origin, got []")
    if any(b <= a for a, b in zip(origins, origins[1:])):
        raise SpecError(f"origins must be strictly increasing, got {origins}")
    if origins[0] != 0 or origins[-1] + tile < length:
        raise SpecError(f"tiles of {tile} px at {origins} do not cover {length} px")
    for a, b in zip(origins, origins[1:]):
        if b > a + tile:
            raise SpecError(f"tiles of {tile} px at {origins} leave a gap between {a + tile} and {b}")
    cuts = [(b + min(a + tile, length)) // 2 for a, b in zip(origins, origins[1:])]
    starts = [0] + cuts
    ends = cuts + [length]
    return list(zip(starts, ends))


def owned_areas(origins_yx: Sequence[Tuple[int, int]], tile: int, h: int, w: int) -> List[int]:
    """Pixels owned by each tile of :func:`plan_tiles` (the weights of :func:`pool_tiles`)."""
    ys, xs = _axes(origins_yx)
    own_y = dict(zip(ys, ownership(ys, tile, h)))
    own_x = dict(zip(xs, ownership(xs, tile, w)))
    return [(own_y[y][1] - own_y[y][0]) * (own_x[x][1] - own_x[x][0]) for y, x in origins_yx]


def _axes(origins_yx: Sequence[Tuple[int, int]]) -> Tuple[List[int], List[int]]:
    if not len(origins_yx):
        raise SpecError("origins_yx must hold at least one (y0, x0) tile origin")
    ys = sorted({int(y) for y, _ in origins_yx})
    xs = sorted({int(x) for _, x in origins_yx})
    if len(origins_yx) != len(ys) * len(xs) or len(set(map(tuple, origins_yx))) != len(origins_yx):
        raise SpecError(f"origins_yx must be a full grid of distinct tile origins, got {list(origins_yx)}")
    return ys, xs


def cut_tile(chw: np.ndarray, y0: int, x0: int, tile: int, fill_value: float = 0.0) -> np.ndarray:
    """The ``(C, tile, tile)`` window at ``(y0, x0)``, padded with ``fill_value`` past the edge
    (``(T, C, tile, tile)`` of a time series: the same window of every frame).

    Padding only happens when the patch is smaller than one tile (``pad_edges``);
    cover-shift origins otherwise keep every tile inside the patch.
    """
    out = chw[..., y0:y0 + tile, x0:x0 + tile]
    if out.shape[-2:] == (tile, tile):
        return out
    padded = np.full(chw.shape[:-2] + (tile, tile), fill_value, dtype=chw.dtype)
    padded[..., :out.shape[-2], :out.shape[-1]] = out
    return padded


def _cell_source(origins: List[int], owned: List[Tuple[int, int]], tile: int,
                 cells: int, length: int, g0: float = 0.0,
                 cell: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, int]:
    """For each output cell along one axis: which tile supplies it and which of its cells.

    A tile's grid covers ``[g0, g0 + cells * cell)`` of the tile (the whole tile by default).
    """
    cell = tile / cells if cell is None else float(cell)
    span = length - tile + cells * cell                       # first grid start .. last grid end
    n_out = max(1, math.floor(span / cell + 0.5))             # round half up
    # cell centres on the tiles' own cell lattice, in pixels, kept inside the covered span
    centres = np.minimum(g0 + (np.arange(n_out) + 0.5) * cell, np.nextafter(g0 + span, 0))
    ends = np.array([e for _, e in owned], dtype=float)
    which = np.searchsorted(ends, centres, side="right").clip(0, len(origins) - 1)
    local = np.floor((centres - np.asarray(origins, dtype=float)[which] - g0) / cell)
    return which, local.astype(int).clip(0, cells - 1), n_out


def stitch_grids(grids: Sequence[np.ndarray], origins_yx: Sequence[Tuple[int, int]],
                 tile: int, H: int, W: int,
                 footprint: Optional[Tuple[float, float, float, float]] = None) -> np.ndarray:
    """Put per-tile grids ``(D, h, w)`` back together into one ``(D, Hg, Wg)`` grid.

    ``grids[i]`` is the model's grid for the ``tile`` x ``tile`` window at
    ``origins_yx[i]`` of an ``H`` x ``W`` patch. The output has
    ``Hg = round(H * h / tile)`` rows and ``Wg = round(W * w / tile)`` columns (half
    up); each
    output cell comes from the tile owning the pixel under the cell's centre (midpoint
    cuts in overlaps), so no tile overwrites another and no cell is averaged twice.
    ``footprint`` ``(origin_y, cell_y, origin_x, cell_x)``: where each tile's grid lies
    on the tile when it does not cover it all (centre-cropping models).
    """
    tile = _positive_int("tile", tile)
    H, W = _positive_int("H", H), _positive_int("W", W)
    if len(grids) != len(origins_yx):
        raise SpecError(f"got {len(grids)} grids for {len(origins_yx)} tile origins")
    arrs = [np.asarray(g) for g in grids]
    if not arrs or any(a.ndim != 3 for a in arrs):
        raise SpecError(f"grids must be (D, h, w) arrays, got shapes {[a.shape for a in arrs]}")
    if len({a.shape for a in arrs}) != 1:
        raise SpecError(f"all tile grids must have one shape, got {sorted({a.shape for a in arrs})}")
    d, gh, gw = arrs[0].shape
    ys, xs = _axes(origins_yx)
    oy, cy, ox, cx = footprint if footprint is not None else (0.0, None, 0.0, None)
    wy, ly, hg = _cell_source(ys, ownership(ys, tile, H), tile, gh, H, oy, cy)
    wx, lx, wg = _cell_source(xs, ownership(xs, tile, W), tile, gw, W, ox, cx)
    index = {(int(y), int(x)): i for i, (y, x) in enumerate(origins_yx)}
    out = np.empty((d, hg, wg), dtype=np.result_type(*arrs))
    for ty, y0 in enumerate(ys):
        rows = np.nonzero(wy == ty)[0]
        if not rows.size:
            continue
        for tx, x0 in enumerate(xs):
            cols = np.nonzero(wx == tx)[0]
            if not cols.size:
                continue
            src = arrs[index[(y0, x0)]]
            out[:, rows[:, None], cols[None, :]] = src[:, ly[rows][:, None], lx[cols][None, :]]
    return out


def pool_tiles(vectors: Sequence[np.ndarray], owned_areas: Sequence[float],
               pooling: str = "mean") -> np.ndarray:
    """One pooled vector from per-tile pooled vectors.

    ``mean``: the average weighted by each tile's owned pixel count, which equals the
    mean over the whole patch when each tile's vector is the mean over the pixels it
    owns, and approximates it otherwise. ``max``: the element-wise maximum.
    """
    vecs = np.stack([np.asarray(v, dtype=np.float64) for v in vectors])
    if vecs.ndim != 2:
        raise SpecError(f"vectors must be 1-D and of one length, got shape {vecs.shape}")
    if pooling == "max":
        return vecs.max(axis=0).astype(np.float32)
    if pooling != "mean":
        raise SpecError(f"pooling must be 'mean' or 'max', got {pooling!r}")
    w = np.asarray(owned_areas, dtype=np.float64)
    if w.shape != (len(vecs),) or (w < 0).any() or w.sum() <= 0:
        raise SpecError(f"owned_areas must be {len(vecs)} non-negative numbers with a positive sum, got {list(owned_areas)}")
    return (w @ vecs / w.sum()).astype(np.float32)


def choose_mode(spec: Optional[InputPrepSpec], h: int, w: int, image_size: Optional[int],
                output: Union[OutputSpec, str]) -> str:
    """``"resize"`` or ``"tile"`` for one ``h`` x ``w`` patch.

    * ``None`` or ``resize``: ``"resize"`` (the model resizes the whole patch).
    * The tile size is ``spec.tile_size`` or else the model's ``image_size``. A model
      with ``image_size=None`` accepts any size and has no tile size: it always gets
      the whole patch unchanged, reported as ``"resize"`` (nothing is resized).
    * ``tile``: ``"tile"`` (raises :class:`ModelError` when more than ``max_tiles``
      tiles would be needed). A patch smaller than one tile is padded to a tile
      (``pad_edges=True``) or handed to the model whole (``pad_edges=False``).
    * ``auto``: ``"tile"`` only for grid output, when the patch is larger than one tile
      and at most ``max_tiles`` tiles cover it; ``"resize"`` otherwise.
    """
    if spec is None:
        return "resize"
    spec = InputPrepSpec.coerce(spec)
    mode = output.mode if isinstance(output, OutputSpec) else output
    if mode not in ("pooled", "grid"):
        raise SpecError(f"output must be 'pooled' or 'grid' (or an OutputSpec), got {output!r}")
    h, w = _positive_int("h", h), _positive_int("w", w)
    if spec.mode == "resize":
        return "resize"
    tile = spec.tile_size or image_size
    if tile is None:
        return "resize"
    tile = _positive_int("tile size", tile)
    fits = h <= tile and w <= tile
    if spec.mode == "tile":
        if fits and not spec.pad_edges:
            return "resize"
        plan_tiles(h, w, tile, spec.max_tiles)
        return "tile"
    # auto
    if mode != "grid" or fits:
        return "resize"
    n = len(tile_origins(h, tile)) * len(tile_origins(w, tile))
    return "tile" if n <= spec.max_tiles else "resize"


__all__ = ["tile_origins", "plan_tiles", "ownership", "owned_areas", "cut_tile",
           "stitch_grids", "pool_tiles", "choose_mode"]
