"""The outline of an ROI on the ground, as lon/lat rings a map can draw.

A ``PointBuffer`` is a square of ``2 * buffer_m`` metres laid out in the local UTM
zone, which is what every provider samples. On a Web Mercator map that square is not
a fixed number of degrees: its corners are computed in UTM and projected back, and
its edges are densified so a large square keeps its true shape.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Tuple

from rs_embed import BBox, PointBuffer

LonLat = Tuple[float, float]


def utm_crs(lon: float, lat: float) -> str:
    """The WGS84 UTM zone (standard 6-degree zones) holding (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


@lru_cache(maxsize=64)
def utm_transformers(crs: str):
    """(lon/lat → crs, crs → lon/lat) transformers, cached."""
    from pyproj import Transformer

    return (Transformer.from_crs("EPSG:4326", crs, always_xy=True),
            Transformer.from_crs(crs, "EPSG:4326", always_xy=True))


def _edge_points(x0: float, y0: float, x1: float, y1: float, n: int) -> List[Tuple[float, float]]:
    return [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n)]


def ground_ring(spatial, densify: int = 8) -> List[LonLat]:
    """Closed ring of (lon, lat) vertices outlining ``spatial`` on the ground.

    For a ``PointBuffer``: its UTM square, ``densify`` points per edge. For a
    ``BBox``: its lon/lat rectangle (what the user drew or typed).
    """
    if isinstance(spatial, PointBuffer):
        fwd, inv = utm_transformers(utm_crs(spatial.lon, spatial.lat))
        cx, cy = fwd.transform(spatial.lon, spatial.lat)
        b = spatial.buffer_m
        corners = [(cx - b, cy - b), (cx + b, cy - b), (cx + b, cy + b), (cx - b, cy + b)]
        pts: List[Tuple[float, float]] = []
        for (xa, ya), (xb, yb) in zip(corners, corners[1:] + corners[:1]):
            pts.extend(_edge_points(xa, ya, xb, yb, max(1, densify)))
        xs, ys = inv.transform([p[0] for p in pts], [p[1] for p in pts])
        ring = list(zip(map(float, xs), map(float, ys)))
    elif isinstance(spatial, BBox):
        ring = [(spatial.minlon, spatial.minlat), (spatial.maxlon, spatial.minlat),
                (spatial.maxlon, spatial.maxlat), (spatial.minlon, spatial.maxlat)]
    else:
        raise TypeError(f"spatial must be a PointBuffer or BBox, got {type(spatial).__name__}")
    return ring + [ring[0]]


def ground_bounds(spatial) -> Tuple[float, float, float, float]:
    """(minlon, minlat, maxlon, maxlat) of the ROI's outline."""
    ring = ground_ring(spatial)
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return (min(lons), min(lats), max(lons), max(lats))


def ground_size_m(spatial) -> Tuple[float, float]:
    """(width, height) in metres of the ROI measured in its UTM zone."""
    if isinstance(spatial, PointBuffer):
        return (2.0 * spatial.buffer_m, 2.0 * spatial.buffer_m)
    lon, lat = spatial.center
    fwd, _ = utm_transformers(utm_crs(lon, lat))
    xmin, ymin, xmax, ymax = fwd.transform_bounds(spatial.minlon, spatial.minlat,
                                                  spatial.maxlon, spatial.maxlat, densify_pts=21)
    return (xmax - xmin, ymax - ymin)


def latlon(ring: List[LonLat]) -> List[List[float]]:
    """(lon, lat) ring → the [lat, lon] pairs Leaflet expects."""
    return [[lat, lon] for lon, lat in ring]
