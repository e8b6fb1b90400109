"""Exported points on a map, coloured by a value (a PCA component, a similarity, a label).

Up to :data:`LONBOARD_THRESHOLD` points are drawn as one ipyleaflet GeoJSON layer
(one widget message for all of them). Past that Leaflet's SVG grows slow, so the
points go to a ``lonboard`` map instead: deck.gl on the GPU, fed a GeoArrow table, which
draws millions of points.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .extra import require
from .layers import hex_colors

#: above this many points the view switches from ipyleaflet to lonboard
LONBOARD_THRESHOLD = 5000


def _rgb_array(colors: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(colors), 3), dtype=np.uint8)
    for i, c in enumerate(colors):
        c = c.lstrip("#")
        out[i] = (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))
    return out


def point_colors(values=None, labels: Optional[Sequence] = None, cmap: str = "viridis") -> list:
    """A colour per point: from ``labels`` (a category each, tab10) or ``values`` (``cmap``)."""
    if labels is not None:
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        classes = list(dict.fromkeys(str(v) for v in labels if v is not None))
        cm = colormaps["tab10"]
        index = {c: to_hex(cm(i % 10)) for i, c in enumerate(classes)}
        return [index.get(str(v), "#9e9e9e") if v is not None else "#9e9e9e" for v in labels]
    if values is None:
        raise ValueError("give values= or labels= to colour the points")
    return hex_colors(values, cmap)


def points_geojson_layer(lons, lats, colors: Sequence[str], *, names: Optional[Sequence[str]] = None,
                         radius: int = 5, name: str = "points"):
    """One ipyleaflet GeoJSON layer of circle markers."""
    L = require("ipyleaflet", "point layers")
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
              "properties": {"name": names[i] if names is not None else str(i),
                             "style": {"color": "#222", "weight": 1, "fillColor": colors[i],
                                       "fillOpacity": 0.9, "radius": radius}}}
             for i, (x, y) in enumerate(zip(lons, lats))]
    return L.GeoJSON(data={"type": "FeatureCollection", "features": feats}, name=name,
                     point_style={"radius": radius, "weight": 1, "fillOpacity": 0.9})


def lonboard_points(lons, lats, colors: Sequence[str], *, radius_m: float = 40.0):
    """A ``lonboard.Map`` with one ScatterplotLayer of the points (GeoArrow, WGS84)."""
    lonboard = require("lonboard", "drawing more than a few thousand points")
    geoarrow = require("geoarrow.rust.core", "drawing more than a few thousand points")
    from arro3.core import Table

    x = np.ascontiguousarray(lons, dtype=np.float64)
    y = np.ascontiguousarray(lats, dtype=np.float64)
    geom = geoarrow.points([x, y], crs="EPSG:4326")
    table = Table.from_arrays([geom, np.arange(len(x), dtype=np.int64)], names=["geometry", "index"])
    layer = lonboard.ScatterplotLayer(table=table, get_fill_color=_rgb_array(colors),
                                      get_radius=float(radius_m), radius_min_pixels=2, pickable=True)
    return lonboard.Map(layers=[layer])


def points_view(lons, lats, *, values=None, labels=None, names=None, cmap: str = "viridis",
                threshold: int = LONBOARD_THRESHOLD):
    """The right view for this many points: an ipyleaflet layer (add it to your map) up to
    ``threshold`` points, a ``lonboard.Map`` beyond."""
    colors = point_colors(values, labels, cmap)
    if len(colors) > threshold:
        return lonboard_points(lons, lats, colors)
    return points_geojson_layer(lons, lats, colors, names=names)


__all__ = ["points_view", "points_geojson_layer", "lonboard_points", "point_colors", "LONBOARD_THRESHOLD"]
