"""From sensors to Earth Engine requests: which sensors share one request, and what it asks.

Sensors that read the same pixels (same collection, scale, window semantics, cloud
filter and compositing) differ only in their bands, so they share one
``computePixels`` request over the union of their bands; each gets its own validity
band so its masked pixels are counted exactly and filled with its own value.

The expression graph for a request is built here and nowhere else, so the graph a
golden test records is the graph production sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Dict, List, Optional, Sequence, Tuple

from ... import sensors
from ...errors import SpecError, warn
from ...geometry import Grid
from ...sensors import EECollection
from ...specs import SensorSpec, TemporalSpec
from ..base import DEFAULT_RESAMPLING, resampling_method
from .catalog import (CLOUD_SCORE_PLUS, S1_LINEAR, collection_info, s1_collection,
                      s1_orbit, s1_polarisations)

#: Bands rs_embed adds to every request (never returned to models).
SCENES_BAND = "_rs_scenes"
IW_SCENES_BAND = "_rs_iw_scenes"
VALID_PREFIX = "_rs_valid_"
#: Bytes per pixel of each kind of band in the NPY response.
_FLOAT_BYTES, _VALID_BYTES, _COUNT_BYTES = 4, 1, 2


@dataclass(frozen=True)
class CloudScorePlus:
    """Mask Sentinel-2 pixels whose Cloud Score+ ``band`` is below ``threshold``."""

    threshold: float = 0.6
    band: str = "cs_cdf"

    def __post_init__(self):
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0.0 <= float(self.threshold) <= 1.0:
            raise SpecError(f"cloud_score_plus threshold must be within [0, 1], got {self.threshold!r}")
        if self.band not in ("cs", "cs_cdf"):
            raise SpecError(f"cloud_score_plus band must be 'cs' or 'cs_cdf', got {self.band!r}")
        object.__setattr__(self, "threshold", float(self.threshold))

    def to_dict(self) -> dict:
        return {"collection": CLOUD_SCORE_PLUS, "band": self.band, "threshold": self.threshold}


@dataclass
class RequestPlan:
    """One ``computePixels`` request serving one or more sensors."""

    info: EECollection
    collection: str  # the collection actually read (S1 linear/dB resolved)
    scale_m: float
    composite: str
    cloud_property: Optional[str]
    cloudy_pct: float
    orbit: Optional[str]
    s1_require_iw: bool
    s1_relax_iw_on_empty: bool
    cloud_score_plus: Optional[CloudScorePlus]
    resampling: str = DEFAULT_RESAMPLING
    requested_collection: Optional[str] = None  # when a non-harmonised id was asked for
    sensors: List[SensorSpec] = field(default_factory=list)
    positions: List[int] = field(default_factory=list)  # index of each sensor in the caller's list
    bands: List[str] = field(default_factory=list)  # union, first-seen order
    mask_sets: List[Tuple[str, ...]] = field(default_factory=list)
    sensor_mask: List[int] = field(default_factory=list)

    # -- grouping ----------------------------------------------------------------
    def add(self, sensor: SensorSpec, position: int) -> None:
        self.sensors.append(sensor)
        self.positions.append(position)
        for b in sensor.bands:
            if b not in self.bands:
                self.bands.append(b)
        if sensor.bands not in self.mask_sets:
            self.mask_sets.append(sensor.bands)
        self.sensor_mask.append(self.mask_sets.index(sensor.bands))

    @property
    def is_s1(self) -> bool:
        return self.info.family == "s1"

    @property
    def counts_iw(self) -> bool:
        return self.is_s1 and self.s1_require_iw and self.s1_relax_iw_on_empty

    def valid_band(self, k: int) -> str:
        return f"{VALID_PREFIX}{k}"

    @property
    def band_ids(self) -> List[str]:
        ids = list(self.bands) + [self.valid_band(k) for k in range(len(self.mask_sets))]
        ids.append(SCENES_BAND)
        if self.counts_iw:
            ids.append(IW_SCENES_BAND)
        return ids

    @property
    def bytes_per_pixel(self) -> int:
        n_count = 2 if self.counts_iw else 1
        return (_FLOAT_BYTES * len(self.bands) + _VALID_BYTES * len(self.mask_sets)
                + _COUNT_BYTES * n_count)

    def dtypes(self) -> Dict[str, str]:
        """NumPy dtype of each band of the response."""
        out = {b: "float32" for b in self.bands}
        out.update({self.valid_band(k): "uint8" for k in range(len(self.mask_sets))})
        out[SCENES_BAND] = "uint16"
        if self.counts_iw:
            out[IW_SCENES_BAND] = "uint16"
        return out

    def cloud_filter(self) -> Optional[str]:
        if self.cloud_property and self.cloudy_pct < 100:
            return f"{self.cloud_property} <= {self.cloudy_pct:g}"
        return None

    def window(self, temporal: Optional[TemporalSpec]) -> Optional[Tuple[str, str]]:
        """The ``[start, end)`` dates filtered on (an annual product: its start year)."""
        if temporal is None:
            return None
        if self.info.annual:
            y = temporal.start_date.year
            return (date(y, 1, 1).isoformat(), date(y + 1, 1, 1).isoformat())
        return (temporal.start, temporal.end)

    def band_resampling(self) -> Dict[str, str]:
        """How each band is sampled onto the grid (the providers' shared policy).

        Embedding products (annual) are sampled, never interpolated.
        """
        if self.info.annual:
            return {b: "nearest" for b in self.bands}
        return {b: resampling_method(b, self.resampling) for b in self.bands}

    def radiometry(self) -> dict:
        """What the values mean and where that fact comes from (the vocabulary)."""
        prod = sensors.product(self.collection)
        if prod is not None and prod.s2_baseline_offset:
            rec = sensors.NONE_NEEDED.to_dict()
            rec["source"] = f"Earth Engine harmonised collection {self.collection}"
            if self.requested_collection:
                rec["collection_requested"] = self.requested_collection
                rec["note"] = (f"{self.requested_collection} is not harmonised; its harmonised twin "
                               f"{self.collection} was read")
            return rec
        if prod is not None:
            r = prod.radiometry_of(self.bands[0]) if self.bands else prod.radiometry["*"]
            return {"convention": "as Earth Engine serves it", **r.to_dict()}
        return {"convention": "as Earth Engine serves it", "source": "collection not in the sensor vocabulary"}

    def describe(self) -> dict:
        """JSON-ready summary of what this request filters and composites."""
        d = {"collection": self.collection, "composite": self.composite,
             "scale_m": self.scale_m, "cloud_filter": self.cloud_filter(),
             "request_bands": list(self.bands), "resampling": self.band_resampling(),
             "resampling_policy": self.resampling, "radiometry": self.radiometry()}
        if self.cloud_score_plus is not None:
            d["cloud_score_plus"] = self.cloud_score_plus.to_dict()
        if self.is_s1:
            d["s1"] = {"orbit": self.orbit, "require_iw": self.s1_require_iw,
                       "relax_iw_on_empty": self.s1_relax_iw_on_empty,
                       "linear": self.collection == S1_LINEAR}
        return d

    # -- expression graph ------------------------------------------------------------
    def build_collection(self, ee, grid: Grid, temporal: Optional[TemporalSpec]):
        """The filtered scenes (and, for relaxed Sentinel-1, the IW scene count)."""
        region = ee.Geometry.Rectangle(list(grid.bounds), grid.crs, False)
        col = ee.ImageCollection(self.collection).filterBounds(region)
        window = self.window(temporal)
        if window is not None:
            col = col.filterDate(window[0], window[1])
        if self.cloud_filter():
            col = col.filter(ee.Filter.lte(self.cloud_property, self.cloudy_pct))
        iw_count = None
        if self.is_s1:
            for pol in s1_polarisations(tuple(self.bands)):
                col = col.filter(ee.Filter.listContains("transmitterReceiverPolarisation", pol))
            if self.orbit:
                col = col.filter(ee.Filter.eq("orbitProperties_pass", self.orbit))
            if self.s1_require_iw:
                iw = col.filter(ee.Filter.eq("instrumentMode", "IW"))
                if self.s1_relax_iw_on_empty:
                    iw_count = iw.size()
                    col = ee.ImageCollection(ee.Algorithms.If(iw_count.gt(0), iw, col))
                else:
                    col = iw
        return col, iw_count

    def build_image(self, ee, grid: Grid, temporal: Optional[TemporalSpec]):
        """The ``ee.Image`` whose pixels on ``grid`` answer this request."""
        col, iw_count = self.build_collection(ee, grid, temporal)
        scenes = col.size()

        bands = list(self.bands)
        csp = self.cloud_score_plus
        methods = self.band_resampling()
        smooth = [b for b in bands if methods[b] == "bilinear"]
        other = [b for b in bands if methods[b] != "bilinear"]

        def prepare(img):
            img = ee.Image(img)
            if csp is not None:
                img = img.linkCollection(ee.ImageCollection(CLOUD_SCORE_PLUS), [csp.band])
                img = img.updateMask(img.select(csp.band).gte(csp.threshold))
            img = img.select(bands).toFloat()
            # per scene, in its native projection, before compositing drops it
            if smooth and not other:
                return img.resample("bilinear")
            if smooth:
                return img.select(smooth).resample("bilinear").addBands(img.select(other)).select(bands)
            return img

        # A fully masked image with the right bands keeps an empty window answerable
        # (its scene count says 0) instead of failing on a band-less composite.
        placeholder = (ee.Image.constant([0] * len(bands)).rename(bands).toFloat()
                       .updateMask(0).set("system:time_start", 0))
        stack = col.map(prepare).merge(ee.ImageCollection([placeholder]))
        if self.composite == "mosaic":
            composite = stack.sort("system:time_start").mosaic()  # latest scene on top
        else:
            composite = stack.median()

        layers = [composite.unmask(0, False)]
        for k, mask_bands in enumerate(self.mask_sets):
            valid = (composite.select(list(mask_bands)).mask().reduce(ee.Reducer.min())
                     .gt(0).unmask(0, False).toUint8().rename(self.valid_band(k)))
            layers.append(valid)
        layers.append(ee.Image.constant(scenes).toUint16().rename(SCENES_BAND))
        if iw_count is not None:
            layers.append(ee.Image.constant(iw_count).toUint16().rename(IW_SCENES_BAND))
        return ee.Image.cat(layers)


def grid_param(grid: Grid, col0: int = 0, row0: int = 0,
               width: Optional[int] = None, height: Optional[int] = None) -> dict:
    """The ``computePixels`` grid of ``grid`` (or of its window starting at col0/row0)."""
    a, b, c, d, e, f = grid.transform
    return {
        "dimensions": {"width": int(width if width is not None else grid.width),
                       "height": int(height if height is not None else grid.height)},
        "affineTransform": {"scaleX": a, "shearX": b, "translateX": c + a * col0 + b * row0,
                            "shearY": d, "scaleY": e, "translateY": f + d * col0 + e * row0},
        "crsCode": grid.crs,
    }


def _request_key(sensor: SensorSpec, info: EECollection, collection: str) -> tuple:
    key = [collection, float(sensor.scale_m), sensor.composite]
    key.append(float(sensor.cloudy_pct) if info.cloud_property else None)
    if info.family == "s1":
        key += [s1_orbit(sensor), bool(sensor.s1_require_iw), bool(sensor.s1_relax_iw_on_empty)]
    return tuple(key)


_warned_unharmonised: set = set()


def harmonised_collection(collection: str) -> str:
    """The collection rs_embed reads for ``collection``: Earth Engine's non-harmonised
    Sentinel-2 ids (``COPERNICUS/S2``, ``COPERNICUS/S2_SR``) are read from their harmonised
    twins, so scenes after 2022-01-25 carry no +1000 DN offset; said once per process."""
    target = sensors.harmonised_ee_id(collection)
    if target != collection and collection not in _warned_unharmonised:
        _warned_unharmonised.add(collection)
        warn(f"Earth Engine's {collection} is not harmonised: scenes from 2022-01-25 on carry "
             f"ESA's +1000 DN offset. rs_embed reads {target} instead, so every date follows one "
             f"radiometric convention; ask for {target} to silence this warning")
    return target


def plan_requests(sensors_: Sequence[SensorSpec],
                  cloud_score_plus: Optional[CloudScorePlus] = None,
                  resampling: str = DEFAULT_RESAMPLING) -> List[RequestPlan]:
    """Group ``sensors_`` into the fewest requests that return exactly their pixels."""
    plans: Dict[tuple, RequestPlan] = {}
    for pos, sensor in enumerate(sensors_):
        if not isinstance(sensor, SensorSpec):
            raise SpecError(f"sensors[{pos}] must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
        info = collection_info(sensor.collection)
        collection = s1_collection(sensor) if info.family == "s1" else harmonised_collection(sensor.collection)
        if collection != sensor.collection:
            info = collection_info(collection)
        key = _request_key(sensor, info, collection)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = RequestPlan(
                info=info, collection=collection, scale_m=float(sensor.scale_m),
                composite=sensor.composite, cloud_property=info.cloud_property,
                cloudy_pct=float(sensor.cloudy_pct),
                orbit=s1_orbit(sensor) if info.family == "s1" else None,
                s1_require_iw=bool(sensor.s1_require_iw) and info.family == "s1",
                s1_relax_iw_on_empty=bool(sensor.s1_relax_iw_on_empty) and info.family == "s1",
                cloud_score_plus=cloud_score_plus if info.cloud_score_plus else None,
                resampling=resampling,
                requested_collection=sensor.collection if collection != sensor.collection
                and info.family == "s2" else None)
        plan.add(sensor, pos)
    return list(plans.values())


__all__ = ["RequestPlan", "CloudScorePlus", "plan_requests", "grid_param",
           "SCENES_BAND", "IW_SCENES_BAND", "VALID_PREFIX"]
