"""STAC backends: Sentinel-2, Landsat and Sentinel-1 from public STAC APIs, no account.

``backend="earth-search"`` (Element 84's Earth Search v1) and
``backend="planetary-computer"`` (Microsoft's Planetary Computer, assets signed with
free SAS tokens) are presets of :class:`StacProvider`; ``backend="stac"`` is Earth
Search too, and ``backend=StacProvider("https://.../stac/v1")`` reads any STAC API
whose items point at COGs. ``backend="alphaearth"`` reads Google's public AlphaEarth
annual embedding COGs (the ``gse`` model without Earth Engine); the STAC backends
route ``gse`` requests there as well. Modules: :mod:`.apis` (presets),
:mod:`.search` (cached pystac-client searches), :mod:`.items` (assets and radiometry
of an item), :mod:`.reader` (windowed COG reads), :mod:`.signing` (Planetary
Computer), :mod:`.faults` (timeouts and retries), :mod:`.alphaearth`, :mod:`.provider`.
See ``docs/pages/stac.md``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "StacProvider": "rs_embed.providers.stac.provider",
    "earth_search": "rs_embed.providers.stac.provider",
    "EarthSearchProvider": "rs_embed.providers.stac.provider",
    "PlanetaryComputerProvider": "rs_embed.providers.stac.provider",
    "planetary_computer": "rs_embed.providers.stac.provider",
    "AlphaEarthProvider": "rs_embed.providers.stac.alphaearth",
    "AlphaEarthIndex": "rs_embed.providers.stac.alphaearth",
    "dequantise": "rs_embed.providers.stac.alphaearth",
    "PRESETS": "rs_embed.providers.stac.apis",
    "RetryPolicy": "rs_embed.providers.stac.faults",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'rs_embed.providers.stac' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
