"""Similarity search on the map: click a query, see the most similar places ranked and lit up.

``SimilarityExplorer(result, picker_or_map)`` puts the exported items on the map. In
*Query* mode a click picks the item under it as the query; in *Positive* / *Negative*
mode clicks collect examples and the query becomes mean(positives) − mean(negatives)
(as in GeoVibes). The ``k`` best matches (cosine, :class:`rs_embed.analysis.SimilarityIndex`)
are listed in a ranked table and drawn on the map with a colour scale. Past
:data:`~rs_embed.widgets.points.LONBOARD_THRESHOLD` items the scores are drawn as a
lonboard point map under the table instead.
"""

from __future__ import annotations

from html import escape
from typing import List, Optional

import numpy as np
import traitlets

from rs_embed.analysis import SimilarityIndex

from . import export_view as ev
from .extra import require
from .layers import colorbar_html, hex_colors, swatches_html
from .map_items import ExportOnMap, click_coordinates
from .points import LONBOARD_THRESHOLD, lonboard_points

W = require("ipywidgets", "SimilarityExplorer")
L = require("ipyleaflet", "SimilarityExplorer")

_QUERY, _POS, _NEG = "#ffffff", "#00c853", "#d50000"


class SimilarityExplorer(W.VBox):
    """Find the exported places most like a query place, on the map.

    ``mode``: ``query`` (a click sets the query item), ``positive`` / ``negative`` (clicks
    toggle examples), ``off``. ``hits`` holds the last :class:`~rs_embed.analysis.SearchResult`.
    """

    mode = traitlets.Enum(("off", "query", "positive", "negative"), default_value="query")
    query = traitlets.Unicode("")
    positives = traitlets.List(traitlets.Unicode())
    negatives = traitlets.List(traitlets.Unicode())
    k = traitlets.Int(10)
    hits = traitlets.Any(None)

    def __init__(self, result, picker_or_map=None, *, model: Optional[str] = None, k: int = 10,
                 method: str = "exact", names=None):
        super().__init__()
        self.items = ExportOnMap(result, picker_or_map, names=names)
        res = self.items.result
        models = [m for m, r in res.models.items() if r.embeddings is not None and r.status != "failed"]
        if not models:
            raise ValueError(f"no model of this export has embeddings (status {res.status!r})")
        model = ev.pick_model(res, model)
        self.method = method
        self._indexes = {}
        self.model_w = W.Dropdown(options=models, value=model, description="Model",
                                  layout=W.Layout(width="16em"))
        self.mode_w = W.ToggleButtons(options=[("Query", "query"), ("Positive", "positive"),
                                               ("Negative", "negative"), ("Off", "off")],
                                      value="query", style={"button_width": "6.5em"},
                                      tooltips=["a click sets the query place", "clicks add or remove positive examples",
                                                "clicks add or remove negative examples", "clicks do nothing here"])
        self.k_w = W.BoundedIntText(value=k, min=1, max=max(1, len(self.items.names) - 1),
                                    description="k", layout=W.Layout(width="8em"), style={"description_width": "1.5em"})
        self.clear_w = W.Button(description="Clear", icon="eraser", layout=W.Layout(width="7em"))
        self.clear_w.on_click(lambda _: self.clear())
        self.table = W.HTML()
        self.table.add_class("rs-similarity-table")
        self.status = W.HTML()
        self.status.add_class("rs-similarity-status")
        self.view = W.Box()  # the lonboard map, for very many items
        W.link((self.mode_w, "value"), (self, "mode"))
        W.link((self.k_w, "value"), (self, "k"))
        self.k = int(k)
        self.model_w.observe(lambda _: self.search(), names="value")
        self.children = [W.HTML("<b>Similarity search</b>"),
                         W.HBox([self.model_w, self.mode_w, self.k_w, self.clear_w]),
                         self.status, self.table, self.view]
        self.add_class("rs-similarity-explorer")
        self._layer = L.GeoJSON(data={"type": "FeatureCollection", "features": []}, name="similarity",
                                style={"opacity": 1.0, "fillOpacity": 0.55})
        self.items.layers.add("Similarity", self._layer)
        self.items.map.on_interaction(self._on_interaction)
        self.items.borrow_clicks(self.mode != "off")
        self._say("click a place on the map to search for places like it")

    # ----------------------------------------------------------------- state
    @property
    def map(self):
        return self.items.map

    def index(self) -> SimilarityIndex:
        m = self.model_w.value
        if m not in self._indexes:
            self._indexes[m] = SimilarityIndex(ev.embeddings(self.items.result, m), self.items.names,
                                               method=self.method)
        return self._indexes[m]

    @traitlets.observe("mode")
    def _mode_changed(self, change):
        if hasattr(self, "items"):
            self.items.borrow_clicks(change["new"] != "off")

    @traitlets.observe("k")
    def _k_changed(self, change):
        if hasattr(self, "table") and (self.query or self.positives):
            self.search()

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "inherit"
        self.status.value = f"<span style='color:{color}'>{escape(text)}</span>"

    def pick(self, item) -> None:
        """What a click on ``item`` (an index or a name) does in the current mode."""
        name = item if isinstance(item, str) else self.items.names[int(item)]
        if name not in self.items.names:
            raise KeyError(f"no exported place named {name!r}")
        if self.mode == "query":
            self.positives, self.negatives = [], []
            self.query = name
        elif self.mode in ("positive", "negative"):
            self.query = ""
            mine = list(self.positives if self.mode == "positive" else self.negatives)
            other = list(self.negatives if self.mode == "positive" else self.positives)
            if name in mine:
                mine.remove(name)
            else:
                mine.append(name)
                if name in other:
                    other.remove(name)
            if self.mode == "positive":
                self.positives, self.negatives = mine, other
            else:
                self.negatives, self.positives = mine, other
        else:
            return
        self.search()

    def clear(self) -> None:
        self.query, self.positives, self.negatives, self.hits = "", [], [], None
        self.table.value = ""
        self._layer.data = {"type": "FeatureCollection", "features": []}
        self.items.layers.set_legend("Similarity", "")
        self._say("cleared: click a place to search again")

    def search(self):
        """Run the search for the current query or examples; updates table and map."""
        if not (self.query or self.positives):
            if self.negatives:
                self._say("add at least one positive example", error=True)
            return None
        index = self.index()
        try:
            if self.query:
                hits = index.search(self.query, int(self.k))
            else:
                hits = index.search(positives=self.positives, negatives=self.negatives, k=int(self.k))
            scores = index.scores(self.query or None, positives=() if self.query else self.positives,
                                  negatives=() if self.query else self.negatives)
        except (ValueError, KeyError, IndexError) as exc:
            self._say(str(exc), error=True)
            return None
        self.hits = hits
        self._draw(hits, scores)
        what = (f"query {self.query}" if self.query else
                f"{len(self.positives)} positive(s) − {len(self.negatives)} negative(s)")
        self._say(f"{self.model_w.value}: the {len(hits)} places most similar to {what} (cosine)")
        return hits

    # ------------------------------------------------------------------ views
    def _draw(self, hits, scores: np.ndarray) -> None:
        rows = "".join(f"<tr class='rs-hit'><td>{r + 1}</td><td>{escape(n)}</td><td>{s:.4f}</td></tr>"
                       for r, (_, n, s) in enumerate(hits))
        self.table.value = ("<table class='rs-similarity-ranked'><tr><th>rank</th><th>place</th>"
                            f"<th>cosine</th></tr>{rows}</table>")
        lo, hi = (float(hits.scores.min()), float(hits.scores.max())) if len(hits) else (0.0, 1.0)
        colors = dict(zip(hits.indices.tolist(), hex_colors(hits.scores, "viridis", lo, hi)))
        marks = {self.items.names.index(n): _POS for n in self.positives}
        marks.update({self.items.names.index(n): _NEG for n in self.negatives})
        if self.query:
            marks[self.items.names.index(self.query)] = _QUERY

        def style(i):
            if i in marks:
                return {"color": marks[i], "weight": 4, "fillColor": marks[i], "fillOpacity": 0.15}
            if i in colors:
                return {"color": colors[i], "weight": 3, "fillColor": colors[i]}
            return None

        n = len(self.items.names)
        if n > LONBOARD_THRESHOLD:  # the ipyleaflet map keeps the examples, lonboard the scores
            self._layer.data = self.items.features(style, indices=list(marks))
            c = self.items.centers
            self.view.children = [lonboard_points(c[:, 0], c[:, 1], hex_colors(scores, "viridis"))]
        else:
            self._layer.data = self.items.features(style, indices=list(marks) + list(colors))
        legend = colorbar_html("viridis", lo, hi, f"cosine similarity, top {len(hits)}")
        legend += swatches_html([("query", _QUERY)]) + swatches_html([("positive", _POS), ("negative", _NEG)],
                                                                     outline=True)
        self.items.layers.set_legend("Similarity", legend)

    def _on_interaction(self, **event) -> None:
        xy = click_coordinates(event)
        if xy is None or self.mode == "off":
            return
        i = self.items.item_at(*xy)
        if i is None:
            self._say("no exported place here: click inside one of the squares", error=True)
            return
        self.pick(i)


__all__ = ["SimilarityExplorer"]
