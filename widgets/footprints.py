"""The outline of an ROI on the ground, as lon/lat rings a map can draw.

An ROI is drawn as the grid every provider samples for it
(:func:`rs_embed.roi_footprint`: the local UTM zone, north-up, snapped to the pixel
lattice), so the square on the map is exactly the patch an export writes, at any
latitude. The grid rule lives in the core; this module only reshapes its answer.
"""

from __future__ import annotations

from typing import List, Tuple

import rs_embed

LonLat = Tuple[float, float]

#: the pixel size the map's outlines are snapped to when nothing else is known (metres)
DEFAULT_SCALE_M = 10.0


def ground_ring(spatial, scale_m: float = DEFAULT_SCALE_M) -> List[LonLat]:
    """Closed ring of (lon, lat) vertices outlining what an export samples for ``spatial``."""
    return rs_embed.roi_footprint(spatial, scale_m)


def ground_bounds(spatial, scale_m: float = DEFAULT_SCALE_M) -> Tuple[float, float, float, float]:
    """(minlon, minlat, maxlon, maxlat) of the ROI's outline."""
    ring = ground_ring(spatial, scale_m)
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return (min(lons), min(lats), max(lons), max(lats))


def ground_size_m(spatial, scale_m: float = DEFAULT_SCALE_M) -> Tuple[float, float]:
    """(width, height) in metres of the grid an export samples for the ROI."""
    grid = rs_embed.roi_grid(spatial, scale_m)
    return (grid.width * grid.scale_m, grid.height * grid.scale_m)


def latlon(ring: List[LonLat]) -> List[List[float]]:
    """(lon, lat) ring → the [lat, lon] pairs Leaflet expects."""
    return [[lat, lon] for lon, lat in ring]


def geojson_ring(ring: List[LonLat]) -> List[List[float]]:
    """(lon, lat) ring → GeoJSON polygon coordinates (one outer ring)."""
    return [[[lon, lat] for lon, lat in ring]]
