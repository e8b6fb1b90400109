"""Look at the raw patch a sensor spec describes, without running a model."""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

from .input_checks import check_input_patch
from .providers import open_backend
from .errors import SpecError
from .specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal


def inspect_provider_patch(*, spatial: SpatialSpec, temporal: Optional[TemporalSpec] = None,
                           sensor: SensorSpec, backend: Any = "gee", name: str = "gee_patch",
                           value_range: Optional[Tuple[float, float]] = None,
                           return_array: bool = False) -> dict:
    """Fetch one patch and report on it: ``ok``, per-band statistics, NaN/nodata, ranges.

    The result is JSON-serialisable unless ``return_array=True`` adds ``array_chw``.
    With ``sensor.check_save_dir`` set, a quicklook PNG is written there and its path
    listed under ``artifacts``.
    """
    spatial = check_spatial(spatial)
    temporal = check_temporal(temporal)
    if not isinstance(sensor, SensorSpec):
        raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
    if value_range is not None:
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise SpecError(f"value_range must be (low, high) with low < high, got {value_range!r}")
        value_range = (float(value_range[0]), float(value_range[1]))
    provider, backend_name = open_backend(backend, spatials=[spatial], temporal=temporal,
                                          sensors=[sensor])
    patch = provider.fetch(spatial, temporal, sensor)
    report = check_input_patch(patch, sensor, name=name, force=True, raise_on_fail=False,
                               value_range=value_range)
    artifacts = report.pop("artifacts", None) or {}
    out = {
        "ok": report["ok"],
        "name": name,
        "report": report,
        "sensor": sensor.to_dict(),
        "temporal": temporal.to_dict() if temporal is not None else None,
        "spatial": spatial.to_dict(),
        "backend": backend_name,
        "patch": patch.describe(),
        "artifacts": {k: os.path.abspath(v) for k, v in artifacts.items()},
    }
    if return_array:
        out["array_chw"] = patch.data
    return out


def inspect_gee_patch(**kwargs: Any) -> dict:
    """Older name of :func:`inspect_provider_patch`; same behaviour."""
    return inspect_provider_patch(**kwargs)


__all__ = ["inspect_provider_patch", "inspect_gee_patch"]
