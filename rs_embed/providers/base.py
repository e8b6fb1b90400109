"""The provider interface: imagery in, one float32 CHW patch out.

A provider knows where pixels come from (local rasters, Earth Engine, ...) and
nothing about models. Given an ROI, a time window and a :class:`SensorSpec`, it
returns a :class:`Patch` on the ROI's grid (:func:`rs_embed.geometry.roi_grid`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import ClassVar, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import sensors
from ..errors import ProviderError, SpecError, warn
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

    def fetch_frames(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                     sensor: SensorSpec) -> Patch:
        """A time series for ``sensor.frames``: the window cut into equal bins, one
        composite each (:meth:`fetch` per bin), stacked ``(T, C, H, W)``.

        A bin with no imagery stays in place as a frame of ``fill_value`` (the model
        decides whether to mask or back-fill it) and is listed in ``meta["frames_empty"]``,
        with one warning; every bin empty raises the provider's error. ``valid`` marks the
        pixels with imagery in at least one frame.
        """
        n = int(sensor.frames or 1)
        single = dataclasses.replace(sensor, frames=None)
        if temporal is None:
            warn(f"a {n}-frame time series needs a temporal window; fetched one composite "
                 f"of the provider's default window instead")
            patch = self.fetch(spatial, None, single)
            patch.data = patch.data[None]
            patch.meta.update(frames_requested=n, frames=1, frames_empty=[], frame_windows=None)
            return patch
        windows = frame_windows(temporal, n)
        frames: List[Optional[Patch]] = []
        last_exc = None
        for win in windows:
            try:
                frames.append(self.fetch(spatial, win, single))
            except ProviderError as exc:
                if exc.transient:
                    raise
                frames.append(None)
                last_exc = exc
        got = [p for p in frames if p is not None]
        if not got:
            raise last_exc  # type: ignore[misc]
        first = got[0]
        empty = [i for i, p in enumerate(frames) if p is None]
        fill = np.float32(sensor.fill_value)
        stack = np.stack([p.data if p is not None else np.full(first.data.shape, fill, np.float32)
                          for p in frames]).astype(np.float32, copy=False)
        valid = np.any(np.stack([p.valid for p in got]), axis=0)
        if empty:
            warn(f"{len(empty)} of {len(windows)} frames over {temporal.start}..{temporal.end} have no "
                 f"imagery (bins starting {[windows[i].start for i in empty]}); they are passed on as "
                 f"empty frames (fill_value), for the model to mask or back-fill")
        per_frame = [1.0 if p is None else float(p.meta.get("nodata_fraction") or 0.0) for p in frames]
        meta = {k: v for k, v in first.meta.items() if k not in ("scenes", "nodata_fraction", "temporal")}
        meta.update(
            frames_requested=n, frames=len(windows), frames_empty=empty,
            frames_with_data=len(windows) - len(empty), nodata_fraction=float(np.mean(per_frame)),
            frame_nodata_fraction=per_frame, frame_windows=[[w.start, w.end] for w in windows],
            frame_dates=[(w.start_date + (w.end_date - w.start_date) / 2).isoformat() for w in windows],
            scenes=[p.meta.get("scenes") if p is not None else [] for p in frames],
            temporal=temporal.to_dict(), fill_value=float(fill))
        return Patch(data=stack, bands=first.bands, grid=first.grid, meta=meta, valid=valid)

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


def frame_windows(temporal: TemporalSpec, n: int) -> List[TemporalSpec]:
    """``[start, end)`` cut into ``n`` consecutive bins.

    A window of whole calendar months whose month count ``n`` divides is cut on month
    boundaries (a year into 12 months, as monthly time series are made); any other
    window into bins of (nearly) equal whole days, at most one a day.
    """
    s, e = temporal.start_date, temporal.end_date
    months = (e.year - s.year) * 12 + e.month - s.month
    if s.day == 1 and e.day == 1 and n >= 1 and months >= n and months % n == 0:
        step = months // n
        edges = [date(s.year + (s.month - 1 + i * step) // 12, (s.month - 1 + i * step) % 12 + 1, 1)
                 for i in range(n + 1)]
        return [TemporalSpec.range(a.isoformat(), b.isoformat()) for a, b in zip(edges[:-1], edges[1:])]
    days = (temporal.end_date - temporal.start_date).days
    n = max(1, min(int(n), days))
    edges = [temporal.start_date + timedelta(days=round(i * days / n)) for i in range(n + 1)]
    return [TemporalSpec.range(a.isoformat(), b.isoformat()) for a, b in zip(edges[:-1], edges[1:])]


def fetch_input(provider: "Provider", spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                sensor: SensorSpec) -> Patch:
    """The patch a sensor asks for: one composite, or a time series when ``sensor.frames`` is set."""
    if sensor.frames:
        return provider.fetch_frames(spatial, temporal, sensor)
    return provider.fetch(spatial, temporal, sensor)


__all__ = ["Patch", "Provider", "RESAMPLING_POLICIES", "DEFAULT_RESAMPLING", "check_resampling",
           "resampling_method", "frame_windows", "fetch_input"]
