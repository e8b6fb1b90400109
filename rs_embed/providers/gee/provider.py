"""The ``gee`` provider: one ``computePixels`` request per patch on the ROI's UTM grid."""

from __future__ import annotations

import copy
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from ...errors import ProviderError, SpecError
from ...geometry import roi_grid
from ...specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal
from ..base import Patch, Provider, current_fetch
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
                 sleep: Optional[Callable[[float], None]] = None, seed: Optional[int] = None):
        self.cloud_score_plus = _cloud_score_plus(cloud_score_plus)
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
    def limiter(self) -> _session.InFlightLimiter:
        return _session.limiter(self.session.project)

    def coverage(self) -> str:
        project = self.session.project or "Earth Engine's default project"
        return f"Google Earth Engine ({project}, {self.session.endpoint} endpoint)"

    def settings(self) -> dict:
        """What changes the pixels: the project (its assets and access) and cloud masking."""
        csp = self.cloud_score_plus
        return {"project": self.session.project, "cloud_score_plus": csp.to_dict() if csp else None}

    def check(self, sensor: SensorSpec) -> None:
        """Refuse what no request can serve: bad Sentinel-1 options, and bands that the
        collections rs_embed knows (Sentinel-2, Sentinel-1, GSE) do not have."""
        if not isinstance(sensor, SensorSpec):
            raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
        for plan in plan_requests([sensor], self.cloud_score_plus):
            known = plan.info.bands
            if known is None:
                continue
            unknown = [b for b in sensor.bands if b not in known]
            if unknown:
                hints = []
                for b in unknown:
                    alt = _closest_band(b, known)
                    if alt:
                        hints.append(f"{b!r} -> {alt!r}")
                hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
                raise SpecError(f"SensorSpec.bands {unknown} are not bands of the Earth Engine collection "
                                f"{plan.collection!r}{hint}; it has {list(known)}")

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
        plans = plan_requests(list(sensors), self.cloud_score_plus)
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
        for plan in plan_requests(list(sensors), self.cloud_score_plus):
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
            patches.append(Patch(data=data, bands=tuple(sensor.bands), grid=grid, meta=meta))
        return patches

    # -- off the hot path ----------------------------------------------------------
    def list_scenes(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                    sensor: SensorSpec, limit: int = 500) -> List[str]:
        """Ids of the scenes a fetch would composite (one extra round trip; for inspection)."""
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        plan = plan_requests([sensor], self.cloud_score_plus)[0]
        grid = roi_grid(spatial, plan.scale_m)
        col, _ = plan.build_collection(self.ee, grid, temporal)
        try:
            with self.limiter():
                return list(col.limit(int(limit)).aggregate_array("system:index").getInfo())
        except Exception as exc:
            from .pixels import classify
            raise classify(exc, f"listing scenes of {plan.collection}")[0] from exc


def _closest_band(name: str, known) -> Optional[str]:
    """``B08`` -> ``B8``, ``b4`` -> ``B4``, ``vv`` -> ``VV``: a known band that differs
    only in case or a leading zero."""
    import re

    m = re.match(r"^([A-Za-z]+)0*(\d+)([A-Za-z]?)$", name)
    flat = (m.group(1) + m.group(2) + m.group(3)).upper() if m else name.upper()
    for k in known:
        if k.upper() == flat or k.upper() == name.upper():
            return k
    return None


__all__ = ["GEEProvider"]
