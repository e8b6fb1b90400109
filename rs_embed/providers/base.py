"""The provider interface: imagery in, one float32 CHW patch out.

A provider knows where pixels come from (local rasters, Earth Engine, ...) and
nothing about models. Given an ROI, a time window and a :class:`SensorSpec`, it
returns a :class:`Patch` on the ROI's grid (:func:`rs_embed.geometry.roi_grid`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..geometry import Grid
from ..specs import SensorSpec, SpatialSpec, TemporalSpec


@dataclass
class Patch:
    """A fetched input: ``data`` float32 ``(C, H, W)`` in ``bands`` order on ``grid``.

    ``meta`` holds provenance: ``scenes`` (ids used), ``nodata_fraction`` (share of
    pixels filled with ``fill_value``), ``composite``, ``temporal`` (the window used) and
    any backend-specific detail.
    """

    data: np.ndarray
    bands: Tuple[str, ...]
    grid: Grid
    meta: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-ready metadata for manifests and ``Embedding.meta``."""
        return {"crs": self.grid.crs, "transform": list(self.grid.transform),
                "shape": list(self.data.shape), "bands": list(self.bands), **self.meta}


class Provider(ABC):
    """Base class of imagery backends; register new ones with ``register_provider``."""

    #: registry name, e.g. ``"local"`` or ``"gee"``
    name: ClassVar[str] = ""

    @abstractmethod
    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        """Return the patch for one ROI; raise ``ProviderError`` when nothing covers it."""

    def fetch_many(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                   sensors: Sequence[SensorSpec], *,
                   return_exceptions: bool = False) -> List[Union[Patch, Exception]]:
        """Patches for several sensors over one ROI, in ``sensors`` order.

        Optional. Callers with several models on one ROI should use it: a provider that
        can serve sensors of one collection with a single request over the union of
        their bands (``gee``) overrides it; the default fetches each sensor in turn.
        With ``return_exceptions=True`` a sensor that fails gets its ``ProviderError``
        in its slot instead of failing the others.
        """
        out: List[Union[Patch, Exception]] = []
        for s in sensors:
            try:
                out.append(self.fetch(spatial, temporal, s))
            except Exception as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def coverage(self) -> str:
        """A one-line human description of what this provider can serve."""
        return self.name

    @classmethod
    def availability(cls) -> Optional[str]:
        """Why this backend cannot be used here now (missing client, no credentials), or
        None. Cheap and offline; the class is asked, so nothing is opened."""
        return None

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Why this backend cannot serve ``sensor`` anywhere (collection or bands it does
        not hold), or None when it can or cannot tell without fetching."""
        return None

    def coverage_fraction(self, spatials: Sequence[SpatialSpec], temporal: Optional[TemporalSpec] = None,
                          sensor: Optional[SensorSpec] = None) -> List[Optional[float]]:
        """Share (0..1) of each ROI's grid that lies inside this backend's imagery, from
        footprints alone (no pixels read); None where the backend cannot tell (a global
        archive such as Earth Engine)."""
        return [None] * len(spatials)

    def close(self) -> None:
        """Release open files or sessions (optional)."""


__all__ = ["Patch", "Provider"]
