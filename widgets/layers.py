"""Grouped map layers: one row per group in the layer control, opacity and a legend per group.

A map with eight ROIs and their overlays used to list some twenty rows in Leaflet's
layer control. Here every layer belongs to a named group (``Imagery``, ``ROIs``,
``Embeddings``, ``Similarity``, ...), each group is one ``LayerGroup`` on the map, so the
control shows one row per group, and :class:`MapLayers.panel` holds what Leaflet's
control lacks: an opacity slider and a legend or colour bar for every group, the base
map switcher, and a "go to lon, lat" box.
"""

from __future__ import annotations

from html import escape
from typing import Dict, List, Optional, Sequence, Tuple

from .extra import require

W = require("ipywidgets", "map layers")
L = require("ipyleaflet", "map layers")

#: stacking order, bottom to top; unknown groups go just below the ROIs
GROUP_ORDER = ("Imagery", "Scene footprints", "Inputs", "Embeddings", "Points", "Similarity",
               "Labels", "ROIs")

#: base maps the switcher offers (see :func:`rs_embed.widgets.basemaps.base_layer`)
BASEMAPS = (("offline (no network)", "offline"), ("OpenStreetMap", "osm"), ("Esri imagery", "imagery"))


def colorbar_html(cmap: str, vmin: float, vmax: float, label: str, steps: int = 9) -> str:
    """A horizontal colour bar from a matplotlib colormap, as inline HTML (offline)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cm = colormaps[cmap]
    stops = ", ".join(to_hex(cm(i / (steps - 1))) for i in range(steps))
    return (f"<div class='rs-colorbar' title='{escape(label)}'>"
            f"<div style='font-size:11px'>{escape(label)}</div>"
            f"<div style='height:10px;width:160px;background:linear-gradient(to right, {stops});"
            f"border:1px solid #888'></div>"
            f"<div style='display:flex;justify-content:space-between;width:162px;font-size:11px'>"
            f"<span>{vmin:.3g}</span><span>{vmax:.3g}</span></div></div>")


def swatches_html(entries: Sequence[Tuple[str, str]], *, outline: bool = False) -> str:
    """A legend of ``(label, colour)`` entries, as inline HTML."""
    parts = []
    for label, color in entries:
        box = (f"border:2px solid {color};background:transparent" if outline
               else f"background:{color};border:1px solid #555")
        parts.append(f"<span style='display:inline-flex;align-items:center;margin-right:10px'>"
                     f"<span style='display:inline-block;width:12px;height:12px;{box};"
                     f"margin-right:4px'></span>{escape(label)}</span>")
    return f"<div class='rs-legend' style='font-size:11px'>{''.join(parts)}</div>"


def hex_colors(values, cmap: str = "viridis", vmin: Optional[float] = None,
               vmax: Optional[float] = None) -> List[str]:
    """A ``#rrggbb`` colour per value (NaN: grey) on a matplotlib colormap."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    lo = float(np.min(v[ok])) if vmin is None and ok.any() else (vmin or 0.0)
    hi = float(np.max(v[ok])) if vmax is None and ok.any() else (vmax if vmax is not None else 1.0)
    span = hi - lo if hi > lo else 1.0
    cm = colormaps[cmap]
    return [to_hex(cm((x - lo) / span)) if np.isfinite(x) else "#9e9e9e" for x in v]


def _set_opacity(layer, value: float) -> None:
    """Scale a layer's opacity; vector layers keep their own stroke/fill ratio."""
    base = getattr(layer, "_rs_base_opacity", None)
    if isinstance(layer, L.GeoJSON):
        if base is None:
            base = layer._rs_base_opacity = (layer.style.get("opacity", 1.0), layer.style.get("fillOpacity", 0.2))
        layer.style = {**layer.style, "opacity": base[0] * value, "fillOpacity": base[1] * value}
    elif isinstance(layer, L.Path):
        if base is None:
            base = layer._rs_base_opacity = (layer.opacity, layer.fill_opacity)
        layer.opacity, layer.fill_opacity = base[0] * value, base[1] * value
    elif isinstance(layer, L.LayerGroup):
        for child in layer.layers:
            _set_opacity(child, value)
    elif hasattr(layer, "opacity"):
        if base is None:
            base = layer._rs_base_opacity = layer.opacity
        layer.opacity = base * value


class MapLayers:
    """The named layer groups of one map, and the panel that controls them."""

    def __init__(self, map: "L.Map", *, basemap=None):
        self.map = map
        self.groups: Dict[str, L.LayerGroup] = {}
        self.opacity: Dict[str, float] = {}
        self._rows: Dict[str, W.HBox] = {}
        self._legends: Dict[str, W.HTML] = {}
        self._rows_box = W.VBox()
        self._basemap = W.Dropdown(options=list(BASEMAPS), value=_basemap_key(basemap),
                                   description="Base map", style={"description_width": "initial"},
                                   layout=W.Layout(width="17em"))
        self._syncing = False
        self._basemap.observe(lambda ch: None if self._syncing else self.set_basemap(ch["new"]),
                              names="value")
        self._goto = W.Text(placeholder="lon, lat  e.g. -75.65, 37.64", continuous_update=False,
                            layout=W.Layout(width="16em"))
        self._goto.add_class("rs-goto")
        self._goto_button = W.Button(description="Go", icon="location-arrow", layout=W.Layout(width="5em"))
        self._goto_button.add_class("rs-goto-button")
        self._goto_button.on_click(lambda _: self.goto_text(self._goto.value))
        self._goto.observe(lambda ch: self.goto_text(ch["new"]) if ch["new"].strip() else None, names="value")
        self.message = W.HTML()
        self.message.add_class("rs-layers-message")
        self.panel = W.VBox([
            W.HBox([self._basemap, W.Label("Go to", layout=W.Layout(margin="0 0 0 1em")),
                    self._goto, self._goto_button, self.message]),
            self._rows_box])
        self.panel.add_class("rs-layer-panel")

    # ------------------------------------------------------------------ groups
    def group(self, name: str, *, legend: Optional[str] = None, opacity: float = 1.0) -> "L.LayerGroup":
        """The layer group ``name``, created (at its place in the stacking order) if new."""
        g = self.groups.get(name)
        if g is None:
            g = L.LayerGroup(layers=(), name=name)
            self.groups[name] = g
            self.opacity[name] = float(opacity)
            self._insert(name, g)
            self._add_row(name)
        if legend is not None:
            self.set_legend(name, legend)
        return g

    def _insert(self, name: str, g) -> None:
        rank = {n: i for i, n in enumerate(GROUP_ORDER)}
        mine = rank.get(name, len(GROUP_ORDER) - 1.5)
        layers = list(self.map.layers)
        at = len(layers)
        for i, layer in enumerate(layers):
            other = next((n for n, gg in self.groups.items() if gg is layer), None)
            if other is not None and rank.get(other, len(GROUP_ORDER) - 1.5) > mine:
                at = i
                break
        self.map.layers = tuple(layers[:at] + [g] + layers[at:])

    def _add_row(self, name: str) -> None:
        slider = W.FloatSlider(value=self.opacity[name], min=0.0, max=1.0, step=0.05, readout_format=".0%",
                               description=name, style={"description_width": "9em"},
                               layout=W.Layout(width="24em"), continuous_update=True)
        slider.observe(lambda ch, n=name: self.set_opacity(n, ch["new"]), names="value")
        legend = W.HTML(layout=W.Layout(margin="0 0 0 1em"))
        self._legends[name] = legend
        row = W.HBox([slider, legend], layout=W.Layout(align_items="center"))
        row.add_class("rs-layer-row")
        self._rows[name] = row
        order = {n: i for i, n in enumerate(GROUP_ORDER)}
        names = sorted(self._rows, key=lambda n: -order.get(n, len(GROUP_ORDER) - 1.5))
        self._rows_box.children = [self._rows[n] for n in names]

    def add(self, name: str, layer, **group_kwargs) -> None:
        """Put ``layer`` into group ``name`` at the group's opacity."""
        g = self.group(name, **group_kwargs)
        if layer not in g.layers:
            if self.opacity[name] != 1.0:
                _set_opacity(layer, self.opacity[name])
            g.add(layer)

    def remove(self, name: str, layer) -> None:
        g = self.groups.get(name)
        if g is not None and layer in g.layers:
            g.remove(layer)

    def clear(self, name: str) -> None:
        g = self.groups.get(name)
        if g is not None:
            g.clear_layers()

    def layers_of(self, name: str) -> Tuple:
        g = self.groups.get(name)
        return tuple(g.layers) if g is not None else ()

    def set_opacity(self, name: str, value: float) -> None:
        """Opacity of every layer of group ``name`` (0..1, relative to each layer's own)."""
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {value!r}")
        self.opacity[name] = value
        for layer in self.layers_of(name):
            _set_opacity(layer, value)
        slider = self._rows[name].children[0] if name in self._rows else None
        if slider is not None and slider.value != value:
            slider.value = value

    def set_legend(self, name: str, html: str) -> None:
        self.group(name)
        self._legends[name].value = html

    def legend(self, name: str) -> str:
        return self._legends[name].value if name in self._legends else ""

    # ------------------------------------------------------------ base and view
    def set_basemap(self, basemap) -> None:
        """Switch the base layer: ``"offline"`` (default, no network), ``"osm"``, ``"imagery"``."""
        from .basemaps import base_layer

        new = base_layer(basemap)
        old = next((lay for lay in self.map.layers if getattr(lay, "base", False)), None)
        if old is None:
            self.map.layers = (new,) + tuple(self.map.layers)
        else:
            self.map.substitute(old, new)
        key = _basemap_key(basemap)
        if self._basemap.value != key:
            self._syncing = True
            try:
                self._basemap.value = key
            finally:
                self._syncing = False

    def goto(self, lon: float, lat: float, zoom: Optional[int] = None) -> None:
        """Centre the map on (lon, lat)."""
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(f"lon must be in [-180, 180] and lat in [-90, 90], got {lon!r}, {lat!r}")
        self.map.center = (lat, lon)
        self.map.zoom = zoom if zoom is not None else max(int(self.map.zoom), 13)

    def goto_text(self, text: str) -> None:
        """Parse ``"lon, lat"`` (what the box holds) and go there; a bad entry is a message."""
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            if len(parts) != 2:
                raise ValueError(f"type 'lon, lat' (two numbers), got {text!r}")
            lon, lat = float(parts[0]), float(parts[1])
            self.goto(lon, lat)
        except ValueError as exc:
            self.message.value = f"<span style='color:#b00020'>⚠ {escape(str(exc))}</span>"
            return
        self.message.value = f"at {lon:.5f}, {lat:.5f}"


def _basemap_key(basemap) -> str:
    if basemap is None:
        return "offline"
    if isinstance(basemap, str) and basemap in dict(BASEMAPS).values():
        return basemap
    return "offline"


__all__ = ["MapLayers", "colorbar_html", "swatches_html", "hex_colors", "GROUP_ORDER"]
