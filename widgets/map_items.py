"""The items of an export on a map: where they are, which one a click hits, and a way to
borrow the map's clicks from a linked ROI picker while a tool picks items.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

from . import export_view as ev
from .extra import require
from .footprints import geojson_ring, ground_ring
from .layers import MapLayers

L = require("ipyleaflet", "map tools")


class ExportOnMap:
    """An export's items (names, ROIs, outlines) placed on a picker's map or a bare map."""

    def __init__(self, source, picker_or_map=None, *, names=None):
        self.result = ev.as_result(source)
        self.names = ev.item_names(self.result, names)
        self.spatials = [ev.spatial_of(self.result, i) for i in range(self.result.n_items)]
        self.rings = [ground_ring(s) for s in self.spatials]
        self.centers = np.array([s.center for s in self.spatials], dtype=np.float64)
        b = np.array([[min(p[0] for p in r), min(p[1] for p in r), max(p[0] for p in r),
                       max(p[1] for p in r)] for r in self.rings])
        self.bounds = b
        self.picker = None
        if picker_or_map is None:
            from .roi_picker import fit_view

            center, zoom = fit_view((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
            from .basemaps import base_layer

            self.map = L.Map(basemap=base_layer(None), center=center, zoom=zoom, scroll_wheel_zoom=True)
            self.map.add(L.LayersControl(position="topright"))
            self.layers = MapLayers(self.map)
        elif isinstance(picker_or_map, L.Map):
            self.map = picker_or_map
            self.layers = MapLayers(self.map)
        else:  # a RoiPicker
            self.picker = picker_or_map
            self.map = picker_or_map.map
            self.layers = picker_or_map.layers
        self._saved_mode: Optional[str] = None

    def item_at(self, lon: float, lat: float) -> Optional[int]:
        """The item whose outline holds (lon, lat), else the nearest within one ROI size."""
        b = self.bounds
        inside = np.flatnonzero((b[:, 0] <= lon) & (lon <= b[:, 2]) & (b[:, 1] <= lat) & (lat <= b[:, 3]))
        coslat = np.cos(np.radians(lat))
        d = np.hypot((self.centers[:, 0] - lon) * coslat, self.centers[:, 1] - lat)
        if inside.size:
            return int(inside[np.argmin(d[inside])])
        size = np.hypot((b[:, 2] - b[:, 0]) * coslat, b[:, 3] - b[:, 1])
        i = int(np.argmin(d))
        return i if d[i] <= size[i] else None

    def features(self, style_of: Callable[[int], Optional[dict]], indices=None) -> dict:
        """A FeatureCollection of the items' outlines; ``style_of(i)`` None leaves one out."""
        feats = []
        for i in (range(len(self.names)) if indices is None else indices):
            st = style_of(i)
            if st is None:
                continue
            feats.append({"type": "Feature", "properties": {"name": self.names[i], "index": int(i), "style": st},
                          "geometry": {"type": "Polygon", "coordinates": geojson_ring(self.rings[i])}})
        return {"type": "FeatureCollection", "features": feats}

    def borrow_clicks(self, on: bool) -> None:
        """While a tool picks items, the picker's clicks stop adding ROIs (and come back after)."""
        if self.picker is None:
            return
        if on and self._saved_mode is None:
            self._saved_mode = self.picker.mode
            self.picker.mode = "off"
        elif not on and self._saved_mode is not None:
            self.picker.mode, self._saved_mode = self._saved_mode, None


def click_coordinates(event) -> Optional[Tuple[float, float]]:
    """(lon, lat) of a map click event, None for any other event."""
    if event.get("type") != "click":
        return None
    lat, lon = event["coordinates"]
    lon = float(lon)
    if not -180.0 <= lon <= 180.0:
        lon = ((lon + 180.0) % 360.0) - 180.0
    return lon, float(lat)


__all__ = ["ExportOnMap", "click_coordinates"]
