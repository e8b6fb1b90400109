"""Earth Engine request rules that follow from what a collection is.

The facts themselves (which scene property holds cloud cover, which collections are
Sentinel-1, which Sentinel-2 collections Cloud Score+ can mask, which products are
annual, which ids are the non-harmonised twins of which) live in the sensor
vocabulary (:mod:`rs_embed.sensors`); this module turns them into request choices.
Any collection id the vocabulary does not know is read as a plain image collection.
"""

from __future__ import annotations

from typing import Optional, Tuple

from ...errors import SpecError
from ...sensors import (CLOUD_SCORE_PLUS, S1_DB, S1_LINEAR, S1_POLARISATIONS, EECollection,
                        ee_collection)
from ...specs import SensorSpec


def collection_info(collection_id: str) -> EECollection:
    """Facts about ``collection_id`` (a plain collection when rs_embed does not know it)."""
    return ee_collection(collection_id)


def s1_collection(sensor: SensorSpec) -> str:
    """The Sentinel-1 collection that serves the asked-for scale (linear or dB)."""
    return S1_LINEAR if sensor.use_float_linear else S1_DB


def s1_orbit(sensor: SensorSpec) -> Optional[str]:
    """``ASCENDING``/``DESCENDING``/None from ``SensorSpec.orbit`` (any case)."""
    if sensor.orbit is None:
        return None
    value = str(sensor.orbit).strip().upper()
    aliases = {"ASC": "ASCENDING", "DESC": "DESCENDING", "A": "ASCENDING", "D": "DESCENDING"}
    value = aliases.get(value, value)
    if value not in ("ASCENDING", "DESCENDING"):
        raise SpecError(
            f"SensorSpec.orbit must be 'ASCENDING', 'DESCENDING' or None for Sentinel-1, got {sensor.orbit!r}")
    return value


def s1_polarisations(bands: Tuple[str, ...]) -> Tuple[str, ...]:
    return tuple(b for b in bands if b in S1_POLARISATIONS)


__all__ = ["collection_info", "s1_collection", "s1_orbit", "s1_polarisations",
           "CLOUD_SCORE_PLUS", "S1_DB", "S1_LINEAR"]
