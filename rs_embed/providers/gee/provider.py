"""The ``gee`` provider: one ``computePixels`` request per patch on the ROI's UTM grid."""

from __future__ import annotations

import copy
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from ...errors import ProviderError, SpecError
from ...geometry import roi_grid
from ...specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal
from ..base import DEFAULT_RESAMPLING, Patch, Provider, check_resampling, current_fetch
from . import session as _session
from .pixels import MAX_REQUEST_BYTES, PixelClient, RequestStats, RetryPolicy
from .plan import IW_SCENES_BAND, SCENES_BAND, CloudScorePlus, RequestPlan, plan_requests


def _cloud_score_plus(value) -> Optional[CloudScorePlus]:
    if value is None or value is False:
        return None
    if value is True:
        return CloudScorePlus()
    if isinstance(value, CloudScorePlus):
        return value
    if isinstance(value, (int, float)):
        return CloudScorePlus(threshold=value)
    raise SpecError(f"cloud_score_plus must be None, True, a threshold in [0, 1] or a "
                    f"CloudScorePlus, got {value!r}")


class GEEProvider(Provider):
    """Google Earth Engine imagery, sampled on exactly the grid the local provider uses.

    ``project``: the Cloud project to bill (else ``EE_PROJECT``, ``GOOGLE_CLOUD_PROJECT``,
    or Earth Engine's configured default). ``high_volume``: use the high-volume endpoint
    (recommended for many requests against stored assets). ``cloud_score_plus``: mask
    Sentinel-2 pixels whose Cloud Score+ ``cs_cdf`` is below a threshold (``True`` = 0.6).
    ``max_retries`` / ``retry_base_s`` / ``retry_cap_s``: backoff for transient errors.
    ``max_request_bytes``: answers larger than this are fetched as tiles (Earth Engine's
    limit is 48 MB). ``workload_tag`` labels the requests in Cloud billing reports.
    ``resampling``: the policy shared with the local provider (``"bilinear"``: continuous
    bands interpolated, categorical bands nearest; ``"nearest"``: every band nearest),
    applied per scene with ``ee.Image.resample`` before compositing. Non-harmonised
    Sentinel-2 ids (``COPERNICUS/S2``, ``COPERNICUS/S2_SR``) are read from their
    harmonised twins, with one warning.

    The provider is thread-safe: the export engine calls :meth:`fetch` from many
    threads, and every request passes the project's process-wide in-flight limiter
    (``set_max_concurrent``, default 40).

    It retries by itself (``retries_itself``): one fetch spends at most ``max_retries``
    retries over all its requests, within the caller's ``fetch_timeout_s``; requests
    time out after ``fetch_timeout_s`` too.
    """

    name = "gee"
    retries_itself = True

    def __init__(self, project: Optional[str] = None, *, high_volume: bool = True,
                 cloud_score_plus: Union[None, bool, float, CloudScorePlus] = None,
                 max_retries: int = 5, retry_base_s: float = 1.0, retry_cap_s: float = 60.0,
                 max_request_bytes: int = MAX_REQUEST_BYTES,
                 workload_tag: Optional[str] = "rs-embed",
                 credentials: Any = "persistent", http_transport: Any = None,
                 sleep: Optional[Callable[[float], None]] = None, seed: Optional[int] = None,
                 resampling: str = DEFAULT_RESAMPLING):
        self.cloud_score_plus = _cloud_score_plus(cloud_score_plus)
        self.resampling = check_resampling(resampling)
        if isinstance(max_request_bytes, bool) or not isinstance(max_request_bytes, int) \
                or not 1024 <= max_request_bytes <= MAX_REQUEST_BYTES:
            raise SpecError(f"max_request_bytes must be an integer in [1024, {MAX_REQUEST_BYTES}], "
                            f"got {max_request_bytes!r}")
        try:
            policy = RetryPolicy(max_retries, retry_base_s, retry_cap_s)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        self.ee = _session.import_ee()
        self.session = _session.initialize(project, high_volume=high_volume,
                                           credentials=credentials, http_transport=http_transport)
        kwargs = {} if sleep is None else {"sleep": sleep}
        self._client = PixelClient(policy=policy, limiter=self.limiter,
                                   max_request_bytes=max_request_bytes,
                                   workload_tag=workload_tag, seed=seed, **kwargs)

    # -- Provider interface ------------------------------------------------------
    @classmethod
    def availability(cls) -> Optional[str]:
        """None when Earth Engine can be used now, else why not (offline check)."""
        status = _session.availability()
        if status is True:
            return None
        return status or "earthengine-api is not installed: pip install 'rs_embed[gee]'"

    def limiter(self) -> _session.InFlightLimiter:
        return _session.limiter(self.session.project)

    def coverage(self) -> str:
        project = self.session.project or "Earth Engine's default project"
        return f"Google Earth Engine ({project}, {self.session.endpoint} endpoint)"

    def settings(self) -> dict:
        """What changes the pixels: the project (its assets and access), cloud masking and
        the resampling policy."""
        csp = self.cloud_score_plus
        return {"project": self.session.project, "cloud_score_plus": csp.to_dict() if csp else None,
                "resampling": self.resampling}

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Why no request can serve ``sensor``: bad Sentinel-1 options, or bands that the
        products of the sensor vocabulary say the collection lacks (``B10`` of Level-2A,
        ``B08`` for ``B8``); None for collections the vocabulary does not know (the
        server decides)."""
        if not isinstance(sensor, SensorSpec):
            return f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}"
        try:
            plans = plan_requests([sensor], self.cloud_score_plus, self.resampling)
        except SpecError as exc:
            return str(exc)
        for plan in plans:
            why = _unknown_bands(plan.collection, sensor.bands)
            if why:
                return why
        return None

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        return self.fetch_many(spatial, temporal, [sensor])[0]

    def fetch_many(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                   sensors: Sequence[SensorSpec], *,
                   return_exceptions: bool = False) -> List[Union[Patch, Exception]]:
        """Patches for several sensors over one ROI, sharing requests where possible.

        Sensors of the same collection, scale, cloud filter and compositing are served
        by one ``computePixels`` request over the union of their bands. With
        ``return_exceptions=True`` a failed request puts its ``ProviderError`` in the
        slots of the sensors it served and the other requests still run.
        """
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        if isinstance(sensors, SensorSpec) or not isinstance(sensors, (list, tuple)) or not sensors:
            raise SpecError(f"sensors must be a non-empty list of SensorSpec, got {sensors!r}")
        _session.use_request_timeout(current_fetch().timeout_s)
        plans = plan_requests(list(sensors), self.cloud_score_plus, self.resampling)
        grids = {p.scale_m: roi_grid(spatial, p.scale_m) for p in plans}  # bad ROI fails before any request
        out: List[Union[Patch, Exception, None]] = [None] * len(sensors)
        for plan in plans:
            try:
                patches = self._fetch_plan(plan, spatial, temporal, grids[plan.scale_m])
            except ProviderError as exc:
                if not return_exceptions:
                    raise
                patches = [exc] * len(plan.sensors)
            for pos, patch in zip(plan.positions, patches):
                out[pos] = patch
        return out  # type: ignore[return-value]

    # -- requests ------------------------------------------------------------------
    def request_params(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                       sensors: Sequence[SensorSpec]) -> List[dict]:
        """The serialised ``computePixels`` bodies a fetch would send (nothing is sent).

        Useful to see exactly what Earth Engine will be asked, e.g. in the Code Editor.
        """
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        bodies = []
        for plan in plan_requests(list(sensors), self.cloud_score_plus, self.resampling):
            grid = roi_grid(spatial, plan.scale_m)
            params = self._client.params(plan.build_image(self.ee, grid, temporal), grid, plan.band_ids)
            params["expression"] = self.ee.serializer.encode(params["expression"])
            params["fileFormat"] = "NPY"  # the client sends NUMPY_NDARRAY as NPY and decodes it
            bodies.append(params)
        return bodies

    def _fetch_plan(self, plan: RequestPlan, spatial, temporal, grid) -> List[Patch]:
        ee = self.ee
        window = plan.window(temporal)
        where = f"{plan.collection} over {spatial!r}"
        if window:
            where += f" in [{window[0]}, {window[1]})"
        stats = RequestStats()
        image = plan.build_image(ee, grid, temporal)
        arrays = self._client.fetch(ee, image, grid, plan.band_ids, plan.dtypes(),
                                    plan.bytes_per_pixel, f"Earth Engine request for {where}", stats)
        n_scenes = int(arrays[SCENES_BAND].max()) if arrays[SCENES_BAND].size else 0
        if n_scenes == 0:
            filt = plan.cloud_filter()
            extra = f" with {filt}" if filt else ""
            if plan.is_s1 and plan.orbit:
                extra += f" on {plan.orbit} orbits"
            raise ProviderError(
                f"no {plan.collection} scenes{extra} cover {spatial!r} in the window "
                + (f"[{window[0]}, {window[1]})" if window else "(no time filter)")
                + "; widen the time window or relax the filters", transient=False)
        described = plan.describe()
        if plan.counts_iw:
            iw = int(arrays[IW_SCENES_BAND].max())
            described["s1"]["iw_relaxed"] = iw == 0
        base_meta = {
            "backend": "gee",
            **described,
            "temporal": {"start": window[0], "end": window[1]} if window else None,
            "n_scenes": n_scenes,
            "requests": stats.requests,
            "retries": stats.retries,
            "shared_by": len(plan.sensors),
            **self.session.to_dict(),
        }
        patches = []
        for sensor, k in zip(plan.sensors, plan.sensor_mask):
            valid = arrays[plan.valid_band(k)].astype(bool)
            data = np.stack([arrays[b] for b in sensor.bands]).astype(np.float32, copy=False)
            n_bad = int(valid.size - np.count_nonzero(valid))
            if n_bad:
                data[:, ~valid] = np.float32(sensor.fill_value)
            meta = dict(copy.deepcopy(base_meta), fill_value=sensor.fill_value,
                        nodata_fraction=n_bad / float(valid.size) if valid.size else 0.0,
                        nodata_pixels=n_bad)
            meta["resampling"] = {b: meta["resampling"][b] for b in sensor.bands}
            if sensor.collection != plan.collection and plan.info.family == "s2":
                meta["collection_requested"] = sensor.collection
                meta["radiometry"]["collection_requested"] = sensor.collection
            elif sensor.collection == plan.collection:
                meta["radiometry"].pop("collection_requested", None)
                meta["radiometry"].pop("note", None)
            patches.append(Patch(data=data, bands=tuple(sensor.bands), grid=grid, meta=meta, valid=valid))
        return patches

    # -- off the hot path ----------------------------------------------------------
    def list_scenes(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                    sensor: SensorSpec, limit: int = 500) -> List[str]:
        """Ids of the scenes a fetch would composite (one extra round trip; for inspection)."""
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        plan = plan_requests([sensor], self.cloud_score_plus, self.resampling)[0]
        grid = roi_grid(spatial, plan.scale_m)
        col, _ = plan.build_collection(self.ee, grid, temporal)
        try:
            with self.limiter():
                return list(col.limit(int(limit)).aggregate_array("system:index").getInfo())
        except Exception as exc:
            from .pixels import classify
            raise classify(exc, f"listing scenes of {plan.collection}")[0] from exc


def _unknown_bands(collection: str, bands) -> Optional[str]:
    """Bands an Earth Engine collection of a known product does not have, with the
    spelling Earth Engine uses where one was meant (band ids are matched exactly)."""
    import re

    from ... import sensors

    prod = sensors.product(collection)
    if prod is None:
        return None
    known = set(prod.bands) | set(prod.quality_bands)
    bad, hints = [], []
    for b in bands:
        if b in known:
            continue
        hit = prod.sensor.lookup(b) if prod.sensor.bands else None
        if hit is not None and hit.name != b:
            bad.append(b)  # Earth Engine matches band ids exactly: B08 is not B8
            hints.append(f"{b!r} -> {hit.name!r}")
        elif hit is not None and hit.kind in ("reflectance", "thermal", "backscatter") and hit.name not in known:
            bad.append(b)  # a measured band of the sensor this product lacks (B10 of Level-2A)
        elif hit is None and (not prod.sensor.bands or (
                prod.sensor is sensors.SENTINEL2 and re.fullmatch(r"B\d+A?", b, re.IGNORECASE))):
            bad.append(b)  # no band of the sensor at all
    if not bad:
        return None
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    have = sorted(known, key=lambda x: (len(x), x))
    shown = ", ".join(have) if len(have) <= 20 else f"{', '.join(have[:6])}, ... {have[-1]} ({len(have)} bands)"
    return (f"SensorSpec.bands {bad} are not bands of the Earth Engine collection {collection!r}"
            f"{hint}; its bands: {shown}")


__all__ = ["GEEProvider"]
