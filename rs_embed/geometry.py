"""From an ROI to the pixel grid every provider samples on.

All providers (local rasters, Earth Engine, ...) sample the same grid for the same
ROI and scale: the ROI's local UTM zone, north-up, origin snapped to the ``scale_m``
lattice. So a 1000 m ``PointBuffer`` at 10 m is always 200 x 200 pixels covering
2 km x 2 km on the ground, whatever the latitude or the backend.

A ``BBox`` that is not square is fetched as its enclosing square of real imagery
(centred on the box, on the same lattice), so models that need a square input see
real pixels instead of a stretched rectangle; :attr:`Grid.roi` says which rows and
columns are the box itself, and outputs are cropped back to it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import SpecError
from .specs import BBox, PointBuffer, SpatialSpec

_local = threading.local()


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lon, lat).

    Standard 6-degree zones (the Norway/Svalbard exceptions are ignored on purpose:
    any zone is metric, and the plain rule is what Earth Engine users expect).
    UPS polar areas (|lat| > 84) are not supported.
    """
    if abs(lat) > 84.0:
        raise SpecError(f"latitude {lat!r} is outside the UTM zones (|lat| <= 84); polar ROIs are not supported")
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def transformer(src: str, dst: str):
    """A cached ``pyproj.Transformer`` (always_xy) private to the calling thread."""
    cache = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (src, dst)
    t = cache.get(key)
    if t is None:
        from pyproj import Transformer

        t = cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return t


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``transform`` is the affine (a, b, c, d, e, f) of rasterio.

    ``roi`` is ``(row, col, height, width)`` of the ROI's own pixels when the grid is
    larger than the ROI (the enclosing square of a rectangular ``BBox``); None means the
    whole grid is the ROI.
    """

    crs: str
    transform: Tuple[float, float, float, float, float, float]
    width: int
    height: int
    roi: Optional[Tuple[int, int, int, int]] = None

    @property
    def roi_window(self) -> Tuple[int, int, int, int]:
        """``(row, col, height, width)`` of the ROI in this grid (the whole grid if None)."""
        return self.roi if self.roi is not None else (0, 0, self.height, self.width)

    def roi_grid(self) -> "Grid":
        """The grid of the ROI's own pixels (this grid when it is the ROI)."""
        if self.roi is None:
            return self
        r, c, h, w = self.roi
        a, b, x0, d, e, y0 = self.transform
        return Grid(self.crs, (a, b, x0 + a * c, d, e, y0 + e * r), w, h)

    @property
    def scale_m(self) -> float:
        return self.transform[0]

    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        """(left, bottom, right, top) in grid CRS units."""
        a, _, c, _, e, f = self.transform
        return (c, f + e * self.height, c + a * self.width, f)

    def lonlat_bounds(self) -> Tuple[float, float, float, float]:
        """(minlon, minlat, maxlon, maxlat) of the grid, densified along the edges."""
        left, bottom, right, top = self.bounds
        return transformer(self.crs, "EPSG:4326").transform_bounds(left, bottom, right, top, densify_pts=21)

    def affine(self):
        from affine import Affine

        return Affine(*self.transform)

    def to_dict(self) -> dict:
        d = {"crs": self.crs, "transform": list(self.transform),
             "width": self.width, "height": self.height}
        if self.roi is not None:
            d["roi"] = dict(zip(("row", "col", "height", "width"), self.roi))
        return d

    def lonlat_ring(self, densify: int = 1) -> List[Tuple[float, float]]:
        """Closed ring of (lon, lat) vertices outlining the grid, ``densify`` points per edge.

        A straight grid edge is not a straight line of longitude or latitude; over a few
        kilometres the difference is far below a pixel, so one vertex per edge is enough
        there and large grids want more.
        """
        left, bottom, right, top = self.bounds
        corners = [(left, bottom), (right, bottom), (right, top), (left, top)]
        n = max(1, int(densify))
        xs: List[float] = []
        ys: List[float] = []
        for (xa, ya), (xb, yb) in zip(corners, corners[1:] + corners[:1]):
            for i in range(n):
                xs.append(xa + (xb - xa) * i / n)
                ys.append(ya + (yb - ya) * i / n)
        lons, lats = transformer(self.crs, "EPSG:4326").transform(xs, ys)
        ring = [(float(a), float(b)) for a, b in zip(lons, lats)]
        return ring + [ring[0]]


def _scale(scale_m) -> float:
    if not (isinstance(scale_m, (int, float)) and math.isfinite(scale_m) and scale_m > 0):
        raise SpecError(f"scale_m must be a positive number of metres, got {scale_m!r}")
    return float(scale_m)


def _buffer_pixels(buffer_m: float, s: float) -> int:
    return max(1, int(round(2.0 * buffer_m / s)))


def grid_shape(spatial: SpatialSpec, scale_m: float) -> Tuple[int, int]:
    """``(width, height)`` of :func:`roi_grid` without projecting a ``PointBuffer``.

    Raises the same ``SpecError`` as :func:`roi_grid` for ROIs outside the grid system,
    so a request can be checked before anything is fetched.
    """
    if isinstance(spatial, PointBuffer):
        s = _scale(scale_m)
        utm_epsg(*spatial.center)
        n = _buffer_pixels(spatial.buffer_m, s)
        return n, n
    g = roi_grid(spatial, scale_m)
    return g.width, g.height


def roi_grid(spatial: SpatialSpec, scale_m: float) -> Grid:
    """The grid a provider samples for ``spatial`` at ``scale_m`` metres per pixel."""
    s = _scale(scale_m)
    lon, lat = spatial.center
    epsg = utm_epsg(lon, lat)
    crs = f"EPSG:{epsg}"
    fwd = transformer("EPSG:4326", crs)
    if isinstance(spatial, PointBuffer):
        cx, cy = fwd.transform(lon, lat)
        n = _buffer_pixels(spatial.buffer_m, s)
        x0 = round((cx - spatial.buffer_m) / s) * s
        y1 = round((cy + spatial.buffer_m) / s) * s
        return Grid(crs, (s, 0.0, x0, 0.0, -s, y1), n, n)
    if isinstance(spatial, BBox):
        xmin, ymin, xmax, ymax = fwd.transform_bounds(
            spatial.minlon, spatial.minlat, spatial.maxlon, spatial.maxlat, densify_pts=21)
        x0 = math.floor(xmin / s) * s
        y0 = math.floor(ymin / s) * s
        x1 = math.ceil(xmax / s) * s
        y1 = math.ceil(ymax / s) * s
        w = max(1, int(round((x1 - x0) / s)))
        h = max(1, int(round((y1 - y0) / s)))
        if w == h:
            return Grid(crs, (s, 0.0, x0, 0.0, -s, y1), w, h)
        # the enclosing square, centred on the box, on the same lattice
        n = max(w, h)
        col, row = (n - w) // 2, (n - h) // 2
        return Grid(crs, (s, 0.0, x0 - col * s, 0.0, -s, y1 + row * s), n, n, roi=(row, col, h, w))
    raise SpecError(f"spatial must be a PointBuffer or BBox, got {type(spatial).__name__}")


def roi_footprint(spatial: SpatialSpec, scale_m: float = 10.0,
                  densify: Optional[int] = None) -> List[Tuple[float, float]]:
    """The ground outline of what an export samples for ``spatial``: the ring of
    :func:`roi_grid` in lon/lat (closed; ``densify`` vertices per edge, default one per
    10 km of edge). Maps draw this, so a square on the map is the patch on disk."""
    grid = roi_grid(spatial, scale_m)
    if densify is None:
        side_km = max(grid.width, grid.height) * grid.scale_m / 1000.0
        densify = min(16, max(1, int(math.ceil(side_km / 10.0))))
    return grid.lonlat_ring(densify)


def cell_grid(grid: Grid, origin_px: Tuple[float, float], cell_px: Tuple[float, float],
              shape: Tuple[int, int]) -> dict:
    """Georeferencing of an output grid whose cells lie on ``grid``'s pixels.

    ``origin_px`` (row, col) is where cell (0, 0) starts and ``cell_px`` (rows, cols) the
    size of a cell, both in ``grid`` pixels (fractions allowed); returns ``{crs,
    transform, width, height}`` of the cells, so a grid output overlays the imagery.
    """
    a, b, x0, d, e, y0 = grid.transform
    (oy, ox), (cy, cx) = origin_px, cell_px
    return {"crs": grid.crs,
            "transform": [a * cx, b * cy, x0 + a * ox + b * oy, d * cx, e * cy, y0 + d * ox + e * oy],
            "width": int(shape[1]), "height": int(shape[0])}


__all__ = ["Grid", "roi_grid", "grid_shape", "roi_footprint", "cell_grid", "utm_epsg", "transformer"]
