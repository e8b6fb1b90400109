"""Sending ``computePixels`` requests: limits, retries, splitting, decoding.

Every request passes through the project's in-flight limiter; transient failures
(HTTP 429, 5xx, timeouts, dropped connections) are retried with exponential backoff
and jitter *outside* the limiter, so a sleeping retry never holds a slot; anything
else (a bad band, a missing asset, a denied permission) fails at once with the
server's message. A request whose answer would exceed Earth Engine's 48 MB limit is
cut into tiles on the same grid before anything is sent.

This is the only retry layer of an Earth Engine fetch: the client's own retries are
off (see :mod:`.session`), the export engine does not retry a provider that retries
itself, and all requests of one fetch (its tiles) share one :class:`RetryBudget` and
the deadline of the caller's :class:`~rs_embed.providers.base.FetchContext`. So a
point costs at most its tiles plus ``max_retries`` requests, whatever the rate limit.
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ...errors import ProviderError
from ...geometry import Grid
from ..base import FetchContext, current_fetch
from .plan import grid_param
from .session import InFlightLimiter

#: computePixels refuses answers larger than this many bytes.
MAX_REQUEST_BYTES = 48 * 1024 * 1024
#: and grids wider or taller than this many pixels.
MAX_GRID_DIM = 32768
#: Room left for the NPY header and Earth Engine's own accounting.
_HEADROOM = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits about ``base_s * 2**k`` (capped)."""

    max_retries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0

    def __post_init__(self):
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("base_s", "cap_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")

    def delay(self, attempt: int, rng: random.Random, retry_after: Optional[float] = None) -> float:
        d = min(self.cap_s, self.base_s * (2 ** attempt))
        wait = d / 2.0 + rng.uniform(0.0, d / 2.0)  # "equal jitter": never zero, never in lockstep
        if retry_after is not None:
            wait = max(wait, min(self.cap_s, retry_after))
        return wait


class RetryBudget:
    """The retries one fetch may still spend, shared by all its requests (thread-safe);
    also counts the requests the fetch sent."""

    def __init__(self, retries: int):
        self.left = int(retries)
        self.sent = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def count(self) -> None:
        with self._lock:
            self.sent += 1


@dataclass
class RequestStats:
    """How many requests one fetch needed (recorded in the patch metadata)."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0

    def merge(self, other: "RequestStats") -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.bytes += other.bytes


# ------------------------------------------------------------------ error handling


def _http_error(exc: BaseException):
    """The googleapiclient HttpError behind ``exc`` (Earth Engine wraps it), if any."""
    try:
        from googleapiclient.errors import HttpError
    except ImportError:  # pragma: no cover
        return None
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HttpError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _server_message(http) -> str:
    try:
        return str(http._get_reason()).strip()  # the only public-ish way to the JSON message
    except Exception:  # pragma: no cover
        return str(http)


_TRANSIENT_WORDS = ("timed out", "timeout", "deadline exceeded", "too many concurrent",
                    "rate limit", "ratelimit", "try again", "temporarily", "unavailable",
                    "backend error", "internal error", "connection reset")


def classify(exc: BaseException, what: str) -> Tuple[ProviderError, Optional[float]]:
    """A ProviderError for ``exc`` (transient or not) and the server's Retry-After, if any."""
    if isinstance(exc, ProviderError):
        return exc, None
    http = _http_error(exc)
    if http is not None:
        status = int(getattr(http.resp, "status", 0) or 0)
        message = _server_message(http)
        retry_after = None
        try:
            ra = http.resp.get("retry-after")
            retry_after = float(ra) if ra is not None else None
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        low = message.lower()
        transient = (status in (408, 429) or status >= 500
                     or (status == 403 and ("rate" in low or "quota exceeded" in low)))
        if status in (401,):
            hint = " (credentials expired or revoked: run `earthengine authenticate` again)"
        elif status == 403 and not transient:
            hint = " (is the Earth Engine API enabled and the project registered for Earth Engine?)"
        else:
            hint = ""
        return ProviderError(f"{what}: HTTP {status}: {message}{hint}", transient=transient), retry_after
    if type(exc).__name__ == "RefreshError":  # google.auth: the stored token no longer works
        from .session import AUTH_HELP
        return ProviderError(f"{what}: Earth Engine credentials could not be refreshed ({exc}). "
                             + AUTH_HELP), None
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return ProviderError(f"{what}: request timed out ({exc})", transient=True), None
    if isinstance(exc, ConnectionError):
        return ProviderError(f"{what}: connection failed ({exc})", transient=True), None
    try:
        import httplib2
        if isinstance(exc, httplib2.HttpLib2Error):
            return ProviderError(f"{what}: {type(exc).__name__}: {exc}", transient=True), None
    except ImportError:  # pragma: no cover
        pass
    text = str(exc).strip() or type(exc).__name__
    transient = any(w in text.lower() for w in _TRANSIENT_WORDS)
    return ProviderError(f"{what}: {text}", transient=transient), None


# ------------------------------------------------------------------------ splitting


def tile_windows(width: int, height: int, bytes_per_pixel: int,
                 max_bytes: int = MAX_REQUEST_BYTES) -> List[Tuple[int, int, int, int]]:
    """(col0, row0, width, height) windows covering the grid, each under ``max_bytes``."""
    budget = max(1, (max_bytes - _HEADROOM) // max(1, bytes_per_pixel))
    if width * height <= budget and width <= MAX_GRID_DIM and height <= MAX_GRID_DIM:
        return [(0, 0, width, height)]
    tw = min(width, MAX_GRID_DIM, budget)  # full-width strips where a row fits
    th = min(height, MAX_GRID_DIM, max(1, budget // tw))
    return [(c, r, min(tw, width - c), min(th, height - r))
            for r in range(0, height, th) for c in range(0, width, tw)]


# ------------------------------------------------------------------------- sending


class PixelClient:
    """Sends ``computePixels`` requests for one provider (thread-safe)."""

    def __init__(self, *, policy: RetryPolicy, limiter: Callable[[], InFlightLimiter],
                 max_request_bytes: int = MAX_REQUEST_BYTES, workload_tag: Optional[str] = None,
                 sleep: Optional[Callable[[float], None]] = None, seed: Optional[int] = None):
        self.policy = policy
        self._limiter = limiter
        self.max_request_bytes = int(max_request_bytes)
        self.workload_tag = workload_tag
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _jitter_delay(self, attempt: int, retry_after: Optional[float]) -> float:
        with self._rng_lock:
            return self.policy.delay(attempt, self._rng, retry_after)

    def params(self, image, grid: Grid, band_ids: List[str],
               window: Optional[Tuple[int, int, int, int]] = None) -> dict:
        """The ``ee.data.computePixels`` parameters for ``grid`` (or one window of it)."""
        if window is None:
            gp = grid_param(grid)
        else:
            c, r, w, h = window
            gp = grid_param(grid, c, r, w, h)
        p = {"expression": image, "fileFormat": "NUMPY_NDARRAY", "grid": gp, "bandIds": list(band_ids)}
        if self.workload_tag:
            p["workloadTag"] = self.workload_tag
        return p

    def _wait(self, ctx: FetchContext, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            ctx.sleep(seconds)

    def compute(self, ee, params: dict, what: str, stats: RequestStats,
                budget: Optional[RetryBudget] = None, ctx: Optional[FetchContext] = None) -> np.ndarray:
        """One request, retried within ``budget`` and ``ctx``'s deadline; returns the
        decoded structured array."""
        ctx = ctx if ctx is not None else current_fetch()
        budget = budget if budget is not None else RetryBudget(self.policy.max_retries)
        attempt = 0
        while True:
            ctx.check()  # cancelled, or no time left: stop before sending
            try:
                with self._limiter():
                    stats.requests += 1
                    budget.count()
                    out = ee.data.computePixels(params)
            except Exception as exc:  # classified below; nothing escapes untranslated
                err, retry_after = classify(exc, what)
                delay = self._jitter_delay(attempt, retry_after) if err.transient else 0.0
                why = None
                if err.transient and not ctx.allows_wait(delay):
                    why = "no time left within fetch_timeout_s" if not ctx.cancelled() else "cancelled"
                elif err.transient and not budget.take():
                    why = f"the fetch's {self.policy.max_retries} retries are spent"
                if not err.transient or why is not None:
                    if err.transient:  # attempts: every request this fetch sent (its tiles too)
                        n = budget.sent
                        err = ProviderError(f"{err} (gave up after {n} attempt{'s' if n > 1 else ''}: {why})",
                                            transient=True)
                    err.attempts = budget.sent  # type: ignore[attr-defined]
                    raise err from exc
                self._wait(ctx, delay)
                attempt += 1
                stats.retries += 1
                continue
            if not isinstance(out, np.ndarray) or out.dtype.names is None:
                raise ProviderError(f"{what}: Earth Engine returned {type(out).__name__}, not a NumPy "
                                    "array with named bands", transient=True)
            stats.bytes += int(out.nbytes)
            return out

    def fetch(self, ee, image, grid: Grid, band_ids: List[str], dtypes: Dict[str, str],
              bytes_per_pixel: int, what: str, stats: RequestStats) -> Dict[str, np.ndarray]:
        """Every band of ``band_ids`` on the whole ``grid``, split into tiles if too big.

        All tiles share one retry budget and the caller's deadline."""
        ctx = current_fetch()
        budget = RetryBudget(self.policy.max_retries)
        windows = tile_windows(grid.width, grid.height, bytes_per_pixel, self.max_request_bytes)
        if len(windows) == 1:
            arr = self.compute(ee, self.params(image, grid, band_ids), what, stats, budget, ctx)
            return {b: _band(arr, b, (grid.height, grid.width), what) for b in band_ids}

        out = {b: np.empty((grid.height, grid.width), dtype=dtypes.get(b, "float32")) for b in band_ids}

        def one(window):
            st = RequestStats()
            arr = self.compute(ee, self.params(image, grid, band_ids, window), what, st, budget, ctx)
            c, r, w, h = window
            for b in band_ids:
                out[b][r:r + h, c:c + w] = _band(arr, b, (h, w), what)
            return st

        for st in _run_daemon(one, windows, workers=min(8, len(windows))):
            stats.merge(st)
        return out


def _run_daemon(fn, items: List, *, workers: int) -> List:
    """``[fn(x) for x in items]`` on daemon threads (the first error is raised once all
    ended): a tile stuck in a request never holds up the interpreter's exit, as
    ``concurrent.futures`` threads would."""
    results: List = [None] * len(items)
    errors: List[BaseException] = []
    todo = list(range(len(items)))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                if not todo or errors:
                    return
                k = todo.pop(0)
            try:
                results[k] = fn(items[k])
            except BaseException as exc:  # raised by the caller below
                with lock:
                    errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True, name="rs_embed-gee-tile") for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _band(arr: np.ndarray, name: str, shape: Tuple[int, int], what: str) -> np.ndarray:
    if name not in arr.dtype.names:
        raise ProviderError(f"{what}: the answer lacks band {name!r} (got {list(arr.dtype.names)})")
    band = arr[name]
    if band.shape != shape:
        raise ProviderError(f"{what}: band {name!r} came back {band.shape}, expected {shape}",
                            transient=True)
    return band


__all__ = ["PixelClient", "RetryPolicy", "RetryBudget", "RequestStats", "classify", "tile_windows",
           "MAX_REQUEST_BYTES", "MAX_GRID_DIM"]
