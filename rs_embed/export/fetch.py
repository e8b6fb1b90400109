"""The fetch stage: a thread pool turning (point, input group) into patches, with retries.

Chunks are submitted ahead of use (the caller keeps at most two chunks in flight, so
input memory stays bounded whatever the number of points). When the provider
implements ``fetch_many`` itself, all groups of a point go in one call so it can share
requests between sensors of one collection.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..input_checks import check_input_patch
from ..io.manifest import error_record
from ..providers.base import Patch, Provider, fetch_input
from ..specs import SpatialSpec, TemporalSpec
from .plan import InputGroup
from .retry import is_transient_fetch_error, with_retries


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

    def error(self) -> Optional[dict]:
        if self.exc is None:
            return None
        return error_record(self.exc, stage="fetch", attempts=self.attempts)


PointFetch = List[Tuple[Tuple[int, ...], Future]]


class Fetcher:
    def __init__(self, provider: Provider, spatials: Sequence[SpatialSpec],
                 temporal: Optional[TemporalSpec], groups: List[InputGroup], *, workers: int,
                 retries: int, backoff_s: float, check_inputs: bool, point_names: Sequence[str]):
        self.provider = provider
        self.spatials = spatials
        self.temporal = temporal
        self.groups = groups
        self.retries, self.backoff_s = retries, backoff_s
        self.check_inputs = check_inputs
        self.names = point_names
        overridden = type(provider).fetch_many is not Provider.fetch_many
        # time series are fetched bin by bin (fetch_input), never through fetch_many
        self.use_many = overridden and len(groups) > 1 and not any(g.sensor.frames for g in groups)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rs_embed-fetch")

    # -- worker side -------------------------------------------------------------
    def _check(self, i: int, group: InputGroup, patch: Patch) -> Optional[dict]:
        if not (self.check_inputs or group.check_requested):
            return None
        return check_input_patch(patch, group.sensor, name=f"{self.names[i]}_{group.owner.key}",
                                 force=True, raise_on_fail=False)

    def _fetch_one(self, i: int, gid: int) -> List[FetchResult]:
        group = self.groups[gid]
        t0 = time.perf_counter()
        try:
            patch, attempts = with_retries(
                lambda: fetch_input(self.provider, self.spatials[i], self.temporal, group.sensor),
                retries=self.retries, backoff_s=self.backoff_s, transient=is_transient_fetch_error)
        except Exception as exc:
            return [FetchResult(exc=exc, attempts=getattr(exc, "attempts", 1),
                                seconds=time.perf_counter() - t0)]
        res = FetchResult(patch=patch, attempts=attempts, seconds=time.perf_counter() - t0)
        res.report = self._check(i, group, patch)
        return [res]

    def _fetch_many(self, i: int) -> List[FetchResult]:
        sensors = [g.sensor for g in self.groups]
        t0 = time.perf_counter()
        try:
            patches, attempts = with_retries(
                lambda: self.provider.fetch_many(self.spatials[i], self.temporal, sensors),
                retries=self.retries, backoff_s=self.backoff_s, transient=is_transient_fetch_error)
        except Exception as exc:
            dt = time.perf_counter() - t0
            return [FetchResult(exc=exc, attempts=getattr(exc, "attempts", 1), seconds=dt)
                    for _ in self.groups]
        dt = (time.perf_counter() - t0) / len(self.groups)
        out = []
        for g, p in zip(self.groups, patches):
            r = FetchResult(patch=p, attempts=attempts, seconds=dt)
            r.report = self._check(i, g, p)
            out.append(r)
        return out

    # -- caller side ---------------------------------------------------------------
    def submit(self, indices: Sequence[int]) -> Dict[int, PointFetch]:
        handle: Dict[int, PointFetch] = {}
        for i in indices:
            if self.use_many:
                handle[i] = [(tuple(g.gid for g in self.groups), self.pool.submit(self._fetch_many, i))]
            else:
                handle[i] = [((g.gid,), self.pool.submit(self._fetch_one, i, g.gid)) for g in self.groups]
        return handle

    @staticmethod
    def gather(handle: Dict[int, PointFetch]) -> Dict[int, Dict[int, FetchResult]]:
        out: Dict[int, Dict[int, FetchResult]] = {}
        for i, parts in handle.items():
            got: Dict[int, FetchResult] = {}
            for gids, fut in parts:
                for gid, res in zip(gids, fut.result()):
                    got[gid] = res
            out[i] = got
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Fetcher", "FetchResult"]
