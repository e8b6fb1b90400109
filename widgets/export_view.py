"""What the plots need from an export, read from its files and manifests.

Accepts a path (anything ``load_export`` opens) or an ``ExportResult``; answers with
item names, the model to show, the saved input patches with their band names, the
embeddings, and where each input patch lies on the ground.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

import rs_embed
from rs_embed import BBox, PointBuffer
from rs_embed import analysis as _analysis


def as_result(source) -> Any:
    """An ``ExportResult`` from a path or an ``ExportResult``."""
    if hasattr(source, "models") and hasattr(source, "embedding"):
        return source
    return rs_embed.load_export(source)


def item_names(result, names: Optional[Sequence[str]] = None) -> List[str]:
    """A label per exported item: ``names`` if given, else the export's own names."""
    if names is not None:
        if len(names) != result.n_items:
            raise ValueError(f"names has {len(names)} entries for {result.n_items} items")
        return [str(n) for n in names]
    return _analysis.item_names(result)


def pick_model(result, model: Optional[str] = None) -> str:
    """``model`` if given (checked), else the first model that produced embeddings."""
    return _analysis.pick_model(result, model)


def spatial_of(result, i: int):
    s = result.spatials[i]
    return s if isinstance(s, (PointBuffer, BBox)) else rs_embed.spatial_from_dict(s)


def input_bands(result, model: str) -> Optional[List[str]]:
    """Band names of the model's saved input, from its manifest entry."""
    mr = result.models[model]
    for meta in (mr.meta or []):
        if isinstance(meta, dict):
            bands = (meta.get("input") or {}).get("bands") or meta.get("bands")
            if bands:
                return list(bands)
    sensor = _model_entry(result, model).get("sensor") or {}
    bands = sensor.get("bands")
    return list(bands) if bands else None


def _model_entry(result, model: str) -> dict:
    man = result.manifest or {}
    entries = man.get("models") or []
    if isinstance(entries, dict):
        return entries.get(model) or {}
    for e in entries:
        if isinstance(e, dict) and e.get("model") == model:
            return e
    return {}


def inputs(result, model: str) -> List[Optional[np.ndarray]]:
    """The saved ``(C, H, W)`` input of each item (None where missing or not saved)."""
    mr = result.models[model]
    arr = mr.inputs
    if arr is None and getattr(result, "path", None):  # loaded without inputs (the default): ask for them
        try:
            arr = rs_embed.load_export(result.path, inputs=True).models[mr.name].inputs
        except (OSError, ValueError, KeyError):
            arr = None
    if arr is None:
        return [None] * result.n_items
    out: List[Optional[np.ndarray]] = []
    for i in range(result.n_items):
        a = arr[i] if i < len(arr) else None
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a)
        out.append(None if a.size == 0 or not np.isfinite(a).any() else a)
    return out


def embeddings(result, model: str) -> np.ndarray:
    """``(N, D)`` or ``(N, D, h, w)`` with NaN rows where an item failed."""
    return np.asarray(result.embedding(model))


def input_grid(result, model: str, i: int, shape_hw: Tuple[int, int]):
    """(crs, affine transform) of item ``i``'s input patch.

    Read from the patch metadata in the manifest when present; otherwise the grid every
    provider samples for the ROI (:func:`rs_embed.roi_grid`), spread over ``shape_hw``.
    """
    from affine import Affine

    meta = (result.models[model].meta or [None] * result.n_items)[i] or {}
    patch = meta.get("input") or {} if isinstance(meta, dict) else {}
    crs, tr = patch.get("crs"), patch.get("transform")
    if crs and tr and len(tr) >= 6 and list(patch.get("shape", [0, 0, 0])[-2:]) == list(shape_hw):
        return crs, Affine(*tr[:6])
    sensor = (meta.get("sensor") or {}) if isinstance(meta, dict) else {}
    grid = rs_embed.roi_grid(spatial_of(result, i), float(sensor.get("scale_m") or 10.0))
    h, w = shape_hw
    a, _, c, _, e, f = grid.transform
    return grid.crs, Affine(a * grid.width / w, 0.0, c, 0.0, e * grid.height / h, f)


def select(n: int, indices: Optional[Sequence[int]], limit: int) -> List[int]:
    """Item indices to show: the given ones, else the first ``limit``."""
    if indices is None:
        return list(range(min(n, limit)))
    out = []
    for i in indices:
        if not -n <= i < n:
            raise IndexError(f"item index {i} is out of range for {n} items")
        out.append(i % n)
    return out
