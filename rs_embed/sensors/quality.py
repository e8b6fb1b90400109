"""Quality and cloud bands: what their values mean and which ones a composite drops.

Sources:

* Sentinel-2 Level-2A scene classification (SCL): ESA *Sentinel-2 MSI Level-2A
  Product Definition* / Sen2Cor Software Release Note, "Scene Classification" values
  0-11 (also the Earth Engine ``COPERNICUS_S2_SR_HARMONIZED`` band table).
* ``QA60``: Earth Engine ``COPERNICUS_S2_HARMONIZED`` band table: bit 10 opaque
  clouds, bit 11 cirrus (empty for products after 2022-01-25, when ESA moved the cloud
  masks to raster ``MSK_CLASSI``; the catalog's note).
* Cloud Score+: Earth Engine ``GOOGLE_CLOUD_SCORE_PLUS_V1_S2_HARMONIZED`` (bands ``cs``
  and ``cs_cdf``, 0 = cloudy, 1 = clear; the catalog suggests a 0.5-0.65 threshold).
* s2cloudless probability: Earth Engine ``COPERNICUS_S2_CLOUD_PROBABILITY``
  (``probability`` 0-100).
* Landsat Collection 2 ``QA_PIXEL``: USGS *Landsat 8-9 C2 L2 Science Product Guide*
  (LSDS-1619), Table "Pixel Quality Assessment Band (QA_PIXEL) bit flags".
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Tuple

#: Sentinel-2 L2A SCL class values -> names
SCL_CLASSES: Dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",          # "casted shadows" from baseline 04.00 on
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
#: SCL classes a composite drops by default: no data, defective, cloud shadow, clouds, cirrus
SCL_INVALID: FrozenSet[int] = frozenset({0, 1, 3, 8, 9, 10})
#: ... and these too when snow would confound the analysis
SCL_INVALID_WITH_SNOW: FrozenSet[int] = SCL_INVALID | {11}

#: Earth Engine QA60 bits (Sentinel-2 L1C/L2A)
QA60_BITS: Dict[str, int] = {"opaque_clouds": 10, "cirrus": 11}

#: Landsat C2 QA_PIXEL bit positions (single-bit flags)
LANDSAT_QA_PIXEL_BITS: Dict[str, int] = {
    "fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4, "snow": 5,
    "clear": 6, "water": 7,
}
#: bits a Landsat composite drops by default
LANDSAT_QA_PIXEL_INVALID: Tuple[str, ...] = ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow")

#: Earth Engine cloud companions of Sentinel-2
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
CLOUD_SCORE_PLUS_BANDS: Tuple[str, ...] = ("cs", "cs_cdf")
S2_CLOUD_PROBABILITY = "COPERNICUS/S2_CLOUD_PROBABILITY"


def scl_valid(scl, invalid=SCL_INVALID):
    """Boolean array: True where an SCL value is not in ``invalid`` (NaN counts as invalid)."""
    import numpy as np

    arr = np.asarray(scl)
    ok = np.isfinite(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, dtype=bool)
    vals = np.where(ok, arr, 0).astype(np.int64)
    return ok & ~np.isin(vals, sorted(invalid))


def qa_bits_clear(qa, bits):
    """Boolean array: True where none of the bit positions ``bits`` is set."""
    import numpy as np

    arr = np.asarray(qa).astype(np.int64)
    mask = 0
    for b in bits:
        mask |= 1 << int(b)
    return (arr & mask) == 0


__all__ = ["SCL_CLASSES", "SCL_INVALID", "SCL_INVALID_WITH_SNOW", "QA60_BITS",
           "LANDSAT_QA_PIXEL_BITS", "LANDSAT_QA_PIXEL_INVALID", "CLOUD_SCORE_PLUS",
           "CLOUD_SCORE_PLUS_BANDS", "S2_CLOUD_PROBABILITY", "scl_valid", "qa_bits_clear"]
