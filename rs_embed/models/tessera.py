"""``tessera``: TESSERA annual pixel embeddings (128-d, 10 m), precomputed.

Feng et al., "TESSERA: Temporal Embeddings of Surface Spectra for Earth Representation
and Analysis", arXiv:2506.20380. Each 10 m pixel of a year gets one 128-d vector from
a model fed with that year's full Sentinel-1 and Sentinel-2 time series; the vectors are
published as int8 tiles with float32 scales and read here through the official
``geotessera`` client (:mod:`rs_embed.providers.tessera`).

- Time is a calendar year (``TemporalSpec.year(2024)``); a range reads the year it
  starts in, with a warning.
- Grid ``(128, H, W)`` on the ROI's UTM grid (nearest neighbour from the tiles' own
  UTM zones, mosaicked across zones); NaN where the product has no embedding.
- Pooled ``(128,)``: mean (or max) of the valid pixels. TESSERA vectors are not unit
  vectors, so no renormalisation.
- The dataset version (``RS_EMBED_TESSERA_VERSION``, default ``v1``) is the
  provider's, so every patch of one export comes from one version, recorded in each
  point's meta (``input.dataset_version``).

Licence of the data: CC-BY 4.0 (University of Cambridge, TESSERA project).
"""

from __future__ import annotations

import os

from ..providers import tessera as _tp
from .precomputed import PrecomputedEmbedder


class TesseraEmbedder(PrecomputedEmbedder):
    """TESSERA annual embeddings, read through ``geotessera``."""

    name = "tessera"
    provider = "tessera"
    requires = ("geotessera", "geopandas", "pyarrow")
    extra = "models-tessera"
    bands = _tp.BANDS
    coverage = (2017, 2024)

    @classmethod
    def _product(cls) -> dict:
        version = os.environ.get(_tp.VERSION_ENV) or _tp.DEFAULT_VERSION
        return {
            "summary": ("TESSERA: a 128-d embedding per 10 m pixel per year from full-year "
                        "Sentinel-1/2 time series, read through geotessera."),
            "collection": _tp.collection(version), "source": "geotessera (TESSERA tiles)",
            "scale_m": _tp.NATIVE_SCALE_M, "dataset_version": version,
            "paper": "Feng et al. 2025, TESSERA (arXiv:2506.20380)",
            "licence": "CC-BY-4.0 (data, University of Cambridge TESSERA project)",
        }


__all__ = ["TesseraEmbedder"]
