"""``copernicus``: Copernicus-Embed-025, a 768-d embedding per 0.25 degree cell, precomputed.

Wang et al., "Towards a Unified Copernicus Foundation Model for Earth Vision",
arXiv:2503.11849 (Copernicus-FM; dataset ``Copernicus-Embed-025``). One static map:
each cell's vector aggregates every Copernicus-Pretrain modality (Sentinel-1/2/3/5P,
DEM) the model saw there; read by :mod:`rs_embed.providers.copernicus_embed`.

- Time: one edition (built from the 2021-centred Copernicus-Pretrain archive);
  ``temporal=None`` reads it with a warning, ``TemporalSpec.year(2021)`` silently.
- Grid ``(768, h, w)``: the product's cells under the ROI (EPSG:4326, 0.25 degree);
  NaN where the product has no data (its zero-filled ocean).
- Pooled ``(768,)``: mean (or element-wise max) of the valid cells the ROI touches (a
  small ROI is its one cell); each cell's share of the ROI is in the patch meta
  (``input.cell_weights``) for users who prefer an area-weighted mean.

Licence of the data: CC-BY-4.0 (Copernicus-Pretrain / Copernicus-Embed, TUM).
"""

from __future__ import annotations

from ..providers import copernicus_embed as _cp
from .precomputed import PrecomputedEmbedder


class CopernicusEmbedder(PrecomputedEmbedder):
    """Copernicus-Embed-025 cells, pooled over the ROI."""

    name = "copernicus"
    provider = "copernicus_embed"
    requires = ("rasterio",)
    extra = ""
    bands = _cp.BANDS
    coverage = (2021, 2021)

    @classmethod
    def _product(cls) -> dict:
        return {
            "summary": "Copernicus-Embed-025: one 768-d Copernicus-FM embedding per 0.25 degree cell.",
            "collection": _cp.COLLECTION, "source": _cp.DEFAULT_URL, "scale_m": 27_830,
            "cell_deg": _cp.CELL_DEG,
            "paper": "Wang et al. 2025, Towards a Unified Copernicus Foundation Model (arXiv:2503.11849)",
            "licence": "CC-BY-4.0 (data)",
        }


__all__ = ["CopernicusEmbedder"]
