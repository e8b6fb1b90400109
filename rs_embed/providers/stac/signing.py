"""Planetary Computer asset signing, through the ``planetary-computer`` package.

Planetary Computer's blob storage refuses anonymous reads; a short-lived SAS token
(free, no account) appended to each href lets them through. ``planetary_computer.sign``
fetches one token per storage container from Microsoft's token API, caches it and
renews it when less than a minute of it is left, so signing at read time (not at
search time) keeps long exports working after the first token expires. The package
sends its token request without a timeout, so the call runs under a deadline here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Optional

from ...errors import ProviderError

_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rs_embed-pc-sign")
        return _pool


class PlanetaryComputerSigner:
    """``signer(href) -> signed href``; ``subscription_key`` is optional (higher rate limits)."""

    name = "planetary-computer"

    def __init__(self, *, timeout_s: float = 30.0, subscription_key: Optional[str] = None):
        try:
            import planetary_computer
        except ImportError:
            raise ProviderError("Planetary Computer needs the planetary-computer package: "
                                "pip install 'rs_embed[stac]'", transient=False) from None
        self.timeout_s = float(timeout_s)
        if subscription_key:
            planetary_computer.set_subscription_key(subscription_key)
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, href: str) -> str:
        import planetary_computer

        with self._lock:
            self.calls += 1
        future = _executor().submit(planetary_computer.sign, href)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise ProviderError(f"signing {href.split('?')[0]} with Planetary Computer's token API "
                                f"timed out after {self.timeout_s:g} s", transient=True) from None
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            transient = status is None or status == 429 or status >= 500
            raise ProviderError(f"signing {href.split('?')[0]} with Planetary Computer's token API "
                                f"failed: {exc}", transient=transient) from exc

    def to_dict(self) -> dict:
        return {"signing": self.name, "package": "planetary-computer"}


__all__ = ["PlanetaryComputerSigner"]
