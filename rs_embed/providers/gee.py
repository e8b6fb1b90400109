"""Google Earth Engine provider (being built; see the GEE issue)."""

from __future__ import annotations


def availability():
    """``True`` when Earth Engine can be used now; else a reason ('' = not installed)."""
    try:
        import ee  # noqa: F401
    except ImportError:
        return ""
    return "Earth Engine support is not finished in this version"
