"""Planetary Computer asset signing, through the ``planetary-computer`` package.

Planetary Computer's blob storage refuses anonymous reads; a short-lived SAS token
(free, no account) appended to each href lets them through. ``planetary_computer.sign``
fetches one token per storage container from Microsoft's token API, caches it and
renews it when less than a minute of it is left, so signing at read time (not at
search time) keeps long exports working after the first token expires. The package
sends its token request without a timeout, so the call runs on a daemon thread and is
waited for only until the fetch's time is up (a stuck token request is left behind and
never holds up the interpreter's exit).
"""

from __future__ import annotations

import threading
from typing import Optional

from ...errors import ProviderError


def _call_within(fn, arg, timeout_s: float):
    """``fn(arg)`` on a daemon thread; ``TimeoutError`` when it has not returned in time."""
    box: dict = {}
    done = threading.Event()

    def run():
        try:
            box["value"] = fn(arg)
        except BaseException as exc:  # re-raised by the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="rs_embed-pc-sign").start()
    if not done.wait(timeout_s):
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


class PlanetaryComputerSigner:
    """``signer(href) -> signed href``; ``subscription_key`` is optional (higher rate limits)."""

    name = "planetary-computer"
    accepts_timeout = True  # the provider passes what is left of the fetch

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

    def __call__(self, href: str, timeout_s: Optional[float] = None) -> str:
        import planetary_computer

        with self._lock:
            self.calls += 1
        timeout = self.timeout_s if timeout_s is None else min(self.timeout_s, timeout_s)
        try:
            return _call_within(planetary_computer.sign, href, timeout)
        except TimeoutError:
            raise ProviderError(f"signing {href.split('?')[0]} with Planetary Computer's token API "
                                f"timed out after {timeout:g} s", transient=True) from None
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            transient = status is None or status == 429 or status >= 500
            raise ProviderError(f"signing {href.split('?')[0]} with Planetary Computer's token API "
                                f"failed: {exc}", transient=transient) from exc

    def to_dict(self) -> dict:
        return {"signing": self.name, "package": "planetary-computer"}


__all__ = ["PlanetaryComputerSigner"]
