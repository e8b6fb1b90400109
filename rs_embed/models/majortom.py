"""``majortom``: Major TOM embedding datasets, a read-only lookup of published rows.

Czerkawski, Kluczek, Bojanowski, "Global and Dense Embeddings of Earth: Major TOM
Floating in the Latent Space", arXiv:2412.05600. Major TOM Core images are cut into
fragments and embedded by one of four models (SSL4EO-S2 on Sentinel-2 L1C, SSL4EO-S1RTC
on Sentinel-1 RTC, SigLIP and DINOv2 on Sentinel-2 RGB); each dataset is a set of
GeoParquet files with one row per fragment (``embedding``, ``centre_lat``,
``centre_lon``, ``timestamp``, ``product_id``, ``grid_cell``).

Point ``RS_EMBED_MAJORTOM_URLS`` at the files of the dataset you want (one dataset per
export: their vectors do not share a space). Pooled output is the mean of the rows
whose fragment centre lies within 1,120 m (half a 224-pixel 10 m fragment) of the ROI
and whose timestamp lies in the window (any time when ``temporal=None``).

Licence of the data: CC-BY-SA 4.0 (Major TOM embedding datasets, ESA Phi-lab).
"""

from __future__ import annotations

from ..providers import embedding_tables as _et
from .embedding_tables import TableEmbedder


class MajorTOMEmbedder(TableEmbedder):
    """Major TOM embedding rows under the ROI, pooled."""

    name = "majortom"
    provider = "majortom"
    product = _et.MAJOR_TOM

    @classmethod
    def _product(cls) -> dict:
        return {
            "summary": "Major TOM embedding datasets (SSL4EO-S2/S1, SigLIP, DINOv2 rows in GeoParquet).",
            "collection": _et.MAJOR_TOM.collection, "source": f"GeoParquet files in ${_et.MAJOR_TOM.urls_env}",
            "embedding_dim": "as published by the chosen dataset", "search_radius_m": _et.MAJOR_TOM.radius_m,
            "paper": "Czerkawski et al. 2024, Major TOM Floating in the Latent Space (arXiv:2412.05600)",
            "licence": "CC-BY-SA-4.0 (data)",
        }


__all__ = ["MajorTOMEmbedder"]
