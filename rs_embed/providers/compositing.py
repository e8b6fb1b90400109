"""Compositing a time-ordered stack of scenes into one patch, the way Earth Engine does.

Every provider that composites on the client (``local``, the STAC backends) calls
these, so ``composite="median"`` and ``"mosaic"`` mean the same on every backend and
the same as Earth Engine's ``ImageCollection.median()`` and, after sorting by time,
``.mosaic()``: masked pixels (NaN) never vote and never cover older data.
"""

from __future__ import annotations

import numpy as np


def median(stacks: np.ndarray) -> np.ndarray:
    """Per band and pixel median over scenes ``(N, C, H, W)``, ignoring NaN (all-NaN stays NaN)."""
    if stacks.shape[0] == 1:
        return stacks[0].copy()
    # no scene there: set aside first, as nanmedian warns on all-NaN slices (and
    # silencing warnings is not thread-safe)
    empty = np.all(np.isnan(stacks), axis=0)
    if empty.any():
        stacks = stacks.copy()
        stacks[:, empty] = 0.0
    out = np.nanmedian(stacks, axis=0).astype(np.float32)
    out[empty] = np.nan
    return out


def mosaic(stacks: np.ndarray) -> np.ndarray:
    """Per band and pixel, the latest scene with data (scenes ``(N, C, H, W)`` oldest first)."""
    out = stacks[-1].copy()
    for k in range(stacks.shape[0] - 2, -1, -1):
        hole = np.isnan(out)
        if not hole.any():
            break
        out[hole] = stacks[k][hole]
    return out


def fill_invalid(data: np.ndarray, fill_value: float):
    """Give ``fill_value`` to every pixel of ``data`` ``(C, H, W)`` where a band is NaN.

    In place; returns ``(valid, meta)``: the ``(H, W)`` mask of pixels where every band
    holds imagery (``Patch.valid``) and what every provider records for it
    (``fill_value``, ``nodata_fraction``, ``nodata_pixels``).
    """
    valid = np.all(np.isfinite(data), axis=0)
    n_bad = int(valid.size - np.count_nonzero(valid))
    if n_bad:
        data[:, ~valid] = np.float32(fill_value)
    return valid, {"fill_value": fill_value,
                   "nodata_fraction": n_bad / float(valid.size) if valid.size else 0.0,
                   "nodata_pixels": n_bad}


def composite(stacks: np.ndarray, how: str) -> np.ndarray:
    """``median`` or ``mosaic`` of a time-ordered stack."""
    return mosaic(stacks) if how == "mosaic" else median(stacks)


__all__ = ["median", "mosaic", "composite", "fill_invalid"]
