"""Reading an export back: ``load_export(path) -> ExportResult``.

A file (``.npz``, ``.nc`` or the ``.json`` manifest beside it) is a combined export;
a directory is a per-item export. Rows are aligned by point index: a point that
failed (or was never written) is a NaN row, it never shifts the others. A point file
of a per-item folder that belongs to another request than the run manifest's (left by
an earlier run that this one stopped before overwriting) is a missing point too, never
a silent ``ok``. Reads what ``export_batch`` writes and what the public rs-embed writes
(0.2.x-0.3.x).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import keys as K
from .manifest import aggregate_status

Array = Union[np.ndarray, List[Optional[np.ndarray]]]


@dataclass
class ModelResult:
    """One model across all points.

    ``embeddings`` is ``(n_items, D)`` or ``(n_items, D, H, W)`` float32 with NaN rows
    where the point failed (a list of per-point arrays, None where failed, in the rare
    case of points with different shapes); None when no point succeeded or embeddings
    were not saved. ``inputs`` likewise, or None when inputs were not saved (or not
    loaded). ``meta`` has one dict per point (empty where the point failed).
    """

    name: str
    status: str
    embeddings: Optional[Array]
    inputs: Optional[Array]
    meta: List[dict]
    error: Optional[str] = None
    failed_indices: List[int] = field(default_factory=list)


@dataclass
class ExportResult:
    layout: str
    spatials: List[dict]
    temporal: Optional[dict]
    n_items: int
    status: str
    models: Dict[str, ModelResult]
    manifest: dict
    path: str = ""
    format: str = "npz"
    names: Optional[List[str]] = None
    #: per-item points whose files belong to another request (read as missing)
    stale_indices: List[int] = field(default_factory=list)

    def _model(self, model: str) -> ModelResult:
        if model in self.models:
            return self.models[model]
        key = K.sanitize_key(model)
        for name, r in self.models.items():
            if K.sanitize_key(name) == key:
                return r
        raise KeyError(f"model {model!r} is not in this export; it holds {sorted(self.models)}")

    def embedding(self, model: str) -> np.ndarray:
        """``(n_items, D)`` or ``(n_items, D, H, W)``, NaN rows where a point failed."""
        r = self._model(model)
        if r.embeddings is None:
            why = r.error or ("embeddings were not saved" if r.status != "failed" else "no point succeeded")
            raise ValueError(f"model {model!r} has no embeddings (status={r.status!r}): {why}")
        return r.embeddings  # type: ignore[return-value]

    def inputs(self, model: str) -> Optional[Array]:
        """The input patches the model received, NaN rows where the fetch failed."""
        return self._model(model).inputs

    @property
    def ok_models(self) -> List[str]:
        return [n for n, r in self.models.items() if r.status == "ok"]

    @property
    def failed_models(self) -> List[str]:
        return [n for n, r in self.models.items() if r.status == "failed"]

    def __repr__(self) -> str:
        ms = ", ".join(f"{n}:{r.status}" for n, r in self.models.items())
        return (f"ExportResult(layout={self.layout!r}, n_items={self.n_items}, status={self.status!r}, "
                f"models=[{ms}], path={self.path!r})")


# ----------------------------------------------------------------------- arrays


class _Arrays:
    """Lazy access to the arrays of one file (npz or NetCDF)."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        if fmt == "npz":
            try:
                self._npz = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise ValueError(f"{path!r} is not a readable .npz export: {exc}") from exc
            self.names = set(self._npz.files)
        else:
            xr = _xarray()
            try:
                self._ds = xr.open_dataset(path)
            except Exception as exc:
                raise ValueError(f"{path!r} is not a readable NetCDF export: {exc}") from exc
            self.names = set(self._ds.variables)

    def get(self, key: Optional[str]) -> Optional[np.ndarray]:
        if not key or key not in self.names:
            return None
        if self.fmt == "npz":
            return np.asarray(self._npz[key])
        return np.asarray(self._ds[key].values)

    def close(self) -> None:
        if self.fmt == "npz":
            self._npz.close()
        else:
            self._ds.close()


def _xarray():
    try:
        import netCDF4  # noqa: F401  (the engine)
        import xarray as xr
    except ImportError as exc:
        raise ImportError("reading NetCDF exports needs xarray and netCDF4: "
                          "pip install xarray netCDF4") from exc
    return xr


def _fmt_of(path: str) -> Optional[str]:
    ext = os.path.splitext(path)[1].lower()
    return {".npz": "npz", ".nc": "netcdf", ".netcdf": "netcdf"}.get(ext)


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the manifest {path!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} is not an export manifest (not a JSON object)")
    return data


def _stack(rows: Sequence[Optional[np.ndarray]]) -> Optional[Array]:
    """``(n, ...)`` with NaN rows where None; a list when shapes differ; None when all None."""
    sample = next((r for r in rows if r is not None), None)
    if sample is None:
        return None
    if any(r is not None and r.shape != sample.shape for r in rows):
        return [None if r is None else r.astype(np.float32, copy=False) for r in rows]
    out = np.full((len(rows),) + sample.shape, np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = r
    return out


def _combined_array(ref: Any, arrays: _Arrays, n: int, default_key: str,
                    failed: Optional[Sequence[int]] = None, what: str = "") -> Optional[Array]:
    """One model's stacked array of a combined file, ``n`` rows aligned by point index.

    A stack shorter than ``n`` holds the rows of some points only: ``indices`` says
    which; without it (files of the public rs-embed may lack it) the points not in
    ``failed`` (the model's ``failed_indices``), in order.
    """
    ref = ref if isinstance(ref, dict) else {}
    key = ref.get("npz_key") or (default_key if not ref.get("npz_keys") else None)
    arr = arrays.get(key)
    if arr is not None:
        arr = arr.astype(np.float32, copy=False)
        idx = ref.get("indices")
        if arr.shape[0] == n and not (isinstance(idx, list) and len(idx) != n):
            return arr
        if not (isinstance(idx, list) and len(idx) == arr.shape[0]) and failed is not None:
            bad = {int(i) for i in failed}
            idx = [i for i in range(n) if i not in bad]
        if isinstance(idx, list) and len(idx) == arr.shape[0] and all(0 <= int(i) < n for i in idx):
            out = np.full((n,) + arr.shape[1:], np.nan, dtype=np.float32)
            out[np.asarray(idx, dtype=int)] = arr
            return out
        hint = "; load_export(..., inputs=False) skips the input patches" if key and "input" in key else ""
        raise ValueError(f"{key!r} of {arrays.path!r} has {arr.shape[0]} rows for {n} points and its "
                         f"manifest does not say which points they belong to ({what or 'no indices'}){hint}")
    keys = ref.get("npz_keys")
    if isinstance(keys, list) and keys:
        idx = ref.get("indices")
        rows: List[Optional[np.ndarray]] = [None] * n
        for j, k in enumerate(keys):
            a = arrays.get(k)
            if a is None:
                continue
            if isinstance(idx, list) and j < len(idx):
                i = int(idx[j])
            else:
                tail = str(k).rsplit("__", 1)[-1]
                i = int(tail) if tail.isdigit() else j
            if 0 <= i < n:
                rows[i] = a.astype(np.float32, copy=False)
        return _stack(rows)
    return None


# --------------------------------------------------------------------- combined


def _combined_paths(path: str):
    fmt = _fmt_of(path)
    if path.lower().endswith(".json"):
        manifest = _read_json(path)
        base = os.path.splitext(path)[0]
        for key, f in (("npz_path", "npz"), ("nc_path", "netcdf")):
            if manifest.get(key):
                cand = os.path.join(os.path.dirname(path), os.path.basename(manifest[key]))
                if os.path.exists(cand):
                    return cand, path, f, manifest
        for ext, f in ((".npz", "npz"), (".nc", "netcdf")):
            if os.path.exists(base + ext):
                return base + ext, path, f, manifest
        if "models" not in manifest:
            raise ValueError(f"{path!r} is not an rs_embed export manifest")
        raise FileNotFoundError(f"manifest {path!r} has no array file beside it ({base}.npz or {base}.nc)")
    if fmt is None:
        raise ValueError(f"{path!r} is not an export: expected a .npz, .nc or .json file, or a per-item directory")
    json_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(json_path):
        raise ValueError(f"{path!r} has no manifest beside it ({json_path}); it is not a complete export")
    manifest = _read_json(json_path)
    described = manifest.get("npz_path") or manifest.get("nc_path")
    if described and os.path.basename(str(described)) != os.path.basename(path):
        raise ValueError(f"the manifest {json_path!r} describes {os.path.basename(str(described))!r}, "
                         f"not {os.path.basename(path)!r} (two exports to one name in different formats?)")
    return path, json_path, fmt, manifest


def _load_combined(path: str, with_inputs: bool) -> ExportResult:
    arrays_path, json_path, fmt, manifest = _combined_paths(path)
    if not isinstance(manifest.get("models"), list):
        raise ValueError(f"{json_path!r} is not an rs_embed export manifest (no 'models' list)")
    if "point_index" in manifest:
        raise ValueError(f"{path!r} is one point of a per-item export; load its directory instead")
    arrays = _Arrays(arrays_path, fmt)
    try:
        spatials = list(manifest.get("spatials") or [])
        n = int(manifest.get("n_items", len(spatials)))
        models: Dict[str, ModelResult] = {}
        for entry in manifest["models"]:
            name = str(entry.get("model", ""))
            key = K.sanitize_key(name)
            metas = entry.get("metas") or []
            meta = [m if isinstance(m, dict) else {} for m in list(metas)[:n]] + [{}] * max(0, n - len(metas))
            failed = entry.get("failed_indices")
            if not isinstance(failed, list):
                failed = [i for i in range(n) if not meta[i]] if metas else []
            known = failed if (isinstance(entry.get("failed_indices"), list) or metas) else None
            emb = _combined_array(entry.get("embeddings"), arrays, n, K.embeddings_key(key), known,
                                  f"embeddings of {name!r}")
            inp = (_combined_array(entry.get("inputs"), arrays, n, K.inputs_key(key), known,
                                   f"inputs of {name!r}") if with_inputs else None)
            models[name] = ModelResult(name=name, status=str(entry.get("status", "failed")),
                                       embeddings=emb, inputs=inp, meta=meta,
                                       error=entry.get("error") or None, failed_indices=list(failed))
    finally:
        arrays.close()
    status = str(manifest.get("status") or aggregate_status(r.status for r in models.values()))
    return ExportResult(layout="combined", spatials=spatials, temporal=manifest.get("temporal") or None,
                        n_items=n, status=status, models=models, manifest=manifest,
                        path=arrays_path, format=fmt)


# --------------------------------------------------------------------- per item


def _point_files(directory: str, run: Optional[dict]):
    """``(index, array_path, manifest)`` for every point file of a per-item directory."""
    found = []
    if run is not None and isinstance(run.get("files"), list):
        for i, fname in enumerate(run["files"]):
            ap = os.path.join(directory, os.path.basename(str(fname)))
            jp = os.path.splitext(ap)[0] + ".json"
            if os.path.exists(ap) and os.path.exists(jp):
                found.append((i, ap, _read_json(jp)))
        return found
    claimed: Dict[int, str] = {}
    for fname in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(fname)
        if _fmt_of(fname) is None or fname.startswith("."):
            continue
        jp = os.path.join(directory, stem + ".json")
        if not os.path.exists(jp):
            continue
        m = _read_json(jp)
        idx = m.get("point_index")
        if not (isinstance(idx, int) and idx >= 0):
            if stem.startswith("p") and stem[1:].isdigit():
                idx = int(stem[1:])
            else:
                continue
        if idx in claimed:
            raise ValueError(f"{claimed[idx]!r} and {fname!r} in {directory!r} both claim point {idx}")
        claimed[idx] = fname
        found.append((idx, os.path.join(directory, fname), m))
    return found


_REQUEST_FIELDS = ("temporal", "output", "input_prep", "format")


def _same_request(run: dict, man: dict, i: int) -> bool:
    """Whether point file ``i`` was written for the request the run manifest describes.

    Compares the per-point request fingerprint the run manifest lists; run manifests
    without that list are compared field by field (window, output, preparation)."""
    fps = run.get("point_fingerprints")
    if isinstance(fps, list) and len(fps) > i and fps[i]:
        return man.get("request_fingerprint") == fps[i]
    return all(run.get(k) is None or man.get(k) is None or run[k] == man[k] for k in _REQUEST_FIELDS)


def _load_per_item(directory: str, with_inputs: bool) -> ExportResult:
    run_path = os.path.join(directory, K.RUN_MANIFEST)
    run = _read_json(run_path) if os.path.exists(run_path) else None
    files = _point_files(directory, run)
    if not files and run is None:
        raise ValueError(f"{directory!r} holds no export: no '<name>.npz|.nc' files with '.json' manifests")
    n = int(run["n_items"]) if run is not None else max(i for i, _, _ in files) + 1
    spatials: List[dict] = list(run.get("spatials") or []) if run is not None else [{} for _ in range(n)]
    spatials += [{}] * (n - len(spatials))
    names = list(run.get("names")) if run is not None and run.get("names") else None
    order: List[str] = [m.get("model") for m in (run or {}).get("models") or [] if m.get("model")]
    emb_rows: Dict[str, List[Optional[np.ndarray]]] = {}
    inp_rows: Dict[str, List[Optional[np.ndarray]]] = {}
    metas: Dict[str, List[dict]] = {}
    status: Dict[str, List[Optional[str]]] = {}
    errors: Dict[str, Optional[str]] = {}
    temporal = run.get("temporal") if run is not None else None
    fmt = run.get("format", "npz") if run is not None else None
    stale: List[int] = []

    def ensure(name: str) -> None:
        if name not in emb_rows:
            emb_rows[name] = [None] * n
            inp_rows[name] = [None] * n
            metas[name] = [{} for _ in range(n)]
            status[name] = [None] * n
            errors[name] = None
            if name not in order:
                order.append(name)

    for name in order:
        ensure(name)
    for i, ap, man in files:
        if i >= n:
            continue
        if run is not None and not _same_request(run, man, i):
            stale.append(i)
            continue
        f = _fmt_of(ap)
        fmt = fmt or f
        if run is None:
            if isinstance(man.get("spatial"), dict):
                spatials[i] = man["spatial"]
            if temporal is None:
                temporal = man.get("temporal")
        arrays = _Arrays(ap, f)
        try:
            for entry in man.get("models") or []:
                name = str(entry.get("model", ""))
                if not name:
                    continue
                ensure(name)
                key = K.sanitize_key(name)
                st = str(entry.get("status", "failed"))
                if man.get("write_error"):
                    st = "failed"
                status[name][i] = st
                emb_ref = entry.get("embedding") if isinstance(entry.get("embedding"), dict) else {}
                a = arrays.get(emb_ref.get("npz_key") or K.embedding_key(key)) if st == "ok" else None
                emb_rows[name][i] = None if a is None else a.astype(np.float32, copy=False)
                if with_inputs:
                    inp_ref = entry.get("input") if isinstance(entry.get("input"), dict) else {}
                    k = inp_ref.get("npz_key") if inp_ref else K.input_key(key)
                    a = arrays.get(k)
                    inp_rows[name][i] = None if a is None else a.astype(np.float32, copy=False)
                if isinstance(entry.get("meta"), dict):
                    metas[name][i] = entry["meta"]
                if st != "ok" and errors[name] is None:
                    errors[name] = entry.get("error") or None
        finally:
            arrays.close()
    models: Dict[str, ModelResult] = {}
    for name in order:
        sts = status[name]
        n_ok = sum(s == "ok" for s in sts)
        st = "ok" if n_ok == n else ("failed" if n_ok == 0 else "partial")
        if errors[name] is None and stale and n_ok < n:
            errors[name] = (f"points {stale} hold files of another request than this export's "
                            "(not overwritten by a run that stopped early); read as missing")
        emb = _stack(emb_rows[name])
        inp = _stack(inp_rows[name]) if with_inputs else None
        models[name] = ModelResult(
            name=name, status=st, embeddings=emb if n_ok else None, inputs=inp, meta=metas[name],
            error=(errors[name] or ("point was not exported" if n_ok == 0 else None)) if st == "failed" else None,
            failed_indices=[i for i, s in enumerate(sts) if s != "ok"])
    overall = aggregate_status(r.status for r in models.values()) if models else "failed"
    return ExportResult(layout="per_item", spatials=spatials, temporal=temporal or None, n_items=n,
                        status=overall, models=models,
                        manifest=run if run is not None else (files[0][2] if files else {}),
                        path=directory, format=fmt or "npz", names=names, stale_indices=stale)


# ------------------------------------------------------------------------ entry


def load_export(path: Union[str, os.PathLike], *, inputs: bool = True) -> ExportResult:
    """Load an export: a file (``.npz``/``.nc``/``.json``) is combined, a directory per-item.

    ``inputs=False`` skips the input patches (faster, less memory). Raises
    ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is
    not an export.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        for ext in (".npz", ".nc"):  # the out= of a combined export, without extension
            if os.path.isfile(path + ext) and os.path.isfile(path + ".json"):
                return _load_combined(path + ext, inputs)
        raise FileNotFoundError(f"export path does not exist: {path!r}")
    if os.path.isdir(path):
        return _load_per_item(path, inputs)
    return _load_combined(path, inputs)


__all__ = ["load_export", "ExportResult", "ModelResult"]
