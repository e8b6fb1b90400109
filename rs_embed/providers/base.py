"""The provider interface: imagery in, one float32 CHW patch out.

A provider knows where pixels come from (local rasters, Earth Engine, ...) and
nothing about models. Given an ROI, a time window and a :class:`SensorSpec`, it
returns a :class:`Patch` on the ROI's grid (:func:`rs_embed.geometry.roi_grid`).

What the caller allows a fetch (how long, whether to stop) travels beside the call in
a :class:`FetchContext` (see :func:`current_fetch`), so the ``fetch`` signature stays
the same for every backend and every caller.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import ClassVar, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import sensors
from ..errors import ProviderError, SpecError, warn
from ..geometry import Grid
from ..specs import SensorSpec, SpatialSpec, TemporalSpec

#: How every provider samples bands onto the ROI grid, so the same request gives the
#: same pixels whatever the backend: ``"bilinear"`` interpolates continuous bands
#: (reflectance, backscatter) and takes the nearest pixel of categorical ones (classes,
#: bit flags: see :func:`rs_embed.sensors.is_categorical`); ``"nearest"`` takes the
#: nearest pixel of every band.
RESAMPLING_POLICIES = ("bilinear", "nearest")
DEFAULT_RESAMPLING = "bilinear"


def check_resampling(policy: str) -> str:
    if policy not in RESAMPLING_POLICIES:
        raise SpecError(f"resampling must be one of {RESAMPLING_POLICIES}, got {policy!r}")
    return policy


def resampling_method(band: str, policy: str = DEFAULT_RESAMPLING, categorical: Optional[bool] = None) -> str:
    """The resampling a band gets under ``policy`` (``categorical`` overrides the vocabulary)."""
    if categorical is None:
        categorical = sensors.is_categorical(band)
    return "nearest" if policy == "nearest" or categorical else "bilinear"


#: default of ``export_batch(fetch_timeout_s=...)``: the longest one fetch (every
#: request a provider sends for one patch, its own retries included) may take.
#: Earth Engine gives up on interactive requests after about five minutes.
DEFAULT_FETCH_TIMEOUT_S = 300.0


class FetchTimeout(ProviderError):
    """A fetch ran past its time budget (``fetch_timeout_s``); transient."""

    def __init__(self, message: str):
        super().__init__(message, transient=True)


class FetchCancelled(ProviderError):
    """The caller stopped the export (``cancel`` event, Ctrl-C) while this fetch ran."""

    def __init__(self, message: str = "the fetch was cancelled"):
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class FetchContext:
    """What the caller allows one fetch: a time budget and a way to stop it.

    ``timeout_s`` bounds each request a provider sends (its socket or HTTP timeout);
    ``deadline`` (a :func:`time.monotonic` value) is when the whole fetch, retries
    inside the provider included, must be over; ``cancel`` is set when the caller
    stops. Providers ask :meth:`request_timeout` before each request and call
    :meth:`check` between steps (scenes, bands, retries).
    """

    timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    deadline: Optional[float] = None
    cancel: Optional[threading.Event] = field(default=None, compare=False)
    what: str = "fetch"

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def check(self) -> None:
        """Raise :class:`FetchCancelled` or :class:`FetchTimeout` when the fetch must stop."""
        if self.cancelled():
            raise FetchCancelled(f"{self.what} was cancelled")
        left = self.remaining()
        if left is not None and left <= 0:
            raise FetchTimeout(f"{self.what} ran past its time budget "
                               f"(fetch_timeout_s={self.timeout_s:g})")

    def request_timeout(self) -> float:
        """The timeout to give the next request: ``timeout_s``, shortened to the deadline."""
        self.check()
        left = self.remaining()
        return self.timeout_s if left is None else max(0.001, min(self.timeout_s, left))

    def allows_wait(self, seconds: float) -> bool:
        """Whether sleeping ``seconds`` (a retry backoff) still leaves time for a request."""
        left = self.remaining()
        return not self.cancelled() and (left is None or seconds < left)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff), waking at once when the fetch is cancelled."""
        if self.cancel is not None:
            if self.cancel.wait(max(0.0, seconds)):
                raise FetchCancelled(f"{self.what} was cancelled")
        elif seconds > 0:
            time.sleep(seconds)


_CURRENT: contextvars.ContextVar[FetchContext] = contextvars.ContextVar("rs_embed_fetch")
_DEFAULT = FetchContext()


def current_fetch() -> FetchContext:
    """The :class:`FetchContext` of the fetch running in this thread (a default one
    outside any export: ``DEFAULT_FETCH_TIMEOUT_S`` per request, no deadline)."""
    return _CURRENT.get(_DEFAULT)


@contextlib.contextmanager
def fetch_scope(ctx: FetchContext) -> Iterator[FetchContext]:
    """Run the block (one fetch) under ``ctx``; :func:`current_fetch` returns it there."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


@dataclass
class Patch:
    """A fetched input: ``data`` float32 ``(C, H, W)`` in ``bands`` order on ``grid``
    (``(T, C, H, W)`` for a time series, see :meth:`Provider.fetch_frames`).

    ``valid`` is the nodata mask ``(H, W)`` (``(T, H, W)``: per frame for a time series):
    True where every band holds imagery; the
    other pixels of ``data`` hold ``fill_value`` (how exports store them), and models
    fill them as their family documents. ``meta`` holds provenance: ``scenes`` (ids
    used), ``nodata_fraction`` (share of pixels outside ``valid``), ``composite``,
    ``temporal`` (the window used), ``radiometry`` (scale, offset and where that came
    from), ``resampling`` and any backend-specific detail.
    """

    data: np.ndarray
    bands: Tuple[str, ...]
    grid: Grid
    meta: dict = field(default_factory=dict)
    valid: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.valid is None:
            fill = self.meta.get("fill_value")
            finite = np.isfinite(self.data).all(axis=-3)
            if fill is not None and not np.isnan(fill):
                finite &= ~(self.data == np.float32(fill)).all(axis=-3)
            self.valid = finite
        if "nodata_fraction" not in self.meta and self.valid.size:
            self.meta["nodata_fraction"] = float(1.0 - self.valid.mean())

    def describe(self) -> dict:
        """JSON-ready metadata for manifests and ``Embedding.meta``."""
        return {"crs": self.grid.crs, "transform": list(self.grid.transform),
                "shape": list(self.data.shape), "bands": list(self.bands), **self.meta}


class Provider(ABC):
    """Base class of imagery backends; register new ones with ``register_provider``.

    The contract every provider keeps (the export engine relies on it):

    * :meth:`fetch` returns a :class:`Patch` or raises :class:`ProviderError`
      (``transient=True`` when trying again can help). It may be called from many
      threads at once.
    * **Time.** :func:`current_fetch` gives the :class:`FetchContext` of the call. Give
      each request to the backend ``ctx.request_timeout()`` as its timeout (socket,
      HTTP, ``GDAL_HTTP_TIMEOUT``), call ``ctx.check()`` between steps (scenes, bands,
      tiles) and before each retry, and wait with ``ctx.sleep()``. A provider that
      retries by itself sets ``retries_itself = True``, keeps all retries of one fetch
      within one budget and the context's deadline, and marks the error it finally
      raises with ``attempts`` (the engine then does not retry it again). The engine
      abandons a fetch still running past its deadline, so a provider that ignores the
      context cannot hang an export, but it leaves a thread behind.
    * **Pre-flight.** :meth:`check_sensor` says, cheaply and without fetching, why the
      backend cannot serve a sensor (unknown collection or band): the export refuses
      the request with that reason before any file is written.
    * **Identity.** :meth:`settings` returns every setting that changes the pixels
      (catalog, resampling, cloud masking, project, ...): it is part of an export's
      request fingerprint, so a resume never keeps files made with other settings.
    * **Time series.** :meth:`fetch_frames` serves ``SensorSpec.frames``; the export
      engine fetches the bins of the default implementation one by one, each under
      this contract.
    * **Routing.** :meth:`route` names the provider that really serves a sensor (a
      router of precomputed products answers with the routed provider), so the engine
      applies that provider's contract.
    """

    #: registry name, e.g. ``"local"`` or ``"gee"``
    name: ClassVar[str] = ""
    #: True when :meth:`fetch` retries transient failures itself (see the contract)
    retries_itself: ClassVar[bool] = False

    @abstractmethod
    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        """Return the patch for one ROI; raise ``ProviderError`` when nothing covers it."""

    def fetch_many(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                   sensors: Sequence[SensorSpec], *,
                   return_exceptions: bool = False) -> List[Union[Patch, Exception]]:
        """Patches for several sensors over one ROI, in ``sensors`` order.

        Optional. Callers with several models on one ROI should use it: a provider that
        can serve sensors of one collection with a single request over the union of
        their bands (``gee``) overrides it; the default fetches each sensor in turn.
        With ``return_exceptions=True`` a sensor that fails gets its ``ProviderError``
        in its slot instead of failing the others.
        """
        out: List[Union[Patch, Exception]] = []
        for s in sensors:
            try:
                out.append(self.fetch(spatial, temporal, s))
            except Exception as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def fetch_frames(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                     sensor: SensorSpec) -> Patch:
        """A time series for ``sensor.frames``: the window cut into bins
        (:func:`frame_windows`), one composite each (:meth:`fetch` per bin), stacked
        ``(T, C, H, W)`` by :func:`stack_frames`.

        Optional: a backend that can serve a series in one request overrides it. The
        export engine fetches the bins of the default implementation as separate
        fetches, each with its own time budget, so one hung bin cannot hold up the
        series; here (outside an export) the context is looked at between bins.
        """
        n = int(sensor.frames or 1)
        single = dataclasses.replace(sensor, frames=None)
        if temporal is None:
            return single_frame(self.fetch(spatial, None, single), n)
        ctx = current_fetch()
        windows = frame_windows(temporal, n)
        results: List[Union[Patch, BaseException]] = []
        for win in windows:
            ctx.check()
            try:
                results.append(self.fetch(spatial, win, single))
            except ProviderError as exc:
                results.append(exc)
        return stack_frames(results, windows, sensor, temporal)

    def route(self, sensor: SensorSpec) -> "Provider":
        """The provider that serves ``sensor``: this one, except for a router, which
        answers with the provider it hands the sensor to (the engine then applies that
        provider's own contract: its retries, its ``fetch_many``, its name in errors)."""
        return self

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Why this backend cannot serve ``sensor`` anywhere (collection or bands it does
        not hold), or None when it can or cannot tell without fetching. Cheap: no pixel is
        read. An export refuses the request with this reason (``SpecError``) before any
        file is written."""
        return None

    @classmethod
    def availability(cls) -> Optional[str]:
        """Why this backend cannot be used here now (missing client, no credentials), or
        None. Cheap and offline; the class is asked, so nothing is opened."""
        return None

    def coverage_fraction(self, spatials: Sequence[SpatialSpec], temporal: Optional[TemporalSpec] = None,
                          sensor: Optional[SensorSpec] = None) -> List[Optional[float]]:
        """Share (0..1) of each ROI's grid that lies inside this backend's imagery, from
        footprints alone (no pixels read); None where the backend cannot tell (a global
        archive such as Earth Engine)."""
        return [None] * len(spatials)

    def settings(self) -> dict:
        """JSON-ready settings that change the pixels this provider returns."""
        return {}

    def identity(self) -> dict:
        """Class and :meth:`settings`: what an export's fingerprint records of the provider."""
        cls = type(self)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", **self.settings()}

    def coverage(self) -> str:
        """A one-line human description of what this provider can serve."""
        return self.name

    def close(self) -> None:
        """Release open files or sessions (optional)."""


def frame_windows(temporal: TemporalSpec, n: int) -> List[TemporalSpec]:
    """``[start, end)`` cut into ``n`` consecutive bins.

    A window of whole calendar months whose month count ``n`` divides is cut on month
    boundaries (a year into 12 months, as monthly time series are made); any other
    window into bins of (nearly) equal whole days, at most one a day.
    """
    s, e = temporal.start_date, temporal.end_date
    months = (e.year - s.year) * 12 + e.month - s.month
    if s.day == 1 and e.day == 1 and n >= 1 and months >= n and months % n == 0:
        step = months // n
        edges = [date(s.year + (s.month - 1 + i * step) // 12, (s.month - 1 + i * step) % 12 + 1, 1)
                 for i in range(n + 1)]
        return [TemporalSpec.range(a.isoformat(), b.isoformat()) for a, b in zip(edges[:-1], edges[1:])]
    days = (temporal.end_date - temporal.start_date).days
    n = max(1, min(int(n), days))
    edges = [temporal.start_date + timedelta(days=round(i * days / n)) for i in range(n + 1)]
    return [TemporalSpec.range(a.isoformat(), b.isoformat()) for a, b in zip(edges[:-1], edges[1:])]


def empty_bin(exc: BaseException) -> bool:
    """Whether a bin's failure means "no imagery in this bin" (a definite, non-transient
    provider answer) rather than a failure of the whole series (a transient error after
    its retries, a cancel, a time-out, a bug)."""
    return (isinstance(exc, ProviderError) and not exc.transient
            and not isinstance(exc, (FetchCancelled, FetchTimeout)))


def single_frame(patch: Patch, requested: int) -> Patch:
    """A composite standing for a series that could not be binned (no time window): one
    frame, said once, with what was asked for in meta."""
    warn(f"a {requested}-frame time series needs a temporal window; fetched one composite "
         f"of the provider's default window instead")
    patch.data = patch.data[None]
    if patch.valid is not None and patch.valid.ndim == 2:
        patch.valid = patch.valid[None]
    patch.meta.update(frames_requested=requested, frames=1, frames_empty=[], frames_with_data=1,
                      frame_windows=None, frame_nodata_fraction=[patch.meta.get("nodata_fraction")])
    return patch


def stack_frames(results: Sequence[Union[Patch, BaseException]], windows: Sequence[TemporalSpec],
                 sensor: SensorSpec, temporal: TemporalSpec) -> Patch:
    """One ``(T, C, H, W)`` patch from the per-bin results (a Patch or the bin's error).

    A bin with no imagery (:func:`empty_bin`) stays in place as a frame of
    ``fill_value``, masked in ``valid`` (``(T, H, W)``: per frame, True where every band
    holds imagery), listed in ``meta["frames_empty"]`` and warned about once; the model
    decides whether to mask or back-fill it. Any other error fails the series (the
    first one is raised), and so does a series without any imagery.
    """
    fatal = [r for r in results if isinstance(r, BaseException) and not empty_bin(r)]
    if fatal:
        raise fatal[0]
    got = [r for r in results if isinstance(r, Patch)]
    if not got:
        raise results[-1]  # type: ignore[misc]
    first = got[0]
    shape = first.data.shape
    for k, r in enumerate(results):
        if isinstance(r, Patch) and r.data.shape != shape:
            raise ProviderError(f"bin {k} of the series came back as {r.data.shape}, bin 0 as {shape}",
                                transient=False)
    empty = [i for i, r in enumerate(results) if not isinstance(r, Patch)]
    fill = np.float32(sensor.fill_value)
    stack = np.stack([r.data if isinstance(r, Patch) else np.full(shape, fill, np.float32)
                      for r in results]).astype(np.float32, copy=False)
    valid = np.stack([r.valid if isinstance(r, Patch) else np.zeros(shape[-2:], bool) for r in results])
    if empty:
        warn(f"{len(empty)} of {len(windows)} frames over {temporal.start}..{temporal.end} have no "
             f"imagery (bins starting {[windows[i].start for i in empty]}); they are passed on as "
             f"empty frames (fill_value), for the model to mask or back-fill")
    per_frame = [float(1.0 - v.mean()) for v in valid]
    meta = {k: v for k, v in first.meta.items() if k not in ("scenes", "nodata_fraction", "temporal")}
    meta.update(
        frames_requested=int(sensor.frames or len(windows)), frames=len(windows), frames_empty=empty,
        frames_with_data=len(windows) - len(empty), nodata_fraction=float(1.0 - valid.mean()),
        frame_nodata_fraction=per_frame, frame_windows=[[w.start, w.end] for w in windows],
        frame_dates=[(w.start_date + (w.end_date - w.start_date) / 2).isoformat() for w in windows],
        scenes=[r.meta.get("scenes") if isinstance(r, Patch) else [] for r in results],
        temporal=temporal.to_dict(), fill_value=float(fill))
    return Patch(data=stack, bands=first.bands, grid=first.grid, meta=meta, valid=valid)


def fetch_input(provider: "Provider", spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                sensor: SensorSpec) -> Patch:
    """The patch a sensor asks for: one composite, or a time series when ``sensor.frames`` is set."""
    if sensor.frames:
        return provider.fetch_frames(spatial, temporal, sensor)
    return provider.fetch(spatial, temporal, sensor)


__all__ = ["Patch", "Provider", "FetchContext", "FetchTimeout", "FetchCancelled",
           "current_fetch", "fetch_scope", "DEFAULT_FETCH_TIMEOUT_S", "RESAMPLING_POLICIES",
           "DEFAULT_RESAMPLING", "check_resampling", "resampling_method", "frame_windows",
           "stack_frames", "single_frame", "empty_bin", "fetch_input"]
