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

from .. import sensors
from ..errors import SpecError
from ..geometry import Grid
from ..specs import SensorSpec, SpatialSpec, TemporalSpec

#: How every provider samples bands onto the ROI grid, so the same request gives the
#: same pixels whatever the backend: ``"bilinear"`` interpolates continuous bands
#: (reflectance, backscatter) and takes the nearest pixel of categorical ones (classes,
#: bit flags: see :func:`rs_embed.sensors.is_categorical`); ``"nearest"`` takes the
#: nearest pixel of every band.
RESAMPLING_POLICIES = ("bilinear", "nearest")
DEFAULT_RESAMPLING = "bilinear"


def check_resampling(policy: str) -> str:
    if policy not in RESAMPLING_POLICIES:
        raise SpecError(f"resampling must be one of {RESAMPLING_POLICIES}, got {policy!r}")
    return policy


def resampling_method(band: str, policy: str = DEFAULT_RESAMPLING, categorical: Optional[bool] = None) -> str:
    """The resampling a band gets under ``policy`` (``categorical`` overrides the vocabulary)."""
    if categorical is None:
        categorical = sensors.is_categorical(band)
    return "nearest" if policy == "nearest" or categorical else "bilinear"


@dataclass
class Patch:
    """A fetched input: ``data`` float32 ``(C, H, W)`` in ``bands`` order on ``grid``.

    ``valid`` is the nodata mask ``(H, W)``: True where every band holds imagery; the
    other pixels of ``data`` hold ``fill_value`` (how exports store them), and models
    fill them as their family documents. ``meta`` holds provenance: ``scenes`` (ids
    used), ``nodata_fraction`` (share of pixels outside ``valid``), ``composite``,
    ``temporal`` (the window used), ``radiometry`` (scale, offset and where that came
    from), ``resampling`` and any backend-specific detail.
    """

    data: np.ndarray
    bands: Tuple[str, ...]
    grid: Grid
    meta: dict = field(default_factory=dict)
    valid: Optional[np.ndarray] = None

    def __post_init__(self):
        if self.valid is None:
            fill = self.meta.get("fill_value")
            finite = np.isfinite(self.data).all(axis=0)
            if fill is not None and not np.isnan(fill):
                finite &= ~(self.data == np.float32(fill)).all(axis=0)
            self.valid = finite
        if "nodata_fraction" not in self.meta and self.valid.size:
            self.meta["nodata_fraction"] = float(1.0 - self.valid.mean())

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


__all__ = ["Patch", "Provider", "RESAMPLING_POLICIES", "DEFAULT_RESAMPLING", "check_resampling",
           "resampling_method"]
