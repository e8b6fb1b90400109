"""Label exported places and probe how well each embedding separates the labels.

``ProbePanel(result, picker_or_map)``: labels come from the ROI names (``field_3`` →
``field``), from a CSV/GeoJSON column, or from clicks on the map (type a label, switch
*Label by clicking* on, click places; a click on a place that already has this label
removes it). *Run probe* calls :func:`rs_embed.analysis.compare` (k-NN and/or logistic
regression, stratified cross-validation, 95 % bootstrap intervals) for every model of
the export and shows the side-by-side table and a confusion matrix.
"""

from __future__ import annotations

import base64
import io
from html import escape
from typing import Dict, Optional

import traitlets

from rs_embed import analysis

from .extra import require
from .layers import swatches_html
from .map_items import ExportOnMap, click_coordinates
from .points import point_colors

W = require("ipywidgets", "ProbePanel")
L = require("ipyleaflet", "ProbePanel")


def figure_png_html(fig, css: str = "") -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img class='{css}' src='data:image/png;base64,{data}'/>"


class ProbePanel(W.VBox):
    """Label places (names, a file column, clicks) and probe the export's embeddings.

    ``labels`` (a trait) maps place names to labels; ``table`` holds the last
    :class:`~rs_embed.analysis.ProbeTable`.
    """

    labels = traitlets.Dict()
    labelling = traitlets.Bool(False)
    table = traitlets.Any(None)

    def __init__(self, result, picker_or_map=None, *, labels=None, methods=("knn",), folds: int = 5,
                 names=None):
        super().__init__()
        self.items = ExportOnMap(result, picker_or_map, names=names)
        self.label_w = W.Text(value="class_a", description="Label", layout=W.Layout(width="14em"),
                              style={"description_width": "3.5em"})
        self.label_w.add_class("rs-probe-label")
        self.click_w = W.ToggleButton(value=False, description="Label by clicking", icon="tag",
                                      layout=W.Layout(width="12em"))
        self.click_w.add_class("rs-probe-click")
        W.link((self.click_w, "value"), (self, "labelling"))
        self.names_w = W.Button(description="Labels from names", icon="font", layout=W.Layout(width="13em"))
        self.names_w.on_click(lambda _: self.labels_from_names())
        self.file_w = W.Text(placeholder="labels.csv or .geojson", layout=W.Layout(width="16em"))
        self.column_w = W.Text(value="label", description="column", layout=W.Layout(width="11em"),
                               style={"description_width": "4em"})
        self.load_w = W.Button(description="Load", icon="folder-open", layout=W.Layout(width="6em"))
        self.load_w.on_click(lambda _: self._guard(self.load_labels, self.file_w.value, self.column_w.value))
        self.clear_w = W.Button(description="Clear labels", icon="eraser", layout=W.Layout(width="10em"))
        self.clear_w.on_click(lambda _: setattr(self, "labels", {}))
        self.methods_w = W.SelectMultiple(options=[("k-NN (k=5)", "knn"), ("logistic regression", "linear")],
                                          value=tuple(methods), rows=2, layout=W.Layout(width="13em"))
        self.folds_w = W.BoundedIntText(value=folds, min=2, max=20, description="folds",
                                        layout=W.Layout(width="9em"), style={"description_width": "3em"})
        self.run_w = W.Button(description="Run probe", icon="play", button_style="primary")
        self.run_w.add_class("rs-probe-run")
        self.run_w.on_click(lambda _: self._guard(self.run))
        self.counts = W.HTML()
        self.counts.add_class("rs-probe-counts")
        self.results = W.HTML()
        self.results.add_class("rs-probe-results")
        self.message = W.HTML()
        self.children = [
            W.HTML("<b>Label and probe</b>"),
            W.HBox([self.label_w, self.click_w, self.names_w, self.clear_w]),
            W.HBox([self.file_w, self.column_w, self.load_w]),
            W.HBox([self.methods_w, self.folds_w, self.run_w]),
            self.counts, self.message, self.results]
        self.add_class("rs-probe-panel")
        self._layer = L.GeoJSON(data={"type": "FeatureCollection", "features": []}, name="labels",
                                style={"opacity": 1.0, "fillOpacity": 0.35})
        self.items.layers.add("Labels", self._layer)
        self.items.map.on_interaction(self._on_interaction)
        if labels is not None:
            names = self.items.names
            self.labels = {n: v for n, v in zip(names, analysis.resolve_labels(labels, names)) if v is not None}
        self._render()

    # ---------------------------------------------------------------- labels
    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except (ValueError, KeyError, OSError, ImportError) as exc:
            self.message.value = f"<span style='color:#b00020'>⚠ {escape(str(exc))}</span>"

    def labels_from_names(self) -> None:
        """Every place gets the class its name says (a trailing number dropped)."""
        names = self.items.names
        self.labels = dict(zip(names, analysis.labels_from_names(names)))

    def load_labels(self, path: str, column: str = "label") -> None:
        """Labels from a CSV or GeoJSON: columns ``name`` and ``column``."""
        got = analysis.read_labels(path, column)
        known = {n: v for n, v in got.items() if n in set(self.items.names)}
        if not known:
            raise KeyError(f"none of the names in {path} is a place of this export")
        self.labels = {**self.labels, **known}
        self.message.value = f"{len(known)} label(s) read from {escape(path)}"

    def label(self, item, label: Optional[str] = None) -> None:
        """Give ``item`` (index or name) ``label`` (default: the Label box); the same label
        again removes it."""
        name = item if isinstance(item, str) else self.items.names[int(item)]
        label = (label if label is not None else self.label_w.value).strip()
        if not label:
            raise ValueError("type a label first")
        new = dict(self.labels)
        if new.get(name) == label:
            del new[name]
        else:
            new[name] = label
        self.labels = new

    @traitlets.observe("labels")
    def _labels_changed(self, change):
        if hasattr(self, "_layer"):
            self._render()

    @traitlets.observe("labelling")
    def _labelling_changed(self, change):
        if hasattr(self, "items"):
            self.items.borrow_clicks(change["new"])

    def _render(self) -> None:
        names = self.items.names
        labelled = [names.index(n) for n in self.labels if n in names]
        values = [self.labels[names[i]] for i in labelled]
        colors = point_colors(labels=values) if values else []
        color_of = dict(zip(labelled, colors))
        self._layer.data = self.items.features(
            lambda i: {"color": color_of[i], "weight": 3, "fillColor": color_of[i]} if i in color_of else None,
            indices=labelled)
        classes = dict(zip(values, colors))
        self.items.layers.set_legend("Labels", swatches_html(list(classes.items())))
        counts: Dict[str, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        self.counts.value = (f"{len(values)} of {len(names)} places labelled: "
                             + ", ".join(f"{escape(k)} ({n})" for k, n in sorted(counts.items()))
                             if values else "no labels yet")

    # ------------------------------------------------------------------ probe
    def run(self):
        """Probe every model of the export with the chosen methods; show table and matrix."""
        methods = list(self.methods_w.value) or ["knn"]
        self.message.value = "running…"
        table = analysis.compare(self.items.result, self.labels, methods=methods, folds=int(self.folds_w.value))
        self.table = table
        best = max(table, key=lambda r: r.accuracy)
        dropped = {c: n for r in table for c, n in r.dropped.items()}
        note = (f"<div style='color:#b26a00'>left out (a single example): {escape(', '.join(dropped))}</div>"
                if dropped else "")
        self.results.value = (table._repr_html_() + note
                              + f"<div>{escape(best.summary())}</div>"
                              + figure_png_html(best.plot(), "rs-probe-confusion"))
        self.message.value = ""
        return table

    def _on_interaction(self, **event) -> None:
        xy = click_coordinates(event)
        if xy is None or not self.labelling:
            return
        i = self.items.item_at(*xy)
        if i is None:
            self.message.value = "<span style='color:#b00020'>no exported place here</span>"
            return
        self._guard(self.label, i)


__all__ = ["ProbePanel"]
