"""``export_batch`` arguments -> one checked, resolved :class:`ExportJob`.

All argument checks happen here, in a fixed order, before a provider is asked for
anything and before any file is touched: outputs and options first (cheap), then
models (may load weights), then every ROI against the grid system and the patch-size
limit, then the backend and its pre-flight check of each sensor
(:meth:`Provider.check`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import SpecError
from ..geometry import grid_shape, utm_epsg
from ..io.keys import DefaultNames
from ..io.manifest import spatials_fingerprint
from ..models.base import resolve_device
from ..providers import Provider, list_providers, open_backend
from ..providers.routing import backend_name_for
from ..specs import (BBox, InputPrepSpec, OutputSpec, PointBuffers, SpatialSpec, TemporalSpec,
                     check_output, check_spatial, check_temporal)
from ..inference import check_backend, run_window
from .plan import InputGroup, ModelPlan, group_inputs, plan_models
from .requests import ExportConfig, ResolvedTarget, check_run_options, resolve_target

#: keyword defaults of export_batch that ExportConfig can also carry
RUN_DEFAULTS: Dict[str, Any] = {f: getattr(ExportConfig, f) for f in ExportConfig.__dataclass_fields__}


class SpatialDicts(Sequence):
    """The dict form of each ROI (manifests, fingerprints), made when asked: a list of
    them would cost about 200 bytes per point for the whole run."""

    def __init__(self, spatials: Sequence[SpatialSpec]):
        self._spatials = spatials

    def __len__(self) -> int:
        return len(self._spatials)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [s.to_dict() for s in self._spatials[i]]
        return self._spatials[i].to_dict()

    def __iter__(self):
        for s in self._spatials:
            yield s.to_dict()


@dataclass(eq=False)
class ExportJob:
    spatials: Sequence[SpatialSpec]
    spatial_dicts: Sequence[dict]
    temporal: Optional[TemporalSpec]
    output: OutputSpec
    input_prep: InputPrepSpec
    models: List[ModelPlan]
    groups: List[InputGroup]
    target: ResolvedTarget
    names: List[str]
    provider: Provider
    backend: str
    device: str  # as requested
    device_resolved: str
    opts: Dict[str, Any] = field(default_factory=dict)
    progress_cb: Any = None
    cancel: Any = None

    def __getattr__(self, name):  # run options read as attributes: job.chunk_size, ...
        opts = self.__dict__.get("opts")
        if opts is not None and name in opts:
            return opts[name]
        raise AttributeError(name)

    @property
    def n_items(self) -> int:
        return len(self.spatials)

    @property
    def per_item_batch(self) -> bool:
        """Batched inference in per-item mode only on accelerators (as the reference says)."""
        return self.device_resolved != "cpu"

    @property
    def request_fingerprint(self) -> str:
        """The fingerprint of the whole request (every ROI), computed once per run."""
        fp = self.__dict__.get("_request_fingerprint")
        if fp is None:
            fp = self.__dict__["_request_fingerprint"] = spatials_fingerprint(
                self.fingerprint_common(), self.spatial_dicts)
        return fp

    def fingerprint_common(self) -> dict:
        """The request minus the spatial(s): what decides the content of the files.

        The provider's class and settings (catalog, resampling, cloud masking, project)
        are part of it: the same ROI read with other settings is other data.
        """
        return {
            "provider": self.provider.identity(),
            "models": [m.fingerprint_entry(self.backend) for m in self.models],
            "temporal": self.temporal.to_dict() if self.temporal is not None else None,
            "output": self.output.to_dict(),
            "format": self.format,
            "save_inputs": self.save_inputs,
            "save_embeddings": self.save_embeddings,
            "input_prep": self.input_prep.to_dict(),
        }


def _check_spatials(spatials: Any) -> Sequence[SpatialSpec]:
    if isinstance(spatials, PointBuffers):  # checked as arrays when it was made
        if len(spatials) == 0:
            raise SpecError("spatials must not be empty")
        return spatials
    if isinstance(spatials, (str, bytes)) or not isinstance(spatials, Sequence):
        if hasattr(spatials, "center") and hasattr(spatials, "to_dict"):
            raise SpecError(f"spatials must be a list of PointBuffer/BBox, got one spec {spatials!r}; "
                            "wrap it in a list")
        raise SpecError(f"spatials must be a list of PointBuffer/BBox, got {type(spatials).__name__}: {spatials!r}")
    if len(spatials) == 0:
        raise SpecError("spatials must not be empty")
    return [check_spatial(s, f"spatials[{i}]") for i, s in enumerate(spatials)]


#: bytes per pixel and band of an input patch (float32)
_PATCH_BYTES = 4
_M_PER_DEG = 111_320.0


def _approx_max_pixels(bbox: BBox, scale_m: float) -> float:
    """A generous upper bound of a BBox's grid size (2x the spherical extent), so only
    boxes near the limit need an exact projection."""
    lat = max(abs(bbox.minlat), abs(bbox.maxlat))
    w = (bbox.maxlon - bbox.minlon) * _M_PER_DEG * max(math.cos(math.radians(min(lat, 89.0))), 0.05)
    h = (bbox.maxlat - bbox.minlat) * _M_PER_DEG
    return 2.0 * (w / scale_m + 2) * 2.0 * (h / scale_m + 2)


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def _patch_shape(roi: SpatialSpec, scale_m: float, n_bands: int, limit: float) -> Optional[tuple]:
    """``(width, height)`` of the ROI's grid; None for a BBox clearly under the limit (its
    centre is still checked against the grid system, without projecting the box)."""
    if isinstance(roi, BBox) and _approx_max_pixels(roi, scale_m) * n_bands * _PATCH_BYTES <= limit:
        utm_epsg(*roi.center)
        return None
    return grid_shape(roi, scale_m)


def check_grids(rois: Sequence[SpatialSpec], groups: Sequence[InputGroup], max_patch_mb: float) -> None:
    """Every ROI inside the grid system (UTM: |lat| <= 84) and every patch under the size
    limit, for every input group; a ``SpecError`` naming the ROI, the sizes and the limit."""
    limit = max_patch_mb * 2**20
    for i, roi in enumerate(rois):
        for g in groups:
            scale, n_bands = g.sensor.scale_m, len(g.sensor.bands)
            try:
                shape = _patch_shape(roi, scale, n_bands, limit)
            except SpecError as exc:
                raise SpecError(f"spatials[{i}]={roi!r}: {exc}") from None
            if shape is None:
                continue
            w, h = shape
            need = float(w) * h * n_bands * _PATCH_BYTES
            if need > limit:
                what = "the box" if isinstance(roi, BBox) else "buffer_m"
                raise SpecError(
                    f"spatials[{i}]={roi!r} at scale_m={scale:g} makes a {w} x {h} px patch of {n_bands} "
                    f"band(s) for {[m.name for m in g.models]}: {_fmt_bytes(need)} as float32, over the "
                    f"patch-size limit max_patch_mb={max_patch_mb:g} ({_fmt_bytes(limit)}). Use a smaller "
                    f"{what}, a coarser scale_m (SensorSpec(scale_m=...)), or raise max_patch_mb")


def merge_config(config: Optional[ExportConfig], given: Dict[str, Any]) -> Dict[str, Any]:
    """Run options from ``config=`` and keywords: each option set (not default) in at most one
    place, or in both to the same value."""
    if config is None:
        return dict(given)
    if not isinstance(config, ExportConfig):
        raise SpecError(f"config must be an ExportConfig, got {type(config).__name__}: {config!r}")
    merged, clash = {}, []
    for k, v in given.items():
        cv = getattr(config, k)
        kw_set = not _same_default(v, RUN_DEFAULTS[k])
        cfg_set = not _same_default(cv, RUN_DEFAULTS[k])
        if kw_set and cfg_set and not _same_default(v, cv):
            clash.append(k)
        merged[k] = v if kw_set else cv
    if clash:
        raise SpecError(f"{', '.join(clash)} given both as keyword and in config=ExportConfig(...) "
                        "with different values; pass each option once")
    return merged


def _same_default(value, default) -> bool:
    if isinstance(value, InputPrepSpec) or isinstance(default, InputPrepSpec):
        try:
            return InputPrepSpec.coerce(value) == InputPrepSpec.coerce(default)
        except SpecError:
            return False
    return type(value) is type(default) and value == default


def build_job(*, spatials, temporal, models, out, layout, out_dir, out_path, names, backend,
              device, output, sensor, per_model_sensors, modality, target, config,
              run: Dict[str, Any], progress=None, cancel=None) -> ExportJob:
    rois = _check_spatials(spatials)
    if progress is not None and not callable(progress):
        raise SpecError(f"progress must be a callable(done, total, desc), got {progress!r}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise SpecError(f"cancel must be a threading.Event (anything with is_set()), got {cancel!r}")
    temporal = check_temporal(temporal)
    output = check_output(output)
    opts = check_run_options(**merge_config(config, run))
    resolved = resolve_target(out=out, layout=layout, out_dir=out_dir, out_path=out_path,
                              names=names, target=target, fmt=opts["format"], n_items=len(rois))
    if isinstance(backend, Provider):
        provider_arg = backend
    elif isinstance(backend, str) and backend:
        known = list_providers()
        if backend != "auto" and backend not in known:
            raise SpecError(f"backend {backend!r} is not a known provider; known: {['auto'] + known}")
        provider_arg = backend
    else:
        raise SpecError(f"backend must be a provider name such as 'auto', 'local' or 'gee', got {backend!r}")
    dev = resolve_device(device)
    plans = plan_models(models, sensor=sensor, per_model_sensors=per_model_sensors,
                        modality=modality, device=device, temporal=temporal)
    groups = group_inputs(plans)
    check_grids(rois, groups, opts["max_patch_mb"])
    provider, backend_name = open_backend(provider_arg, [p.embedder for p in plans], spatials=rois,
                                          temporal=temporal, sensors=[g.sensor for g in groups])
    # each model against the backend its input is routed to (a product beside imagery)
    routed = [backend_name_for(provider, backend_name, p.sensor) for p in plans]
    for p, name in zip(plans, routed):
        check_backend(p.embedder, name)
    for g in groups:  # unknown collections and bands, before any file is touched
        why = provider.check_sensor(g.sensor)
        if why:
            raise SpecError(f"backend {backend_name!r} cannot serve the input of "
                            f"{[m.name for m in g.models]}: {why}")
    temporal = run_window([p.embedder for p in plans], temporal, routed)
    item_names = resolved.names if resolved.names is not None else DefaultNames(len(rois))
    return ExportJob(spatials=rois, spatial_dicts=SpatialDicts(rois), temporal=temporal,
                     output=output, input_prep=opts["input_prep"], models=plans, groups=groups,
                     target=resolved, names=item_names, provider=provider, backend=backend_name,
                     device=device, device_resolved=dev, opts=opts, progress_cb=progress,
                     cancel=cancel)


def run_locked(folder: str, lock_path: str, target: str, preflight: Callable[[], None],
               body: Callable[[], Any]) -> Any:
    """Run an export's ``body`` holding the target's lock (released on every way out).

    ``preflight`` (checks of what is on disk) runs under the lock, before anything is
    written; when it refuses, a ``folder`` this call created is removed again, so a
    rejected request leaves nothing behind.
    """
    from ..io.lock import ExportLock

    created = not os.path.isdir(folder)
    ensure_dir(folder)
    lock = ExportLock(lock_path, target)
    try:
        lock.acquire()
        preflight()
    except BaseException:
        lock.release()
        if created:
            try:
                os.rmdir(folder)
            except OSError:
                pass
        raise
    try:
        return body()
    finally:
        lock.release()


def package_version() -> str:
    from .. import __version__

    return __version__


def ensure_dir(path: str) -> None:
    os.makedirs(path or ".", exist_ok=True)


__all__ = ["ExportJob", "build_job", "RUN_DEFAULTS", "package_version", "ensure_dir", "run_locked",
           "check_grids"]
