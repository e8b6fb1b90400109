"""The provider interface: imagery in, one float32 CHW patch out.

A provider knows where pixels come from (local rasters, Earth Engine, ...) and
nothing about models. Given an ROI, a time window and a :class:`SensorSpec`, it
returns a :class:`Patch` on the ROI's grid (:func:`rs_embed.geometry.roi_grid`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Tuple

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

    def coverage(self) -> str:
        """A one-line human description of what this provider can serve."""
        return self.name

    def close(self) -> None:
        """Release open files or sessions (optional)."""


__all__ = ["Patch", "Provider"]
