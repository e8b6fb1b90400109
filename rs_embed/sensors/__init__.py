"""The sensor vocabulary: every fact about sensors, products and collections, in one place.

Providers, models, input checks and the notebook layer ask this package instead of
keeping their own copies: band names and their canonical order, centre wavelengths and
native resolution (:mod:`.bands`); products and the collection ids, asset keys and
radiometric conventions of each backend (:mod:`.products`); the Sentinel-2
processing-baseline offset and how each source signals it (:mod:`.radiometry`);
quality and cloud bands (:mod:`.quality`). It depends on nothing else in rs_embed,
so every layer can use it.

Canonical band names are Earth Engine's (``B4``, ``B8A``, ``SR_B4``, ``VV``).
"""

from .bands import (KINDS, LANDSAT_OLI_TIRS, LANDSAT_SR_BANDS, S1_POLARISATIONS, S2_BANDS,
                    S2_L2A_BANDS, SENSORS, SENTINEL1, SENTINEL2, Band, Sensor, band_info,
                    canonical_band, common_name, get_sensor, is_categorical, sensor_for_platform,
                    sort_bands, wavelengths_um)
from .products import (EARTH_SEARCH, EE_CATALOG, GSE_ANNUAL, GSE_ANNUAL_PRODUCT, GSE_PUBLIC_COGS,
                       LANDSAT_C2_L2_PRODUCT, MODALITY_ALIASES, PLANETARY_COMPUTER, PRODUCTS,
                       S1_DB, S1_GRD_L1_PRODUCT, S1_GRD_PRODUCT, S1_LINEAR, S1_RTC_PRODUCT,
                       S2_DN_SCALE, S2_L1C, S2_L1C_PRODUCT, S2_L2A, S2_L2A_PRODUCT,
                       S2_REFLECTANCE_SCALE, STAC_CLOUD_PROPERTY, EECollection, Product,
                       PublicCogs, Radiometry, StacCollection, canonical_modality, ee_collection,
                       expected_range, harmonised_ee_id, product, same_product, stac_collection)
from .quality import (CLOUD_SCORE_PLUS, CLOUD_SCORE_PLUS_BANDS, LANDSAT_QA_PIXEL_BITS,
                      LANDSAT_QA_PIXEL_INVALID, QA60_BITS, S2_CLOUD_PROBABILITY, SCL_CLASSES,
                      SCL_INVALID, SCL_INVALID_WITH_SNOW, qa_bits_clear, scl_valid)
from .radiometry import (ESA_BAND_IDS, NONE_NEEDED, OFFSET_SIGNALS, S2_BASELINE_04_DATE,
                         S2_BASELINE_OFFSET_DN, Harmonisation, baseline_from_name, harmonise,
                         parse_baseline, parse_esa_product_metadata, s2_harmonisation)

__all__ = [
    # bands
    "Band", "Sensor", "SENTINEL2", "LANDSAT_OLI_TIRS", "SENTINEL1", "SENSORS", "KINDS",
    "S2_BANDS", "S2_L2A_BANDS", "LANDSAT_SR_BANDS", "S1_POLARISATIONS", "get_sensor",
    "sensor_for_platform", "band_info", "canonical_band", "is_categorical", "wavelengths_um",
    "common_name", "sort_bands",
    # products and collections
    "Radiometry", "EECollection", "StacCollection", "Product", "PRODUCTS", "S2_L1C_PRODUCT",
    "S2_L2A_PRODUCT", "LANDSAT_C2_L2_PRODUCT", "S1_GRD_PRODUCT", "S1_RTC_PRODUCT",
    "S1_GRD_L1_PRODUCT", "GSE_ANNUAL_PRODUCT", "GSE_PUBLIC_COGS", "PublicCogs", "S2_L1C", "S2_L2A", "S1_DB", "S1_LINEAR",
    "GSE_ANNUAL", "S2_DN_SCALE", "S2_REFLECTANCE_SCALE", "EE_CATALOG", "EARTH_SEARCH",
    "PLANETARY_COMPUTER", "STAC_CLOUD_PROPERTY", "MODALITY_ALIASES", "product", "same_product",
    "ee_collection", "harmonised_ee_id", "stac_collection", "expected_range", "canonical_modality",
    # radiometry
    "S2_BASELINE_04_DATE", "S2_BASELINE_OFFSET_DN", "OFFSET_SIGNALS", "ESA_BAND_IDS",
    "Harmonisation", "NONE_NEEDED", "parse_baseline", "baseline_from_name", "s2_harmonisation",
    "parse_esa_product_metadata", "harmonise",
    # quality
    "SCL_CLASSES", "SCL_INVALID", "SCL_INVALID_WITH_SNOW", "QA60_BITS", "LANDSAT_QA_PIXEL_BITS",
    "LANDSAT_QA_PIXEL_INVALID", "CLOUD_SCORE_PLUS", "CLOUD_SCORE_PLUS_BANDS",
    "S2_CLOUD_PROBABILITY", "scl_valid", "qa_bits_clear",
]
