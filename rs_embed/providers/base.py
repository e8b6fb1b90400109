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

from ..errors import ProviderError, warn
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

    def fetch_frames(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                     sensor: SensorSpec) -> Patch:
        """A time series for ``sensor.frames``: the window cut into equal bins, one
        composite each (:meth:`fetch` per bin), stacked ``(T, C, H, W)``.

        A bin with no imagery stays in place as a NaN frame (the model decides whether
        to mask or back-fill it) and is listed in ``meta["frames_empty"]``, with one
        warning; every bin empty raises the provider's error. A window shorter than
        ``frames`` days gives one frame per day.
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
        frames, metas, empty, grid, bands, last_exc = [], [], [], None, None, None
        for i, win in enumerate(windows):
            try:
                p = self.fetch(spatial, win, single)
            except ProviderError as exc:
                if exc.transient:
                    raise
                frames.append(None)
                metas.append({"error": str(exc).splitlines()[0]})
                empty.append(i)
                last_exc = exc
                continue
            if grid is None:
                grid, bands = p.grid, p.bands
            frames.append(p.data)
            metas.append(p.meta)
        if grid is None:
            raise last_exc  # type: ignore[misc]
        shape = next(f.shape for f in frames if f is not None)
        stack = np.stack([f if f is not None else np.full(shape, np.nan, np.float32) for f in frames])
        if empty:
            warn(f"{len(empty)} of {n} frames over {temporal.start}..{temporal.end} have no imagery "
                 f"(bins {[windows[i].start for i in empty]}); they are passed on as empty frames")
        nod = [m.get("nodata_fraction") for m in metas]
        frac = float(np.mean([1.0 if f is None else (v if v is not None else 0.0) for f, v in zip(frames, nod)]))
        first = next(m for m in metas if "error" not in m)
        meta = {k: v for k, v in first.items() if k not in ("scenes", "nodata_fraction", "temporal")}
        meta.update(
            frames_requested=n, frames=len(windows), frames_empty=empty,
            frames_with_data=len(windows) - len(empty), nodata_fraction=frac,
            frame_windows=[[w.start, w.end] for w in windows],
            frame_dates=[(w.start_date + (w.end_date - w.start_date) / 2).isoformat() for w in windows],
            scenes=[m.get("scenes") for m in metas], temporal=temporal.to_dict())
        return Patch(data=stack.astype(np.float32, copy=False), bands=bands, grid=grid, meta=meta)

    def coverage(self) -> str:
        """A one-line human description of what this provider can serve."""
        return self.name

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


__all__ = ["Patch", "Provider", "frame_windows", "fetch_input"]
