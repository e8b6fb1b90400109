"""Google Earth Engine backend (``backend="gee"``).

Nothing here imports ``ee`` until it is used, so ``backend="auto"`` can ask
:func:`availability` cheaply. See ``docs/pages/gee.md`` for authentication,
projects, quotas and expected throughput.
"""

from __future__ import annotations

import importlib

from .session import (AUTH_HELP, DEFAULT_MAX_CONCURRENT, HIGH_VOLUME_URL, Session, availability,
                      current_session, initialize, limiter, reset, set_max_concurrent)

_LAZY = {
    "GEEProvider": "rs_embed.providers.gee.provider",
    "CloudScorePlus": "rs_embed.providers.gee.plan",
    "plan_requests": "rs_embed.providers.gee.plan",
    "RetryPolicy": "rs_embed.providers.gee.pixels",
    "ReplayTransport": "rs_embed.providers.gee.replay",
    "SyntheticPixels": "rs_embed.providers.gee.replay",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'rs_embed.providers.gee' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


__all__ = ["GEEProvider", "CloudScorePlus", "RetryPolicy", "ReplayTransport", "SyntheticPixels",
           "availability", "initialize", "current_session", "reset", "set_max_concurrent",
           "limiter", "Session", "plan_requests", "AUTH_HELP", "DEFAULT_MAX_CONCURRENT",
           "HIGH_VOLUME_URL"]
