"""How STAC and COG requests fail, which failures are worth another try, and how long
a fetch may spend on them.

One layer of retries for every request of a STAC fetch, in Python: the API requests
(``requests`` under pystac-client), the pixel reads (GDAL's ``/vsicurl/``), the
AlphaEarth index download and Planetary Computer's token requests. The libraries' own
retries are off (urllib3 ``Retry(0)``, ``GDAL_HTTP_MAX_RETRY=0``), so nothing retries
underneath, and the provider declares ``retries_itself``, so the export engine does not
repeat a fetch on top. All requests of one fetch share one :class:`FetchBudget`: its
``max_retries`` retries in all, and the deadline and cancel event of the caller's
:class:`~rs_embed.providers.base.FetchContext` (each request's timeout is what is left,
never more; a backoff that would end past the deadline is not started). HTTP 429 and
5xx, timeouts and dropped connections are retried with exponential, jittered backoff;
every other 4xx fails at once with the server's own message, because asking again
cannot help.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, TypeVar

from ...errors import ProviderError, SpecError
from ..base import FetchCancelled, FetchContext, FetchTimeout, current_fetch

T = TypeVar("T")

#: statuses that mean "try again later"
RETRY_STATUSES: Tuple[int, ...] = (408, 429, 500, 502, 503, 504)
_STATUS_IN_TEXT = re.compile(r"(?:HTTP (?:response )?code|HTTP error code|status(?: code)?)[:= ]+(\d{3})",
                             re.IGNORECASE)
_TRANSIENT_WORDS = ("timed out", "timeout", "connection reset", "connection aborted",
                    "temporarily", "max retries exceeded", "remote end closed",
                    "connection refused", "failed to establish", "could not resolve",
                    "couldn't connect", "connection was reset", "empty reply")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for one provider: ``max_retries`` tries after the first, starting near
    ``base_s`` and doubling (with jitter) up to ``cap_s``; ``timeout_s`` bounds every
    HTTP request (connect and read)."""

    max_retries: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    timeout_s: float = 30.0

    def __post_init__(self):
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) \
                or self.max_retries < 0:
            raise SpecError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("base_s", "cap_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise SpecError(f"{name} must be a number >= 0 seconds, got {v!r}")
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise SpecError(f"fetch_timeout_s must be a number > 0 seconds, got {t!r}")

    def delay(self, attempt: int, rng: random.Random, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): "equal jitter" around
        ``base_s * 2**attempt`` (never zero, never in lockstep), at least ``Retry-After``."""
        d = min(self.cap_s, self.base_s * (2 ** attempt))
        wait = d / 2.0 + rng.uniform(0.0, d / 2.0)
        if retry_after is not None:
            wait = max(wait, min(self.cap_s, retry_after))
        return wait

    @staticmethod
    def gdal_options(timeout_s: float) -> Dict[str, str]:
        """GDAL's settings for one read attempt: no retries of its own (this layer retries),
        and the request timeout ``timeout_s`` (what is left of the fetch)."""
        return {
            "GDAL_HTTP_MAX_RETRY": "0",
            "GDAL_HTTP_TIMEOUT": f"{max(timeout_s, 0.001):.3f}",
            "GDAL_HTTP_CONNECTTIMEOUT": f"{max(min(timeout_s, 10.0), 0.001):.3f}",
        }

    @staticmethod
    def requests_timeout(timeout_s: float) -> Tuple[float, float]:
        """``requests``' (connect, read) timeout for one attempt."""
        return (max(min(timeout_s, 10.0), 0.001), max(timeout_s, 0.001))

    def to_dict(self) -> dict:
        return {"max_retries": self.max_retries, "retry_base_s": self.base_s,
                "retry_cap_s": self.cap_s, "fetch_timeout_s": self.timeout_s}


class FetchBudget:
    """What one fetch may still spend, shared by every request it sends (thread-safe).

    ``ctx`` is the caller's :class:`FetchContext` (default: :func:`current_fetch` of the
    calling thread); pass the budget to helper threads, which do not see the caller's
    context. :meth:`call` runs one request with retries; :attr:`sent` counts the
    attempts of the whole fetch and :attr:`retries` the retries taken.
    """

    def __init__(self, policy: RetryPolicy, ctx: Optional[FetchContext] = None,
                 rng: Optional[random.Random] = None):
        self.policy = policy
        self.ctx = ctx if ctx is not None else current_fetch()
        self._rng = rng or random.Random()
        self._left = policy.max_retries
        self._lock = threading.Lock()
        self.sent = 0
        self.retries = 0

    # -- time ----------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``FetchCancelled`` / ``FetchTimeout`` when the fetch must stop."""
        self.ctx.check()

    def remaining(self) -> Optional[float]:
        return self.ctx.remaining()

    def request_timeout(self) -> float:
        """The timeout of a request sent now: the policy's, shortened to the deadline
        (raises when the fetch is cancelled or out of time)."""
        return min(self.policy.timeout_s, self.ctx.request_timeout())

    def wait_lock(self, lock: threading.Lock) -> None:
        """Acquire ``lock`` (held while another thread sends the same request), looking at
        the cancel event and the deadline while waiting."""
        while not lock.acquire(timeout=0.1):
            self.check()

    # -- requests --------------------------------------------------------------------
    def call(self, send: Callable[[], T], classify: Callable[[BaseException], ProviderError],
             what: str) -> T:
        """``send()`` (one request; it asks :meth:`request_timeout` right before sending),
        retried while the error is transient, retries are left and the backoff ends
        before the deadline. The error raised at the end carries ``attempts`` (the
        requests this fetch sent); running out of time raises :class:`FetchTimeout`."""
        attempt = 0
        while True:
            self.check()
            with self._lock:
                self.sent += 1
            try:
                return send()
            except (FetchCancelled, FetchTimeout) as exc:
                raise self.mark(exc)
            except Exception as exc:  # classified below; nothing escapes untranslated
                err = classify(exc)
                if not err.transient:
                    raise self.mark(err) from exc
                left = self.remaining()
                if left is not None and left <= 0.05:  # the request used up the fetch's time
                    raise self.mark(FetchTimeout(
                        f"{what}: no answer within fetch_timeout_s={self.ctx.timeout_s:g} s "
                        f"({self.sent} attempt{'s' if self.sent > 1 else ''}): {err}")) from exc
                delay = self.policy.delay(attempt, self._rng, getattr(err, "retry_after", None))
                why = None
                if self.ctx.cancelled():
                    raise self.mark(FetchCancelled(f"{self.ctx.what} was cancelled")) from exc
                if not self.ctx.allows_wait(delay):
                    why = "no time left within fetch_timeout_s"
                elif not self._take():
                    why = f"the fetch's {self.policy.max_retries} retries are spent"
                if why is not None:
                    n = self.sent
                    raise self.mark(ProviderError(
                        f"{err} (gave up after {n} attempt{'s' if n > 1 else ''}: {why})",
                        transient=True)) from exc
                self.ctx.sleep(delay)
                attempt += 1

    def _take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            self.retries += 1
            return True

    def mark(self, err: BaseException) -> BaseException:
        """``err`` with ``attempts``: the requests this fetch sent (the engine reads it)."""
        try:
            err.attempts = max(self.sent, getattr(err, "attempts", 0) or 0)  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - exceptions with __slots__
            pass
        return err


def status_transient(status: Optional[int]) -> bool:
    return status is not None and (status in RETRY_STATUSES or status >= 500)


def status_in(text: str) -> Optional[int]:
    """The HTTP status a GDAL or requests message mentions, if any."""
    m = _STATUS_IN_TEXT.search(text or "")
    return int(m.group(1)) if m else None


def looks_transient(text: str) -> bool:
    low = (text or "").lower()
    return any(w in low for w in _TRANSIENT_WORDS)


def search_error(exc: BaseException, what: str, url: str) -> ProviderError:
    """A ProviderError for a failed STAC API call (pystac-client raises ``APIError``)."""
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)
    text = str(exc).strip()
    if status is None:
        status = status_in(text)
    if status is not None and not status_transient(status):
        return ProviderError(f"{what}: the STAC API at {url} answered HTTP {status}: "
                             f"{_shorten(text)}", transient=False)
    if status is not None:
        return ProviderError(f"{what}: the STAC API at {url} answered HTTP {status}: "
                             f"{_shorten(text)}", transient=True)
    if looks_transient(text):
        return ProviderError(f"{what}: cannot reach the STAC API at {url} (is it down, or is the "
                             f"network unavailable?): {_shorten(text)}", transient=True)
    return ProviderError(f"{what}: {type(exc).__name__}: {_shorten(text)}", transient=False)


def _shorten(text: str, n: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


__all__ = ["RetryPolicy", "FetchBudget", "RETRY_STATUSES", "status_transient", "status_in", "looks_transient",
           "search_error"]
