"""What rs_embed knows about the Earth Engine collections it reads.

Only facts that change the request live here: which scene property holds cloud
cover (a cloud filter on a collection without it would silently drop every
scene), which collections are Sentinel-1 (IW / orbit / polarisation filters,
linear vs dB), which Sentinel-2 collections Cloud Score+ can mask, and which
products are annual. Any other collection id is read as a plain image collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ...errors import SpecError
from ...specs import SensorSpec

CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
S1_DB = "COPERNICUS/S1_GRD"
S1_LINEAR = "COPERNICUS/S1_GRD_FLOAT"
S1_POLARISATIONS = ("VV", "VH", "HH", "HV")


@dataclass(frozen=True)
class CollectionInfo:
    """Request-relevant facts about one Earth Engine collection."""

    id: str
    family: str  # "s2", "landsat", "s1", "annual", "generic"
    cloud_property: Optional[str] = None
    cloud_score_plus: bool = False  # Cloud Score+ scenes share this collection's system:index
    annual: bool = False  # one image per calendar year; a window selects its start year
    #: every band the collection has (None: not known here, the server decides); lets a
    #: request with a misspelt band be refused before anything is sent
    bands: Optional[Tuple[str, ...]] = field(default=None, compare=False)


# Band lists of the Earth Engine data catalog pages (developers.google.com/earth-engine/
# datasets/catalog/<id with _ for />): Sentinel-2 L1C has B10 (cirrus), L2A has not but
# adds the Sen2Cor layers; Sentinel-1 GRD scenes carry the polarisations and 'angle'.
_S2_SPECTRAL = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
_S2_QA = ("QA10", "QA20", "QA60", "MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS", "MSK_CLASSI_SNOW_ICE")
S2_L1C_BANDS = _S2_SPECTRAL[:10] + ("B10",) + _S2_SPECTRAL[10:] + _S2_QA
S2_L2A_BANDS = _S2_SPECTRAL + ("AOT", "WVP", "SCL", "TCI_R", "TCI_G", "TCI_B", "MSK_CLDPRB",
                               "MSK_SNWPRB") + _S2_QA
S1_BANDS = ("VV", "VH", "HH", "HV", "angle")
GSE_BANDS = tuple(f"A{i:02d}" for i in range(64))

_KNOWN = {
    info.id: info
    for info in (
        CollectionInfo("COPERNICUS/S2_HARMONIZED", "s2", "CLOUDY_PIXEL_PERCENTAGE", True, bands=S2_L1C_BANDS),
        CollectionInfo("COPERNICUS/S2_SR_HARMONIZED", "s2", "CLOUDY_PIXEL_PERCENTAGE", True,
                       bands=S2_L2A_BANDS),
        CollectionInfo("COPERNICUS/S2", "s2", "CLOUDY_PIXEL_PERCENTAGE", True, bands=S2_L1C_BANDS),
        CollectionInfo("COPERNICUS/S2_SR", "s2", "CLOUDY_PIXEL_PERCENTAGE", True, bands=S2_L2A_BANDS),
        CollectionInfo("LANDSAT/LC08/C02/T1_L2", "landsat", "CLOUD_COVER"),
        CollectionInfo("LANDSAT/LC09/C02/T1_L2", "landsat", "CLOUD_COVER"),
        CollectionInfo("LANDSAT/LC08/C02/T2_L2", "landsat", "CLOUD_COVER"),
        CollectionInfo("LANDSAT/LC09/C02/T2_L2", "landsat", "CLOUD_COVER"),
        CollectionInfo(S1_DB, "s1", bands=S1_BANDS),
        CollectionInfo(S1_LINEAR, "s1", bands=S1_BANDS),
        CollectionInfo("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL", "annual", annual=True, bands=GSE_BANDS),
    )
}


def collection_info(collection_id: str) -> CollectionInfo:
    """Facts about ``collection_id`` (a plain collection when rs_embed does not know it)."""
    return _KNOWN.get(collection_id) or CollectionInfo(collection_id, "generic")


def s1_collection(sensor: SensorSpec) -> str:
    """The Sentinel-1 collection that serves the asked-for scale (linear or dB)."""
    return S1_LINEAR if sensor.use_float_linear else S1_DB


def s1_orbit(sensor: SensorSpec) -> Optional[str]:
    """``ASCENDING``/``DESCENDING``/None from ``SensorSpec.orbit`` (any case)."""
    if sensor.orbit is None:
        return None
    value = str(sensor.orbit).strip().upper()
    aliases = {"ASC": "ASCENDING", "DESC": "DESCENDING", "A": "ASCENDING", "D": "DESCENDING"}
    value = aliases.get(value, value)
    if value not in ("ASCENDING", "DESCENDING"):
        raise SpecError(
            f"SensorSpec.orbit must be 'ASCENDING', 'DESCENDING' or None for Sentinel-1, got {sensor.orbit!r}")
    return value


def s1_polarisations(bands: Tuple[str, ...]) -> Tuple[str, ...]:
    return tuple(b for b in bands if b in S1_POLARISATIONS)


__all__ = ["CollectionInfo", "collection_info", "s1_collection", "s1_orbit", "s1_polarisations",
           "CLOUD_SCORE_PLUS", "S1_DB", "S1_LINEAR"]
