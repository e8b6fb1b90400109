"""A map to pick regions of interest: click for a square, drag for a box.

The picker holds its ROIs in one observable trait (``rois``, a list of :class:`Roi`);
the map, the handles and the table are views of it and are redrawn from it, only where
something changed, so a thousand ROIs stay responsive: outlines travel as a few GeoJSON
layers of up to :data:`CHUNK` ROIs (an edit resends one of them), the table shows a
page at a time, and past :data:`MAX_HANDLES` ROIs only the selected one has a handle.
It knows nothing about exports: ``.spatials`` and ``.names`` are what ``export_batch``
takes; an export panel tells it what the run made of each ROI (:meth:`mark_status`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import traitlets

from rs_embed import BBox, PointBuffer, RsEmbedError, SpecError

import rs_embed

from .extra import require
from .footprints import DEFAULT_SCALE_M, geojson_ring, ground_bounds, ground_ring, ground_size_m
from .layers import MapLayers, swatches_html
from .rois import Roi, check_name, check_unique, load_rois, next_name, save_rois

W = require("ipywidgets", "RoiPicker")
L = require("ipyleaflet", "RoiPicker")

_POINT_COLOR = "#e4572e"
_BOX_COLOR = "#1d70b8"
#: outline colours of what the picker knows about an ROI, most telling first
STATE_COLORS = {"failed": "#c62828", "nodata": "#ef6c00", "ok": "#2e7d32",
                "outside": "#757575", "partly outside": "#f0a202"}
STATE_LABELS = {"failed": "export failed", "nodata": "mostly nodata", "ok": "exported",
                "outside": "outside the imagery", "partly outside": "partly outside the imagery"}
#: ROIs per GeoJSON layer: an edit resends only the layer holding the ROI
CHUNK = 100
#: with more ROIs than this, only the selected ROI gets a drag handle
MAX_HANDLES = 100
#: table rows per page
PAGE_SIZE = 20

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


def describe_spatial(spatial, scale_m: float = DEFAULT_SCALE_M) -> str:
    """One line a person reads in the ROI table."""
    w, h = ground_size_m(spatial, scale_m)
    size = f"{w / 1000:.2f} × {h / 1000:.2f} km" if max(w, h) >= 1000 else f"{w:.0f} × {h:.0f} m"
    lon, lat = spatial.center
    kind = "square" if isinstance(spatial, PointBuffer) else "box"
    return f"{kind} {size} at {lat:.5f}, {lon:.5f}"


class RoiPicker(W.VBox):
    """Pick ROIs on a map: a click adds a ``PointBuffer`` drawn true to size; in
    *box* mode a drawn rectangle adds a ``BBox``; handles drag ROIs around.

    Observe ``rois`` (``picker.observe(fn, names="rois")``) to react to any change.

    Every outline is the grid an export samples (:func:`rs_embed.roi_footprint` at
    ``scale_m``). ROIs that lie partly or wholly outside the imagery of
    ``coverage_backend`` (default: the local catalog shown on the map) are marked before
    any export; after one, :meth:`mark_status` colours failed and mostly-nodata ROIs.

    Layers come in groups (``picker.layers``, one row each in the layer control, with
    opacity, legends, a base map switcher and a "go to lon, lat" box): the embedded
    Sentinel-2 sample (``show_sample``) and the scenes of a local ``catalog`` under
    *Imagery*, the ROIs on top. ``basemap``: None (offline), ``"osm"``, ``"imagery"``,
    an xyzservices provider or a ``TileLayer``; web tiles that cannot load stay blank.
    Overlays attached to an ROI (:meth:`attach`) follow its renames and are dropped
    when it moves, is resized or is deleted.
    """

    rois = traitlets.List(trait=traitlets.Instance(Roi))
    buffer_m = traitlets.Float(1000.0)
    mode = traitlets.Enum(("point", "box", "off"), default_value="point")
    message = traitlets.Unicode("")
    selected = traitlets.Unicode("")
    #: share of each ROI (by name) inside the imagery of ``coverage_backend``
    coverage = traitlets.Dict()
    #: what the last export made of each ROI: ``ok``, ``failed`` or ``nodata``
    statuses = traitlets.Dict()
    page = traitlets.Int(0)

    def __init__(self, rois: Optional[Iterable] = None, *, buffer_m: float = 1000.0,
                 basemap=None, show_sample: bool = True, catalog=None,
                 center: Optional[Tuple[float, float]] = None, zoom: Optional[int] = None,
                 name_prefix: str = "roi", height: str = "460px", path: str = "rois.geojson",
                 scale_m: float = DEFAULT_SCALE_M, coverage_backend="auto-local"):
        from .basemaps import base_layer

        super().__init__()
        self.name_prefix = check_name(name_prefix)
        self.scale_m = float(scale_m)
        self._serial = 1  # new names count up and never reuse a deleted ROI's number
        self.map = L.Map(basemap=base_layer(basemap), center=center or (20.0, 0.0),
                         zoom=zoom if zoom is not None else 2, scroll_wheel_zoom=True,
                         double_click_zoom=False, layout=W.Layout(height=height, width="100%"))
        self.map.add_class("rs-roi-map")
        self.map.add(L.ScaleControl(position="bottomleft", imperial=False))
        self.map.add(L.LayersControl(position="topright"))
        self.map.on_interaction(self._on_interaction)
        self.layers = MapLayers(self.map, basemap=basemap)
        self._draw = L.DrawControl(
            rectangle={"shapeOptions": {"color": _BOX_COLOR, "weight": 2}},
            polyline={}, polygon={}, circlemarker={}, circle={}, marker={},
            edit=False, remove=False)
        self._draw.on_draw(self._on_draw)
        self._chunks: List[L.GeoJSON] = []
        self._chunk_keys: List[tuple] = []
        self._handles: Dict[str, L.Marker] = {}
        self._rings: Dict[Tuple, list] = {}
        self._row_cache: Dict[tuple, W.HBox] = {}
        self._attached: Dict[str, List[Tuple[str, object, object]]] = {}
        self.context_layers: List[L.Layer] = []
        self._context_bounds: Optional[Tuple[float, float, float, float]] = None
        self._coverage_cache: Dict[object, Optional[float]] = {}
        if coverage_backend == "auto-local":  # the imagery the map shows
            coverage_backend = "local" if catalog is None else None
        self._coverage_args = {"backend": coverage_backend, "temporal": None, "model": None}

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
        self._prev = W.Button(icon="chevron-left", tooltip="previous page", layout=W.Layout(width="3em"))
        self._next = W.Button(icon="chevron-right", tooltip="next page", layout=W.Layout(width="3em"))
        self._page_label = W.HTML()
        self._prev.on_click(lambda _: setattr(self, "page", max(0, self.page - 1)))
        self._next.on_click(lambda _: setattr(self, "page", min(self._n_pages() - 1, self.page + 1)))
        self._pager = W.HBox([self._prev, self._page_label, self._next],
                             layout=W.Layout(align_items="center", display="none"))
        self._save.on_click(lambda _: self._guard(self.save, self._path.value))
        self._load.on_click(lambda _: self._guard(self.load, self._path.value))
        self._clear.on_click(lambda _: self.clear())

        W.link((self._mode, "value"), (self, "mode"))
        W.link((self._buffer, "value"), (self, "buffer_m"))
        self.buffer_m = float(buffer_m)

        self.children = [
            W.HBox([self._mode, self._buffer]),
            self.map,
            self.layers.panel,
            self._table,
            self._pager,
            W.HBox([self._path, self._save, self._load, self._clear]),
            self._status,
            W.HTML(_CSS, layout=W.Layout(display="none")),
        ]
        self.add_class("rs-roi-picker")
        self.layers.group("ROIs", legend=self._roi_legend())

        if show_sample:
            self._guard(self._add_context, None)
        if catalog is not None:
            self._guard(self._add_context, catalog)
            if self._coverage_args["backend"] is None:
                self._guard(self._catalog_coverage, catalog)
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
        # the first assignment's "old" is traitlets' Undefined sentinel, not a list
        old_rois = change["old"] if isinstance(change["old"], (list, tuple)) else []
        old = {r.name: r.spatial for r in old_rois}
        new = {r.name: r.spatial for r in change["new"]}
        # an edited ROI is a new request: what an earlier export said of it no longer holds
        stale = [n for n in self.statuses if new.get(n) is None or new[n] != old.get(n)]
        if stale:
            self.statuses = {n: v for n, v in self.statuses.items() if n not in stale}
        self._drop_stale_overlays(new)
        if self.selected and self.selected not in new:
            self.selected = ""
        self._update_coverage()
        self._render()

    @traitlets.observe("mode")
    def _mode_changed(self, change):
        if change["new"] == "box" and self._draw not in self.map.controls:
            self.map.add(self._draw)
        elif change["new"] != "box" and self._draw in self.map.controls:
            self.map.remove(self._draw)

    @traitlets.observe("statuses", "selected")
    def _marks_changed(self, change):
        if hasattr(self, "_chunks"):
            self._render()

    @traitlets.observe("page")
    def _page_changed(self, change):
        if hasattr(self, "_table"):
            self._render_table()

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

    def add_many(self, items: Iterable) -> List[str]:
        """Append many ROIs in one change (``(name, spatial)`` pairs, ``Roi`` or bare specs)."""
        out: List[Roi] = []
        taken = set(self.names)
        for item in items:
            if isinstance(item, Roi):
                roi = item
            elif isinstance(item, (PointBuffer, BBox)):
                roi = Roi(next_name(self.name_prefix, taken, start=self._serial), item)
                self._serial = int(roi.name.rsplit("_", 1)[1]) + 1
            else:
                roi = Roi(*item)
            if roi.name in taken:
                raise SpecError(f"an ROI named {roi.name!r} already exists")
            taken.add(roi.name)
            out.append(roi)
        self.rois = self.rois + out
        return [r.name for r in out]

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
        i = self._index(old)
        for store in (self._attached, self.coverage, self.statuses):
            if old in store:  # what belongs to the ROI follows its new name
                store[new] = store.pop(old)
        if self.selected == old:
            self.selected = new
        self._replace(old, Roi(new, self.rois[i].spatial))

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

    def select(self, name: str) -> None:
        """Make ``name`` the selected ROI (it gets a handle however many ROIs there are)."""
        self._index(name)
        self.selected = name

    # ------------------------------------------------- what is known of each ROI
    def mark_status(self, statuses: Dict[str, str]) -> None:
        """Colour ROIs by what an export made of them: ``{name: "ok"|"failed"|"nodata"}``."""
        bad = {v for v in statuses.values()} - {"ok", "failed", "nodata"}
        if bad:
            raise ValueError(f"statuses are 'ok', 'failed' or 'nodata', got {sorted(bad)}")
        self.statuses = {n: v for n, v in statuses.items() if n in set(self.names)}

    def check_imagery(self, backend="local", *, temporal=None, model: Optional[str] = None) -> None:
        """Mark the ROIs lying partly or wholly outside the imagery ``backend`` serves
        (for ``model``'s sensor and the ``temporal`` window when given); None stops it."""
        args = {"backend": backend, "temporal": temporal, "model": model}
        if args != self._coverage_args:
            self._coverage_args = args
            self._coverage_cache.clear()
            self._update_coverage()
            self._render()

    def _catalog_coverage(self, catalog) -> None:
        self._coverage_args = {"backend": rs_embed.LocalProvider(catalog), "temporal": None, "model": None}

    def _update_coverage(self) -> None:
        args = self._coverage_args
        if args["backend"] is None:
            if self.coverage:
                self.coverage = {}
            return
        todo = [r for r in self.rois if r.spatial not in self._coverage_cache]
        if todo:
            try:
                fractions = rs_embed.check_coverage([r.spatial for r in todo], **args)
            except (RsEmbedError, ValueError, OSError) as exc:
                self.message = f"⚠ cannot check the imagery coverage: {exc}"
                fractions = [None] * len(todo)
            for r, f in zip(todo, fractions):
                self._coverage_cache[r.spatial] = f
        self.coverage = {r.name: self._coverage_cache.get(r.spatial) for r in self.rois}

    def state(self, name: str) -> Optional[str]:
        """What the picker knows of ROI ``name``: an export status, else its coverage."""
        st = self.statuses.get(name)
        if st is not None:
            return st
        f = self.coverage.get(name)
        if f is None or f >= 0.999:
            return None
        return "outside" if f <= 0.0 else "partly outside"

    @property
    def outside(self) -> List[str]:
        """Names of the ROIs lying partly or wholly outside the imagery."""
        return [n for n in self.names if self.state(n) in ("outside", "partly outside")]

    # ----------------------------------------------------------------- overlays
    def attach(self, name: str, layer, group: str = "Embeddings", *, legend: Optional[str] = None) -> None:
        """Show ``layer`` in ``group`` as a picture of ROI ``name``: it follows the ROI's
        renames and is dropped when the ROI moves, is resized or is deleted."""
        spatial = self.rois[self._index(name)].spatial
        self.layers.add(group, layer, legend=legend)
        self._attached.setdefault(name, []).append((group, layer, spatial))

    def attached(self, name: str) -> List:
        return [layer for _, layer, _ in self._attached.get(name, [])]

    def _drop_stale_overlays(self, current: Dict[str, object]) -> None:
        for name in list(self._attached):
            keep = []
            for group, layer, spatial in self._attached[name]:
                if current.get(name) == spatial:
                    keep.append((group, layer, spatial))
                else:
                    self.layers.remove(group, layer)
            if keep:
                self._attached[name] = keep
            else:
                del self._attached[name]

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
        bounds = [self._bounds(r.spatial) for r in self.rois]
        self.map.center, self.map.zoom = fit_view(
            (min(b[0] for b in bounds), min(b[1] for b in bounds),
             max(b[2] for b in bounds), max(b[3] for b in bounds)))

    @classmethod
    def from_file(cls, path, **kwargs) -> "RoiPicker":
        picker = cls(**kwargs)
        picker.load(path)
        return picker

    # ------------------------------------------------------------ map events
    def _guard(self, fn, *args) -> bool:
        """Run a UI action; show a bad input as a message instead of a traceback."""
        try:
            fn(*args)
        except (RsEmbedError, ValueError, KeyError, OSError) as exc:
            self.message = f"⚠ {exc}"
            return False
        return True

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
            self.layers.add("Imagery" if isinstance(layer, L.ImageOverlay) else "Scene footprints", layer)
        self.context_layers.extend(layers)
        self.layers.set_legend("Scene footprints", swatches_html([("scene outline", "#ffd400")], outline=True))
        self.layers.set_legend("Imagery", "true colour (B4, B3, B2), 2–98 % stretch")
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
        out = self.outside
        warn = (f" · <span style='color:#b26a00'>⚠ {len(out)} outside the imagery: "
                f"{', '.join(out[:5])}{' …' if len(out) > 5 else ''}</span>") if out else ""
        self._status.value = f"<b>{n} ROI{'s' if n != 1 else ''}</b>{warn}{note}"

    @traitlets.observe("message")
    def _message_changed(self, change):
        if hasattr(self, "_status"):
            self._render_status()

    def _roi_legend(self) -> str:
        return swatches_html([("square", _POINT_COLOR), ("box", _BOX_COLOR)]
                             + [(STATE_LABELS[k], c) for k, c in STATE_COLORS.items()], outline=True)

    def _bounds(self, spatial):
        ring = self._ring(spatial)
        lons = [p[0] for p in ring]
        lats = [p[1] for p in ring]
        return (min(lons), min(lats), max(lons), max(lats))

    def _ring(self, spatial) -> list:
        ring = self._rings.get(spatial)
        if ring is None:
            if len(self._rings) > 20_000:
                self._rings.clear()
            ring = self._rings[spatial] = ground_ring(spatial, self.scale_m)
        return ring

    def _feature(self, roi: Roi) -> tuple:
        """(cache key, GeoJSON feature) of one ROI outline, styled by what is known of it."""
        state = self.state(roi.name)
        base = _POINT_COLOR if isinstance(roi.spatial, PointBuffer) else _BOX_COLOR
        color = STATE_COLORS.get(state, base)
        style = {"color": color, "weight": 3 if roi.name == self.selected else 2, "fillColor": color}
        if state in ("outside", "partly outside"):
            style["dashArray"] = "5 4"
        key = (roi.name, roi.spatial, state, roi.name == self.selected)
        feat = {"type": "Feature", "properties": {"name": roi.name, "state": state or "", "style": style},
                "geometry": {"type": "Polygon", "coordinates": geojson_ring(self._ring(roi.spatial))}}
        return key, feat

    def _render_layers(self) -> None:
        rois = self.rois
        n_chunks = (len(rois) + CHUNK - 1) // CHUNK
        for c in range(n_chunks):
            part = rois[c * CHUNK:(c + 1) * CHUNK]
            built = [self._feature(r) for r in part]
            keys = tuple(k for k, _ in built)
            data = {"type": "FeatureCollection", "features": [f for _, f in built]}
            if c < len(self._chunks):
                if self._chunk_keys[c] != keys:
                    self._chunks[c].data = data
                    self._chunk_keys[c] = keys
            else:
                layer = L.GeoJSON(data=data, name=f"ROIs {c + 1}",
                                  style={"opacity": 0.9, "fillOpacity": 0.12, "weight": 2})
                self.layers.add("ROIs", layer)
                self._chunks.append(layer)
                self._chunk_keys.append(keys)
        for layer in self._chunks[n_chunks:]:
            self.layers.remove("ROIs", layer)
        del self._chunks[n_chunks:], self._chunk_keys[n_chunks:]
        self._render_handles()

    def _render_handles(self) -> None:
        if len(self.rois) <= MAX_HANDLES:
            wanted = {r.name: r for r in self.rois}
        else:
            wanted = {r.name: r for r in self.rois if r.name == self.selected}
        for name in list(self._handles):
            if name not in wanted:
                self.layers.remove("ROIs", self._handles.pop(name))
        for name, roi in wanted.items():
            lon, lat = roi.spatial.center
            color = _POINT_COLOR if isinstance(roi.spatial, PointBuffer) else _BOX_COLOR
            marker = self._handles.get(name)
            if marker is None:
                marker = L.Marker(location=[lat, lon], draggable=True, title=name,
                                  name=f"handle {name}", icon=_handle_icon(name, color))
                marker.observe(partial(self._on_marker_moved, name), names="location")
                self._handles[name] = marker
                self.layers.add("ROIs", marker)
            elif list(marker.location) != [lat, lon]:
                marker.location = [lat, lon]

    def _n_pages(self) -> int:
        return max(1, (len(self.rois) + PAGE_SIZE - 1) // PAGE_SIZE)

    def _row(self, roi: Roi) -> W.HBox:
        key = (roi.name, roi.spatial, self.state(roi.name), self.coverage.get(roi.name))
        row = self._row_cache.get(key)
        if row is not None:
            return row
        name = W.Text(value=roi.name, continuous_update=False, layout=W.Layout(width="10em"))

        def renamed(ch, old=roi.name, box=name):
            if ch["new"] != old and not self._guard(self.rename, old, ch["new"]):
                box.value = old  # a refused name does not stay in the box

        name.observe(renamed, names="value")
        state = self.state(roi.name)
        note = ""
        if state is not None:
            f = self.coverage.get(roi.name)
            extra = f" ({1 - f:.0%})" if state == "partly outside" and f is not None else ""
            note = (f" <span class='rs-roi-state' style='color:{STATE_COLORS[state]}'>"
                    f"⚠ {STATE_LABELS[state]}{extra}</span>" if state != "ok" else
                    f" <span class='rs-roi-state' style='color:{STATE_COLORS[state]}'>✓ exported</span>")
        info = W.HTML(describe_spatial(roi.spatial, self.scale_m) + note, layout=W.Layout(width="30em"))
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
        row = W.HBox(parts + [go, delete], layout=W.Layout(flex="0 0 auto"))
        row.add_class("rs-roi-row")
        if len(self._row_cache) > 4 * PAGE_SIZE:
            self._row_cache.clear()
        self._row_cache[key] = row
        return row

    def _zoom_to(self, roi: Roi) -> None:
        self.selected = roi.name
        center, zoom = fit_view(self._bounds(roi.spatial))
        self.map.center, self.map.zoom = center, max(1, zoom - 1)

    def _render_table(self) -> None:
        pages = self._n_pages()
        if self.page >= pages:
            self.page = pages - 1
            return
        start = self.page * PAGE_SIZE
        shown = self.rois[start:start + PAGE_SIZE]
        self._table.children = [self._row(r) for r in shown]
        self._pager.layout.display = None if pages > 1 else "none"
        self._page_label.value = (f"ROIs {start + 1}–{start + len(shown)} of {len(self.rois)}"
                                  if self.rois else "")
