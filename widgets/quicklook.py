"""Turning multi-band reflectance into pictures: band choice, robust stretch, PNG.

Shared by the map layers and the plots so a scene looks the same in both.
"""

from __future__ import annotations

import base64
import io
from typing import Optional, Sequence, Tuple

import numpy as np

from rs_embed.sensors import common_name


def rgb_band_indices(bands: Optional[Sequence[str]]) -> Optional[Tuple[int, int, int]]:
    """Indices of the red, green and blue bands in ``bands``, or None if any is missing.

    A band is red/green/blue by its STAC common name in the sensor vocabulary, so
    Sentinel-2 (``B4``, ``B04``), Landsat (``SR_B4``) and plain names (``red``) all work.
    """
    if not bands:
        return None
    names = [common_name(b) for b in bands]
    out = []
    for colour in ("red", "green", "blue"):
        hit = next((i for i, c in enumerate(names) if c == colour), None)
        if hit is None:
            return None
        out.append(hit)
    return tuple(out)


def stretch_limits(arrays: Sequence[np.ndarray], lo: float = 2.0, hi: float = 98.0,
                   valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-band ``(C, 2)`` percentiles ``lo``/``hi`` over one or several ``(C, H, W)`` arrays.

    NaN and pixels outside ``valid`` (e.g. nodata fill) are ignored, so a few bright
    clouds or a black border do not wash out the picture. Computing the limits over
    several patches at once keeps them comparable: water stays dark next to fields.
    """
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    arrays = [a[None] if a.ndim == 2 else a for a in arrays]
    c = arrays[0].shape[0]
    out = np.zeros((c, 2), dtype=np.float64)
    for b in range(c):
        parts = []
        for a in arrays:
            band = a[b]
            ok = np.isfinite(band)
            if valid is not None and len(arrays) == 1:
                ok &= valid
            parts.append(band[ok])
        vals = np.concatenate(parts) if parts else np.empty(0)
        if vals.size == 0:
            out[b] = (0.0, 1.0)
            continue
        p0, p1 = np.percentile(vals, [lo, hi])
        out[b] = (p0, p1 if p1 > p0 else p0 + 1e-6)
    return out


def robust_stretch(chw: np.ndarray, lo: float = 2.0, hi: float = 98.0,
                   valid: Optional[np.ndarray] = None,
                   limits: Optional[np.ndarray] = None) -> np.ndarray:
    """Scale each band to [0, 1] between its ``lo`` and ``hi`` percentiles
    (or the given per-band ``limits``, see :func:`stretch_limits`)."""
    a = np.asarray(chw, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    lim = stretch_limits([a], lo, hi, valid) if limits is None else np.asarray(limits)
    out = (a - lim[:, :1, None].astype(np.float32)) / (lim[:, 1:, None] - lim[:, :1, None]).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    out[~np.isfinite(a)] = 0.0
    return out


def rgb_indices_or_first(bands: Optional[Sequence[str]], count: int) -> Tuple[int, int, int]:
    """The red/green/blue band indices, else the first three bands (or one band as grey)."""
    idx = rgb_band_indices(bands)
    if idx is None:
        idx = (0, 1, 2) if count >= 3 else (0, 0, 0)
    return idx


def _first_frame(chw: np.ndarray) -> np.ndarray:
    a = np.asarray(chw)
    if a.ndim == 4:  # (T, C, H, W): show the first frame
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"expected a (C, H, W) array, got shape {a.shape}")
    return a


def rgb_limits(patches: Sequence[np.ndarray], bands: Optional[Sequence[str]] = None) -> np.ndarray:
    """Shared ``(3, 2)`` stretch limits of the true-colour bands of several patches."""
    frames = [_first_frame(p) for p in patches]
    idx = list(rgb_indices_or_first(bands, frames[0].shape[0]))
    return stretch_limits([f[idx] for f in frames])


def rgb_image(chw: np.ndarray, bands: Optional[Sequence[str]] = None,
              valid: Optional[np.ndarray] = None, limits: Optional[np.ndarray] = None) -> np.ndarray:
    """A true-colour ``(H, W, 3)`` float image in [0, 1] from a ``(C, H, W)`` patch.

    Uses the red/green/blue bands when ``bands`` names them, else the first three
    bands (or a grey image from a single band); ``limits`` as from :func:`rgb_limits`.
    """
    a = _first_frame(chw)
    idx = list(rgb_indices_or_first(bands, a.shape[0]))
    return np.moveaxis(robust_stretch(a[idx], valid=valid, limits=limits), 0, -1)


def image_data_url(rgb: np.ndarray, alpha: Optional[np.ndarray] = None, *,
                   fmt: str = "png", quality: int = 85) -> str:
    """A ``data:`` URL of an ``(H, W, 3)`` image in [0, 1] with an optional alpha mask.

    ``fmt="png"`` is lossless (small images, embedding maps); ``fmt="webp"`` is about ten
    times smaller for photographs such as scene quicklooks.
    """
    from PIL import Image

    img = (np.clip(np.nan_to_num(rgb), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if alpha is not None:
        img = np.dstack([img, (np.asarray(alpha, dtype=bool) * 255).astype(np.uint8)])
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(img))
    if fmt == "png":
        pil.save(buf, format="PNG")
    elif fmt == "webp":
        pil.save(buf, format="WEBP", quality=quality)
    else:
        raise ValueError(f"fmt must be 'png' or 'webp', got {fmt!r}")
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")
