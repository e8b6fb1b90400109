"""The ``local`` provider: patches from rasters on disk, on the same grid as Earth Engine.

By default it serves the embedded Sentinel-2 sample (:mod:`rs_embed.sample`); give it a
folder of rasters or a static STAC catalog to serve your own imagery.

A *catalog* is read once, when the provider is made, into a list of scenes (one date or
date window, one collection, one file per band). Three ways to describe scenes, which
may be mixed in one folder:

``rs_embed.scene`` sidecar JSON (what the sample uses)
    One JSON per scene, anywhere under the folder::

        {"type": "rs_embed.scene", "id": "T18SVG_20230615",
         "collection": "COPERNICUS/S2_SR_HARMONIZED",       # optional
         "collection_aliases": ["MYLAB/S2"],                 # optional
         "datetime": "2023-06-15T15:49:11Z",                 # or null ...
         "date_window": {"start": "2023-06-01", "end": "2023-07-01"},  # ... and a window
         "cloud_cover": 3.2, "nodata": 0, "value_scale": 1e-4,          # optional
         "processing_baseline": "05.09",   # or "offset": -1000 (DN to add), optional
         "esa_metadata": "MTD_MSIL2A.xml",                   # optional
         "bands": {"B4": "T18SVG_20230615_B04.tif",
                   "SCL": {"file": "scl.tif", "band_index": 1, "categorical": true}}}

    File paths are relative to the JSON. A scene with ``datetime`` null and a
    ``date_window`` is undated but known to lie in the window (half-open).

Static STAC (catalog, collection, item or item collection JSON)
    Links with ``rel`` ``child``/``item`` are followed on disk. An item's date is
    ``properties.datetime`` (else ``start_datetime``/``end_datetime``), its collection the
    item's ``collection`` (else the parent collection's id), cloud cover
    ``eo:cloud_cover``. Every raster asset whose ``href`` is a local file becomes a band,
    named by its single ``eo:bands``/``bands`` entry or else its key, through the sensor
    vocabulary of the item's platform (``red`` -> ``B4``, Earth Search's ``rededge1`` ->
    ``B5``, Planetary Computer's ``B04`` -> ``B4``, Landsat's ``nir08`` -> ``SR_B5``).
    ``raster:bands`` nodata, scale and offset, ``s2:processing_baseline`` and
    ``earthsearch:boa_offset_applied`` are read.

Rasters no JSON mentions
    A multi-band raster is one scene, its bands named by ``LocalProvider(bands=...)`` or
    by the band descriptions (or ``BAND_NAME`` tags) in the file. Single-band rasters
    are named ``<scene>_<band>.tif`` (also ``.tiff``, ``.jp2``), e.g. ``S2_20230615_B4.tif``
    or ESA's ``T18SVG_20230615T154911_B04_10m.jp2`` (a trailing resolution token such as
    ``_10m`` is ignored); files sharing ``<scene>`` form one scene. The date is the first
    ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYYMMDDTHHMMSS`` or HLS-style ``YYYYDDDTHHMMSS`` in
    the name (or the folder's), else an acquisition-date tag (``ACQUISITION_DATE``,
    ``DATE_ACQUIRED``, ``SENSING_TIME``, ``DATETIME``; not ``TIFFTAG_DATETIME``, the
    file's creation time). Without a date a scene is undated and used for every time
    window; without a declared collection it serves whatever collection is asked for.
    ESA product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) in the raster's folder
    or a parent (a ``.SAFE`` layout) gives the processing baseline and offsets.

Band names are canonicalised by the sensor vocabulary (:mod:`rs_embed.sensors`):
Earth Engine's spelling (``B1`` .. ``B12``, ``B8A``; ``B04`` is read as ``B4``).

Values: one convention whatever the source. Sentinel-2 reflectance bands are returned
as harmonised digital numbers, reflectance x 10000 with ESA's processing-baseline
offset removed, as Earth Engine's ``*_HARMONIZED`` collections serve them; the offset
is taken from the scene's metadata (see :func:`rs_embed.sensors.s2_harmonisation` for
the signals and their order) and recorded per scene in ``meta["radiometry"]``. A scene
from 2022-01-25 on whose baseline nothing declares gets one warning and is used as
stored. Other products are returned as stored, with their scale and offset recorded.

Sampling: every band is resampled onto :func:`rs_embed.geometry.roi_grid` (local UTM,
north-up, snapped to ``scale_m``) under the providers' shared policy
(:data:`rs_embed.providers.base.RESAMPLING_POLICIES`): continuous bands bilinear (GDAL
widens the kernel when the output is coarser than the source, so downsampling
averages), categorical bands (``SCL``, ``QA*``, or declared categorical) nearest
neighbour. At the native resolution on an aligned UTM grid both give the stored pixels
exactly. ``LocalProvider(resampling="nearest")`` samples every band nearest. Only a
window around the ROI is read from each file, never a whole scene.

Compositing over the scenes that intersect the ROI and overlap ``[start, end)``:
``median`` (per band and pixel, over scenes with valid data) or ``mosaic`` (per band, the
latest scene with valid data on top, as Earth Engine's ``mosaic()`` after sorting by
time). A pixel is valid when every requested band is; other pixels get
``sensor.fill_value`` in every band, are False in ``patch.valid`` (the mask models
read) and are counted in ``meta["nodata_fraction"]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import sensors
from ..errors import ProviderError, SpecError, warn
from ..geometry import Grid, roi_grid, transformer
from ..specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal
from .base import Patch, Provider, check_resampling, current_fetch, resampling_method
from .compositing import composite, fill_invalid

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
SCENE_TYPE = "rs_embed.scene"

_DATE_RE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?:T\d{6})?(?!\d)")
_RES_TOKEN = re.compile(r"^\d+m$", re.IGNORECASE)


def _parse_day(value: Any, where: str) -> Optional[date]:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ProviderError(f"{where}: {value!r} is not an ISO date or datetime")


# ------------------------------------------------------------------ catalog records


@dataclass(frozen=True)
class BandFile:
    """One band of one scene: a file (and band index in it) plus what its header says."""

    path: str
    index: int
    crs: str
    transform: Tuple[float, float, float, float, float, float]
    width: int
    height: int
    nodata: Optional[float]
    categorical: bool = False

    @property
    def bounds(self) -> Tuple[float, float, float, float]:
        """(left, bottom, right, top) of the raster in its CRS (north-up assumed)."""
        xs, ys = [], []
        a, b, c, d, e, f = self.transform
        for col, row in ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height)):
            xs.append(a * col + b * row + c)
            ys.append(d * col + e * row + f)
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def resolution(self) -> float:
        a, b, _, d, e, _ = self.transform
        return min(math.hypot(a, d), math.hypot(b, e))


@dataclass(frozen=True)
class RadiometrySignals:
    """What a scene's metadata says about its radiometry (see :mod:`rs_embed.sensors.radiometry`)."""

    declared_offset_dn: Optional[float] = None          # sidecar "offset": DN to add
    declared_offsets: Mapping[str, float] = field(default_factory=dict)   # per band
    declared_source: str = "declared"                   # "declared" | "esa-metadata"
    baseline: Optional[str] = None
    baseline_source: str = "processing_baseline"
    offset_applied: Optional[bool] = None               # earthsearch:boa_offset_applied
    raster: Mapping[str, Tuple[Optional[float], Optional[float]]] = field(default_factory=dict)
    value_scale: Optional[float] = None                 # stored x value_scale = reflectance
    sentinel2: bool = False                             # known Sentinel-2 whatever the collection

    def any_offset_signal(self, band: str) -> bool:
        return (self.declared_offset_dn is not None or bool(self.declared_offsets)
                or self.offset_applied is not None or self.baseline is not None
                or self.raster.get(band, (None, None))[1] is not None)

    def to_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Mapping) else v)
                for k, v in dataclasses.asdict(self).items() if v not in (None, {}, False)}


@dataclass(frozen=True)
class Scene:
    """A set of co-registered band files from one acquisition (or one undated window)."""

    id: str
    bands: Mapping[str, BandFile]
    collection: Optional[str] = None
    aliases: Tuple[str, ...] = ()
    datetime: Optional[str] = None
    start: Optional[date] = None  # first day it may lie on
    end: Optional[date] = None  # exclusive
    cloud_cover: Optional[float] = None
    value_scale: Optional[float] = None
    source: str = ""
    lonlat_bounds: Tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))
    signals: RadiometrySignals = field(default_factory=RadiometrySignals)

    @property
    def dated(self) -> bool:
        return self.start is not None

    def _acquired(self) -> Optional[date]:
        """A date that decides the baseline question, if the scene's dates allow one."""
        if self.start is None:
            return None
        cut = sensors.S2_BASELINE_04_DATE
        if self.end <= cut or self.start >= cut:
            return self.start
        return None  # a window straddling 2022-01-25

    def harmonisation(self, band: str, requested: Optional[str]) -> Optional[sensors.Harmonisation]:
        """How to bring ``band`` to the harmonised Sentinel-2 convention (None: not S2 reflectance).

        ``requested`` is the collection asked for; it decides the product of a scene that
        declares none.
        """
        prod = sensors.product(self.collection) or sensors.product(requested)
        if not (self.signals.sentinel2 or (prod is not None and prod.s2_baseline_offset)):
            return None
        info = sensors.SENTINEL2.lookup(band)
        if info is None or info.kind != "reflectance":
            return None
        sg = self.signals
        scale, offset = sg.raster.get(band, (None, None))
        if scale is None and sg.value_scale is not None:
            scale = sg.value_scale
        acquired = self._acquired()
        if not sg.any_offset_signal(band) and self.collection is not None:
            ee = sensors.ee_collection(self.collection)
            if ee.product and ee.harmonised:
                return sensors.s2_harmonisation(raster_scale=scale, declared_offset_dn=0.0,
                                                declared_source=f"declared collection {self.collection} (harmonised)")
            if ee.product and not ee.harmonised and acquired is not None:
                late = acquired >= sensors.S2_BASELINE_04_DATE
                return sensors.s2_harmonisation(
                    raster_scale=scale, declared_offset_dn=sensors.S2_BASELINE_OFFSET_DN if late else 0.0,
                    declared_source=f"declared collection {self.collection} (not harmonised) and date")
        per_band = {band: sg.declared_offsets[band]} if band in sg.declared_offsets else None
        return sensors.s2_harmonisation(
            declared_offset_dn=sg.declared_offset_dn, declared_offsets=per_band,
            declared_source=sg.declared_source, offset_applied=sg.offset_applied,
            baseline=sg.baseline, baseline_source=sg.baseline_source, raster_scale=scale,
            raster_offset=offset, acquired=acquired)

    def serves(self, collection: str, aliases: Mapping[str, Tuple[str, ...]]) -> bool:
        """Whether a request for ``collection`` may use this scene."""
        if self.collection is None:
            return True
        mine = {self.collection, *self.aliases}
        return (collection in mine or bool(mine.intersection(aliases.get(collection, ())))
                or any(sensors.same_product(collection, c) for c in mine))

    def overlaps(self, start: Optional[date], end: Optional[date]) -> bool:
        """Whether the scene can lie in ``[start, end)`` (None: no time filter)."""
        if start is None or self.start is None:
            return True
        return self.start < end and start < self.end

    def sort_key(self):
        return (self.start or date.min, self.datetime or "", self.id)

    def when(self) -> str:
        if self.datetime:
            return self.datetime
        if self.start is None:
            return "undated"
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def to_dict(self) -> dict:
        return {"id": self.id, "collection": self.collection, "aliases": list(self.aliases),
                "datetime": self.datetime,
                "date_window": ({"start": self.start.isoformat(), "end": self.end.isoformat()}
                                if self.start else None),
                "cloud_cover": self.cloud_cover, "value_scale": self.value_scale,
                "bands": {k: {"file": v.path, "band_index": v.index, "crs": v.crs,
                              "resolution": v.resolution, "categorical": v.categorical}
                          for k, v in self.bands.items()},
                "lonlat_bounds": list(self.lonlat_bounds), "source": self.source,
                "radiometry_signals": self.signals.to_dict()}


def _open_header(path: str, index: int, nodata: Any, categorical: bool, where: str) -> BandFile:
    import rasterio

    if not os.path.isfile(path):
        raise ProviderError(f"{where}: band file {path!r} does not exist")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ProviderError(f"{where}: {path!r} has no CRS; georeference it first")
            if not 1 <= index <= src.count:
                raise ProviderError(f"{where}: {path!r} has {src.count} band(s), band_index {index} asked")
            nd = src.nodatavals[index - 1] if nodata is None else nodata
            return BandFile(path=path, index=index, crs=src.crs.to_string(),
                            transform=tuple(src.transform)[:6], width=src.width,
                            height=src.height, nodata=None if nd is None else float(nd),
                            categorical=categorical)
    except ProviderError:
        raise
    except Exception as exc:  # rasterio.errors.RasterioIOError and friends
        raise ProviderError(f"{where}: cannot read {path!r}: {exc}") from exc


def _lonlat_bounds(bands: Iterable[BandFile]) -> Tuple[float, float, float, float]:
    boxes = []
    for bf in bands:
        t = transformer(bf.crs, "EPSG:4326")
        boxes.append(t.transform_bounds(*bf.bounds, densify_pts=21))
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _make_scene(*, id: str, bands: Dict[str, BandFile], collection=None, aliases=(),
                datetime_=None, window=None, cloud_cover=None, value_scale=None,
                source: str = "", signals: Optional[RadiometrySignals] = None) -> Scene:
    where = f"scene {id!r} ({source})"
    start = end = None
    if datetime_:
        start = _parse_day(datetime_, f"{where} datetime")
        end = start + timedelta(days=1)
    elif window:
        start = _parse_day(window[0], f"{where} date window start")
        end = _parse_day(window[1], f"{where} date window end")
        if start is None or end is None or not start < end:
            raise ProviderError(f"{where}: date window must be start < end, got {window!r}")
    if collection is not None and not isinstance(collection, str):
        raise ProviderError(f"{where}: collection must be a string, got {collection!r}")
    return Scene(id=id, bands=dict(bands), collection=collection or None,
                 aliases=tuple(aliases or ()), datetime=datetime_ or None, start=start, end=end,
                 cloud_cover=None if cloud_cover is None else float(cloud_cover),
                 value_scale=None if value_scale is None else float(value_scale),
                 source=source, lonlat_bounds=_lonlat_bounds(bands.values()),
                 signals=signals or RadiometrySignals())


# ---------------------------------------------------------------- catalog readers


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProviderError(f"cannot read catalog JSON {str(path)!r}: {exc}") from exc


def _is_stac(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("type") in ("Feature", "FeatureCollection",
                                                         "Catalog", "Collection") \
        and ("stac_version" in doc or doc.get("type") == "FeatureCollection")


def _scene_from_sidecar(doc: dict, path: Path) -> Scene:
    where = f"scene file {str(path)!r}"
    bands_doc = doc.get("bands")
    if not isinstance(bands_doc, dict) or not bands_doc:
        raise ProviderError(f"{where}: 'bands' must map band names to files")
    default_nodata = doc.get("nodata")
    bands: Dict[str, BandFile] = {}
    for name, spec in bands_doc.items():
        if isinstance(spec, str):
            spec = {"file": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise ProviderError(f"{where}: band {name!r} needs a 'file', got {spec!r}")
        band = sensors.canonical_band(name)
        file = str((path.parent / spec["file"]).resolve())
        nodata = spec.get("nodata", default_nodata)
        categorical = bool(spec.get("categorical", sensors.is_categorical(band)))
        bands[band] = _open_header(file, int(spec.get("band_index", 1)), nodata, categorical,
                                   f"{where} band {name!r}")
    window = doc.get("date_window")
    if isinstance(window, dict):
        window = (window.get("start"), window.get("end"))
    return _make_scene(id=str(doc.get("id") or path.stem), bands=bands,
                       collection=doc.get("collection"), aliases=doc.get("collection_aliases", ()),
                       datetime_=doc.get("datetime"), window=window,
                       cloud_cover=doc.get("cloud_cover"), value_scale=doc.get("value_scale"),
                       source=str(path), signals=_sidecar_signals(doc, path, where))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProviderError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _sidecar_signals(doc: dict, path: Path, where: str) -> RadiometrySignals:
    """Radiometry facts a sidecar declares: ``offset`` (DN to add, a number or per band),
    ``processing_baseline``, ``offset_applied``, ``value_scale``, ``esa_metadata`` (the
    product's MTD_MSIL1C/2A.xml, relative to the JSON)."""
    kw: Dict[str, Any] = {}
    off = doc.get("offset")
    if isinstance(off, dict):
        kw["declared_offsets"] = {sensors.canonical_band(k): _number(v, f"{where} offset[{k!r}]")
                                  for k, v in off.items()}
    elif off is not None:
        kw["declared_offset_dn"] = _number(off, f"{where} 'offset'")
    if doc.get("processing_baseline") is not None:
        if sensors.parse_baseline(doc["processing_baseline"]) is None:
            raise ProviderError(f"{where}: processing_baseline must look like '04.00', "
                                f"got {doc['processing_baseline']!r}")
        kw["baseline"] = str(doc["processing_baseline"])
        kw["baseline_source"] = "declared processing_baseline"
    applied = doc.get("offset_applied")
    if applied is not None:
        if not isinstance(applied, bool):
            raise ProviderError(f"{where}: offset_applied must be true or false, got {applied!r}")
        kw["offset_applied"] = applied
    if doc.get("value_scale") is not None:
        kw["value_scale"] = _number(doc["value_scale"], f"{where} 'value_scale'")
    esa = doc.get("esa_metadata")
    if esa:
        kw.update(_esa_signals(path.parent / str(esa), where))
    return RadiometrySignals(**kw)


_ESA_METADATA = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")


def _esa_signals(xml_path: Path, where: str) -> Dict[str, Any]:
    """Radiometry signals from ESA's product metadata (``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``)."""
    try:
        md = sensors.parse_esa_product_metadata(xml_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ElementTree.ParseError is a ValueError
        raise ProviderError(f"{where}: cannot read ESA product metadata {str(xml_path)!r}: {exc}") from exc
    kw: Dict[str, Any] = {"sentinel2": True}
    if md["baseline"]:
        kw["baseline"] = md["baseline"]
        kw["baseline_source"] = f"esa-metadata {xml_path.name}"
    if md["offsets"]:
        kw["declared_offsets"] = md["offsets"]
        kw["declared_source"] = f"esa-metadata {xml_path.name}"
    elif md["baseline"] and sensors.parse_baseline(md["baseline"]) < (4, 0):
        kw["declared_offset_dn"] = 0.0
        kw["declared_source"] = f"esa-metadata {xml_path.name}"
    if md["quantification"]:
        kw["value_scale"] = 1.0 / md["quantification"]
    return kw


def _find_esa_metadata(folder: Path, stop: Path) -> Optional[Path]:
    """ESA product metadata in ``folder`` or a parent up to ``stop`` (a ``.SAFE`` layout)."""
    folder = folder.resolve()
    stop = stop.resolve()
    while True:
        for name in _ESA_METADATA:
            cand = folder / name
            if cand.is_file():
                return cand
        if folder == stop or folder.parent == folder or stop not in folder.parents:
            return None
        folder = folder.parent


def _local_href(href: str, base: Path) -> Optional[Path]:
    if href.startswith("file://"):
        href = href[len("file://"):]
    elif re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", href):
        return None  # remote asset: not this provider's job
    p = Path(href)
    return (p if p.is_absolute() else base / p).resolve()


def _item_sensor(item: dict, collection: Optional[str]) -> Optional[sensors.Sensor]:
    """The sensor of a STAC item, from its platform/constellation or its collection."""
    props = item.get("properties") or {}
    for key in ("platform", "constellation"):
        found = sensors.sensor_for_platform(props.get(key))
        if found is not None:
            return found
    prod = sensors.product(collection)
    return prod.sensor if prod is not None else None


def _asset_is_raster(asset: dict, path: Path) -> bool:
    roles = set(asset.get("roles") or ())
    if roles & {"thumbnail", "overview", "metadata", "visual"} and "data" not in roles:
        return False
    media = str(asset.get("type") or "").lower()
    if media:
        return "tiff" in media or "jp2" in media
    return path.suffix.lower() in RASTER_SUFFIXES


def _scenes_from_stac_item(item: dict, path: Path, collection: Optional[str],
                           skipped: List[str]) -> Optional[Scene]:
    props = item.get("properties") or {}
    coll = item.get("collection") or collection
    sensor = _item_sensor(item, coll)
    bands: Dict[str, BandFile] = {}
    scales = set()
    raster_sb: Dict[str, Tuple[Optional[float], Optional[float]]] = {}
    for key, asset in (item.get("assets") or {}).items():
        href = asset.get("href") if isinstance(asset, dict) else None
        if not isinstance(href, str):
            continue
        local = _local_href(href, path.parent)
        if local is None:
            skipped.append(href)
            continue
        if not _asset_is_raster(asset, local):
            continue
        meta_bands = asset.get("eo:bands") or asset.get("bands") or []
        name = key
        if len(meta_bands) == 1 and isinstance(meta_bands[0], dict) and meta_bands[0].get("name"):
            name = meta_bands[0]["name"]
        band = sensors.canonical_band(name, sensor)
        if sensor is not None and sensor.lookup(band) is None:
            band = sensors.canonical_band(key, sensor)  # the asset key may be the better name
        raster = (asset.get("raster:bands") or [{}])[0] if asset.get("raster:bands") else {}
        nodata = asset.get("nodata", raster.get("nodata"))
        info = sensors.band_info(band, sensor)
        spectral = info is not None and info.kind in ("reflectance", "thermal")
        if raster.get("scale") is not None and spectral:
            scales.add(float(raster["scale"]))
        if spectral and (raster.get("scale") is not None or raster.get("offset") is not None):
            raster_sb[band] = (None if raster.get("scale") is None else float(raster["scale"]),
                               None if raster.get("offset") is None else float(raster["offset"]))
        categorical = sensors.is_categorical(band, sensor) or bool(asset.get("classification:classes")) \
            or bool(asset.get("classification:bitfields"))
        bands[band] = _open_header(str(local), 1, nodata, categorical,
                                   f"STAC item {item.get('id')!r} asset {key!r}")
    if not bands:
        return None
    window = None
    if not props.get("datetime") and props.get("start_datetime") and props.get("end_datetime"):
        end = _parse_day(props["end_datetime"], f"STAC item {item.get('id')!r} end_datetime")
        window = (props["start_datetime"], (end + timedelta(days=1)).isoformat())
    baseline = props.get("s2:processing_baseline")
    baseline_source = "stac s2:processing_baseline"
    if baseline is None:
        for name in (props.get("s2:product_uri"), item.get("id")):
            baseline = sensors.baseline_from_name(name or "")
            if baseline:
                baseline_source = "ESA product name"
                break
    applied = props.get("earthsearch:boa_offset_applied")
    signals = RadiometrySignals(
        baseline=None if baseline is None else str(baseline), baseline_source=baseline_source,
        offset_applied=applied if isinstance(applied, bool) else None, raster=raster_sb,
        sentinel2=sensor is sensors.SENTINEL2)
    return _make_scene(id=str(item.get("id") or path.stem), bands=bands, collection=coll,
                       datetime_=props.get("datetime"), window=window,
                       cloud_cover=props.get("eo:cloud_cover"),
                       value_scale=scales.pop() if len(scales) == 1 else None, source=str(path),
                       signals=signals)


def _walk_stac(doc: dict, path: Path, collection: Optional[str], seen: set,
               scenes: List[Scene], skipped: List[str]) -> None:
    kind = doc.get("type")
    if kind == "Feature":
        scene = _scenes_from_stac_item(doc, path, collection, skipped)
        if scene is not None:
            scenes.append(scene)
        return
    if kind == "FeatureCollection":
        for feat in doc.get("features") or ():
            if isinstance(feat, dict):
                _walk_stac(feat, path, collection, seen, scenes, skipped)
        return
    if kind == "Collection":
        collection = doc.get("id") or collection
    for link in doc.get("links") or ():
        if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
            continue
        target = _local_href(str(link.get("href", "")), path.parent)
        if target is None:
            skipped.append(str(link.get("href")))
            continue
        if target in seen:
            continue
        seen.add(target)
        if not target.is_file():
            raise ProviderError(f"STAC {str(path)!r} links to {str(target)!r}, which does not exist")
        _walk_stac(_read_json(target), target, collection, seen, scenes, skipped)


#: dataset tags that may hold an acquisition date (TIFFTAG_DATETIME is the file's creation time)
_DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_DATETIME", "DATE_ACQUIRED", "SENSING_DATE",
              "SENSING_TIME", "DATETIME", "DATE")
_HLS_DATE_RE = re.compile(r"(?<!\d)(\d{4})(\d{3})T\d{6}(?!\d)")
_ESA_NAME_RE = re.compile(r"(MSIL1C|MSIL2A|_T\d{2}[A-Z]{3}_\d{8}T\d{6})")


def _day_from_text(text: str) -> Optional[str]:
    """An acquisition day in a name: ``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYYMMDDTHHMMSS`` or
    HLS's ``YYYYDDDTHHMMSS`` (year and day of year)."""
    m = _DATE_RE.search(text)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            pass
    m = _HLS_DATE_RE.search(text)
    if m and 1 <= int(m.group(2)) <= 366:
        try:
            return (date(int(m.group(1)), 1, 1) + timedelta(days=int(m.group(2)) - 1)).isoformat()
        except ValueError:
            return None
    return None


def _day_from_tags(tags: Mapping[str, str]) -> Optional[str]:
    upper = {str(k).upper(): v for k, v in tags.items()}
    for key in _DATE_TAGS:
        value = upper.get(key)
        if value:
            text = str(value).strip().replace(":", "-", 2) if re.match(r"^\d{4}:\d{2}:\d{2}", str(value)) \
                else str(value).strip()
            try:
                return date.fromisoformat(text[:10]).isoformat()
            except ValueError:
                continue
    return None


def _raster_header(path: Path) -> dict:
    import rasterio

    try:
        with rasterio.open(path) as src:
            names = []
            for i in range(1, src.count + 1):
                tags = src.tags(i)
                upper = {str(k).upper(): v for k, v in tags.items()}
                names.append(src.descriptions[i - 1] or upper.get("BAND_NAME") or upper.get("BAND")
                             or upper.get("NAME"))
            return {"count": src.count, "names": names, "tags": dict(src.tags())}
    except Exception as exc:
        raise ProviderError(f"cannot read {str(path)!r}: {exc}") from exc


def _names_for(path: Path, band_names: Any) -> Optional[List[str]]:
    """The ``bands=`` names the caller gave for ``path`` (a list for every file, or by name/glob)."""
    if band_names is None:
        return None
    if isinstance(band_names, Mapping):
        for pattern, names in band_names.items():
            pat = str(pattern)
            if path.name == pat or str(path) == pat or path.match(pat):
                return [str(n) for n in names]
        return None
    return [str(n) for n in band_names]


def _loose_signals(folder: Path, name_text: str, root: Path) -> RadiometrySignals:
    """What a raster's file name and folders say: ESA metadata nearby, baseline tokens."""
    esa = _find_esa_metadata(folder, root)
    if esa is not None:
        return RadiometrySignals(**_esa_signals(esa, f"file {name_text!r}"))
    baseline = sensors.baseline_from_name(name_text)
    if baseline:
        return RadiometrySignals(baseline=baseline, baseline_source="ESA product name", sentinel2=True)
    return RadiometrySignals(sentinel2=bool(_ESA_NAME_RE.search(name_text)))


def _scenes_from_names(files: Sequence[Path], band_names: Any = None,
                       root: Optional[Path] = None) -> List[Scene]:
    """Scenes from rasters no JSON describes.

    A multi-band raster is one scene: its bands are named by ``band_names`` (``bands=``),
    else by the band descriptions (or ``BAND_NAME`` tags) written in the file. Single-band
    rasters named ``<scene>_<band>`` group into scenes. Dates come from the file name or
    folder (``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYYMMDDTHHMMSS``, ``YYYYDDDTHHMMSS``), else from
    acquisition-date tags (``ACQUISITION_DATE``, ``DATE_ACQUIRED``, ``SENSING_TIME``, ...).
    """
    groups: Dict[Tuple[str, str], Dict[str, Tuple[Path, int]]] = {}
    tag_days: Dict[Tuple[str, str], Optional[str]] = {}
    for f in files:
        head = _raster_header(f)
        given = _names_for(f, band_names)
        if head["count"] > 1 or given is not None:
            names = given or head["names"]
            if given is not None and len(given) != head["count"]:
                raise ProviderError(f"bands= names {given} for {str(f)!r}, which has {head['count']} band(s)")
            if not all(names):
                raise ProviderError(
                    f"{str(f)!r} has {head['count']} bands without names; name them with "
                    f"LocalProvider(..., bands=[...]) (in file order), band descriptions in the "
                    f"file, or an rs_embed.scene sidecar")
            canon = [sensors.canonical_band(n) for n in names]
            if len(set(canon)) != len(canon):
                raise ProviderError(f"{str(f)!r} names a band twice: {names}")
            key = (str(f.parent), f.stem)
            groups[key] = {b: (f, i + 1) for i, b in enumerate(canon)}
            tag_days[key] = _day_from_tags(head["tags"])
            continue
        tokens = f.stem.split("_")
        while len(tokens) > 1 and _RES_TOKEN.match(tokens[-1]):
            tokens.pop()
        band = sensors.canonical_band(tokens[-1])
        prefix = "_".join(tokens[:-1])
        described = head["names"][0]
        if sensors.band_info(band) is None and described and sensors.band_info(described) is not None:
            band, prefix = sensors.canonical_band(described), f.stem  # the file says which band it is
        key = (str(f.parent), prefix)
        if band in groups.setdefault(key, {}):
            raise ProviderError(f"two files for band {band} of scene {prefix or f.parent.name!r}: "
                                f"{str(groups[key][band][0])!r} and {str(f)!r}; "
                                "describe the scene in a sidecar JSON")
        groups[key][band] = (f, 1)
        tag_days.setdefault(key, _day_from_tags(head["tags"]))
    scenes = []
    for (folder, prefix), files_by_band in sorted(groups.items()):
        day = _day_from_text(prefix) or _day_from_text(Path(folder).name) or tag_days.get((folder, prefix))
        sid = prefix or Path(folder).name
        bands = {b: _open_header(str(p.resolve()), idx, None, sensors.is_categorical(b), f"file {str(p)!r}")
                 for b, (p, idx) in sorted(files_by_band.items())}
        names = " ".join([sid, folder] + [str(p) for p, _ in files_by_band.values()])
        signals = _loose_signals(Path(folder), names, root or Path(folder))
        scenes.append(_make_scene(id=sid, bands=bands, datetime_=day, source=folder, signals=signals))
    return scenes


def read_catalog(catalog: Union[str, os.PathLike],
                 bands: Any = None) -> Tuple[List[Scene], List[str]]:
    """Scenes described by ``catalog`` (a folder or a JSON file) and remote hrefs skipped.

    ``bands``: names for the bands of multi-band rasters no JSON describes (see
    :class:`LocalProvider`).
    """
    path = Path(catalog).expanduser()
    scenes: List[Scene] = []
    skipped: List[str] = []
    if path.is_file():
        if path.suffix.lower() in RASTER_SUFFIXES:
            return _scenes_from_names([path], bands, path.parent), skipped
        doc = _read_json(path)
        if isinstance(doc, dict) and doc.get("type") == SCENE_TYPE:
            return [_scene_from_sidecar(doc, path)], skipped
        if _is_stac(doc):
            _walk_stac(doc, path, None, {path.resolve()}, scenes, skipped)
            return scenes, skipped
        raise ProviderError(f"catalog {str(path)!r} is neither an rs_embed.scene JSON nor STAC")
    if not path.is_dir():
        raise SpecError(f"catalog must be a folder, a scene/STAC JSON or a raster file; "
                        f"{str(path)!r} does not exist")
    used: set = set()
    seen_json: set = set()
    for jf in sorted(path.rglob("*.json")):
        if jf.resolve() in seen_json:
            continue
        try:
            doc = json.loads(jf.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not every JSON in a folder is ours
        if isinstance(doc, dict) and doc.get("type") == SCENE_TYPE:
            found = [_scene_from_sidecar(doc, jf)]
        elif _is_stac(doc):
            found = []
            seen_json.add(jf.resolve())
            _walk_stac(doc, jf, None, seen_json, found, skipped)
        else:
            continue
        for sc in found:
            used.update(bf.path for bf in sc.bands.values())
        scenes.extend(found)
    loose = [f for f in sorted(path.rglob("*"))
             if f.suffix.lower() in RASTER_SUFFIXES and f.is_file()
             and str(f.resolve()) not in used and not f.name.startswith(".")]
    scenes.extend(_scenes_from_names(loose, bands, path))
    ids: Dict[str, int] = {}
    unique = []
    for sc in scenes:  # ids must be unique for meta["scenes"] to mean something
        n = ids[sc.id] = ids.get(sc.id, 0) + 1
        if n > 1:
            sc = dataclasses.replace(sc, id=f"{sc.id}#{n}")
        unique.append(sc)
    return unique, skipped


# ------------------------------------------------------------------------ provider


class LocalProvider(Provider):
    """Imagery from local rasters (default: the embedded Sentinel-2 sample).

    ``catalog``: a folder, an ``rs_embed.scene`` or STAC JSON file, a raster, or a list of
    these (None: the embedded sample). ``resampling``: ``"bilinear"`` (default, for
    reflectance; categorical bands always use nearest) or ``"nearest"`` for every band.
    ``aliases``: extra collection ids a request may be served from, e.g.
    ``{"MYLAB/S2": ["sentinel-2-l2a"]}`` (ids of the same product, such as
    ``COPERNICUS/S2_SR_HARMONIZED`` and ``sentinel-2-l2a``, need none: the sensor
    vocabulary knows them). ``bands``: names for the bands of multi-band rasters that
    carry no band descriptions, in file order: one list for every such file, or
    ``{"file name or glob": [...]}``.

    Thread-safe: the catalog is read-only after construction and every fetch opens its
    own file handles inside its own ``rasterio.Env``.
    """

    name = "local"

    def __init__(self, catalog: Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]] = None,
                 *, resampling: str = "bilinear",
                 aliases: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
                 bands: Union[None, Sequence[str], Mapping[str, Sequence[str]]] = None):
        self.resampling = check_resampling(resampling)
        if bands is not None and (isinstance(bands, str) or not isinstance(bands, (Mapping, Sequence))):
            raise SpecError(f"bands must be a list of band names or a mapping of file name to "
                            f"band names, got {bands!r}")
        self._warned: set = set()
        self._warn_lock = threading.Lock()
        self.aliases: Dict[str, Tuple[str, ...]] = {}
        for k, v in (aliases or {}).items():
            self.aliases[str(k)] = (v,) if isinstance(v, str) else tuple(v)
        if catalog is None:
            from .. import sample

            sources = [sample.SCENE_JSON]
            self.catalog_name = "the embedded Sentinel-2 sample"
        else:
            sources = [catalog] if isinstance(catalog, (str, os.PathLike)) else list(catalog)
            if not sources or not all(isinstance(s, (str, os.PathLike)) for s in sources):
                raise SpecError(f"catalog must be a path or a list of paths, got {catalog!r}")
            self.catalog_name = ", ".join(repr(str(s)) for s in sources)
        scenes: List[Scene] = []
        self.skipped_remote: List[str] = []
        for src in sources:
            found, skipped = read_catalog(src, bands)
            scenes.extend(found)
            self.skipped_remote.extend(skipped)
        if not scenes:
            extra = (f" ({len(self.skipped_remote)} remote asset(s) skipped: this provider "
                     "reads local files only)") if self.skipped_remote else ""
            raise ProviderError(f"the local catalog {self.catalog_name} holds no readable scenes{extra}")
        self._scenes: Tuple[Scene, ...] = tuple(sorted(scenes, key=Scene.sort_key))

    # -- what the catalog holds ----------------------------------------------------
    @property
    def scenes(self) -> Tuple[Scene, ...]:
        return self._scenes

    def _span(self, scenes: Sequence[Scene]) -> str:
        lon0 = min(s.lonlat_bounds[0] for s in scenes)
        lat0 = min(s.lonlat_bounds[1] for s in scenes)
        lon1 = max(s.lonlat_bounds[2] for s in scenes)
        lat1 = max(s.lonlat_bounds[3] for s in scenes)
        dated = [s for s in scenes if s.dated]
        when = "undated"
        if dated:
            when = (f"dates [{min(s.start for s in dated).isoformat()}, "
                    f"{max(s.end for s in dated).isoformat()})")
            if len(dated) < len(scenes):
                when += f" plus {len(scenes) - len(dated)} undated"
        return (f"lon {lon0:.4f}..{lon1:.4f}, lat {lat0:.4f}..{lat1:.4f}, {when}")

    def coverage(self) -> str:
        """One line: collections, lon/lat extent and date span of the catalog."""
        colls = sorted({s.collection or "undeclared collection" for s in self._scenes})
        return (f"local catalog {self.catalog_name}: {len(self._scenes)} scene(s) of "
                f"{', '.join(colls)}; {self._span(self._scenes)}")

    def bands(self, collection: Optional[str] = None) -> List[str]:
        """Band names available (for ``collection`` if given)."""
        out = set()
        for s in self._scenes:
            if collection is None or s.serves(collection, self.aliases):
                out.update(s.bands)
        return _sorted_bands(out)

    # -- identity --------------------------------------------------------------------
    def settings(self) -> dict:
        """What changes the pixels: the catalog's content (not where it lies on disk, so a
        fingerprint is the same on every machine), the resampling and the aliases."""
        digest = getattr(self, "_catalog_digest", None)
        if digest is None:
            import hashlib

            rows = []
            for sc in self._scenes:
                rows.append([sc.id, sc.collection, list(sc.aliases), sc.datetime,
                             sc.start.isoformat() if sc.start else None,
                             sc.end.isoformat() if sc.end else None, sc.cloud_cover, sc.value_scale,
                             {b: [os.path.basename(bf.path), bf.index, bf.crs, list(bf.transform),
                                  bf.width, bf.height, bf.nodata, bf.categorical]
                              for b, bf in sorted(sc.bands.items())},
                             sc.signals.to_dict()])  # what its radiometry is derived from
            text = json.dumps(rows, sort_keys=True, separators=(",", ":"), default=str)
            digest = self._catalog_digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
        return {"catalog": {"scenes": len(self._scenes), "sha1": digest},
                "resampling": self.resampling,
                "aliases": {k: list(v) for k, v in sorted(self.aliases.items())}}

    # -- selection -----------------------------------------------------------------
    def _check(self, spatial, temporal, sensor):
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        if not isinstance(sensor, SensorSpec):
            raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
        return spatial, temporal, sensor

    def _sensor_scenes(self, sensor: SensorSpec) -> List[Scene]:
        """The scenes of ``sensor``'s collection holding all its bands; else a ProviderError
        saying what the catalog holds instead."""
        want = [sensors.canonical_band(b) for b in sensor.bands]
        in_coll = [s for s in self._scenes if s.serves(sensor.collection, self.aliases)]
        if not in_coll:
            colls = sorted({c for s in self._scenes for c in (s.collection, *s.aliases) if c})
            raise ProviderError(
                f"the local catalog has no {sensor.collection!r} scenes; it holds "
                f"{', '.join(colls)}. Ask for one of these in SensorSpec.collection "
                f"(or declare aliases: LocalProvider(..., aliases={{{sensor.collection!r}: "
                f"[...]}})); coverage: {self.coverage()}", transient=False)
        with_bands = [s for s in in_coll if all(b in s.bands for b in want)]
        if not with_bands:
            have = _sorted_bands({b for s in in_coll for b in s.bands})
            missing = [b for b, c in zip(sensor.bands, want) if not any(c in s.bands for s in in_coll)]
            missing = missing or [b for b, c in zip(sensor.bands, want)
                                  if not all(c in s.bands for s in in_coll)]
            usable = [b for b in have if not sensors.is_categorical(b)] or have
            raise ProviderError(
                f"band(s) {', '.join(map(repr, missing))} not in the local catalog's "
                f"{sensor.collection} scenes; the bands found are {', '.join(have)}. A sensor "
                f"that fits them: sensor=SensorSpec({sensor.collection!r}, bands={tuple(usable)!r}, "
                f"scale_m={sensor.scale_m:g}) (for models that read any band set, such as rcf, "
                f"spectral or dofa)", transient=False)
        return with_bands

    def select(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
               sensor: SensorSpec) -> Tuple[List[Scene], Grid]:
        """The scenes a fetch composites (time-ordered) and the grid it samples."""
        spatial, temporal, sensor = self._check(spatial, temporal, sensor)
        grid = roi_grid(spatial, sensor.scale_m)
        want = [sensors.canonical_band(b) for b in sensor.bands]
        with_bands = self._sensor_scenes(sensor)
        start = temporal.start_date if temporal else None
        end = temporal.end_date if temporal else None
        in_time = [s for s in with_bands if s.overlaps(start, end)]
        clear = [s for s in in_time if s.cloud_cover is None or s.cloud_cover <= sensor.cloudy_pct]
        hits = [s for s in clear if any(_intersects(s.bands[b], grid) for b in want)]
        if not hits:
            window = f"[{temporal.start}, {temporal.end})" if temporal else "(no time filter)"
            if not in_time:
                why = "no scene overlaps the time window"
            elif not clear:
                why = f"all {len(in_time)} scene(s) in the window exceed cloudy_pct={sensor.cloudy_pct:g}"
            else:
                why = "no scene reaches the ROI"
            lon0, lat0, lon1, lat1 = grid.lonlat_bounds()
            raise ProviderError(
                f"nothing in the local catalog covers {spatial!r} (lon {lon0:.4f}..{lon1:.4f}, "
                f"lat {lat0:.4f}..{lat1:.4f}) in the window {window}: {why}. The catalog's "
                f"{sensor.collection} scenes with these bands cover {self._span(with_bands)}; "
                f"coverage: {self.coverage()}", transient=False)
        return hits, grid

    def list_scenes(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                    sensor: SensorSpec) -> List[str]:
        """Ids of the scenes a fetch would composite, oldest first."""
        return [s.id for s in self.select(spatial, temporal, sensor)[0]]

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Why the catalog cannot serve ``sensor`` (collection or bands missing), or None."""
        try:
            self._sensor_scenes(sensor)
        except ProviderError as exc:
            return str(exc)
        return None

    def coverage_fraction(self, spatials: Sequence[SpatialSpec], temporal: Optional[TemporalSpec] = None,
                          sensor: Optional[SensorSpec] = None, *, samples: int = 16) -> List[Optional[float]]:
        """Share of each ROI's grid inside the footprints of the scenes that could serve
        it (``sensor``'s collection and bands, the time window), sampled on a
        ``samples`` x ``samples`` lattice of the grid; footprints only, no pixels read."""
        scenes = list(self._scenes)
        if sensor is not None:
            try:
                scenes = self._sensor_scenes(sensor)
            except ProviderError:
                return [0.0] * len(spatials)
        temporal = check_temporal(temporal)
        if temporal is not None:
            scenes = [s for s in scenes if s.overlaps(temporal.start_date, temporal.end_date)]
        boxes = {}
        for s in scenes:  # one footprint per scene: its finest band
            bf = min(s.bands.values(), key=lambda b: b.resolution)
            boxes[(bf.crs, bf.bounds)] = None
        scale = sensor.scale_m if sensor is not None else 10.0
        n = max(2, int(samples))
        t = (np.arange(n) + 0.5) / n
        out: List[Optional[float]] = []
        for sp in spatials:
            grid = roi_grid(check_spatial(sp), scale)
            left, bottom, right, top = grid.bounds
            gx, gy = np.meshgrid(left + t * (right - left), bottom + t * (top - bottom))
            gx, gy = gx.ravel(), gy.ravel()
            inside = np.zeros(gx.size, dtype=bool)
            for crs, (l, b, r, tp) in boxes:
                px, py = (gx, gy) if crs == grid.crs else transformer(grid.crs, crs).transform(gx, gy)
                inside |= (np.asarray(px) >= l) & (np.asarray(px) <= r) & \
                          (np.asarray(py) >= b) & (np.asarray(py) <= tp)
            out.append(float(inside.mean()))
        return out

    # -- fetch ---------------------------------------------------------------------
    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        import rasterio

        ctx = current_fetch()  # the caller's time budget and cancel: looked at between reads
        scenes, grid = self.select(spatial, temporal, sensor)
        _ignore_spurious_mem_warning()
        want = [sensors.canonical_band(b) for b in sensor.bands]
        h, w = grid.height, grid.width
        stacks = np.full((len(scenes), len(want), h, w), np.nan, dtype=np.float32)
        pixels_read = 0
        used = np.zeros(len(scenes), dtype=bool)
        resampling_used: Dict[str, str] = {}
        radiometry: List[dict] = []
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_NUM_THREADS=1):
            for i, scene in enumerate(scenes):
                applied: Dict[str, sensors.Harmonisation] = {}
                for j, band in enumerate(want):
                    ctx.check()
                    bf = scene.bands[band]
                    method = resampling_method(band, self.resampling, bf.categorical)
                    resampling_used[sensor.bands[j]] = method
                    harm = scene.harmonisation(band, sensor.collection)
                    if harm is not None:
                        applied[sensor.bands[j]] = harm
                    n = _sample_band(bf, grid, method, stacks[i, j], harm, band)
                    pixels_read += n
                    if n:
                        used[i] = True
                if used[i]:
                    radiometry.append(self._radiometry_record(scene, applied))
        data = composite(stacks, sensor.composite)
        valid, filled = fill_invalid(data, sensor.fill_value)
        used_scenes = [s for s, u in zip(scenes, used) if u]
        s2 = any(r.get("harmonised") for r in radiometry)
        scales = {s.value_scale for s in scenes}
        meta = {
            "backend": "local",
            "catalog": self.catalog_name,
            "collection": sensor.collection,
            "composite": sensor.composite,
            "scale_m": sensor.scale_m,
            "cloud_filter": f"cloud_cover <= {sensor.cloudy_pct:g}" if sensor.cloudy_pct < 100 else None,
            "temporal": {"start": temporal.start, "end": temporal.end} if temporal else None,
            "window_used": _window_of(used_scenes) if temporal is None else
            {"start": temporal.start, "end": temporal.end},
            "scenes": [s.id for s in used_scenes],
            "scene_dates": [s.when() for s in used_scenes],
            "n_scenes": len(used_scenes),
            "resampling": resampling_used,
            "resampling_policy": self.resampling,
            "values": ("harmonised Sentinel-2 DN (reflectance x 10000, no baseline offset)" if s2
                       else "as stored (no scaling)"),
            "value_scale": sensors.S2_REFLECTANCE_SCALE if s2 else (scales.pop() if len(scales) == 1 else None),
            "radiometry": radiometry,
            **filled,
            "source_pixels_read": int(pixels_read),
        }
        return Patch(data=np.ascontiguousarray(data, dtype=np.float32), bands=tuple(sensor.bands),
                     grid=grid, meta=meta, valid=valid)

    def _radiometry_record(self, scene: Scene, applied: Mapping[str, sensors.Harmonisation]) -> dict:
        """What was done to one scene's values (and one warning per uncertain scene)."""
        if not applied:
            return {"scene": scene.id, "harmonised": False, "values": "as stored",
                    "value_scale": scene.value_scale}
        first = next(iter(applied.values()))
        if not first.certain:
            self._warn_once(scene, first)
        rec = {"scene": scene.id, "harmonised": True, **first.to_dict()}
        rec["bias_dn"] = {b: h.bias_for(sensors.canonical_band(b)) for b, h in applied.items()}
        sources = sorted({h.source for h in applied.values()})
        if len(sources) > 1:
            rec["source"] = sources
        return rec

    def _warn_once(self, scene: Scene, h: sensors.Harmonisation) -> None:
        with self._warn_lock:
            if scene.id in self._warned:
                return
            self._warned.add(scene.id)
        warn(f"local scene {scene.id!r} ({scene.when()}) is Sentinel-2 from on or after 2022-01-25 "
             f"but its processing baseline is unknown, so its values are used as stored (as if "
             f"already harmonised). If they carry ESA's -1000 DN offset, say so: "
             f'"processing_baseline": "04.00" (or "offset": -1000) in its rs_embed.scene sidecar, '
             f"s2:processing_baseline in its STAC item, or keep the product's MTD_MSIL*.xml beside it")


# ------------------------------------------------------------------------- helpers


def _window_of(scenes: Sequence[Scene]) -> Optional[dict]:
    """The dates the scenes span (what ``temporal=None`` read on a local catalog)."""
    dated = [s for s in scenes if s.dated]
    if not dated:
        return None
    return {"start": min(s.start for s in dated).isoformat(), "end": max(s.end for s in dated).isoformat(),
            "note": "temporal=None: every scene of the local catalog"}


def _sorted_bands(names: Iterable[str]) -> List[str]:
    return sensors.sort_bands(names)


def _grid_bounds_in(bf: BandFile, grid: Grid) -> Tuple[float, float, float, float]:
    if bf.crs == grid.crs:
        return grid.bounds
    return transformer(grid.crs, bf.crs).transform_bounds(*grid.bounds, densify_pts=21)


def _intersects(bf: BandFile, grid: Grid) -> bool:
    l, b, r, t = _grid_bounds_in(bf, grid)
    L, B, R, T = bf.bounds
    return l < R and L < r and b < T and B < t


def _source_window(bf: BandFile, grid: Grid) -> Optional[Tuple[int, int, int, int]]:
    """(col, row, width, height) of the source pixels the grid needs, padded for the kernel."""
    l, b, r, t = _grid_bounds_in(bf, grid)
    a, bb, c, d, e, f = bf.transform
    det = a * e - bb * d
    cols, rows = [], []
    for x, y in ((l, t), (r, t), (l, b), (r, b)):  # invert x = a*col + bb*row + c, ...
        cols.append((e * (x - c) - bb * (y - f)) / det)
        rows.append((a * (y - f) - d * (x - c)) / det)
    # bilinear needs a neighbour beyond each edge; when the output is coarser than the
    # source GDAL widens the kernel by the ratio, so pad by that many pixels too (the
    # ratio is taken in the source's units, which may be degrees)
    out_px = max((r - l) / grid.width, (t - b) / grid.height)
    pad = int(math.ceil(max(1.0, out_px / bf.resolution))) + 1
    c0 = max(0, int(math.floor(min(cols))) - pad)
    r0 = max(0, int(math.floor(min(rows))) - pad)
    c1 = min(bf.width, int(math.ceil(max(cols))) + pad)
    r1 = min(bf.height, int(math.ceil(max(rows))) + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    return (c0, r0, c1 - c0, r1 - r0)


_filter_lock = threading.Lock()
_MEM_WARNING = "Dataset has no geotransform"


def _ignore_spurious_mem_warning() -> None:
    """Silence rasterio's ``NotGeoreferencedWarning`` about its own in-memory datasets.

    ``reproject`` between arrays builds in-memory datasets and, under threads, sometimes
    reads their transform before setting it; the output is unaffected (a known rasterio
    quirk). ``warnings.catch_warnings`` is not thread-safe, so one narrow filter (this
    message, raised from ``rasterio.warp``) is kept installed instead (re-added if
    something, such as a test runner, reset the filters).
    """
    from rasterio.errors import NotGeoreferencedWarning

    def present():
        return any(f[0] == "ignore" and f[2] is NotGeoreferencedWarning and f[1] is not None
                   and f[1].pattern == _MEM_WARNING for f in warnings.filters)

    if present():
        return
    with _filter_lock:
        if not present():
            warnings.filterwarnings("ignore", message=_MEM_WARNING,
                                    category=NotGeoreferencedWarning, module=r"rasterio\.warp")


def _sample_band(bf: BandFile, grid: Grid, method: str, out: np.ndarray,
                 harm: Optional[sensors.Harmonisation] = None, band: str = "") -> int:
    """Resample the needed window of one band onto ``grid`` into ``out`` (NaN = no data).

    ``harm`` (Sentinel-2 reflectance bands) brings the stored values to the harmonised
    convention before resampling, with nodata already set aside. Returns how many
    source pixels were read (0 when the band does not reach the ROI).
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject
    from rasterio.windows import Window

    if not _intersects(bf, grid):
        return 0
    win = _source_window(bf, grid)
    if win is None:
        return 0
    col, row, width, height = win
    try:
        with rasterio.open(bf.path) as src:
            window = Window(col, row, width, height)
            arr = src.read(bf.index, window=window)
            src_crs = src.crs
    except Exception as exc:
        raise ProviderError(f"reading {bf.path!r} failed: {exc}") from exc
    a, b, c, d, e, f = bf.transform
    src_transform = Affine(a, b, c + a * col + b * row, d, e, f + d * col + e * row)
    nodata = bf.nodata
    if arr.dtype.kind == "f" or (harm is not None and not harm.identity):
        raw = arr
        arr = arr.astype(np.float32)
        if nodata is not None and not math.isnan(nodata):
            arr[raw == nodata] = np.float32(np.nan)
        nodata = float("nan")
        if harm is not None:
            arr = sensors.harmonise(arr, harm, band)
    reproject(source=arr, destination=out, src_transform=src_transform, src_crs=src_crs,
              src_nodata=nodata, dst_transform=grid.affine(), dst_crs=grid.crs,
              dst_nodata=float("nan"), resampling=getattr(Resampling, method),
              init_dest_nodata=True, num_threads=1)
    return int(width * height)


__all__ = ["LocalProvider", "Scene", "BandFile", "read_catalog"]
