"""The fetch stage: worker threads turning (point, input group) into patches.

Chunks are submitted ahead of use (the caller keeps at most two chunks in flight, so
input memory stays bounded whatever the number of points). When the provider
implements ``fetch_many`` itself, all groups of a point go in one call so it can share
requests between sensors of one collection. Behind a router of precomputed products
(:meth:`Provider.route`) each group goes to the provider that serves it, under that
provider's own contract (its retries, its ``fetch_many``).

A time series (``SensorSpec.frames``) is fetched bin by bin: each bin is a fetch of
its own, with its own time budget and retries, and the bins are stacked once all
have answered (:func:`~rs_embed.providers.base.stack_frames`), so a provider that
hangs on one bin is abandoned like any other stuck fetch.

Every fetch runs under a :class:`~rs_embed.providers.base.FetchContext` (its
``fetch_timeout_s`` budget and the export's cancel event). Waiting for results never
blocks for long: the caller looks at the cancel event and at overdue fetches every
:data:`~rs_embed.export.workers.POLL_S` seconds, and a fetch that outlives its budget
is abandoned (see :mod:`rs_embed.export.workers`).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ProviderError
from ..input_checks import check_input_patch
from ..io.manifest import error_record
from ..providers.base import (FetchContext, Patch, Provider, fetch_scope, frame_windows,
                              stack_frames)
from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .plan import InputGroup
from .retry import is_transient_fetch_error, retried_already
from .workers import POLL_S, Task, WorkerPool


class Cancelled(Exception):
    """Internal: the caller's ``cancel`` event was set; what is done has been written."""


class ProviderStuck(ProviderError):
    """So many fetches hang past their budget that the backend is taken to be down."""


@dataclass
class FetchResult:
    patch: Optional[Patch] = None
    exc: Optional[BaseException] = None
    attempts: int = 0
    seconds: float = 0.0
    report: Optional[dict] = None  # input checks, when requested

    @property
    def ok(self) -> bool:
        return self.patch is not None

    @property
    def nodata_fraction(self) -> Optional[float]:
        """Share of the patch's pixels the provider filled (``Patch.meta["nodata_fraction"]``)."""
        f = self.patch.meta.get("nodata_fraction") if self.patch is not None else None
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(f)):
            return None
        return float(f)

    def error(self) -> Optional[dict]:
        if self.exc is None:
            return None
        return error_record(self.exc, stage="fetch", attempts=self.attempts)


@dataclass
class _Pending:
    """The fetch of some groups of one point: one task, or one task per bin of a time
    series, whose results ``assemble`` turns into the groups' patches."""

    gids: Tuple[int, ...]
    tasks: List[Task]
    assemble: Optional[Callable[[List[Task]], list]] = None


PointFetch = List[_Pending]


def _provider_name(provider: Provider) -> str:
    cls = type(provider)
    return f"{cls.__module__}.{cls.__qualname__}"


def check_patch(provider: Provider, patch, sensor: SensorSpec, method: str = "fetch") -> Patch:
    """The provider's answer as a Patch, or a ProviderError naming the provider and what it
    returned (a bug in the provider: never retried)."""
    who = f"{_provider_name(provider)}.{method}"
    if not isinstance(patch, Patch):
        raise ProviderError(f"{who} returned {type(patch).__name__} ({patch!r:.80}), not a Patch",
                            transient=False)
    data = patch.data
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu" or data.ndim not in (3, 4):
        what = (f"a {data.ndim}-D {data.dtype} array" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise ProviderError(f"{who} returned a Patch whose data is {what}; expected a float32 "
                            "(C, H, W) array", transient=False)
    if data.shape[-3] != len(sensor.bands):
        raise ProviderError(f"{who} returned {data.shape[-3]} band(s) for the {len(sensor.bands)} asked "
                            f"({list(sensor.bands)})", transient=False)
    if data.dtype != np.float32:
        patch.data = data.astype(np.float32)
    return patch


class Fetcher:
    def __init__(self, provider: Provider, spatials: Sequence[SpatialSpec],
                 temporal: Optional[TemporalSpec], groups: List[InputGroup], *, workers: int,
                 retries: int, backoff_s: float, timeout_s: float, check_inputs: bool,
                 point_names: Sequence[str], cancel=None, max_stuck: Optional[int] = None):
        self.provider = provider
        self.spatials = spatials
        self.temporal = temporal
        self.groups = groups
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.check_inputs = check_inputs
        self.names = point_names
        self.user_cancel = cancel  # the caller's event (anything with is_set())
        self.cancel = threading.Event()  # set to stop every fetch in flight
        self.max_stuck = max_stuck if max_stuck is not None else max(16, 4 * workers)
        # each group goes to the provider that serves it (a router of products answers
        # with the routed provider); groups of one provider may share a fetch_many
        self.routes: List[Tuple[Provider, List[int]]] = []
        for g in groups:
            p = provider.route(g.sensor)
            for q, gids in self.routes:
                if q is p:
                    gids.append(g.gid)
                    break
            else:
                self.routes.append((p, [g.gid]))
        self.pool = WorkerPool(workers, "rs_embed-fetch")

    def attempts(self, provider: Provider) -> int:
        """One retry layer: a provider that retries by itself is called once per fetch."""
        return 1 if getattr(provider, "retries_itself", False) else 1 + self.retries

    def _use_many(self, provider: Provider, gids: Sequence[int]) -> bool:
        # time series are fetched bin by bin, never through fetch_many
        overridden = type(provider).fetch_many is not Provider.fetch_many
        return overridden and len(gids) > 1 and not any(self.groups[g].sensor.frames for g in gids)

    # -- worker side -------------------------------------------------------------
    def _check(self, i: int, group: InputGroup, patch: Patch) -> Optional[dict]:
        if not (self.check_inputs or group.check_requested):
            return None
        return check_input_patch(patch, group.sensor, name=f"{self.names[i]}_{group.owner.key}",
                                 force=True, raise_on_fail=False)

    def _one(self, provider: Provider, i: int, gid: int) -> Callable[[FetchContext], list]:
        group = self.groups[gid]
        series = bool(group.sensor.frames)

        def attempt(ctx: FetchContext) -> list:
            with fetch_scope(ctx):
                ctx.check()
                if series:  # the provider's own series fetch (one request), or no window to bin
                    patch = provider.fetch_frames(self.spatials[i], self.temporal, group.sensor)
                else:
                    patch = provider.fetch(self.spatials[i], self.temporal, group.sensor)
            patch = check_patch(provider, patch, group.sensor, "fetch_frames" if series else "fetch")
            return [(patch, self._check(i, group, patch))]  # checked here: in parallel
        return attempt

    def _bin(self, provider: Provider, i: int, sensor: SensorSpec,
             window: TemporalSpec) -> Callable[[FetchContext], Patch]:
        def attempt(ctx: FetchContext) -> Patch:
            with fetch_scope(ctx):
                ctx.check()
                patch = provider.fetch(self.spatials[i], window, sensor)
            return check_patch(provider, patch, sensor)
        return attempt

    def _many(self, provider: Provider, i: int, gids: Sequence[int]) -> Callable[[FetchContext], list]:
        groups = [self.groups[g] for g in gids]
        sensors = [g.sensor for g in groups]

        def attempt(ctx: FetchContext) -> list:
            with fetch_scope(ctx):
                ctx.check()
                out = provider.fetch_many(self.spatials[i], self.temporal, sensors)
            if not isinstance(out, (list, tuple)) or len(out) != len(sensors):
                raise ProviderError(f"{_provider_name(provider)}.fetch_many returned "
                                    f"{type(out).__name__} for {len(sensors)} sensors; expected a list "
                                    "with one Patch per sensor", transient=False)
            patches = [check_patch(provider, p, s, "fetch_many") for p, s in zip(out, sensors)]
            return [(p, self._check(i, g, p)) for p, g in zip(patches, groups)]
        return attempt

    def _task(self, provider: Provider, fn, i: int, what: str = "") -> Task:
        return Task(fn, attempts=self.attempts(provider), timeout_s=self.timeout_s, backoff_s=self.backoff_s,
                    retry=lambda exc, _n: is_transient_fetch_error(exc) and not retried_already(exc),
                    cancel=self.cancel, what=f"fetching point {i} ({self.names[i]!r}){what}")

    def _series(self, provider: Provider, i: int, gid: int) -> _Pending:
        """A time series as one fetch per bin, stacked once every bin has answered."""
        group = self.groups[gid]
        if self.temporal is None or type(provider).fetch_frames is not Provider.fetch_frames:
            return _Pending((gid,), [self.pool.submit(self._task(provider, self._one(provider, i, gid), i))])
        single = dataclasses.replace(group.sensor, frames=None)
        windows = frame_windows(self.temporal, int(group.sensor.frames))
        tasks = [self.pool.submit(self._task(provider, self._bin(provider, i, single, w), i,
                                             f", frame {k + 1} of {len(windows)} [{w.start}, {w.end})"))
                 for k, w in enumerate(windows)]

        def assemble(done: List[Task]) -> list:
            results = [t.value if t.error is None else t.error for t in done]
            patch = stack_frames(results, windows, group.sensor, self.temporal)
            patch = check_patch(provider, patch, group.sensor, "fetch (frames stacked)")
            return [(patch, self._check(i, group, patch))]
        return _Pending((gid,), tasks, assemble)

    # -- caller side ---------------------------------------------------------------
    def submit(self, indices: Sequence[int]) -> Dict[int, PointFetch]:
        handle: Dict[int, PointFetch] = {}
        for i in indices:
            parts: PointFetch = []
            for provider, gids in self.routes:
                if self._use_many(provider, gids):
                    task = self._task(provider, self._many(provider, i, gids), i)
                    parts.append(_Pending(tuple(gids), [self.pool.submit(task)]))
                    continue
                for gid in gids:
                    if self.groups[gid].sensor.frames:
                        parts.append(self._series(provider, i, gid))
                    else:
                        task = self._task(provider, self._one(provider, i, gid), i)
                        parts.append(_Pending((gid,), [self.pool.submit(task)]))
            handle[i] = parts
        return handle

    def cancelled(self) -> bool:
        if self.user_cancel is not None and self.user_cancel.is_set():
            self.cancel.set()
        return self.cancel.is_set()

    def _wait(self, task: Task) -> None:
        """Until ``task`` is done; raises ``Cancelled`` as soon as the export is cancelled."""
        while not task.wait(POLL_S):
            if self.cancelled():
                raise Cancelled()
            self.pool.reap()
            stuck = self.pool.stuck
            if stuck > self.max_stuck:
                raise ProviderStuck(
                    f"{stuck} fetches of {_provider_name(self.provider)} are stuck past "
                    f"fetch_timeout_s={self.timeout_s:g} s: the backend is not answering; the "
                    "export stops here (run it again with resume=True once it answers)",
                    transient=True)
        if self.cancelled():
            raise Cancelled()

    def gather(self, handle: Dict[int, PointFetch]) -> Dict[int, Dict[int, FetchResult]]:
        out: Dict[int, Dict[int, FetchResult]] = {}
        for i, parts in handle.items():
            got: Dict[int, FetchResult] = {}
            for part in parts:
                gids = part.gids
                for task in part.tasks:
                    try:
                        self._wait(task)
                    except ProviderStuck as exc:
                        exc.point_index, exc.model, exc.stage = i, None, "fetch"  # type: ignore[attr-defined]
                        raise
                now = time.monotonic()
                started = min((t.started or now) for t in part.tasks)
                finished = max((t.finished or now) for t in part.tasks)
                seconds = (finished - started) / len(gids)
                # attempts: the most any fetch (or bin) took, the provider's own when it retried itself
                made = max(max(t.attempts_made, getattr(t.error, "attempts", 0) or 0) for t in part.tasks)
                error, value = None, None
                if part.assemble is None:
                    error, value = part.tasks[0].error, part.tasks[0].value
                else:
                    try:
                        value = part.assemble(part.tasks)
                    except Exception as exc:  # every bin failed, or one failed for good
                        error = exc
                if error is not None:
                    for gid in gids:
                        got[gid] = FetchResult(exc=error, attempts=made, seconds=seconds)
                    continue
                for gid, (patch, report) in zip(gids, value):
                    got[gid] = FetchResult(patch=patch, attempts=made, seconds=seconds, report=report)
            out[i] = got
        return out

    def close(self) -> None:
        """Drop what is queued, tell what runs to stop, and walk away (never blocks)."""
        self.cancel.set()
        self.pool.close()


__all__ = ["Fetcher", "FetchResult", "Cancelled", "ProviderStuck", "check_patch"]
