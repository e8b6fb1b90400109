"""Bands of the sensors rs_embed reads: names, canonical order, wavelengths, resolution.

Canonical band names are Earth Engine's (``B4``, ``B8A``, ``SR_B4``, ``VV``), because
that is how most users and published model cards spell them. Every other spelling a
source uses (ESA's ``B04``, STAC common names ``red``/``nir08``, Earth Search asset keys
``rededge1``, Planetary Computer asset keys ``B04``, lower-case ``scl``) is an alias
that :func:`canonical_band` maps to the canonical name.

Sources of the facts:

* Sentinel-2 MSI: ESA, *Sentinel-2 User Handbook* (ESA Standard Document, 2015),
  Table 1 "Spectral bands for the Sentinel-2 sensors": central wavelength, bandwidth
  and spatial resolution of the 13 bands (nominal values, shared by S2A/S2B/S2C).
  STAC common names: STAC ``eo`` extension v1.1 "Common Band Names"
  (github.com/stac-extensions/eo). Earth Search asset keys: Earth Search v1
  ``sentinel-2-l2a`` items, e.g. ``S2A_39QTA_20230628_0_L2A``
  (earth-search.aws.element84.com/v1); Planetary Computer asset keys: its
  ``sentinel-2-l2a`` items (``B01`` ... ``B12``, ``B8A``, ``SCL``).
* Landsat 8/9 OLI/TIRS Collection 2 Level-2: USGS *Landsat 8-9 OLI/TIRS Collection 2
  Level 2 Science Product Guide* (LSDS-1619) and USGS "What are the band designations
  for the Landsat satellites?" (band ranges; centre = middle of the range). Earth
  Engine names: catalog page ``LANDSAT_LC08_C02_T1_L2``.
* Sentinel-1 C-SAR: ESA *Sentinel-1 User Handbook* (C band, 5.405 GHz); Earth Engine
  ``COPERNICUS_S1_GRD`` (VV/VH/HH/HV, 10 m pixel spacing for IW GRD).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

#: reflectance-like bands a model can read; the rest are classes, flags or angles
KINDS = ("reflectance", "thermal", "backscatter", "classification", "bitmask",
         "probability", "angle", "atmosphere")
_CATEGORICAL_KINDS = frozenset({"classification", "bitmask"})


@dataclass(frozen=True)
class Band:
    """One band of one sensor, as data."""

    name: str                                # canonical (Earth Engine) name
    sensor: str                              # :attr:`Sensor.id`
    kind: str                                # one of :data:`KINDS`
    resolution_m: float                      # native ground sample distance
    wavelength_um: Optional[float] = None    # nominal centre
    bandwidth_um: Optional[float] = None
    common_name: Optional[str] = None        # STAC eo common name
    description: str = ""
    aliases: Tuple[str, ...] = ()            # other spellings found in the wild

    @property
    def categorical(self) -> bool:
        """Classes or bit flags: resampled with nearest neighbour, never interpolated."""
        return self.kind in _CATEGORICAL_KINDS

    @property
    def wavelength_nm(self) -> Optional[float]:
        return None if self.wavelength_um is None else round(self.wavelength_um * 1000.0, 3)

    def to_dict(self) -> dict:
        return {"name": self.name, "sensor": self.sensor, "kind": self.kind,
                "resolution_m": self.resolution_m, "wavelength_um": self.wavelength_um,
                "bandwidth_um": self.bandwidth_um, "common_name": self.common_name,
                "description": self.description, "aliases": list(self.aliases)}


@dataclass(frozen=True)
class Sensor:
    """An instrument and its bands, in canonical order (spectral bands first)."""

    id: str
    title: str
    platforms: Tuple[str, ...]
    bands: Tuple[Band, ...]
    source: str
    _index: Dict[str, Band] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        idx: Dict[str, Band] = {}
        commons = [b.common_name for b in self.bands if b.common_name]
        for b in self.bands:
            # a common name shared by several bands (Sentinel-2's three "rededge") names none
            unique = (b.common_name,) if b.common_name and commons.count(b.common_name) == 1 else ()
            for key in (b.name, *b.aliases, *unique):
                idx.setdefault(key.upper(), b)
        object.__setattr__(self, "_index", idx)

    @property
    def band_names(self) -> Tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def spectral_bands(self) -> Tuple[str, ...]:
        """Bands that carry a physical measurement (not flags, classes or angles)."""
        return tuple(b.name for b in self.bands if b.kind in ("reflectance", "thermal", "backscatter"))

    def lookup(self, name: str) -> Optional[Band]:
        """The band ``name`` spells in this sensor (any known alias, any case), or None."""
        key = str(name).strip().upper()
        hit = self._index.get(key)
        if hit is None:
            m = _BAND_NUMBER.match(key)
            if m:  # ESA zero-padded spelling: B04 -> B4
                hit = self._index.get(f"B{int(m.group(1))}{m.group(2).upper()}")
        return hit

    def band(self, name: str) -> Band:
        hit = self.lookup(name)
        if hit is None:
            raise KeyError(f"{self.title} has no band {name!r}; its bands: {list(self.band_names)}")
        return hit


_BAND_NUMBER = re.compile(r"^B0*(\d{1,2})(A?)$", re.IGNORECASE)


def _s2(name, res, wl_nm, bw_nm, common, desc, *aliases) -> Band:
    return Band(name, "sentinel-2", "reflectance", res, wl_nm / 1000.0, bw_nm / 1000.0, common,
                desc, tuple(aliases))


#: Sentinel-2 MSI. Aliases: ESA/Planetary Computer ``B0x`` spellings are handled by the
#: zero-padding rule; the Earth Search asset keys are listed (``rededge1`` .. ``rededge3``
#: are Earth Search's; STAC's common name for B5-B7 is the shared ``rededge``).
SENTINEL2 = Sensor(
    id="sentinel-2", title="Sentinel-2 MSI",
    platforms=("sentinel-2a", "sentinel-2b", "sentinel-2c"),
    source=("ESA Sentinel-2 User Handbook, Table 1 (nominal central wavelength, bandwidth, "
            "resolution); STAC eo extension common names; Earth Search v1 / Planetary "
            "Computer sentinel-2 item asset keys"),
    bands=(
        _s2("B1", 60, 443, 20, "coastal", "Coastal aerosol"),
        _s2("B2", 10, 490, 65, "blue", "Blue"),
        _s2("B3", 10, 560, 35, "green", "Green"),
        _s2("B4", 10, 665, 30, "red", "Red"),
        _s2("B5", 20, 705, 15, "rededge", "Vegetation red edge 1", "rededge1"),
        _s2("B6", 20, 740, 15, "rededge", "Vegetation red edge 2", "rededge2"),
        _s2("B7", 20, 783, 20, "rededge", "Vegetation red edge 3", "rededge3"),
        _s2("B8", 10, 842, 115, "nir", "NIR"),
        _s2("B8A", 20, 865, 20, "nir08", "Narrow NIR (vegetation red edge 4)"),
        _s2("B9", 60, 945, 20, "nir09", "Water vapour"),
        _s2("B10", 60, 1375, 30, "cirrus", "SWIR cirrus (Level-1C only)"),
        _s2("B11", 20, 1610, 90, "swir16", "SWIR 1"),
        _s2("B12", 20, 2190, 180, "swir22", "SWIR 2"),
        Band("SCL", "sentinel-2", "classification", 20, description=(
            "Level-2A scene classification (Sen2Cor); classes in rs_embed.sensors.SCL_CLASSES")),
        Band("QA60", "sentinel-2", "bitmask", 60, description=(
            "Earth Engine cloud bitmask: bit 10 opaque clouds, bit 11 cirrus")),
        Band("MSK_CLDPRB", "sentinel-2", "probability", 20, description=(
            "Level-2A cloud probability, 0-100 %"), aliases=("CLD",)),
        Band("MSK_SNWPRB", "sentinel-2", "probability", 20, description=(
            "Level-2A snow probability, 0-100 %"), aliases=("SNW",)),
        Band("AOT", "sentinel-2", "atmosphere", 20, description="Aerosol optical thickness x 1000"),
        Band("WVP", "sentinel-2", "atmosphere", 20, description="Water vapour (cm) x 1000"),
    ),
)


def _ls(name, wl_lo, wl_hi, common, desc, key, kind="reflectance", res=30) -> Band:
    # USGS STAC items name these "B4" etc. in eo:bands; unambiguous once the sensor is known
    return Band(name, "landsat-oli-tirs", kind, res, round((wl_lo + wl_hi) / 2.0, 4),
                round(wl_hi - wl_lo, 4), common, desc, (key, name.split("_")[-1]))


#: Landsat 8/9 OLI/TIRS, Collection 2 Level-2 (surface reflectance + surface temperature).
#: Aliases are the STAC asset keys of Earth Search and Planetary Computer ``landsat-c2-l2``.
LANDSAT_OLI_TIRS = Sensor(
    id="landsat-oli-tirs", title="Landsat 8/9 OLI/TIRS (Collection 2 Level-2)",
    platforms=("landsat-8", "landsat-9"),
    source=("USGS Landsat 8-9 OLI/TIRS C2 L2 Science Product Guide (LSDS-1619); USGS Landsat "
            "band designations; Earth Engine LANDSAT/LC08/C02/T1_L2 band names; Earth Search / "
            "Planetary Computer landsat-c2-l2 asset keys"),
    bands=(
        _ls("SR_B1", 0.43, 0.45, "coastal", "Coastal/aerosol", "coastal"),
        _ls("SR_B2", 0.45, 0.51, "blue", "Blue", "blue"),
        _ls("SR_B3", 0.53, 0.59, "green", "Green", "green"),
        _ls("SR_B4", 0.64, 0.67, "red", "Red", "red"),
        _ls("SR_B5", 0.85, 0.88, "nir08", "Near infrared", "nir08"),
        _ls("SR_B6", 1.57, 1.65, "swir16", "Shortwave infrared 1", "swir16"),
        _ls("SR_B7", 2.11, 2.29, "swir22", "Shortwave infrared 2", "swir22"),
        # TIRS is acquired at 100 m and delivered resampled to 30 m
        _ls("ST_B10", 10.60, 11.19, "lwir11", "Surface temperature (TIRS 1)", "lwir11", "thermal"),
        Band("QA_PIXEL", "landsat-oli-tirs", "bitmask", 30, description=(
            "CFMask pixel quality bits; see rs_embed.sensors.LANDSAT_QA_PIXEL_BITS"),
            aliases=("qa_pixel",)),
        Band("QA_RADSAT", "landsat-oli-tirs", "bitmask", 30, description=(
            "Radiometric saturation and terrain occlusion"), aliases=("qa_radsat",)),
        Band("SR_QA_AEROSOL", "landsat-oli-tirs", "bitmask", 30, description="Aerosol level",
             aliases=("qa_aerosol",)),
    ),
)


#: Sentinel-1 C-SAR (C band, centre frequency 5.405 GHz), GRD / RTC products.
SENTINEL1 = Sensor(
    id="sentinel-1", title="Sentinel-1 C-SAR",
    platforms=("sentinel-1a", "sentinel-1b", "sentinel-1c"),
    source=("ESA Sentinel-1 User Handbook; Earth Engine COPERNICUS/S1_GRD band list; "
            "Planetary Computer sentinel-1-rtc / Earth Search sentinel-1-grd asset keys"),
    bands=(
        Band("VV", "sentinel-1", "backscatter", 10, None, None, None,
             "Co-polarised vertical transmit/receive", ("vv",)),
        Band("VH", "sentinel-1", "backscatter", 10, None, None, None,
             "Cross-polarised vertical transmit / horizontal receive", ("vh",)),
        Band("HH", "sentinel-1", "backscatter", 10, None, None, None,
             "Co-polarised horizontal transmit/receive", ("hh",)),
        Band("HV", "sentinel-1", "backscatter", 10, None, None, None,
             "Cross-polarised horizontal transmit / vertical receive", ("hv",)),
        Band("angle", "sentinel-1", "angle", 10, description="Incidence angle from the ellipsoid (degrees)"),
    ),
)

SENSORS: Tuple[Sensor, ...] = (SENTINEL2, LANDSAT_OLI_TIRS, SENTINEL1)
_BY_ID = {s.id: s for s in SENSORS}
_PLATFORM_ALIASES = {
    "sentinel-2": "sentinel-2", "sentinel2": "sentinel-2", "s2": "sentinel-2",
    "landsat-8": "landsat-oli-tirs", "landsat-9": "landsat-oli-tirs", "landsat8": "landsat-oli-tirs",
    "landsat9": "landsat-oli-tirs", "landsat": "landsat-oli-tirs", "lc08": "landsat-oli-tirs",
    "lc09": "landsat-oli-tirs", "landsat_8": "landsat-oli-tirs", "landsat_9": "landsat-oli-tirs",
    "sentinel-1": "sentinel-1", "sentinel1": "sentinel-1", "s1": "sentinel-1",
}

#: the 13 Sentinel-2 Level-1C bands in canonical (Earth Engine) order
S2_BANDS: Tuple[str, ...] = SENTINEL2.spectral_bands()
#: Level-2A has no cirrus band (B10)
S2_L2A_BANDS: Tuple[str, ...] = tuple(b for b in S2_BANDS if b != "B10")
#: Landsat 8/9 Collection 2 Level-2 reflective bands, canonical order
LANDSAT_SR_BANDS: Tuple[str, ...] = tuple(b.name for b in LANDSAT_OLI_TIRS.bands if b.kind == "reflectance")
#: Sentinel-1 polarisations
S1_POLARISATIONS: Tuple[str, ...] = ("VV", "VH", "HH", "HV")


def get_sensor(name: str) -> Sensor:
    """A sensor by id, platform name (``sentinel-2b``, ``landsat-9``) or short alias (``s2``)."""
    key = str(name).strip().lower().replace(" ", "-")
    if key in _BY_ID:
        return _BY_ID[key]
    for s in SENSORS:
        if key in s.platforms:
            return s
    if key in _PLATFORM_ALIASES:
        return _BY_ID[_PLATFORM_ALIASES[key]]
    raise KeyError(f"unknown sensor {name!r}; known: {sorted(_BY_ID)} (or a platform such as 'sentinel-2a')")


def sensor_for_platform(platform: Optional[str]) -> Optional[Sensor]:
    """The sensor flying on ``platform`` (as STAC ``platform``/``constellation`` spell it)."""
    if not platform:
        return None
    try:
        return get_sensor(platform)
    except KeyError:
        text = str(platform).lower()
        for key, sid in _PLATFORM_ALIASES.items():
            if len(key) > 2 and key in text:
                return _BY_ID[sid]
        return None


def _as_sensor(sensor) -> Optional[Sensor]:
    if sensor is None or isinstance(sensor, Sensor):
        return sensor
    return get_sensor(sensor)


def band_info(name: str, sensor=None) -> Optional[Band]:
    """The :class:`Band` ``name`` spells (in ``sensor`` if given, else Sentinel-2 first)."""
    s = _as_sensor(sensor)
    if s is not None:
        return s.lookup(name)
    for cand in SENSORS:
        hit = cand.lookup(name)
        if hit is not None:
            return hit
    return None


def canonical_band(name: str, sensor=None) -> str:
    """The canonical spelling of a band name.

    ``B04`` -> ``B4``, ``b8a`` -> ``B8A``, ``scl`` -> ``SCL``. With ``sensor`` (a
    :class:`Sensor`, id or platform) also the STAC common names and asset keys of that
    sensor: ``red`` -> ``B4`` for Sentinel-2, ``red`` -> ``SR_B4`` for Landsat. Without
    it, common names are left alone (``red`` is ambiguous across sensors). Names the
    vocabulary does not know come back stripped but otherwise unchanged.
    """
    text = str(name).strip()
    s = _as_sensor(sensor)
    if s is not None:
        hit = s.lookup(text)
        return hit.name if hit is not None else _fallback(text)
    for cand in SENSORS:  # Sentinel-2 first: a bare "B4" is Sentinel-2's
        hit = cand.lookup(text)
        if hit is None or (_is_common(text) and text.upper() != hit.name.upper()):
            continue  # "red" is red in every sensor: it needs the sensor to mean a band
        return hit.name
    return _fallback(text)


#: STAC eo extension common band names
_COMMON = frozenset({"coastal", "blue", "green", "red", "yellow", "pan", "rededge", "nir",
                     "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"})


def _is_common(alias: str) -> bool:
    return alias.lower() in _COMMON


def _fallback(text: str) -> str:
    m = _BAND_NUMBER.match(text)
    if m:
        return f"B{int(m.group(1))}{m.group(2).upper()}"
    return text


def is_categorical(name: str, sensor=None) -> bool:
    """Whether a band holds classes or bit flags (SCL, QA60, QA_PIXEL, ...)."""
    b = band_info(name, sensor)
    if b is not None:
        return b.categorical
    upper = str(name).strip().upper()
    return upper.startswith("QA") or upper in ("FMASK", "MASK", "CLOUD_MASK", "CLASSIFICATION")


def wavelengths_um(bands: Sequence[str], sensor=None) -> Tuple[Optional[float], ...]:
    """Nominal centre wavelength (µm) of each band (None where it has none)."""
    out = []
    for b in bands:
        info = band_info(b, sensor)
        out.append(info.wavelength_um if info is not None else None)
    return tuple(out)


def common_name(name: str, sensor=None) -> Optional[str]:
    """The STAC common name of a band (``B4`` -> ``red``, ``SR_B5`` -> ``nir08``)."""
    b = band_info(name, sensor)
    if b is None:
        low = str(name).strip().lower()
        return low if low in _COMMON else None
    return b.common_name


def sort_bands(names: Iterable[str], sensor=None) -> list:
    """Band names in canonical sensor order (unknown names last, alphabetically)."""
    s = _as_sensor(sensor)

    def key(n):
        info = band_info(n, s)
        if info is not None:
            sen = _BY_ID[info.sensor]
            return (SENSORS.index(sen), sen.bands.index(info), n)
        return (len(SENSORS), 0, n)

    return sorted(names, key=key)


__all__ = ["Band", "Sensor", "SENTINEL2", "LANDSAT_OLI_TIRS", "SENTINEL1", "SENSORS", "KINDS",
           "S2_BANDS", "S2_L2A_BANDS", "LANDSAT_SR_BANDS", "S1_POLARISATIONS",
           "get_sensor", "sensor_for_platform", "band_info", "canonical_band", "is_categorical",
           "wavelengths_um", "common_name", "sort_bands"]
