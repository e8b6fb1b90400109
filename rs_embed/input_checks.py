"""Sanity checks of a fetched patch, before any model sees it.

Shared by ``inspect_provider_patch`` (look at a patch on purpose), by
``SensorSpec(check_input=True)`` in the embedding API and by ``fail_on_bad_input``
in exports. The report is plain JSON so it can go into a manifest.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import numpy as np

from . import sensors
from .errors import ProviderError
from .specs import SensorSpec

#: a patch fails the check when more than this share of pixels is outside the range
MAX_OUT_OF_RANGE = 0.01
#: ... or more than this share is nodata (filled). The one threshold for "mostly
#: nodata": the embedding API warns, exports record a warning (or fail the point with
#: ``fail_on_bad_input=True``) and ``inspect`` reports not ok above it.
MAX_NODATA = 0.5


def mostly_nodata(nodata_fraction) -> bool:
    """Whether a patch with this share of nodata pixels counts as mostly nodata."""
    return nodata_fraction is not None and float(nodata_fraction) > MAX_NODATA


def expected_range(sensor: Optional[SensorSpec]) -> Optional[Tuple[float, float]]:
    """The range providers return the sensor's collection in (the sensor vocabulary's)."""
    if sensor is None:
        return None
    return sensors.expected_range(sensor.collection)


def patch_report(data: np.ndarray, bands: Sequence[str], *, fill_value: Optional[float] = None,
                 value_range: Optional[Tuple[float, float]] = None) -> dict:
    """Per-band statistics and the pass/fail checks for one ``(C, H, W)`` patch."""
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"expected a (C, H, W) patch, got shape {arr.shape}")
    c = arr.shape[0]
    names = list(bands) if len(bands) == c else [f"band{i}" for i in range(c)]
    finite = np.isfinite(arr)
    nodata = ~finite if fill_value is None else (~finite | (arr == fill_value))
    pixel_nodata = nodata.all(axis=0)
    per_band = {}
    constant, issues = [], []
    oor_total = 0
    for i, name in enumerate(names):
        band = arr[i][finite[i]]
        valid = arr[i][~nodata[i]]
        stats = {
            "min": float(band.min()) if band.size else None,
            "max": float(band.max()) if band.size else None,
            "mean": float(band.mean()) if band.size else None,
            "std": float(band.std()) if band.size else None,
            "nan_fraction": float(1.0 - finite[i].mean()),
            "nodata_fraction": float(nodata[i].mean()),
        }
        if valid.size and float(valid.max()) == float(valid.min()):
            constant.append(name)
        if value_range is not None and valid.size:
            lo, hi = value_range
            n_out = int(((valid < lo) | (valid > hi)).sum())
            stats["out_of_range_fraction"] = n_out / valid.size
            oor_total += n_out
        per_band[name] = stats
    n_valid = int((~nodata).sum())
    report = {
        "shape": list(arr.shape),
        "bands": per_band,
        "nan_fraction": float(1.0 - finite.mean()),
        "nodata_fraction": float(pixel_nodata.mean()),
        "constant_bands": constant,
        "value_range": list(value_range) if value_range is not None else None,
        "out_of_range_fraction": (oor_total / n_valid) if (value_range is not None and n_valid) else 0.0,
    }
    if report["nan_fraction"] > 0:
        issues.append(f"{report['nan_fraction']:.1%} of values are NaN")
    if mostly_nodata(report["nodata_fraction"]):
        issues.append(f"{report['nodata_fraction']:.1%} of pixels are nodata (limit {MAX_NODATA:.0%})")
    if constant:
        issues.append(f"constant bands: {constant}")
    if report["out_of_range_fraction"] > MAX_OUT_OF_RANGE:
        issues.append(f"{report['out_of_range_fraction']:.1%} of values outside {list(value_range)}")
    report["issues"] = issues
    report["ok"] = not issues
    return report


def save_quicklook(data: np.ndarray, bands: Sequence[str], path: str, *, title: str = "") -> str:
    """Write a true-colour (or first-three-band) PNG with a 2-98 % stretch; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    arr = np.asarray(data, dtype=np.float32)
    idx = [list(bands).index(b) for b in ("B4", "B3", "B2") if b in bands]
    if len(idx) != 3:
        idx = [0, 0, 0] if arr.shape[0] < 3 else [0, 1, 2]
    rgb = np.stack([arr[i] for i in idx], axis=-1)
    finite = np.isfinite(rgb)
    lo, hi = (np.percentile(rgb[finite], [2, 98]) if finite.any() else (0.0, 1.0))
    rgb = np.clip((np.nan_to_num(rgb, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title or os.path.basename(path), fontsize=9)
    ax.set_axis_off()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def check_input_patch(patch, sensor: Optional[SensorSpec], *, name: str = "patch",
                      force: bool = False, raise_on_fail: Optional[bool] = None,
                      value_range: Optional[Tuple[float, float]] = None) -> Optional[dict]:
    """Run the checks when ``sensor.check_input`` (or ``force``); raise if asked to.

    Returns the report, or None when no check was requested.
    """
    if not force and (sensor is None or not sensor.check_input):
        return None
    data = np.asarray(patch.data)
    if data.ndim == 4:  # a time series: every frame's pixels count for its band
        t, c, h, w = data.shape
        data = data.transpose(1, 0, 2, 3).reshape(c, t * h, w)
    report = patch_report(data, patch.bands,
                          fill_value=sensor.fill_value if sensor is not None else None,
                          value_range=value_range if value_range is not None else expected_range(sensor))
    if sensor is not None and sensor.check_save_dir:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        report["artifacts"] = {"quicklook": save_quicklook(
            data, patch.bands, os.path.join(sensor.check_save_dir, f"{safe}_quicklook.png"),
            title=name)}
    should_raise = raise_on_fail if raise_on_fail is not None else (sensor is not None and sensor.check_raise)
    if not report["ok"] and should_raise:
        raise ProviderError(f"input check failed for {name}: {'; '.join(report['issues'])}")
    return report


__all__ = ["patch_report", "save_quicklook", "check_input_patch", "expected_range", "mostly_nodata",
           "MAX_NODATA", "MAX_OUT_OF_RANGE"]
