"""How STAC and COG requests fail, and which failures are worth another try.

One policy for both halves of a STAC fetch: the API search (``requests`` under
pystac-client, retried by urllib3) and the pixel reads (GDAL's ``/vsicurl/``, retried
by GDAL itself). HTTP 429 and 5xx, timeouts and dropped connections are retried with
exponential, jittered backoff (both libraries jitter: urllib3's ``backoff_jitter``,
GDAL's random factor in ``CPLHTTPGetNewRetryDelay``); every other 4xx fails at once
with the server's own message, because asking again cannot help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ...errors import ProviderError, SpecError

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

    def urllib3_retry(self):
        """The ``urllib3.Retry`` pystac-client's session mounts (POST searches included)."""
        from urllib3.util.retry import Retry

        return Retry(total=self.max_retries, connect=self.max_retries, read=self.max_retries,
                     status=self.max_retries, backoff_factor=self.base_s,
                     backoff_jitter=self.base_s, backoff_max=self.cap_s,
                     status_forcelist=RETRY_STATUSES, allowed_methods=None,
                     respect_retry_after_header=True, raise_on_status=False)

    def gdal_options(self) -> Dict[str, str]:
        """GDAL's own retry and timeout settings for one read."""
        return {
            "GDAL_HTTP_MAX_RETRY": str(self.max_retries),
            "GDAL_HTTP_RETRY_DELAY": f"{max(self.base_s, 0.001):g}",
            "GDAL_HTTP_RETRY_CODES": ",".join(str(s) for s in RETRY_STATUSES),
            "GDAL_HTTP_TIMEOUT": f"{self.timeout_s:g}",
            "GDAL_HTTP_CONNECTTIMEOUT": f"{min(self.timeout_s, 10.0):g}",
        }

    def to_dict(self) -> dict:
        return {"max_retries": self.max_retries, "retry_base_s": self.base_s,
                "retry_cap_s": self.cap_s, "fetch_timeout_s": self.timeout_s}


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
        return ProviderError(f"{what}: the STAC API at {url} kept answering HTTP {status} "
                             f"after retries: {_shorten(text)}", transient=True)
    if looks_transient(text):
        return ProviderError(f"{what}: cannot reach the STAC API at {url} (is it down, or is the "
                             f"network unavailable?): {_shorten(text)}", transient=True)
    return ProviderError(f"{what}: {type(exc).__name__}: {_shorten(text)}", transient=False)


def _shorten(text: str, n: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


__all__ = ["RetryPolicy", "RETRY_STATUSES", "status_transient", "status_in", "looks_transient",
           "search_error"]
