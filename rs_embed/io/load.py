"""Reading an export back: ``load_export(path) -> ExportResult``.

A file (``.npz``, ``.nc`` or the ``.json`` manifest beside it) is a combined export;
a directory is a per-item export. Rows are aligned by point index: a point that
failed (or was never written) is a NaN row, it never shifts the others. A point file
of a per-item folder that belongs to another request than the run manifest's (left by
an earlier run that this one stopped before overwriting) is a missing point too, never
a silent ``ok``; so is an embedding holding NaN or infinite values. Reads what
``export_batch`` writes and what the public rs-embed writes (0.2.x-0.3.x), and exports
written with ``save_manifest=False`` from their arrays alone.

A file cannot crash the reader: every malformed manifest or archive is a ``ValueError``
naming the file and the field, and sizes a manifest claims are checked against the
arrays (and an array's header against its stored bytes) before anything is allocated.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import keys as K
from .manifest import aggregate_status, expand_point_manifest
from .manifest_lines import LazyList, read_manifest

#: ``load_export(lazy=None)`` reads the arrays of a combined export of at least this many
#: points only when they are first used
LAZY_MIN_POINTS = 50_000

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

    def to_geodataframe(self, models: Optional[List[str]] = None, *, embeddings: bool = True):
        """One row per point x model (geometry: the ROI footprint, EPSG:4326), the layout of
        the GeoParquet output; ``models`` a subset, ``embeddings=False`` leaves vectors out.
        Needs geopandas (``pip install 'rs_embed[parquet]'``)."""
        from .frames import to_geodataframe

        return to_geodataframe(self, models, embeddings=embeddings)

    def to_xarray(self, models: Optional[List[str]] = None, *, inputs: bool = False):
        """An ``xarray.Dataset`` over a ``point`` dimension with ``lon``/``lat`` coordinates,
        ``embeddings__<model>`` and ``status__<model>`` (``inputs_bchw__<model>`` with
        ``inputs=True``); a Zarr export is opened lazily from its store."""
        from .frames import to_xarray

        return to_xarray(self, models, inputs=inputs)

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


# ------------------------------------------------------------------ validation

STATUSES = ("ok", "partial", "failed")
_MISSING = object()


def _bad(path: str, field: str, problem: str) -> ValueError:
    return ValueError(f"{path!r}: field {field!r} {problem}")


def _int(value: Any, path: str, field: str, *, lo: int = 0, hi: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, field, f"must be an integer, got {value!r}")
    if value < lo or (hi is not None and value >= hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi})"
        raise _bad(path, field, f"must be {rng}, got {value!r}")
    return value


def _opt(d: dict, key: str, types, path: str, field: str, default: Any = None) -> Any:
    """``d[key]`` if of ``types`` (None and absent give ``default``), else a ValueError."""
    value = d.get(key, _MISSING)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, types) or isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise _bad(path, field, f"must be a {names}, got {type(value).__name__}: {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _status(value: Any, path: str, field: str, default: str = "failed") -> str:
    if value is None:
        return default
    if value not in STATUSES:
        raise _bad(path, field, f"must be one of {list(STATUSES)}, got {_short(value)}")
    return value


def _indices(value: Any, path: str, field: str, n: int) -> Optional[List[int]]:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(path, field, f"must be a list of point indices, got {type(value).__name__}")
    return [_int(v, path, f"{field}[{j}]", hi=n) for j, v in enumerate(value)]


def _str_list(value: Any, path: str, field: str) -> Optional[List[str]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, field, f"must be a list of strings, got {_short(value)}")
    return value


def _finite_rows(arr: Optional[Array], n: int) -> List[bool]:
    """Per point: a row with no NaN/inf value (False where missing)."""
    if arr is None:
        return [False] * n
    if isinstance(arr, list):
        return [r is not None and bool(np.isfinite(r).all()) for r in arr]
    return list(np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)) if arr.size else [True] * n


# ----------------------------------------------------------------------- arrays


class _Arrays:
    """Lazy, checked access to the arrays of one file (npz or NetCDF).

    An ``.npz`` member is read only after its header's shape and dtype have been
    checked against the member's stored size, so a damaged or forged header cannot make
    the reader allocate more than the file holds.
    """

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        #: the members (variables) read so far, in order
        self.read_members: List[str] = []
        if fmt in ("parquet", "zarr"):
            self._table = _TableArrays(path, fmt)
            self.names = self._table.names
        elif fmt == "npz":
            try:
                self._zip = zipfile.ZipFile(path)
                members = self._zip.infolist()
            except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
                raise ValueError(f"{path!r} is not a readable .npz export: {exc}") from exc
            self._members = {m.filename[:-4]: m for m in members if m.filename.endswith(".npy")}
            self.names = set(self._members)
        else:
            xr = _xarray()
            try:
                self._ds = xr.open_dataset(path)
                self.names = set(self._ds.variables)
            except Exception as exc:
                raise ValueError(f"{path!r} is not a readable NetCDF export: {exc}") from exc

    def get(self, key: Optional[str]) -> Optional[np.ndarray]:
        if not key or not isinstance(key, str) or key not in self.names:
            return None
        if self.fmt in ("parquet", "zarr"):
            self.read_members.append(key)
            return self._table.get(key)
        if self.fmt == "npz":
            return self._npy(key)
        try:
            self.read_members.append(key)
            return np.asarray(self._ds[key].values)
        except Exception as exc:
            raise ValueError(f"{self.path!r}: variable {key!r} cannot be read: {exc}") from exc

    def _npy(self, key: str) -> np.ndarray:
        info = self._members[key]
        fmt = np.lib.format
        try:
            with self._zip.open(info) as fh:
                version = fmt.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = fmt.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = fmt.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                if dtype.hasobject:
                    raise ValueError("it holds Python objects, which an export never does")
                count = math.prod(int(s) for s in shape)
                need = count * dtype.itemsize
                have = info.file_size - fh.tell()
                if need != have:
                    raise ValueError(f"its header claims shape {list(shape)} of {dtype} ({need} bytes) but "
                                     f"{have} bytes are stored")
                if info.compress_type == zipfile.ZIP_STORED and need:
                    self.read_members.append(key)
                    return self._mapped(info, fh.tell(), dtype, shape, fortran)
                self.read_members.append(key)
                buf = bytearray(need)
                view, got = memoryview(buf), 0
                while got < need:
                    k = fh.readinto(view[got:got + (1 << 22)])  # in blocks: no whole-size copies
                    if not k:
                        raise ValueError(f"it ends after {got} of {need} bytes")
                    got += k
        except ValueError as exc:
            raise ValueError(f"{self.path!r}: array {key!r} is damaged: {exc}") from exc
        except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ValueError(f"{self.path!r}: array {key!r} is damaged: {type(exc).__name__}: {exc}") from exc
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")

    def _mapped(self, info: zipfile.ZipInfo, header_len: int, dtype, shape, fortran: bool) -> np.ndarray:
        """An uncompressed member, memory-mapped from the zip at its offset (read-only)."""
        with open(self.path, "rb") as raw:
            raw.seek(info.header_offset)
            local = raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError("its local header is damaged")
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        offset = info.header_offset + 30 + name_len + extra_len + header_len
        return np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                         order="F" if fortran else "C")

    def attrs(self) -> dict:
        """Global attributes of a NetCDF file ({} for npz)."""
        if self.fmt in ("parquet", "zarr"):
            return self._table.attrs()
        return dict(self._ds.attrs) if self.fmt == "netcdf" else {}

    def close(self) -> None:
        if self.fmt in ("parquet", "zarr"):
            return
        if self.fmt == "npz":
            self._zip.close()
        else:
            self._ds.close()


class _TableArrays:
    """The arrays of a GeoParquet file or Zarr store under their ``.npz`` names
    (``embeddings__<model>``, ``inputs_bchw__<model>``), each read when asked for: one
    model's row groups of the Parquet file, one array of the store."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        if fmt == "parquet":
            from . import geoparquet as G

            meta = G.file_metadata(path)
            if meta is None:
                raise ValueError(f"{path!r} is not a readable GeoParquet export (no 'rs_embed' metadata)")
            self.meta = meta
            self._models = {K.embeddings_key(K.sanitize_key(m.get("model", ""))): m.get("model")
                            for m in meta.get("models") or [] if isinstance(m, dict)}
            self.names = set(self._models)
        else:
            from . import zarr_store as Z

            meta = Z.run_metadata(path)
            if meta is None:
                raise ValueError(f"{path!r} is not a readable Zarr export (no 'rs_embed' attributes in zarr.json)")
            self.meta = meta
            try:
                self._store = Z.ZarrExportStore.open(path)
                self.names = set(self._store.array_names())
            except Exception as exc:
                raise ValueError(f"{path!r} is not a readable Zarr export: {exc}") from exc

    def attrs(self) -> dict:
        return {"n_items": self.meta.get("n_items")} if isinstance(self.meta.get("n_items"), int) else {}

    def get(self, key: str) -> Optional[np.ndarray]:
        try:
            if self.fmt == "parquet":
                from . import geoparquet as G

                n = self.meta.get("n_items")
                return G.read_embeddings(self.path, self._models[key], int(n))
            return np.asarray(self._store.array(key)[:])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{self.path!r}: array {key!r} cannot be read: {exc}") from exc


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


def _combined_fmt_of(path: str) -> Optional[str]:
    """The format of a combined export's file or store (Parquet and Zarr are combined only)."""
    ext = os.path.splitext(path.rstrip("/" + os.sep))[1].lower()
    return {".parquet": "parquet", ".zarr": "zarr"}.get(ext) or _fmt_of(path)


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"cannot read the manifest {path!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} is not an export manifest (not a JSON object)")
    return data


def _read_combined_manifest(path: str) -> dict:
    """A combined manifest; the per-point lists of one written line by line stay on disk
    (:class:`~rs_embed.io.manifest_lines.LazyList`) until used."""
    try:
        data = read_manifest(path, lazy=True)
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"cannot read the manifest {path!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} is not an export manifest (not a JSON object)")
    return data


def _as_f32(a: np.ndarray, path: str, key: str) -> np.ndarray:
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{path!r}: array {key!r} has dtype {a.dtype}, not numbers")
    return a.astype(np.float32, copy=False)


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


def _combined_array(ref: Any, arrays: _Arrays, n: int, default_key: str, failed: Optional[Sequence[int]],
                    what: str, json_path: str, field: str) -> Optional[Array]:
    """One model's stacked array of a combined file, ``n`` rows aligned by point index.

    A stack shorter than ``n`` holds the rows of some points only: ``indices`` says
    which; without it (files of the public rs-embed may lack it) the points not in
    ``failed`` (the model's ``failed_indices``), in order.
    """
    if ref is not None and not isinstance(ref, dict):
        raise _bad(json_path, field, f"must be an object, got {type(ref).__name__}: {_short(ref)}")
    ref = ref or {}
    key = _opt(ref, "npz_key", str, json_path, f"{field}.npz_key")
    keys = _str_list(ref.get("npz_keys"), json_path, f"{field}.npz_keys")
    idx = _indices(ref.get("indices"), json_path, f"{field}.indices", n)
    key = key or (default_key if not keys else None)
    arr = arrays.get(key)
    if arr is not None:
        arr = _as_f32(arr, arrays.path, key)
        if arr.ndim < 1:
            raise ValueError(f"{arrays.path!r}: array {key!r} is a scalar, not one row per point")
        if arr.shape[0] == n and not (idx is not None and len(idx) != n):
            return arr
        if not (idx is not None and len(idx) == arr.shape[0]) and failed is not None:
            bad = set(failed)
            idx = [i for i in range(n) if i not in bad]
        if idx is not None and len(idx) == arr.shape[0]:
            out = np.full((n,) + arr.shape[1:], np.nan, dtype=np.float32)
            out[np.asarray(idx, dtype=int)] = arr
            return out
        hint = "; load_export(..., inputs=False) skips the input patches" if "input" in key else ""
        raise ValueError(f"{key!r} of {arrays.path!r} has {arr.shape[0]} rows for {n} points and its "
                         f"manifest does not say which points they belong to ({what}){hint}")
    if keys:
        if idx is not None and len(idx) != len(keys):
            raise _bad(json_path, f"{field}.indices", f"has {len(idx)} entries for {len(keys)} npz_keys")
        rows: List[Optional[np.ndarray]] = [None] * n
        for j, k in enumerate(keys):
            a = arrays.get(k)
            if a is None:
                continue
            if idx is not None:
                i = idx[j]
            else:
                tail = k.rsplit("__", 1)[-1]
                i = int(tail) if tail.isdigit() else j
            if 0 <= i < n:
                rows[i] = _as_f32(a, arrays.path, k)
        return _stack(rows)
    return None


# --------------------------------------------------------------------- combined


def _combined_paths(path: str):
    """``(arrays_path, json_path or None, format, manifest or None)``."""
    fmt = _combined_fmt_of(path)
    if path.lower().endswith(".json"):
        manifest = _read_combined_manifest(path)
        base = os.path.splitext(path)[0]
        for key, f in (("npz_path", "npz"), ("nc_path", "netcdf"), ("parquet_path", "parquet"),
                       ("zarr_path", "zarr")):
            ref = manifest.get(key)
            if ref is not None and not isinstance(ref, str):
                raise _bad(path, key, f"must be a path, got {type(ref).__name__}: {_short(ref)}")
            if ref:
                cand = os.path.join(os.path.dirname(path), os.path.basename(ref))
                if os.path.exists(cand):
                    return cand, path, f, manifest
        for ext, f in ((".npz", "npz"), (".nc", "netcdf"), (".parquet", "parquet"), (".zarr", "zarr")):
            if os.path.exists(base + ext):
                return base + ext, path, f, manifest
        if "models" not in manifest:
            raise ValueError(f"{path!r} is not an rs_embed export manifest")
        raise FileNotFoundError(f"manifest {path!r} has no array file beside it ({base}.npz or {base}.nc)")
    if fmt is None:
        raise ValueError(f"{path!r} is not an export: expected a .npz, .nc, .parquet, .json file, a .zarr "
                         "store or a per-item directory")
    path = path.rstrip("/" + os.sep) or path
    json_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(json_path):
        return path, None, fmt, None  # save_manifest=False: the arrays alone
    manifest = _read_combined_manifest(json_path)
    described = (manifest.get("npz_path") or manifest.get("nc_path") or manifest.get("parquet_path")
                 or manifest.get("zarr_path"))
    if described and os.path.basename(str(described)) != os.path.basename(path):
        raise ValueError(f"the manifest {json_path!r} describes {os.path.basename(str(described))!r}, "
                         f"not {os.path.basename(path)!r} (two exports to one name in different formats?)")
    return path, json_path, fmt, manifest


def _model_status(name: str, declared: str, emb: Optional[Array], failed: List[int], n: int,
                  saved: bool) -> Tuple[str, List[int], List[int]]:
    """The status the rows support: a point is ok only with a finite embedding row.

    Returns (status, failed indices, points whose embedding is not finite)."""
    bad = set(failed)
    non_finite: List[int] = []
    if saved:
        finite = _finite_rows(emb, n)
        for i in range(n):
            if not finite[i]:
                if i not in bad and emb is not None and not _all_nan(emb, i):
                    non_finite.append(i)
                bad.add(i)
    elif declared == "failed":
        bad = set(range(n))
    failed_sorted = sorted(bad)
    if n == 0:
        return declared, failed_sorted, non_finite
    status = "ok" if not failed_sorted else ("failed" if len(failed_sorted) == n else "partial")
    return status, failed_sorted, non_finite


def _all_nan(arr: Array, i: int) -> bool:
    row = arr[i]
    return row is None or bool(np.isnan(row).all())


def _load_combined(path: str, with_inputs: bool, lazy: Optional[bool] = None) -> ExportResult:
    arrays_path, json_path, fmt, manifest = _combined_paths(path)
    if manifest is None:
        return _load_combined_arrays(arrays_path, fmt, with_inputs)
    if "point_index" in manifest:
        raise ValueError(f"{path!r} is one point of a per-item export; load its directory instead")
    entries = manifest.get("models")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _bad(json_path, "models", "must be a list of model entries (objects); this is not an "
                   "rs_embed export manifest")
    spatials = manifest.get("spatials")
    if spatials is not None and not isinstance(spatials, LazyList) and (
            not isinstance(spatials, list) or not all(isinstance(x, dict) for x in spatials)):
        raise _bad(json_path, "spatials", f"must be a list of ROI objects, got {_short(spatials)}")
    arrays = _Arrays(arrays_path, fmt)
    try:
        if "n_items" in manifest and manifest["n_items"] is not None:
            n = _int(manifest["n_items"], json_path, "n_items")
            if spatials is not None and len(spatials) != n:
                raise _bad(json_path, "n_items", f"is {n} but 'spatials' lists {len(spatials)} ROIs")
        elif spatials is not None:
            n = len(spatials)
        else:
            n = _rows_in(arrays)
        if spatials is None:  # nothing in the manifest vouches for n: the arrays must
            _check_rows_fit(arrays, n, json_path, entries)
        if lazy is None:
            lazy = n >= LAZY_MIN_POINTS
        if spatials is None:
            spatials = [{} for _ in range(n)]
        elif not isinstance(spatials, LazyList):
            spatials = list(spatials)
        temporal = _opt(manifest, "temporal", dict, json_path, "temporal")
        models: Dict[str, ModelResult] = {}
        for k, entry in enumerate(entries):
            fld = f"models[{k}]"
            name = entry.get("model")
            if not isinstance(name, str) or not name:
                raise _bad(json_path, f"{fld}.model", f"must be a model name, got {_short(name)}")
            key = K.sanitize_key(name)
            declared = _status(entry.get("status"), json_path, f"{fld}.status")
            metas = entry.get("metas")
            if metas is not None and not isinstance(metas, (list, LazyList)):
                raise _bad(json_path, f"{fld}.metas", f"must be a list, got {type(metas).__name__}: {_short(metas)}")
            metas = metas if metas is not None else []
            failed = _indices(entry.get("failed_indices"), json_path, f"{fld}.failed_indices", n)
            if failed is None:  # public files: metas are null where a point failed
                failed = [i for i in range(n) if i >= len(metas) or metas[i] is None] if metas else []
            known = failed if (isinstance(entry.get("failed_indices"), list) or len(metas)) else None
            emb_ref = entry.get("embeddings")
            inp_ref = entry.get("inputs")
            error = entry.get("error") if isinstance(entry.get("error"), str) else None
            spec = _ModelSpec(name, key, declared, failed, known, emb_ref, inp_ref, error, fld, n,
                              arrays_path, fmt, json_path)
            if lazy:
                models[name] = LazyModelResult(spec, metas, with_inputs)
                continue
            emb = spec.array("embeddings", arrays)
            inp = spec.array("inputs", arrays) if with_inputs else None
            models[name] = spec.result(emb, inp, _metas_list(metas, n))
    finally:
        arrays.close()
    status = aggregate_status(r.status for r in models.values()) if models else "failed"
    return ExportResult(layout="combined", spatials=spatials, temporal=temporal or None,  # type: ignore[arg-type]
                        n_items=n, status=status, models=models, manifest=manifest,
                        path=arrays_path, format=fmt)


def _metas_list(metas, n: int) -> List[dict]:
    return [m if isinstance(m, dict) else {} for m in list(metas)[:n]] + [{}] * max(0, n - len(metas))


@dataclass
class _ModelSpec:
    """What the manifest says of one model of a combined export, to read its rows later."""

    name: str
    key: str
    declared: str
    failed: List[int]
    known: Optional[List[int]]
    emb_ref: Any
    inp_ref: Any
    error: Optional[str]
    fld: str
    n: int
    arrays_path: str
    fmt: str
    json_path: str

    def array(self, what: str, arrays: "_Arrays") -> Optional[Array]:
        if what == "embeddings":
            return _combined_array(self.emb_ref, arrays, self.n, K.embeddings_key(self.key), self.known,
                                   f"embeddings of {self.name!r}", self.json_path, f"{self.fld}.embeddings")
        return _combined_array(self.inp_ref, arrays, self.n, K.inputs_key(self.key), self.known,
                               f"inputs of {self.name!r}", self.json_path, f"{self.fld}.inputs")

    def read(self, what: str) -> Optional[Array]:
        arrays = _Arrays(self.arrays_path, self.fmt)
        try:
            return self.array(what, arrays)
        finally:
            arrays.close()

    def checked(self, emb: Optional[Array]) -> Tuple[str, List[int], Optional[str]]:
        """Status, failed indices and error the rows support (an ok point needs a finite row)."""
        saved = emb is not None or self.emb_ref is not None
        status, failed_all, non_finite = _model_status(self.name, self.declared, emb, self.failed, self.n, saved)
        error = self.error
        if non_finite:
            error = error or (f"the embeddings of points {non_finite[:10]} hold NaN or infinite values")
        error = error if status == "failed" or non_finite else None
        if status == "failed" and error is None:
            error = "no point succeeded"
        return status, failed_all, error

    def result(self, emb, inp, meta: List[dict]) -> ModelResult:
        status, failed_all, error = self.checked(emb)
        for i in failed_all:
            meta[i] = {}
        return ModelResult(name=self.name, status=status, embeddings=emb if status != "failed" else None,
                           inputs=inp, meta=meta, error=error, failed_indices=failed_all)


class _Metas(Sequence):
    """Per-point metas read from the manifest when first used ({} where the point failed)."""

    def __init__(self, metas, n: int, failed: List[int]):
        self._metas, self._n, self._failed = metas, n, set(failed)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        if i in self._failed or i >= len(self._metas):
            return {}
        m = self._metas[i]
        return m if isinstance(m, dict) else {}

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


class LazyModelResult(ModelResult):
    """A :class:`ModelResult` of a large combined export whose arrays are read from the file
    when first used: ``embeddings`` reads this model's array only (no other model's, no
    inputs), ``inputs`` its input patches, ``meta`` the manifest's metas.

    ``status`` and ``failed_indices`` are the manifest's until the embeddings are read;
    reading them checks every row (a non-finite row fails its point) and updates both.
    """

    def __init__(self, spec: _ModelSpec, metas, with_inputs: bool):
        self._spec, self._metas_src, self._with_inputs = spec, metas, with_inputs
        self._emb: Any = _MISSING
        self._inp: Any = _MISSING if with_inputs else None
        self._meta: Any = _MISSING
        declared = spec.declared
        if spec.n and spec.failed:
            declared = "failed" if len(set(spec.failed)) >= spec.n else "partial"
        elif spec.n:
            declared = "ok" if declared != "failed" else declared
        self.name, self.status, self.error = spec.name, declared, spec.error if declared == "failed" else None
        self.failed_indices = sorted(set(spec.failed))
        if self.status == "failed" and self.error is None:
            self.error = "no point succeeded"

    @property  # type: ignore[override]
    def embeddings(self) -> Optional[Array]:
        if self._emb is _MISSING:
            emb = self._spec.read("embeddings")
            self.status, self.failed_indices, self.error = self._spec.checked(emb)
            self._emb = emb if self.status != "failed" else None
            self._meta = _MISSING  # failures may have changed
        return self._emb

    @embeddings.setter
    def embeddings(self, value) -> None:
        self._emb = value

    @property  # type: ignore[override]
    def inputs(self) -> Optional[Array]:
        if self._inp is _MISSING:
            self._inp = self._spec.read("inputs")
        return self._inp

    @inputs.setter
    def inputs(self, value) -> None:
        self._inp = value

    @property  # type: ignore[override]
    def meta(self) -> Sequence:
        if self._meta is _MISSING:
            self._meta = _Metas(self._metas_src, self._spec.n, self.failed_indices)
        return self._meta

    @meta.setter
    def meta(self, value) -> None:
        self._meta = value

    @property
    def loaded(self) -> Dict[str, bool]:
        """Which parts have been read from the file so far."""
        return {"embeddings": self._emb is not _MISSING, "inputs": self._inp is not _MISSING}

    def __repr__(self) -> str:
        return (f"LazyModelResult(name={self.name!r}, status={self.status!r}, n_items={self._spec.n}, "
                f"loaded={self.loaded})")


_POINT_KEY = re.compile(r"^(embedding|input_chw)__(.+)__(\d{5,})$")


def _rows_in(arrays: _Arrays) -> int:
    """Points of a combined file without a manifest: its stacks' rows, its per-point keys."""
    n = 0
    for k in arrays.names:
        m = _POINT_KEY.match(k)
        if m:
            n = max(n, int(m.group(3)) + 1)
    for k in arrays.names:
        if k.startswith(("embeddings__", "inputs_bchw__")):
            a = arrays.get(k)
            if a is not None and a.ndim >= 1:
                n = max(n, a.shape[0])
    return n


def _check_rows_fit(arrays: _Arrays, n: int, path: str, entries: Sequence[dict]) -> None:
    """``n_items`` of a manifest without ``spatials`` against the arrays, before any
    allocation: at least every stored row, at most those plus the listed failures."""
    rows = _rows_in(arrays)
    failures = sum(len(e["failed_indices"]) for e in entries if isinstance(e.get("failed_indices"), list))
    if n < rows or n > rows + failures:
        raise _bad(path, "n_items", f"is {n} but {arrays.path!r} holds {rows} point row(s)"
                   + (f" and the manifest lists {failures} failure(s)" if failures else ""))


def _load_combined_arrays(path: str, fmt: str, with_inputs: bool) -> ExportResult:
    """A combined export written with ``save_manifest=False``: models and rows from the keys."""
    arrays = _Arrays(path, fmt)
    try:
        attrs = arrays.attrs()
        keys = sorted(arrays.names)
        names = sorted({k.split("__", 1)[1] for k in keys if k.startswith("embeddings__")}
                       | {m.group(2) for m in map(_POINT_KEY.match, keys) if m and m.group(1) == "embedding"}
                       | {k.split("__", 1)[1] for k in keys if k.startswith("inputs_bchw__")}
                       | {m.group(2) for m in map(_POINT_KEY.match, keys) if m})
        if not names:
            raise ValueError(f"{path!r} has no manifest beside it ({os.path.splitext(path)[0]}.json) and no "
                             "rs_embed arrays (embeddings__*, embedding__*__NNNNN, inputs_bchw__*); "
                             "it is not an export")
        n = _rows_in(arrays)
        if isinstance(attrs.get("n_items"), (int, np.integer)) and int(attrs["n_items"]) >= n:
            n = int(attrs["n_items"])
        spatials = [{} for _ in range(n)]
        if "spatial" in arrays.names:
            raw = arrays.get("spatial")
            for i, text in enumerate(list(raw)[:n]):
                try:
                    d = json.loads(str(text))
                    spatials[i] = d if isinstance(d, dict) else {}
                except ValueError:
                    pass
        models: Dict[str, ModelResult] = {}
        for name in names:
            point = lambda kind, i, name=name: f"{kind}__{name}__{i:05d}"  # noqa: E731
            emb = _combined_array({"npz_key": K.embeddings_key(name)} if K.embeddings_key(name) in arrays.names
                                  else {"npz_keys": [k for k in keys if k.startswith(f"embedding__{name}__")]},
                                  arrays, n, K.embeddings_key(name), None, f"embeddings of {name!r}", path,
                                  "arrays")
            inp = None
            if with_inputs:
                inp = _combined_array({"npz_key": K.inputs_key(name)} if K.inputs_key(name) in arrays.names
                                      else {"npz_keys": [k for k in keys if k.startswith(f"input_chw__{name}__")]},
                                      arrays, n, K.inputs_key(name), None, f"inputs of {name!r}", path, "arrays")
            del point
            status, failed, _ = _model_status(name, "failed", emb, [], n, True)
            models[name] = ModelResult(name=name, status=status, embeddings=emb if status != "failed" else None,
                                       inputs=inp, meta=[{} for _ in range(n)],
                                       error="no point succeeded" if status == "failed" else None,
                                       failed_indices=failed)
    finally:
        arrays.close()
    status = aggregate_status(r.status for r in models.values())
    return ExportResult(layout="combined", spatials=spatials, temporal=None, n_items=n, status=status,
                        models=models, manifest={}, path=path, format=fmt)


# --------------------------------------------------------------------- per item


def _point_manifest(path: str) -> dict:
    """A point manifest, checked enough that reading it cannot fail later."""
    man = _read_json(path)
    models = man.get("models")
    if models is not None and (not isinstance(models, list) or not all(isinstance(e, dict) for e in models)):
        raise _bad(path, "models", "must be a list of model entries (objects)")
    for k, e in enumerate(models or []):
        if not isinstance(e.get("model"), str) or not e.get("model"):
            raise _bad(path, f"models[{k}].model", f"must be a model name, got {_short(e.get('model'))}")
        _status(e.get("status"), path, f"models[{k}].status")
        for f in ("embedding", "input", "meta"):
            _opt(e, f, dict, path, f"models[{k}].{f}")
        for f in ("embedding", "input"):
            ref = e.get(f)
            if isinstance(ref, dict):
                _opt(ref, "npz_key", str, path, f"models[{k}].{f}.npz_key")
    return man


def _point_files(directory: str, run: Optional[dict], run_path: str, n_run: Optional[int]):
    """``(index, array_path, manifest or None)`` for every point file of a per-item directory."""
    found = []
    if run is not None and run.get("files") is not None:
        files = _str_list(run.get("files"), run_path, "files")
        if n_run is not None and len(files) != n_run:
            raise _bad(run_path, "files", f"lists {len(files)} files for n_items={n_run}")
        for i, fname in enumerate(files):
            ap = os.path.join(directory, _relative(fname))
            jp = os.path.splitext(ap)[0] + ".json"
            if os.path.exists(ap) and os.path.exists(jp):
                found.append((i, ap, _point_manifest(jp)))
        return found
    listing = sorted(f for f in _listing(directory, run) if _fmt_of(f) is not None
                     and not os.path.basename(f).startswith("."))
    with_json = [f for f in listing if os.path.exists(os.path.join(directory, os.path.splitext(f)[0] + ".json"))]
    if not with_json and listing:  # save_manifest=False: the arrays alone
        stems = [os.path.splitext(f)[0] for f in listing]
        default = all(re.fullmatch(r"p\d{5,}", s) for s in stems)
        for j, fname in enumerate(listing):
            found.append((int(stems[j][1:]) if default else j, os.path.join(directory, fname), None))
        _check_sparse(directory, [i for i, _, _ in found], listing[0] if listing else "")
        return found
    claimed: Dict[int, str] = {}
    for fname in with_json:
        stem = os.path.splitext(fname)[0]
        jp = os.path.join(directory, stem + ".json")
        m = _point_manifest(jp)
        idx = m.get("point_index")
        if idx is not None:
            idx = _int(idx, jp, "point_index")
        elif stem.startswith("p") and stem[1:].isdigit():
            idx = int(stem[1:])
        else:
            continue
        if idx in claimed:
            raise ValueError(f"{claimed[idx]!r} and {fname!r} in {directory!r} both claim point {idx}")
        claimed[idx] = fname
        found.append((idx, os.path.join(directory, fname), m))
    _check_sparse(directory, [i for i, _, _ in found], "")
    return found


_SHARD = re.compile(r"^\d{4}$")


def _relative(fname: str) -> str:
    """A file of the run manifest's list, relative to the export folder: ``name.npz`` or, in a
    sharded export, ``0001/name.npz``; anything else is reduced to its base name."""
    parts = fname.replace("\\", "/").split("/")
    if len(parts) == 2 and _SHARD.match(parts[0]):
        return os.path.join(parts[0], parts[1])
    return os.path.basename(fname)


def _listing(directory: str, run: Optional[dict]) -> List[str]:
    """Files of a per-item folder (relative), the shard sub-folders' too when it is sharded."""
    names = os.listdir(directory)
    layout = (run or {}).get("file_layout")
    if isinstance(layout, dict) and layout.get("kind") == "sharded":
        for sub in sorted(n for n in names if _SHARD.match(n) and os.path.isdir(os.path.join(directory, n))):
            names += [os.path.join(sub, f) for f in os.listdir(os.path.join(directory, sub))]
    return names


def _check_sparse(directory: str, indices: List[int], _first: str) -> None:
    """Without a run manifest the rows are as many as the largest index: refuse an index far
    beyond the files there are (a damaged manifest), before allocating for it."""
    if indices and max(indices) >= 4 * len(indices) + 16:
        raise ValueError(f"{directory!r}: a point file claims point_index {max(indices)} but the folder holds "
                         f"{len(indices)} point files and no run manifest ({K.RUN_MANIFEST}) says n_items")


_REQUEST_FIELDS = ("temporal", "output", "input_prep", "format")


def _same_request(run: dict, man: dict, i: int) -> bool:
    """Whether point file ``i`` was written for the request the run manifest describes.

    Compares the per-point request fingerprint the run manifest lists; run manifests
    without that list are compared field by field (window, output, preparation)."""
    fps = run.get("point_fingerprints")
    if isinstance(fps, list) and len(fps) > i and fps[i]:
        return man.get("request_fingerprint") == fps[i]
    return all(run.get(k) is None or man.get(k) is None or run[k] == man[k] for k in _REQUEST_FIELDS)


def _arrays_only_entries(arrays: _Arrays) -> List[dict]:
    """Model entries of a point file without a manifest, from its keys."""
    names = sorted({k.split("__", 1)[1] for k in arrays.names if k.startswith(("embedding__", "input_chw__"))})
    return [{"model": n, "status": "ok" if K.embedding_key(n) in arrays.names else "failed",
             "embedding": {"npz_key": K.embedding_key(n)}, "input": {"npz_key": K.input_key(n)}} for n in names]


def _static_parts(run: Optional[dict]) -> Dict[str, dict]:
    """Per model, what the run manifest holds once for every point (describe, meta_common)."""
    out: Dict[str, dict] = {}
    for e in (run or {}).get("models") or []:
        if isinstance(e, dict) and isinstance(e.get("model"), str):
            out[e["model"]] = {k: e[k] for k in ("describe", "meta_common", "model_config") if k in e}
    return out


class _PointFile:
    """One point file, opened to read a few arrays: npz members, or NetCDF variables read
    with netCDF4 directly (opening each file through xarray costs ~10x more)."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        if fmt == "npz":
            self._a = _Arrays(path, fmt)
            return
        try:
            import netCDF4
        except ImportError as exc:
            raise ImportError("reading NetCDF exports needs xarray and netCDF4: pip install xarray netCDF4") from exc
        from .netcdf import NC_LOCK

        self._lock = NC_LOCK
        try:
            with self._lock:
                self._ds = netCDF4.Dataset(path, "r")
                self._ds.set_auto_mask(False)
        except OSError as exc:
            raise ValueError(f"{path!r} is not a readable NetCDF export: {exc}") from exc

    def get(self, key: Optional[str]) -> Optional[np.ndarray]:
        if not key:
            return None
        if self.fmt == "npz":
            return self._a.get(key)
        with self._lock:
            var = self._ds.variables.get(key)
            if var is None:
                return None
            try:
                return np.asarray(var[...])
            except Exception as exc:
                raise ValueError(f"{self.path!r}: variable {key!r} cannot be read: {exc}") from exc

    def close(self) -> None:
        if self.fmt == "npz":
            self._a.close()
        else:
            with self._lock:
                self._ds.close()


class _IndexedModel(ModelResult):
    """A model of an indexed per-item export: ``embeddings``, ``inputs`` and ``meta`` are
    read from the files the first time they are asked for."""

    def __init__(self, loader: "_IndexedExport", name: str, k: int, status: str, failed: List[int],
                 error: Optional[str]):
        self._loader, self._k = loader, k
        self._values: Dict[str, Any] = {}
        self.name, self.status, self.error, self.failed_indices = name, status, error, failed

    def _lazy(field: str):  # noqa: N805 - a property factory
        def get(self):
            if field not in self._values:
                self._values[field] = getattr(self._loader, field)(self)
            return self._values[field]

        def put(self, value):
            self._values[field] = value

        return property(get, put)

    embeddings = _lazy("embeddings")
    inputs = _lazy("inputs")
    meta = _lazy("meta")
    del _lazy

    def failed_now(self, points: Sequence[int]) -> None:
        """Points found failed while reading (a non-finite embedding): their meta is empty."""
        if "meta" in self._values:
            del self._values["meta"]

    def __repr__(self) -> str:
        return (f"ModelResult(name={self.name!r}, status={self.status!r}, "
                f"failed_indices={len(self.failed_indices)} point(s), read on demand)")


class _IndexedExport:
    """Reads what a model of an indexed per-item export holds, on demand."""

    def __init__(self, directory: str, run: dict, rows, n: int, fmt: str, with_inputs: bool):
        self.dir, self.run, self.rows, self.n, self.fmt = directory, run, rows, n, fmt
        self.with_inputs = with_inputs
        self.entries = [e for e in run.get("models") or [] if isinstance(e, dict)]
        self.static = _static_parts(run)
        self.row_of = np.full(n, -1, np.int64)
        idx = rows.index
        ok = (idx >= 0) & (idx < n)
        self.row_of[idx[ok]] = np.flatnonzero(ok)
        self._stacks: Dict[str, Optional[Array]] = {}
        self.result: Optional[ExportResult] = None
        from .lazy import LazySequence

        self._points = LazySequence(n, self._point_manifest, what="point manifest")

    def file_of(self, i: int) -> Optional[str]:
        k = self.row_of[i]
        if k < 0:
            return None
        rel = self.rows.table.column("file")[int(k)].as_py()
        return os.path.join(self.dir, _relative(rel)) if rel else None

    def _read_rows(self, key: str, points: Sequence[int], what: str) -> Optional[Array]:
        """Array ``key`` of each of ``points``, stacked (NaN rows elsewhere); read once per key."""
        if key in self._stacks:
            return self._stacks[key]
        from tqdm.auto import tqdm

        # one (n, ...) array filled in place (no second copy of the rows); a list of rows
        # only if shapes differ between points
        out: Optional[np.ndarray] = None
        ragged: Optional[List[Optional[np.ndarray]]] = None
        filled: List[int] = []
        for i in tqdm(points, desc=f"load {what}", leave=False, disable=len(points) < 20000):
            path = self.file_of(i)
            if path is None or not os.path.exists(path):
                continue
            f = _PointFile(path, self.fmt)
            try:
                a = f.get(key)
            finally:
                f.close()
            if a is None:
                continue
            a = _as_f32(a, path, key)
            if ragged is None and out is None:
                out = np.full((self.n,) + a.shape, np.nan, dtype=np.float32)
            if ragged is None and a.shape != out.shape[1:]:
                ragged = [None] * self.n
                for j in filled:
                    ragged[j] = out[j].copy()
                out = None
            if ragged is not None:
                ragged[i] = a
            else:
                out[i] = a
            filled.append(i)
        self._stacks[key] = ragged if ragged is not None else out
        return self._stacks[key]

    def embeddings(self, model: _IndexedModel) -> Optional[Array]:
        e = self.entries[model._k]
        key = e.get("embedding_key") or K.embedding_key(K.sanitize_key(model.name))
        ok = [i for i in range(self.n) if i not in set(model.failed_indices)]
        if not ok:
            return None
        arr = self._read_rows(key, ok, f"embeddings of {model.name}")
        if arr is None:
            return None
        finite = _finite_rows(arr, self.n)
        bad = [i for i in ok if not finite[i]]
        if bad:  # never ok, whatever the index says
            if isinstance(arr, np.ndarray):
                arr[bad] = np.nan
            else:
                for i in bad:
                    arr[i] = None
            model.failed_indices = sorted(set(model.failed_indices) | set(bad))
            model.status = "failed" if len(model.failed_indices) == self.n else "partial"
            model.error = model.error or f"the embeddings of points {bad[:10]} hold NaN or infinite values"
            model.failed_now(bad)
            if self.result is not None:
                self.result.status = aggregate_status(r.status for r in self.result.models.values())
        return arr

    def inputs(self, model: _IndexedModel) -> Optional[Array]:
        if not self.with_inputs:
            return None
        key = self.entries[model._k].get("input_key")
        if not key:
            return None
        have = [i for i in range(self.n) if self.row_of[i] >= 0]
        return self._read_rows(key, have, f"inputs of {model.name}")  # shared by models of one patch

    def _point_manifest(self, i: int) -> Optional[dict]:
        path = self.file_of(i)
        if path is None:
            return None
        jp = os.path.splitext(path)[0] + ".json"
        if not os.path.exists(jp):
            return None
        return expand_point_manifest(_point_manifest(jp), self.static)

    def meta(self, model: _IndexedModel) -> Sequence[dict]:
        from .lazy import LazySequence

        def get(i: int) -> dict:
            if i in set(model.failed_indices):
                return {}
            man = self._points[i]
            for e in (man or {}).get("models") or []:
                if e.get("model") == model.name and isinstance(e.get("meta"), dict):
                    return e["meta"]
            return {}

        return LazySequence(self.n, get, what="meta")


def _load_indexed(directory: str, run: dict, run_path: str, rows, with_inputs: bool) -> Optional[ExportResult]:
    """A per-item export read through its run index (None when the index does not fit the run
    manifest: the point manifests are read instead)."""
    from .lazy import LazySequence
    from .run_index import CODE

    n = _int(run.get("n_items"), run_path, "n_items")
    entries = run.get("models")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("model"), str)
                                                for e in entries):
        return None
    names_run = [e["model"] for e in entries]
    if rows.models != names_run or (rows.n_rows and int(rows.index.max()) >= n) or rows.n_rows > n:
        return None
    codes = rows.model_status_codes()
    if codes is None:
        return None
    files = _str_list(run.get("files"), run_path, "files")
    if files is not None and len(files) != n:
        raise _bad(run_path, "files", f"lists {len(files)} files for n_items={n}")
    if rows.n_rows != n:  # the index lists every point of its run
        if files is None and os.path.isfile(os.path.join(directory, _index_name())):
            raise _bad(run_path, "n_items", f"is {n} but the run index lists {rows.n_rows} point(s)")
        return None
    status_col = rows.status_codes()
    fmt = run.get("format") if run.get("format") in K.FORMATS else "npz"
    loader = _IndexedExport(directory, run, rows, n, fmt, with_inputs)
    names = _str_list(run.get("names"), run_path, "names")
    if names is not None and len(names) != n:
        raise _bad(run_path, "names", f"lists {len(names)} names for n_items={n}")
    if names is None:
        col = rows.col("name")
        names = [K.default_item_name(i) for i in range(n)]
        for k, i in enumerate(rows.index.tolist()):
            names[i] = col[k] or names[i]
    spatials: Sequence[dict]
    if isinstance(run.get("spatials"), list):
        if len(run["spatials"]) != n:
            raise _bad(run_path, "spatials", f"lists {len(run['spatials'])} ROIs for n_items={n}")
        spatials = [x if isinstance(x, dict) else {} for x in run["spatials"]]
    else:
        col = rows.table.column("spatial")

        def spatial(i: int) -> dict:
            k = loader.row_of[i]
            text = col[int(k)].as_py() if k >= 0 else None
            try:
                d = json.loads(text) if text else {}
            except ValueError:
                d = {}
            return d if isinstance(d, dict) else {}

        spatials = LazySequence(n, spatial, what="spatial")
    done = np.zeros(n, bool)
    done[rows.index] = status_col != CODE["pending"]
    # points not written by this run: files another request left there are stale
    stale: List[int] = []
    fps = run.get("point_fingerprints") if isinstance(run.get("point_fingerprints"), list) else None
    fp_col = rows.col("fingerprint") if fps is None else None
    for i in np.flatnonzero(~done).tolist():
        k = loader.row_of[i]
        path = loader.file_of(i)
        if path is None:
            continue
        jp = os.path.splitext(path)[0] + ".json"
        if os.path.exists(path) and os.path.exists(jp):
            want = fps[i] if fps is not None and i < len(fps) else fp_col[int(k)]
            try:
                have = _read_json(jp).get("request_fingerprint")
            except ValueError:
                have = None
            if have != want:
                stale.append(i)
    models: Dict[str, ModelResult] = {}
    errors_col = rows.col("error")
    for k, name in enumerate(names_run):
        ok = np.zeros(n, bool)
        ok[rows.index] = (codes[:, k] == CODE["ok"]) & (status_col != CODE["pending"])
        failed = np.flatnonzero(~ok).tolist()
        n_ok = n - len(failed)
        st = "ok" if n_ok == n else ("failed" if n_ok == 0 else "partial")
        error = None
        if st == "failed":
            bad_rows = np.flatnonzero((codes[:, k] != CODE["ok"]) & (status_col != CODE["pending"])).tolist()
            error = next((errors_col[r] for r in bad_rows if errors_col[r]), None)
            if error is None and stale:
                error = (f"points {stale} hold files of another request than this export's "
                         "(not overwritten by a run that stopped early); read as missing")
            error = error or "point was not exported"
        models[name] = _IndexedModel(loader, name, k, st, failed, error)
    overall = aggregate_status(r.status for r in models.values()) if models else "failed"
    temporal = _opt(run, "temporal", dict, run_path, "temporal")
    loader.result = ExportResult(layout="per_item", spatials=spatials, temporal=temporal or None, n_items=n,
                                 status=overall, models=models, manifest=run, path=directory, format=fmt,
                                 names=names, stale_indices=stale)
    return loader.result


def _index_name() -> str:
    from .run_index import INDEX_NAME

    return INDEX_NAME


def _load_per_item(directory: str, with_inputs: bool) -> ExportResult:
    run_path = os.path.join(directory, K.RUN_MANIFEST)
    run = _read_json(run_path) if os.path.exists(run_path) else None
    if run is not None and isinstance(run.get("index"), str):
        from .run_index import read_index

        rows = read_index(directory)
        if rows is not None:
            res = _load_indexed(directory, run, run_path, rows, with_inputs)
            if res is not None:
                return res
    n_run = None
    if run is not None:
        n_run = _int(run.get("n_items"), run_path, "n_items")
        for f in ("spatials", "names", "models"):
            _opt(run, f, list, run_path, f)
    files = _point_files(directory, run, run_path, n_run)
    if not files and run is None:
        raise ValueError(f"{directory!r} holds no export: no '<name>.npz|.nc' files with '.json' manifests")
    n = n_run if n_run is not None else max(i for i, _, _ in files) + 1
    spatials: List[dict] = []
    if run is not None and run.get("spatials") is not None:
        spatials = [x if isinstance(x, dict) else {} for x in run["spatials"]][:n]
        if len(run["spatials"]) != n:
            raise _bad(run_path, "spatials", f"lists {len(run['spatials'])} ROIs for n_items={n}")
    spatials += [{} for _ in range(n - len(spatials))]
    names = _str_list(run.get("names"), run_path, "names") if run is not None else None
    if names is not None and len(names) != n:
        raise _bad(run_path, "names", f"lists {len(names)} names for n_items={n}")
    if names is None and files and all(m is None for _, _, m in files):
        stems = {i: os.path.splitext(os.path.basename(ap))[0] for i, ap, _ in files}
        names = [stems.get(i, K.default_item_name(i)) for i in range(n)]
    order: List[str] = [m.get("model") for m in (run or {}).get("models") or []
                        if isinstance(m, dict) and isinstance(m.get("model"), str) and m.get("model")]
    emb_rows: Dict[str, List[Optional[np.ndarray]]] = {}
    inp_rows: Dict[str, List[Optional[np.ndarray]]] = {}
    metas: Dict[str, List[dict]] = {}
    status: Dict[str, List[Optional[str]]] = {}
    errors: Dict[str, Optional[str]] = {}
    temporal = _opt(run, "temporal", dict, run_path, "temporal") if run is not None else None
    fmt = run.get("format", "npz") if run is not None else None
    stale: List[int] = []
    non_finite: Dict[str, List[int]] = {}
    static = _static_parts(run)

    def ensure(name: str) -> None:
        if name not in emb_rows:
            emb_rows[name] = [None] * n
            inp_rows[name] = [None] * n
            metas[name] = [{} for _ in range(n)]
            status[name] = [None] * n
            errors[name] = None
            non_finite[name] = []
            if name not in order:
                order.append(name)

    for name in order:
        ensure(name)
    for i, ap, man in files:
        if i >= n:
            continue
        if man is not None and run is not None and not _same_request(run, man, i):
            stale.append(i)
            continue
        f = _fmt_of(ap)
        fmt = fmt or f
        arrays = _Arrays(ap, f)
        try:
            if man is None:  # save_manifest=False
                attrs = arrays.attrs()
                if isinstance(attrs.get("spatial"), str):
                    try:
                        d = json.loads(attrs["spatial"])
                        spatials[i] = d if isinstance(d, dict) else spatials[i]
                    except ValueError:
                        pass
                entries = _arrays_only_entries(arrays)
                written = False
            else:
                man = expand_point_manifest(man, static)
                if run is None:
                    if isinstance(man.get("spatial"), dict):
                        spatials[i] = man["spatial"]
                    if temporal is None and isinstance(man.get("temporal"), dict):
                        temporal = man["temporal"]
                entries = man.get("models") or []
                written = bool(man.get("write_error"))
            for entry in entries:
                name = entry["model"]
                ensure(name)
                key = K.sanitize_key(name)
                st = _status(entry.get("status"), ap if man is None else os.path.splitext(ap)[0] + ".json",
                             "status")
                if written:
                    st = "failed"
                emb_ref = entry.get("embedding") if isinstance(entry.get("embedding"), dict) else {}
                a = arrays.get(emb_ref.get("npz_key") or K.embedding_key(key)) if st == "ok" else None
                if a is not None:
                    a = _as_f32(a, ap, emb_ref.get("npz_key") or K.embedding_key(key))
                    if not np.isfinite(a).all():  # never ok, whatever the manifest says
                        st, a = "failed", None
                        non_finite[name].append(i)
                elif st == "ok":
                    st = "failed"  # the manifest says ok but the array is not there
                status[name][i] = st
                emb_rows[name][i] = a
                if with_inputs:
                    inp_ref = entry.get("input") if isinstance(entry.get("input"), dict) else {}
                    k = inp_ref.get("npz_key") if inp_ref else K.input_key(key)
                    b = arrays.get(k)
                    inp_rows[name][i] = None if b is None else _as_f32(b, ap, k)
                if isinstance(entry.get("meta"), dict) and st == "ok":
                    metas[name][i] = entry["meta"]
                if st != "ok" and errors[name] is None:
                    errors[name] = entry.get("error") if isinstance(entry.get("error"), str) else None
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
        if non_finite[name]:
            errors[name] = errors[name] or (f"the embeddings of points {non_finite[name][:10]} hold NaN "
                                            "or infinite values")
        emb = _stack(emb_rows[name])
        inp = _stack(inp_rows[name]) if with_inputs else None
        models[name] = ModelResult(
            name=name, status=st, embeddings=emb if n_ok else None, inputs=inp, meta=metas[name],
            error=(errors[name] or ("point was not exported" if n_ok == 0 else None))
            if st == "failed" or non_finite[name] else None,
            failed_indices=[i for i, s in enumerate(sts) if s != "ok"])
    overall = aggregate_status(r.status for r in models.values()) if models else "failed"
    first_manifest = next((m for _, _, m in files if m is not None), None)
    return ExportResult(layout="per_item", spatials=spatials, temporal=temporal or None, n_items=n,
                        status=overall, models=models,
                        manifest=run if run is not None else (first_manifest or {}),
                        path=directory, format=fmt or "npz", names=names, stale_indices=stale)


# ------------------------------------------------------------------------ entry


def load_export(path: Union[str, os.PathLike], *, inputs: bool = False,
                lazy: Optional[bool] = None) -> ExportResult:
    """Load an export: a file (``.npz``/``.nc``/``.json``) is combined, a directory per-item.

    Input patches are read only when asked: ``inputs=True`` (they can be many times the
    size of the embeddings). A per-item export with a run index is read lazily: each
    model's embeddings (and inputs) when first asked for, one point's ``meta`` when it
    is indexed, never another model's arrays. ``lazy`` (combined exports; default: for
    :data:`LAZY_MIN_POINTS` points or more) reads a model's arrays and metas only when
    first used. Raises ``FileNotFoundError`` when ``path`` does not exist and
    ``ValueError`` when it is not an export or a file of it is damaged (the message
    names the file and field).
    """
    if lazy not in (None, True, False):
        raise ValueError(f"lazy must be None, True or False, got {lazy!r}")
    path = os.path.expanduser(os.fspath(path))
    if "\x00" in path:
        raise ValueError(f"export path {path!r} contains a NUL byte")
    if not os.path.exists(path):
        for ext in (".npz", ".nc", ".parquet", ".zarr"):  # the out= of a combined export, without extension
            if os.path.isfile(path + ext) or (ext == ".zarr" and os.path.isdir(path + ext)):
                return _load_combined(path + ext, inputs, lazy)
        raise FileNotFoundError(f"export path does not exist: {path!r}")
    if os.path.isdir(path) and _combined_fmt_of(path) == "zarr":
        return _load_combined(path, inputs, lazy)
    if os.path.isdir(path):
        return _load_per_item(path, inputs)
    return _load_combined(path, inputs, lazy)


__all__ = ["load_export", "ExportResult", "ModelResult", "LazyModelResult", "LAZY_MIN_POINTS"]
