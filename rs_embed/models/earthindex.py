"""``earthindex``: Earth Index embeddings (Earth Genome), a read-only lookup of published rows.

Earth Index v2 embeds 320 m Sentinel-2 mosaic patches with SoftCon (Wang et al.,
"Multi-Label Guided Soft Contrastive Learning for Efficient Earth Observation
Pretraining", arXiv:2405.20462) into 384-d vectors, on a Major TOM-based grid; one
GeoParquet per MGRS tile with columns ``id``, ``embedding`` and the patch centroid as
point ``geometry`` (the layout TorchGeo's ``EarthIndexEmbeddings`` reads).

Point ``RS_EMBED_EARTHINDEX_URLS`` at the tiles' files. Pooled output is the mean of the
rows whose centroid lies within 160 m (half a patch) of the ROI. The tables carry no
per-row date (one mosaic edition), so the time window is not used.

Licence of the data: CC-BY 4.0 (Earth Genome, Earth Index embeddings).
"""

from __future__ import annotations

from ..providers import embedding_tables as _et
from .embedding_tables import TableEmbedder


class EarthIndexEmbedder(TableEmbedder):
    """Earth Index embedding rows under the ROI, pooled."""

    name = "earthindex"
    provider = "earthindex"
    product = _et.EARTH_INDEX

    @classmethod
    def _product(cls) -> dict:
        return {
            "summary": "Earth Index v2 embeddings: 384-d SoftCon vectors of 320 m Sentinel-2 mosaic patches.",
            "collection": _et.EARTH_INDEX.collection,
            "source": f"GeoParquet files in ${_et.EARTH_INDEX.urls_env}",
            "embedding_dim": 384, "search_radius_m": _et.EARTH_INDEX.radius_m,
            "paper": "Earth Genome, Earth Index embeddings (SoftCon: Wang et al., arXiv:2405.20462)",
            "licence": "CC-BY-4.0 (data)",
        }


__all__ = ["EarthIndexEmbedder"]
