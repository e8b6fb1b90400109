"""rs_embed.widgets: the notebook layer (map ROI picker, export panel, similarity
explorer, label-and-probe panel, compare views, plots).

Built only on rs_embed's public API; the core never imports this package. Names
resolve lazily so ``import rs_embed.widgets`` stays cheap, and the map and form
widgets say which extra to install when ipywidgets or ipyleaflet are missing.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "RoiPicker": "rs_embed.widgets.roi_picker",
    "ExportPanel": "rs_embed.widgets.export_panel",
    "Roi": "rs_embed.widgets.rois",
    "load_rois": "rs_embed.widgets.rois",
    "save_rois": "rs_embed.widgets.rois",
    "ground_ring": "rs_embed.widgets.footprints",
    "plot_inputs": "rs_embed.widgets.plots",
    "plot_embeddings": "rs_embed.widgets.plots",
    "plot_similarity_search": "rs_embed.widgets.plots",
    "embedding_overlay": "rs_embed.widgets.overlays",
    "sample_layers": "rs_embed.widgets.overlays",
    "catalog_layers": "rs_embed.widgets.overlays",
    "scene_layers": "rs_embed.widgets.overlays",
    "input_overlay": "rs_embed.widgets.overlays",
    "embedding_overlays": "rs_embed.widgets.overlays",
    "PCA_RGB_LEGEND": "rs_embed.widgets.overlays",
    "SimilarityExplorer": "rs_embed.widgets.explorer",
    "ProbePanel": "rs_embed.widgets.probe_panel",
    "CompareView": "rs_embed.widgets.compare",
    "MapLayers": "rs_embed.widgets.layers",
    "points_view": "rs_embed.widgets.points",
    "downloads_html": "rs_embed.widgets.downloads",
    "pca_project": "rs_embed.widgets.analysis",
    "pca_rgb": "rs_embed.widgets.analysis",
    "cosine_similarity": "rs_embed.widgets.analysis",
    "most_similar": "rs_embed.widgets.analysis",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'rs_embed.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
