"""Compare views: the input imagery and the embeddings side by side on one split map,
and a time slider when the same places were exported for several windows.

Left of the divider: each ROI's true-colour input patch. Right: its grid embedding as
PCA → RGB (one PCA for all ROIs of the export, so a colour means the same everywhere),
or, for pooled vectors, the ROI's outline filled with the PCA colour of its vector.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from . import export_view as ev
from .extra import require
from .layers import swatches_html

W = require("ipywidgets", "CompareView")
L = require("ipyleaflet", "CompareView")


def _window_label(result, k: int) -> str:
    t = result.temporal or {}
    if t.get("mode") == "year" and t.get("year"):
        return str(t["year"])
    if t.get("start"):
        return f"{t['start']} – {t.get('end', '')}"
    return f"export {k + 1}"


class CompareView(W.VBox):
    """A split map (inputs | PCA-RGB of the embeddings) over one or several exports of
    the same places; ``window`` (a slider when there are several) picks the export."""

    def __init__(self, results, model: Optional[str] = None, *, names: Optional[Sequence[str]] = None,
                 height: str = "420px"):
        super().__init__()
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        self.results = [ev.as_result(r) for r in results]
        self.model = ev.pick_model(self.results[0], model)
        self.names = names
        from .basemaps import base_layer
        from .map_items import ExportOnMap
        from .roi_picker import fit_view

        first = ExportOnMap(self.results[0], L.Map(), names=names)
        b = first.bounds
        center, zoom = fit_view((b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
        self.map = L.Map(basemap=base_layer(None), center=center, zoom=zoom, scroll_wheel_zoom=True,
                         layout=W.Layout(height=height, width="100%"))
        self.map.add_class("rs-compare-map")
        self.left = L.LayerGroup(name="inputs")
        self.right = L.LayerGroup(name="embeddings (PCA → RGB)")
        self.map.add(self.left)
        self.map.add(self.right)
        self.split = L.SplitMapControl(left_layer=self.left, right_layer=self.right)
        self.map.add(self.split)
        labels = [_window_label(r, k) for k, r in enumerate(self.results)]
        self.window = W.SelectionSlider(options=list(zip(labels, range(len(labels)))), value=0,
                                        description="Window", layout=W.Layout(width="40em",
                                        display=None if len(labels) > 1 else "none"),
                                        continuous_update=False)
        self.window.observe(lambda _: self.show(self.window.value), names="value")
        self.legend = W.HTML()
        self.children = [W.HTML(f"<b>{self.model}</b>: inputs (left) | embeddings as PCA → RGB (right); "
                                "drag the divider"), self.window, self.map, self.legend]
        self.add_class("rs-compare-view")
        self.show(0)

    def show(self, k: int) -> None:
        """Show export ``k`` (its window) on both sides."""
        from .analysis import pca_project, pca_rgb
        from .overlays import embedding_overlays, input_overlay

        res = self.results[int(k)]
        names = ev.item_names(res, self.names)
        left, right = [], []
        emb = ev.embeddings(res, self.model)
        for i in range(res.n_items):
            try:
                left.append(input_overlay(res, self.model, i, names=names))
            except ValueError:
                pass
        if emb.ndim == 4:
            right.extend(embedding_overlays(res, self.model, names=names).values())
            from .overlays import PCA_RGB_LEGEND

            self.legend.value = PCA_RGB_LEGEND
        else:
            from .layers import hex_colors  # noqa: F401 (colours below are RGB triples)
            from .map_items import ExportOnMap

            ok = np.isfinite(emb).all(axis=1)
            scores, ratio = pca_project(emb, 3) if ok.sum() >= 2 else (np.zeros((len(emb), 3)), np.zeros(3))
            lo, hi = np.nanpercentile(scores[ok], 2, axis=0), np.nanpercentile(scores[ok], 98, axis=0)
            rgb = np.clip((scores - lo) / np.where(hi > lo, hi - lo, 1), 0, 1)
            items = ExportOnMap(res, L.Map(), names=names)
            colors = ["#%02x%02x%02x" % tuple(int(255 * c) for c in rgb[i]) if ok[i] else None
                      for i in range(len(emb))]
            right.append(L.GeoJSON(data=items.features(
                lambda i: {"color": colors[i], "weight": 1, "fillColor": colors[i], "fillOpacity": 0.9}
                if colors[i] else None), name="pooled PCA"))
            self.legend.value = (f"pooled vectors: each ROI filled with its PCA colour (PC1–3: "
                                 f"{', '.join(f'{r:.0%}' for r in ratio)} of variance)"
                                 + swatches_html([("failed", "#9e9e9e")]))
        self.left.layers = tuple(left)
        self.right.layers = tuple(right)


__all__ = ["CompareView"]
