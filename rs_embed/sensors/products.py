"""Products and the collections that serve them, per backend.

A *product* is one processing level of one sensor (Sentinel-2 Level-2A, Landsat
Collection 2 Level-2, ...). Several backends serve it under their own collection ids,
band (asset) names and radiometric conventions; this module says which, so that a
request for ``COPERNICUS/S2_SR_HARMONIZED`` can be served from a local STAC item of
``sentinel-2-l2a`` and both give the same numbers.

The values every provider returns for a product follow one convention, the
product's :attr:`Product.radiometry` (for Sentinel-2: the convention of Earth Engine's
``*_HARMONIZED`` collections, digital numbers = reflectance x 10000 with no processing
baseline offset).

Sources:

* Earth Engine catalog pages (developers.google.com/earth-engine/datasets/catalog/...):
  ``COPERNICUS_S2_HARMONIZED``, ``COPERNICUS_S2_SR_HARMONIZED`` ("shifts data with
  PROCESSING_BASELINE '04.00' or above (after 2022-01-25) to be in the same range as in
  older scenes"), ``COPERNICUS_S2`` / ``COPERNICUS_S2_SR`` (superseded by the
  harmonised ones), ``LANDSAT_LC08_C02_T1_L2`` / ``LANDSAT_LC09_C02_T1_L2``,
  ``COPERNICUS_S1_GRD`` (sigma0 in dB; ``COPERNICUS/S1_GRD_FLOAT`` linear),
  ``GOOGLE_SATELLITE_EMBEDDING_V1_ANNUAL``.
* Earth Search v1 (earth-search.aws.element84.com/v1): collections ``sentinel-2-l2a``,
  ``sentinel-2-c1-l2a``, ``sentinel-2-l1c``, ``landsat-c2-l2``, ``sentinel-1-grd``;
  asset keys and ``raster:bands`` as in item ``S2A_39QTA_20230628_0_L2A``; on the legacy
  ``sentinel-2-l2a`` collection the item property ``earthsearch:boa_offset_applied`` is
  the truth about the offset and ``raster:bands`` ``offset: -0.1`` is set on every item
  whether applied or not (Element 84, github.com/Element84/earth-search/issues/9).
* Planetary Computer (planetarycomputer.microsoft.com/api/stac/v1): ``sentinel-2-l2a``
  (assets ``B01`` .. ``B12``, ``B8A``, ``SCL``; ``s2:processing_baseline`` on every
  item; data stored with the ESA offset, see its "Baseline Change" example),
  ``landsat-c2-l2``, ``sentinel-1-rtc`` (gamma0, linear), ``sentinel-1-grd``.
* USGS Landsat 8-9 C2 L2 Science Product Guide: surface reflectance
  ``DN x 2.75e-05 - 0.2``, surface temperature ``DN x 0.00341802 + 149.0`` K, fill 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from .bands import LANDSAT_OLI_TIRS, SENTINEL1, SENTINEL2, S2_BANDS, S2_L2A_BANDS, Sensor

EE_CATALOG = "https://developers.google.com/earth-engine/datasets/catalog/"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
#: how STAC APIs name the cloud cover of an item (STAC eo extension)
STAC_CLOUD_PROPERTY = "eo:cloud_cover"


@dataclass(frozen=True)
class Radiometry:
    """What a band's numbers mean: ``physical = value * scale + offset`` in ``units``."""

    quantity: str
    scale: float = 1.0
    offset: float = 0.0
    units: str = ""
    nodata: Optional[float] = None
    valid_range: Optional[Tuple[float, float]] = None   # for input checks
    source: str = ""

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "scale": self.scale, "offset": self.offset,
                "units": self.units, "nodata": self.nodata,
                "valid_range": list(self.valid_range) if self.valid_range else None,
                "source": self.source}


S2_DN_SCALE = 10000.0
#: reflectance = DN x this, for every Sentinel-2 band rs_embed returns
S2_REFLECTANCE_SCALE = 1e-4

_S2_TOA = Radiometry("top-of-atmosphere reflectance", S2_REFLECTANCE_SCALE, 0.0, "1", 0.0,
                     (0.0, 20000.0), "Earth Engine COPERNICUS/S2_HARMONIZED (DN = reflectance x 10000, "
                     "saturation headroom above 10000)")
_S2_BOA = Radiometry("surface reflectance", S2_REFLECTANCE_SCALE, 0.0, "1", 0.0, (0.0, 20000.0),
                     "Earth Engine COPERNICUS/S2_SR_HARMONIZED (DN = reflectance x 10000)")
_LANDSAT_SR = Radiometry("surface reflectance", 2.75e-05, -0.2, "1", 0.0, (0.0, 65535.0),
                         "USGS Landsat 8-9 C2 L2 Science Product Guide (LSDS-1619): SR scale 2.75e-05, "
                         "offset -0.2, fill 0")
_LANDSAT_ST = Radiometry("surface temperature", 0.00341802, 149.0, "K", 0.0, (0.0, 65535.0),
                         "USGS Landsat 8-9 C2 L2 Science Product Guide (LSDS-1619): ST scale "
                         "0.00341802, offset 149.0 K, fill 0")
_S1_DB = Radiometry("sigma0 backscatter", 1.0, 0.0, "dB", None, (-60.0, 40.0),
                    "Earth Engine COPERNICUS/S1_GRD: log-scaled sigma0 (10*log10)")
_S1_LINEAR = Radiometry("sigma0 backscatter", 1.0, 0.0, "linear power", None, (-60.0, 40.0),
                        "Earth Engine COPERNICUS/S1_GRD_FLOAT: sigma0, linear")
_S1_RTC = Radiometry("gamma0 backscatter (terrain corrected)", 1.0, 0.0, "linear power", -32768.0,
                     (0.0, 40.0), "Planetary Computer sentinel-1-rtc: gamma0 RTC, linear power, float32")
_S1_GRD_DN = Radiometry("uncalibrated GRD amplitude", 1.0, 0.0, "DN", 0.0, None,
                        "ESA Level-1 GRD digital numbers (calibration LUT needed for sigma0)")
_GSE = Radiometry("embedding component", 1.0, 0.0, "1", None, (-1.0, 1.0),
                  "Earth Engine GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL (unit-length 64-d vectors)")


@dataclass(frozen=True)
class EECollection:
    """An Earth Engine image collection: the facts that change the request."""

    id: str
    product: str                              # :attr:`Product.key` ("" for plain collections)
    family: str                               # "s2", "landsat", "s1", "annual", "generic"
    cloud_property: Optional[str] = None      # scene property holding cloud cover (%)
    cloud_score_plus: bool = False            # Cloud Score+ scenes share its system:index
    annual: bool = False                      # one image per calendar year
    harmonised: bool = True                   # values follow the product's convention
    harmonised_id: Optional[str] = None       # the harmonised twin of a non-harmonised id
    linear: Optional[bool] = None             # Sentinel-1: linear power (True) or dB (False)
    deprecated: bool = False
    source: str = ""

    @property
    def url(self) -> str:
        return EE_CATALOG + self.id.replace("/", "_")


@dataclass(frozen=True)
class StacCollection:
    """A STAC API collection serving a product: asset keys and offset convention."""

    api: str                                  # "earth-search" | "planetary-computer"
    url: str                                  # the API root
    id: str
    product: str
    assets: Mapping[str, str]                 # canonical band -> asset key
    offset_signal: str = "none"               # see rs_embed.sensors.radiometry.OFFSET_SIGNALS
    signing: Optional[str] = None             # "planetary-computer": hrefs need a SAS token
    requester_pays: bool = False              # assets need a paying AWS account
    radiometry_note: str = ""
    source: str = ""

    def band_for_asset(self, key: str) -> Optional[str]:
        for band, asset in self.assets.items():
            if asset == key:
                return band
        return None


@dataclass(frozen=True)
class Product:
    """One processing level of one sensor, and every collection that serves it."""

    key: str
    title: str
    sensor: Sensor
    bands: Tuple[str, ...]                    # spectral bands, canonical order
    quality_bands: Tuple[str, ...]
    radiometry: Mapping[str, Radiometry]      # by band kind (and "*" as default)
    modality: str                             # the ``modality=`` name models use
    ee: Tuple[EECollection, ...] = ()
    stac: Tuple[StacCollection, ...] = ()
    s2_baseline_offset: bool = False          # subject to the 2022-01-25 baseline offset
    aliases: Tuple[str, ...] = ()
    #: ESA's 8-bit true-colour image (TCI): DN mapped to 255 (ESA "Sentinel-2 MSI
    #: definitions": 3558 for L1C, 2000 for L2A, i.e. 0.3558 and 0.2 reflectance)
    tci_saturation_dn: Optional[float] = None

    @property
    def ee_id(self) -> Optional[str]:
        """The Earth Engine collection rs_embed reads by default (harmonised)."""
        for c in self.ee:
            if c.harmonised and not c.deprecated:
                return c.id
        return self.ee[0].id if self.ee else None

    def radiometry_of(self, band: str) -> Radiometry:
        info = self.sensor.lookup(band)
        kind = info.kind if info is not None else "*"
        return self.radiometry.get(kind) or self.radiometry["*"]

    def stac_collection(self, api: str) -> Optional[StacCollection]:
        for c in self.stac:
            if c.api == api:
                return c
        return None

    def ids(self) -> Tuple[str, ...]:
        """Every collection id and alias this product answers to."""
        return (self.key, *(c.id for c in self.ee), *(c.id for c in self.stac), *self.aliases)

    def to_dict(self) -> dict:
        return {"key": self.key, "title": self.title, "sensor": self.sensor.id,
                "bands": list(self.bands), "quality_bands": list(self.quality_bands),
                "modality": self.modality, "ee": [c.id for c in self.ee],
                "stac": {c.api: c.id for c in self.stac},
                "radiometry": {k: r.to_dict() for k, r in self.radiometry.items()}}


def _assets(names: Mapping[str, str]) -> Dict[str, str]:
    return dict(names)


#: Earth Search names Sentinel-2 assets by STAC common names (B5-B7 as rededge1..3)
_ES_S2 = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
          "B6": "rededge2", "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B9": "nir09",
          "B11": "swir16", "B12": "swir22"}
_ES_S2_L2A = {**_ES_S2, "SCL": "scl", "AOT": "aot", "WVP": "wvp"}
_ES_S2_L1C = {**_ES_S2, "B10": "cirrus"}
#: Planetary Computer names them as ESA does
_PC_S2_L2A = {**{b: (f"B{int(b[1:]):02d}" if b[1:].isdigit() else b) for b in S2_L2A_BANDS},
              "SCL": "SCL", "AOT": "AOT", "WVP": "WVP"}
_LANDSAT_ASSETS = {"SR_B1": "coastal", "SR_B2": "blue", "SR_B3": "green", "SR_B4": "red",
                   "SR_B5": "nir08", "SR_B6": "swir16", "SR_B7": "swir22", "ST_B10": "lwir11",
                   "QA_PIXEL": "qa_pixel", "QA_RADSAT": "qa_radsat", "SR_QA_AEROSOL": "qa_aerosol"}
_S1_ASSETS = {"VV": "vv", "VH": "vh", "HH": "hh", "HV": "hv"}

_S2_CLOUD = "CLOUDY_PIXEL_PERCENTAGE"
_LS_CLOUD = "CLOUD_COVER"

S2_L1C_PRODUCT = Product(
    key="s2_l1c", title="Sentinel-2 MSI Level-1C (top-of-atmosphere reflectance)",
    sensor=SENTINEL2, bands=S2_BANDS, quality_bands=("QA60",),
    radiometry={"*": _S2_TOA}, modality="s2", s2_baseline_offset=True,
    aliases=("sentinel-2-l1c", "s2-l1c", "sentinel2-l1c"), tci_saturation_dn=3558.0,
    ee=(EECollection("COPERNICUS/S2_HARMONIZED", "s2_l1c", "s2", _S2_CLOUD, True),
        EECollection("COPERNICUS/S2", "s2_l1c", "s2", _S2_CLOUD, True, harmonised=False,
                     harmonised_id="COPERNICUS/S2_HARMONIZED", deprecated=True)),
    stac=(StacCollection("earth-search", EARTH_SEARCH, "sentinel-2-l1c", "s2_l1c",
                         _assets(_ES_S2_L1C), offset_signal="processing_baseline",
                         requester_pays=True,
                         radiometry_note=("ESA JPEG 2000 originals (s3://sentinel-s2-l1c, requester "
                                          "pays); offset per s2:processing_baseline"),
                         source="Earth Search v1 sentinel-2-l1c items"),),
)

S2_L2A_PRODUCT = Product(
    key="s2_l2a", title="Sentinel-2 MSI Level-2A (surface reflectance)",
    sensor=SENTINEL2, bands=S2_L2A_BANDS, quality_bands=("SCL", "QA60", "MSK_CLDPRB"),
    radiometry={"*": _S2_BOA}, modality="s2_l2a", s2_baseline_offset=True,
    aliases=("s2-l2a", "sentinel2-l2a", "sentinel-2-l2a-cogs"), tci_saturation_dn=2000.0,
    ee=(EECollection("COPERNICUS/S2_SR_HARMONIZED", "s2_l2a", "s2", _S2_CLOUD, True),
        EECollection("COPERNICUS/S2_SR", "s2_l2a", "s2", _S2_CLOUD, True, harmonised=False,
                     harmonised_id="COPERNICUS/S2_SR_HARMONIZED", deprecated=True)),
    stac=(StacCollection("earth-search", EARTH_SEARCH, "sentinel-2-l2a", "s2_l2a",
                         _assets(_ES_S2_L2A), offset_signal="earthsearch:boa_offset_applied",
                         radiometry_note=("Collection 0 COGs: where earthsearch:boa_offset_applied is "
                                          "true the offset was already removed; raster:bands "
                                          "offset -0.1 appears on every item and is not reliable"),
                         source="Earth Search v1 item S2A_39QTA_20230628_0_L2A; "
                                "github.com/Element84/earth-search/issues/9"),
          StacCollection("earth-search", EARTH_SEARCH, "sentinel-2-c1-l2a", "s2_l2a",
                         _assets(_ES_S2_L2A), offset_signal="raster:bands",
                         radiometry_note=("ESA Collection-1 reprocessing (baseline 05.xx): offset not "
                                          "applied to the pixels; raster:bands scale/offset hold"),
                         source="Earth Search v1 sentinel-2-c1-l2a collection"),
          StacCollection("planetary-computer", PLANETARY_COMPUTER, "sentinel-2-l2a", "s2_l2a",
                         _assets(_PC_S2_L2A), offset_signal="processing_baseline",
                         signing="planetary-computer",
                         radiometry_note=("ESA values as distributed: baseline >= 04.00 items carry "
                                          "the -1000 DN offset (s2:processing_baseline)"),
                         source="Planetary Computer sentinel-2-l2a items and its 'Baseline Change' "
                                "example (harmonize_to_old)")),
)

LANDSAT_C2_L2_PRODUCT = Product(
    key="landsat_c2_l2", title="Landsat 8/9 Collection 2 Level-2 (surface reflectance / temperature)",
    sensor=LANDSAT_OLI_TIRS, bands=tuple(b.name for b in LANDSAT_OLI_TIRS.bands
                                         if b.kind in ("reflectance", "thermal")),
    quality_bands=("QA_PIXEL", "QA_RADSAT", "SR_QA_AEROSOL"),
    radiometry={"reflectance": _LANDSAT_SR, "thermal": _LANDSAT_ST,
                "*": Radiometry("quality flags", source="USGS LSDS-1619")},
    modality="landsat", aliases=("landsat-c2l2-sr", "landsat-c2l2-st"),
    ee=tuple(EECollection(f"LANDSAT/LC0{n}/C02/T{t}_L2", "landsat_c2_l2", "landsat", _LS_CLOUD)
             for n in (8, 9) for t in (1, 2)),
    stac=(StacCollection("earth-search", EARTH_SEARCH, "landsat-c2-l2", "landsat_c2_l2",
                         _assets(_LANDSAT_ASSETS), offset_signal="none", requester_pays=True,
                         radiometry_note="USGS C2 L2 integers; raster:bands carry the USGS scale/offset",
                         source="Earth Search v1 landsat-c2-l2 items (USGS STAC, s3://usgs-landsat)"),
          StacCollection("planetary-computer", PLANETARY_COMPUTER, "landsat-c2-l2", "landsat_c2_l2",
                         _assets(_LANDSAT_ASSETS), offset_signal="none", signing="planetary-computer",
                         radiometry_note="USGS C2 L2 integers; raster:bands carry the USGS scale/offset",
                         source="Planetary Computer landsat-c2-l2 items")),
)

S1_GRD_PRODUCT = Product(
    key="s1_grd", title="Sentinel-1 GRD, calibrated and terrain-corrected sigma0 (Earth Engine)",
    sensor=SENTINEL1, bands=("VV", "VH", "HH", "HV"), quality_bands=("angle",),
    radiometry={"*": _S1_DB}, modality="s1", aliases=("sentinel-1",),
    ee=(EECollection("COPERNICUS/S1_GRD", "s1_grd", "s1", linear=False),
        EECollection("COPERNICUS/S1_GRD_FLOAT", "s1_grd", "s1", linear=True)),
)

S1_RTC_PRODUCT = Product(
    key="s1_rtc", title="Sentinel-1 radiometrically terrain corrected gamma0 (Planetary Computer)",
    sensor=SENTINEL1, bands=("VV", "VH", "HH", "HV"), quality_bands=(),
    radiometry={"*": _S1_RTC}, modality="s1",
    stac=(StacCollection("planetary-computer", PLANETARY_COMPUTER, "sentinel-1-rtc", "s1_rtc",
                         _assets(_S1_ASSETS), signing="planetary-computer",
                         radiometry_note="gamma0 (not sigma0), linear power; differs from Earth Engine's S1_GRD",
                         source="Planetary Computer sentinel-1-rtc collection"),),
)

S1_GRD_L1_PRODUCT = Product(
    key="s1_grd_l1", title="Sentinel-1 Level-1 GRD digital numbers (uncalibrated)",
    sensor=SENTINEL1, bands=("VV", "VH", "HH", "HV"), quality_bands=(),
    radiometry={"*": _S1_GRD_DN}, modality="s1",
    stac=(StacCollection("earth-search", EARTH_SEARCH, "sentinel-1-grd", "s1_grd_l1",
                         _assets(_S1_ASSETS), requester_pays=True,
                         radiometry_note="ESA GRD amplitude DN; needs calibration before use as sigma0",
                         source="Earth Search v1 sentinel-1-grd (s3://sentinel-s1-l1c, requester pays)"),
          StacCollection("planetary-computer", PLANETARY_COMPUTER, "sentinel-1-grd", "s1_grd_l1",
                         _assets(_S1_ASSETS), signing="planetary-computer",
                         radiometry_note="ESA GRD amplitude DN; needs calibration before use as sigma0",
                         source="Planetary Computer sentinel-1-grd collection")),
)

GSE_ANNUAL_PRODUCT = Product(
    key="gse_annual", title="Google Satellite Embedding (AlphaEarth), annual, 64-d",
    sensor=Sensor("alphaearth", "AlphaEarth Foundations embedding", (), (),
                  "Earth Engine GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"),
    bands=tuple(f"A{i:02d}" for i in range(64)), quality_bands=(),
    radiometry={"*": _GSE}, modality="gse",
    ee=(EECollection("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL", "gse_annual", "annual", annual=True),),
)

@dataclass(frozen=True)
class PublicCogs:
    """A product published as public COGs outside any STAC API, and how to read them."""

    product: str
    index_url: str                            # the published file index
    href_rewrite: Mapping[str, str]           # index paths -> anonymous HTTPS
    dtype: str
    nodata: float
    quantisation: str                         # stored code -> value
    quantisation_divisor: float
    bottom_up: bool                           # positive y resolution
    attribution: str
    source: str


#: Google's AlphaEarth annual embeddings as public COGs (Source Cooperative copy; Google's
#: own bucket gs://alphaearth_foundations is requester pays). Sources: Google, "AlphaEarth
#: Foundations GCS data" (developers.google.com/earth-engine/guides/aef_on_gcs_readme):
#: 8192 x 8192 px files of 64 int8 bands A00..A63 per year and UTM zone, value -128 = masked
#: in every band, de-quantisation (v / 127.5) ** 2 * sign(v); Source Cooperative
#: (source.coop/tge-labs/aef): the index aef_index.parquet (columns year, path, utm_zone,
#: wgs84_west/south/east/north) and "bottom-up" files (positive y resolution).
GSE_PUBLIC_COGS = PublicCogs(
    product="gse_annual",
    index_url="https://data.source.coop/tge-labs/aef/v1/annual/aef_index.parquet",
    href_rewrite={"s3://us-west-2.opendata.source.coop/": "https://data.source.coop/"},
    dtype="int8", nodata=-128.0,
    quantisation="sign(v) * (|v| / 127.5) ** 2; -128 = masked", quantisation_divisor=127.5,
    bottom_up=True,
    attribution="The AlphaEarth Foundations Satellite Embedding dataset is produced by Google "
                "and Google DeepMind. (CC-BY 4.0)",
    source="developers.google.com/earth-engine/guides/aef_on_gcs_readme; source.coop/tge-labs/aef")


PRODUCTS: Tuple[Product, ...] = (S2_L1C_PRODUCT, S2_L2A_PRODUCT, LANDSAT_C2_L2_PRODUCT,
                                 S1_GRD_PRODUCT, S1_RTC_PRODUCT, S1_GRD_L1_PRODUCT,
                                 GSE_ANNUAL_PRODUCT)

#: the default Earth Engine collection ids models and the sample name
S2_L1C: str = S2_L1C_PRODUCT.ee_id  # "COPERNICUS/S2_HARMONIZED"
S2_L2A: str = S2_L2A_PRODUCT.ee_id  # "COPERNICUS/S2_SR_HARMONIZED"
S1_DB = "COPERNICUS/S1_GRD"
S1_LINEAR = "COPERNICUS/S1_GRD_FLOAT"
GSE_ANNUAL = "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"

_BY_ID: Dict[str, Product] = {}
for _p in PRODUCTS:
    for _name in _p.ids():
        _BY_ID.setdefault(_name.lower(), _p)
_EE: Dict[str, EECollection] = {c.id: c for p in PRODUCTS for c in p.ee}


def product(name: Optional[str]) -> Optional[Product]:
    """The product a collection id (any backend), product key or alias names; None if unknown.

    Note that a STAC id such as ``sentinel-2-l2a`` names the same product on Earth Search
    and Planetary Computer (their radiometric conventions differ; see :attr:`Product.stac`).
    """
    if not name:
        return None
    return _BY_ID.get(str(name).strip().lower())


def same_product(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two collection ids name the same product (``COPERNICUS/S2_SR`` and
    ``sentinel-2-l2a`` do; L1C and L2A do not)."""
    pa, pb = product(a), product(b)
    return pa is not None and pa is pb


def ee_collection(collection_id: str) -> EECollection:
    """Earth Engine facts about ``collection_id`` (a plain collection when not known here)."""
    return _EE.get(collection_id) or EECollection(collection_id, "", "generic")


def harmonised_ee_id(collection_id: str) -> str:
    """The harmonised Earth Engine id for a non-harmonised one (itself otherwise)."""
    info = _EE.get(collection_id)
    return info.harmonised_id if info is not None and info.harmonised_id else collection_id


def stac_collection(api: str, collection_id: str) -> Optional[StacCollection]:
    """The STAC collection ``collection_id`` of ``api`` (``earth-search``, ``planetary-computer``)."""
    for p in PRODUCTS:
        for c in p.stac:
            if c.api == api and c.id == collection_id:
                return c
    return None


#: spellings of the ``modality=`` argument -> the modality names models declare
MODALITY_ALIASES: Dict[str, str] = {
    "sentinel-2": "s2", "sentinel2": "s2", "s2_l1c": "s2", "s2-l1c": "s2", "s2": "s2",
    "sentinel-2-l1c": "s2",
    "sentinel-2-l2a": "s2_l2a", "s2_l2a": "s2_l2a", "s2l2a": "s2_l2a", "s2-l2a": "s2_l2a",
    "sentinel-1": "s1", "sentinel1": "s1", "s1": "s1",
    "landsat": "landsat", "landsat-8": "landsat", "landsat8": "landsat", "landsat-9": "landsat",
    "landsat9": "landsat",
}


def canonical_modality(name: str) -> str:
    """``"Sentinel-2"`` -> ``"s2"``, ``"sentinel-2-l2a"`` -> ``"s2_l2a"``; unknown names lower-cased."""
    key = str(name).strip().lower().replace(" ", "-")
    return MODALITY_ALIASES.get(key, key)


def expected_range(collection_id: Optional[str]) -> Optional[Tuple[float, float]]:
    """The range the values of ``collection_id`` fall in, as providers return them."""
    p = product(collection_id)
    if p is None:
        return None
    rng = p.radiometry["*"].valid_range
    if rng is None:
        for r in p.radiometry.values():
            if r.valid_range is not None:
                return r.valid_range
    return rng


__all__ = ["Radiometry", "EECollection", "StacCollection", "Product", "PRODUCTS",
           "S2_L1C_PRODUCT", "S2_L2A_PRODUCT", "LANDSAT_C2_L2_PRODUCT", "S1_GRD_PRODUCT",
           "S1_RTC_PRODUCT", "S1_GRD_L1_PRODUCT", "GSE_ANNUAL_PRODUCT",
           "S2_L1C", "S2_L2A", "S1_DB", "S1_LINEAR", "GSE_ANNUAL", "S2_DN_SCALE",
           "S2_REFLECTANCE_SCALE", "EE_CATALOG", "EARTH_SEARCH", "PLANETARY_COMPUTER",
           "STAC_CLOUD_PROPERTY", "product", "same_product", "ee_collection", "harmonised_ee_id",
           "stac_collection", "expected_range", "MODALITY_ALIASES", "canonical_modality",
           "PublicCogs", "GSE_PUBLIC_COGS"]
