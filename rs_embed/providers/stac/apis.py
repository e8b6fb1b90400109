"""The public STAC APIs rs_embed knows by name, and what each needs.

A preset is only what differs between APIs at the transport level (root URL, asset
signing, a title for messages); which collections, asset keys and offset conventions
an API has are facts of the sensor vocabulary (:mod:`rs_embed.sensors.products`),
looked up by the preset's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from ...errors import SpecError
from ...sensors.products import EARTH_SEARCH, PLANETARY_COMPUTER


@dataclass(frozen=True)
class StacApi:
    name: str                     # the backend name, also the vocabulary's ``api`` key
    url: str
    title: str
    signing: Optional[str] = None
    docs: str = ""


PRESETS: Dict[str, StacApi] = {
    "earth-search": StacApi("earth-search", EARTH_SEARCH, "Earth Search by Element 84",
                            docs="https://element84.com/earth-search/"),
    "planetary-computer": StacApi("planetary-computer", PLANETARY_COMPUTER,
                                  "Microsoft Planetary Computer", signing="planetary-computer",
                                  docs="https://planetarycomputer.microsoft.com/docs/quickstarts/reading-stac/"),
}


def preset(name: Optional[str], url: Optional[str] = None) -> Optional[StacApi]:
    """The preset called ``name``, or the one whose root is ``url`` (None: a generic API)."""
    if name is not None:
        if name not in PRESETS:
            raise SpecError(f"preset must be one of {sorted(PRESETS)} or None, got {name!r}")
        return PRESETS[name]
    if url:
        for p in PRESETS.values():
            if url.rstrip("/") == p.url.rstrip("/"):
                return p
    return None


__all__ = ["StacApi", "PRESETS", "preset"]
