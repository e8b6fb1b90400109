"""A map to pick regions of interest: click for a square, drag for a box.

The picker holds its ROIs in one observable trait (``rois``, a list of :class:`Roi`);
the map, the markers and the table are views of it and are redrawn from it. It knows
nothing about exports: ``.spatials`` and ``.names`` are what ``export_batch`` takes.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import traitlets

from rs_embed import BBox, PointBuffer, RsEmbedError, SpecError

from .extra import require
from .footprints import ground_bounds, ground_ring, ground_size_m, latlon
from .rois import Roi, check_name, check_unique, load_rois, next_name, save_rois

W = require("ipywidgets", "RoiPicker")
L = require("ipyleaflet", "RoiPicker")

_POINT_STYLE = dict(color="#e4572e", weight=2, fill_color="#e4572e", fill_opacity=0.12)
_BOX_STYLE = dict(color="#1d70b8", weight=2, fill_color="#1d70b8", fill_opacity=0.10)

# Marker handles: a small dot at the ROI centre with its name, instead of a pin that
# would hide a small square.
_CSS = """<style>
.rs-roi-picker .leaflet-div-icon { background: transparent; border: none; }
.rs-roi-dot { width: 12px; height: 12px; border-radius: 50%; border: 2px solid #fff;
  box-shadow: 0 0 3px rgba(0,0,0,.8); box-sizing: border-box; cursor: move; }
.rs-roi-label { position: absolute; left: 15px; top: -3px; white-space: nowrap;
  font: 600 11px sans-serif; color: #fff; text-shadow: 0 0 3px #000, 0 0 2px #000;
  pointer-events: none; }
</style>"""


def _handle_icon(name: str, color: str):
    return L.DivIcon(html=f'<div class="rs-roi-dot" style="background:{color}"></div>'
                          f'<div class="rs-roi-label">{name}</div>',
                     icon_size=[12, 12], icon_anchor=[6, 6])


def _wrap_lon(lon: float) -> float:
    """Leaflet reports longitudes past ±180 once the world is panned around."""
    lon = float(lon)
    return lon if -180.0 <= lon <= 180.0 else ((lon + 180.0) % 360.0) - 180.0


def fit_view(bounds: Tuple[float, float, float, float], width_px: int = 800,
             height_px: int = 480) -> Tuple[Tuple[float, float], int]:
    """(center (lat, lon), zoom) showing ``bounds`` (minlon, minlat, maxlon, maxlat) whole."""
    minlon, minlat, maxlon, maxlat = bounds

    def merc_y(lat):
        lat = max(min(lat, 85.0), -85.0)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    dx = max(maxlon - minlon, 1e-6) / 360.0
    dy = max(merc_y(maxlat) - merc_y(minlat), 1e-6) / (2 * math.pi)
    zoom = min(math.log2(width_px / 256.0 / dx), math.log2(height_px / 256.0 / dy))
    zoom = int(max(1, min(18, math.floor(zoom))))
    return ((minlat + maxlat) / 2.0, (minlon + maxlon) / 2.0), zoom


def describe_spatial(spatial) -> str:
    """One line a person reads in the ROI table."""
    w, h = ground_size_m(spatial)
    size = f"{w / 1000:.2f} × {h / 1000:.2f} km" if max(w, h) >= 1000 else f"{w:.0f} × {h:.0f} m"
    lon, lat = spatial.center
    kind = "square" if isinstance(spatial, PointBuffer) else "box"
    return f"{kind} {size} at {lat:.5f}, {lon:.5f}"


class RoiPicker(W.VBox):
    """Pick ROIs on a map: a click adds a ``PointBuffer`` drawn true to size; in
    *box* mode a drawn rectangle adds a ``BBox``; markers drag ROIs around.

    Observe ``rois`` (``picker.observe(fn, names="rois")``) to react to any change.

    The embedded Sentinel-2 sample is drawn under the ROIs (``show_sample``), and so is
    every scene of a local ``catalog`` (a folder of rasters, a STAC or scene JSON, or a
    ``LocalProvider``), so there is imagery to aim at with no network. ``basemap``:
    None (an offline blank base), ``"osm"``, ``"imagery"``, an xyzservices provider or
    a ``TileLayer``; web tiles that cannot load are simply blank.
    """

    rois = traitlets.List(trait=traitlets.Instance(Roi))
    buffer_m = traitlets.Float(1000.0)
    mode = traitlets.Enum(("point", "box", "off"), default_value="point")
    message = traitlets.Unicode("")

    def __init__(self, rois: Optional[Iterable] = None, *, buffer_m: float = 1000.0,
                 basemap=None, show_sample: bool = True, catalog=None,
                 center: Optional[Tuple[float, float]] = None, zoom: Optional[int] = None,
                 name_prefix: str = "roi", height: str = "460px", path: str = "rois.geojson"):
        from .basemaps import base_layer

        super().__init__()
        self.name_prefix = check_name(name_prefix)
        self._serial = 1  # new names count up and never reuse a deleted ROI's number
        self.map = L.Map(basemap=base_layer(basemap), center=center or (20.0, 0.0),
                         zoom=zoom if zoom is not None else 2, scroll_wheel_zoom=True,
                         double_click_zoom=False, layout=W.Layout(height=height, width="100%"))
        self.map.add_class("rs-roi-map")
        self.map.add(L.ScaleControl(position="bottomleft", imperial=False))
        self.map.add(L.LayersControl(position="topright"))
        self.map.on_interaction(self._on_interaction)
        self._draw = L.DrawControl(
            rectangle={"shapeOptions": {"color": _BOX_STYLE["color"], "weight": 2}},
            polyline={}, polygon={}, circlemarker={}, circle={}, marker={},
            edit=False, remove=False)
        self._draw.on_draw(self._on_draw)
        self._roi_layers: Dict[str, Tuple[type, L.Polygon, L.Marker]] = {}
        self.context_layers: List[L.Layer] = []
        self._context_bounds: Optional[Tuple[float, float, float, float]] = None

        # -- controls --------------------------------------------------------
        self._mode = W.ToggleButtons(
            options=[("Click adds square", "point"), ("Draw box", "box"), ("Pan only", "off")],
            value="point", style={"button_width": "9.5em"},
            tooltips=["a click on the map adds a square PointBuffer",
                      "draw rectangles (toolbar on the map) to add BBox ROIs",
                      "clicks do nothing"])
        self._buffer = W.BoundedFloatText(value=buffer_m, min=1.0, max=500_000.0, step=50.0,
                                          description="Buffer (m)",
                                          tooltip="half the side of new squares, in metres",
                                          layout=W.Layout(width="13em"))
        self._path = W.Text(value=path, description="File", placeholder="rois.csv or rois.geojson",
                            layout=W.Layout(width="22em"))
        self._save = W.Button(description="Save", icon="save", layout=W.Layout(width="6em"))
        self._load = W.Button(description="Load", icon="folder-open", layout=W.Layout(width="6em"))
        self._clear = W.Button(description="Clear", icon="trash", layout=W.Layout(width="6em"))
        self._status = W.HTML()
        self._status.add_class("rs-roi-status")
        self._table = W.VBox(layout=W.Layout(max_height="16em", overflow="auto"))
        self._table.add_class("rs-roi-table")
        self._save.on_click(lambda _: self._guard(self.save, self._path.value))
        self._load.on_click(lambda _: self._guard(self.load, self._path.value))
        self._clear.on_click(lambda _: self.clear())

        W.link((self._mode, "value"), (self, "mode"))
        W.link((self._buffer, "value"), (self, "buffer_m"))
        self.buffer_m = float(buffer_m)

        self.children = [
            W.HBox([self._mode, self._buffer]),
            self.map,
            self._table,
            W.HBox([self._path, self._save, self._load, self._clear]),
            self._status,
            W.HTML(_CSS, layout=W.Layout(display="none")),
        ]
        self.add_class("rs-roi-picker")

        if show_sample:
            self._guard(self._add_context, None)
        if catalog is not None:
            self._guard(self._add_context, catalog)
        if rois:
            self.set_rois(rois)
        if center is None and self.rois:
            self.fit_to_rois()
        elif center is None and self._context_bounds is not None:
            self.map.center, self.map.zoom = fit_view(self._context_bounds)
        self._render()

    # -------------------------------------------------------------- public state
    @property
    def spatials(self) -> List:
        """The ROIs' ``PointBuffer``/``BBox`` specs, in table order."""
        return [r.spatial for r in self.rois]

    @property
    def names(self) -> List[str]:
        """The ROIs' names, in table order (used as per-item file names)."""
        return [r.name for r in self.rois]

    def __len__(self) -> int:
        return len(self.rois)

    def on_change(self, callback: Callable[["RoiPicker"], None]) -> None:
        """Call ``callback(picker)`` after every change of the ROIs."""
        self.observe(lambda change: callback(self), names="rois")

    @traitlets.validate("rois")
    def _check_rois(self, proposal):
        value = list(proposal["value"])
        check_unique([r.name for r in value])
        return value

    @traitlets.observe("rois")
    def _rois_changed(self, change):
        self.message = ""
        self._render()

    @traitlets.observe("mode")
    def _mode_changed(self, change):
        if change["new"] == "box" and self._draw not in self.map.controls:
            self.map.add(self._draw)
        elif change["new"] != "box" and self._draw in self.map.controls:
            self.map.remove(self._draw)

    # ------------------------------------------------------------------ editing
    def add(self, spatial, name: Optional[str] = None) -> str:
        """Append ``spatial`` under ``name`` (default ``<prefix>_NN``); returns the name."""
        if name is None:
            name = next_name(self.name_prefix, self.names, start=self._serial)
            self._serial = int(name.rsplit("_", 1)[1]) + 1
        check_name(name)
        if name in self.names:
            raise SpecError(f"an ROI named {name!r} already exists")
        self.rois = self.rois + [Roi(name, spatial)]
        return name

    def add_point(self, lon: float, lat: float, *, buffer_m: Optional[float] = None,
                  name: Optional[str] = None) -> str:
        """Add a square of ``2 * buffer_m`` metres centred on (lon, lat)."""
        buf = self.buffer_m if buffer_m is None else buffer_m
        return self.add(PointBuffer(_wrap_lon(lon), float(lat), buf), name)

    def add_bbox(self, minlon: float, minlat: float, maxlon: float, maxlat: float,
                 name: Optional[str] = None) -> str:
        return self.add(BBox(minlon, minlat, maxlon, maxlat), name)

    def set_rois(self, rois: Iterable) -> None:
        """Replace every ROI: ``Roi`` objects, ``(name, spatial)`` pairs or bare specs."""
        out: List[Roi] = []
        for item in rois:
            if isinstance(item, Roi):
                out.append(item)
            elif isinstance(item, (PointBuffer, BBox)):
                out.append(Roi(next_name(self.name_prefix, [r.name for r in out]), item))
            else:
                name, spatial = item
                out.append(Roi(name, spatial))
        self.rois = out

    def _index(self, name: str) -> int:
        for i, r in enumerate(self.rois):
            if r.name == name:
                return i
        raise KeyError(f"no ROI named {name!r}; ROIs: {self.names}")

    def _replace(self, name: str, roi: Roi) -> None:
        i = self._index(name)
        self.rois = self.rois[:i] + [roi] + self.rois[i + 1:]

    def remove(self, name: str) -> None:
        i = self._index(name)
        self.rois = self.rois[:i] + self.rois[i + 1:]

    def rename(self, old: str, new: str) -> None:
        check_name(new)
        if new != old and new in self.names:
            raise SpecError(f"an ROI named {new!r} already exists")
        self._replace(old, Roi(new, self.rois[self._index(old)].spatial))

    def move(self, name: str, lon: float, lat: float) -> None:
        """Move the ROI's centre to (lon, lat), keeping its ground size."""
        s = self.rois[self._index(name)].spatial
        lon = _wrap_lon(lon)
        if isinstance(s, PointBuffer):
            new = PointBuffer(lon, lat, s.buffer_m)
        else:
            clon, clat = s.center
            dlon, dlat = lon - clon, lat - clat
            new = BBox(s.minlon + dlon, s.minlat + dlat, s.maxlon + dlon, s.maxlat + dlat)
        self._replace(name, Roi(name, new))

    def resize(self, name: str, buffer_m: float) -> None:
        """Change a square ROI's buffer (half its side, in metres)."""
        s = self.rois[self._index(name)].spatial
        if not isinstance(s, PointBuffer):
            raise SpecError(f"ROI {name!r} is a box; only squares have a buffer")
        self._replace(name, Roi(name, PointBuffer(s.lon, s.lat, buffer_m)))

    def clear(self) -> None:
        self.rois = []

    # -------------------------------------------------------------------- files
    def save(self, path) -> str:
        """Write the ROIs to ``path`` (``.csv`` or ``.geojson``)."""
        p = save_rois(path, self.rois)
        self.message = f"saved {len(self.rois)} ROIs to {p}"
        return str(p)

    def load(self, path, *, replace: bool = True) -> None:
        """Read ROIs from ``path``; ``replace=False`` appends them (names must stay unique)."""
        rois = load_rois(path, default_buffer_m=self.buffer_m)
        self.rois = rois if replace else self.rois + rois
        self.message = f"loaded {len(rois)} ROIs from {path}"
        self.fit_to_rois()

    def fit_to_rois(self) -> None:
        """Centre and zoom the map on all ROIs."""
        if not self.rois:
            return
        bounds = [ground_bounds(r.spatial) for r in self.rois]
        self.map.center, self.map.zoom = fit_view(
            (min(b[0] for b in bounds), min(b[1] for b in bounds),
             max(b[2] for b in bounds), max(b[3] for b in bounds)))

    @classmethod
    def from_file(cls, path, **kwargs) -> "RoiPicker":
        picker = cls(**kwargs)
        picker.load(path)
        return picker

    # ------------------------------------------------------------ map events
    def _guard(self, fn, *args) -> None:
        """Run a UI action; show a bad input as a message instead of a traceback."""
        try:
            fn(*args)
        except (RsEmbedError, ValueError, KeyError, OSError) as exc:
            self.message = f"⚠ {exc}"

    def _on_interaction(self, **event) -> None:
        if event.get("type") != "click" or self.mode != "point":
            return
        lat, lon = event["coordinates"]
        self._guard(self.add_point, lon, lat)

    def _on_draw(self, target, action, geo_json) -> None:
        if action != "created":
            return
        geom = (geo_json or {}).get("geometry") or {}
        if geom.get("type") == "Polygon":
            pts = geom["coordinates"][0]
            lons = [_wrap_lon(p[0]) for p in pts]
            lats = [p[1] for p in pts]
            self._guard(self.add_bbox, min(lons), min(lats), max(lons), max(lats))
        self._draw.clear()  # the picker draws its own outline for the new ROI

    def _on_marker_moved(self, name: str, change) -> None:
        lat, lon = change["new"]
        if name not in self.names:
            return
        clon, clat = self.rois[self._index(name)].spatial.center
        if abs(clon - _wrap_lon(lon)) > 1e-12 or abs(clat - lat) > 1e-12:
            self._guard(self.move, name, lon, lat)

    # ------------------------------------------------------------ context layers
    def _add_context(self, catalog) -> None:
        """Show the scenes of a local catalog (None: the embedded sample) under the ROIs."""
        from .overlays import catalog_layers

        layers, bounds = catalog_layers(catalog)
        for layer in layers:
            self.map.add(layer)
        self.context_layers.extend(layers)
        if self._context_bounds is None:
            self._context_bounds = bounds
        else:
            a, b = self._context_bounds, bounds
            self._context_bounds = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))

    def show_footprints(self, provider, temporal, sensor) -> dict:
        """Draw the footprints of the items ``provider`` would read for the ROIs.

        ``provider``: a STAC backend (anything with ``footprints(spatial, temporal,
        sensor)`` returning GeoJSON). Replaces the previous footprints; returns the
        FeatureCollection drawn (each item once).
        """
        seen, feats = set(), []
        for roi in self.rois:
            for feat in provider.footprints(roi.spatial, temporal, sensor)["features"]:
                if feat.get("id") not in seen:
                    seen.add(feat.get("id"))
                    feats.append(feat)
        fc = {"type": "FeatureCollection", "features": feats}
        old = getattr(self, "footprint_layer", None)
        if old is not None and old in self.map.layers:
            self.map.remove(old)
        self.footprint_layer = L.GeoJSON(data=fc, name=f"items ({len(feats)})",
                                         style={"color": "#ff7f0e", "weight": 1, "fillOpacity": 0.05})
        self.map.add(self.footprint_layer)
        self.message = f"{len(feats)} item(s) found for the window"
        return fc

    # -------------------------------------------------------------------- views
    def _render(self) -> None:
        self._render_layers()
        self._render_table()
        self._render_status()

    def _render_status(self) -> None:
        n = len(self.rois)
        note = f" · {self.message}" if self.message else ""
        self._status.value = f"<b>{n} ROI{'s' if n != 1 else ''}</b>{note}"

    @traitlets.observe("message")
    def _message_changed(self, change):
        if hasattr(self, "_status"):
            self._render_status()

    def _render_layers(self) -> None:
        current = {r.name: r for r in self.rois}
        for name, (kind, shape, marker) in list(self._roi_layers.items()):
            roi = current.get(name)
            if roi is None or kind is not type(roi.spatial):
                self.map.remove(shape)
                self.map.remove(marker)
                del self._roi_layers[name]
        for roi in self.rois:
            lon, lat = roi.spatial.center
            ring = latlon(ground_ring(roi.spatial))
            if roi.name in self._roi_layers:
                _, shape, marker = self._roi_layers[roi.name]
                if shape.locations != ring:
                    shape.locations = ring
                if list(marker.location) != [lat, lon]:
                    marker.location = [lat, lon]
                continue
            style = _POINT_STYLE if isinstance(roi.spatial, PointBuffer) else _BOX_STYLE
            shape = L.Polygon(locations=ring, name=f"ROI {roi.name}", **style)
            marker = L.Marker(location=[lat, lon], draggable=True, title=roi.name,
                              name=f"marker {roi.name}", icon=_handle_icon(roi.name, style["color"]))
            marker.observe(partial(self._on_marker_moved, roi.name), names="location")
            self.map.add(shape)
            self.map.add(marker)
            self._roi_layers[roi.name] = (type(roi.spatial), shape, marker)

    def _row(self, roi: Roi) -> W.HBox:
        name = W.Text(value=roi.name, continuous_update=False, layout=W.Layout(width="10em"))
        name.observe(lambda ch, old=roi.name: self._guard(self.rename, old, ch["new"])
                     if ch["new"] != old else None, names="value")
        info = W.HTML(describe_spatial(roi.spatial), layout=W.Layout(width="24em"))
        parts = [name, info]
        if isinstance(roi.spatial, PointBuffer):
            buf = W.BoundedFloatText(value=roi.spatial.buffer_m, min=1.0, max=500_000.0, step=50.0,
                                     description="m", continuous_update=False,
                                     style={"description_width": "1.2em"},
                                     layout=W.Layout(width="8em"))
            buf.observe(lambda ch, n=roi.name: self._guard(self.resize, n, ch["new"]), names="value")
            parts.append(buf)
        else:
            parts.append(W.HTML("", layout=W.Layout(width="8em")))
        go = W.Button(icon="crosshairs", tooltip=f"show {roi.name} on the map",
                      layout=W.Layout(width="2.6em"))
        go.on_click(lambda _, r=roi: self._zoom_to(r))
        delete = W.Button(icon="times", tooltip=f"delete {roi.name}", button_style="danger",
                          layout=W.Layout(width="2.6em"))
        delete.on_click(lambda _, n=roi.name: self._guard(self.remove, n))
        delete.add_class("rs-roi-delete")
        row = W.HBox(parts + [go, delete])
        row.add_class("rs-roi-row")
        return row

    def _zoom_to(self, roi: Roi) -> None:
        center, zoom = fit_view(ground_bounds(roi.spatial))
        self.map.center, self.map.zoom = center, max(1, zoom - 1)

    def _render_table(self) -> None:
        self._table.children = [self._row(r) for r in self.rois]
