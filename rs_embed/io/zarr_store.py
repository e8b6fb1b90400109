"""The Zarr v3 layout of a combined export (``format="zarr"``): the one place it lives.

One directory store ``<out>.zarr``, flat, so ``xarray.open_zarr(path)`` opens it all:

* ``point`` ``(point,)``: point index (the dimension coordinate); ``lon``, ``lat``
  ``(point,)``: ROI centres (EPSG:4326); ``time_start``, ``time_end`` ``(point,)``: the
  time window (days since 1970-01-01, decoded to dates by xarray); ``crs_epsg__<group>``
  ``(point,)``: EPSG code of the UTM grid each patch was fetched on;
* ``status__<model>`` ``(point,)`` int8: 0 not exported, 1 ok, 2 failed;
* ``embeddings__<model>`` ``(point, D)`` or ``(point, D, h, w)`` float32, NaN rows where a
  point failed; ``inputs_bchw__<model>`` ``(point, C, H, W)`` float32 (the input patch of
  each input group, under the key of its first model, as in ``.npz``).

Arrays are chunked by point (:func:`point_chunk`: about 4 MiB per chunk) and created with
``dimension_names`` and a CF ``coordinates`` attribute, so xarray finds dims and
coordinates. The run metadata is in the root group's attributes (key ``rs_embed``);
metadata is consolidated when the export finishes.

Writes are whole chunks, gathered in memory from the chunks of points as they finish
(the checkpoint shards hold every finished point, so nothing is lost if the process
dies meanwhile), and ``status`` is written after the data of the same points: a
non-zero status means the point's rows are in the store. zarr's ``LocalStore`` writes
each chunk file to a temporary name and renames it into place, so a killed run never
leaves a torn chunk, and a chunk holding points of an earlier run is replaced whole or
not at all. A chunk written twice (points retried on resume) is read, merged and
replaced under a per-chunk lock.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from datetime import date
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import keys as K

#: status codes of ``status__<model>``
NOT_EXPORTED, OK, FAILED = 0, 1, 2
STATUS_ATTRS = {"flag_values": [NOT_EXPORTED, OK, FAILED], "flag_meanings": "not_exported ok failed",
                "long_name": "export status of each point"}
#: root attribute holding the run metadata
ATTR = "rs_embed"
#: target bytes of one chunk of a point-chunked array
CHUNK_BYTES = 4 << 20
#: points per chunk of the small per-point arrays (coordinates, statuses)
COORD_CHUNK = 65_536


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - the extra is checked before any work
        raise ImportError("format='zarr' needs zarr: pip install 'rs_embed[zarr]'") from exc
    return zarr


def point_chunk(row_bytes: int, n: int) -> int:
    """Points per chunk: about :data:`CHUNK_BYTES` per chunk, between 1 and 4096 points."""
    z = max(1, min(4096, CHUNK_BYTES // max(1, int(row_bytes))))
    return max(1, min(z, n))


def status_key(model_key: str) -> str:
    return f"status__{model_key}"


def crs_key(model_key: str) -> str:
    return f"crs_epsg__{model_key}"


def is_store(path: str) -> bool:
    """Whether ``path`` is a Zarr store written by rs_embed (its root carries our attribute)."""
    return _root_attrs(path) is not None


def _root_attrs(path: str) -> Optional[dict]:
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return attrs if isinstance(attrs, dict) and isinstance(attrs.get(ATTR), dict) else None


def run_metadata(path: str) -> Optional[dict]:
    attrs = _root_attrs(path)
    return None if attrs is None else attrs[ATTR]


def remove_store(path: str) -> None:
    """Delete a store rs_embed wrote (never anything else)."""
    if os.path.isdir(path) and not os.path.islink(path) and is_store(path):
        shutil.rmtree(path)


def _days(text: Optional[str]) -> int:
    if not text:
        return -(2**31)
    return (date.fromisoformat(str(text)[:10]) - date(1970, 1, 1)).days


class ZarrExportStore:
    """Writes one export into a store while it runs; reads it back (:meth:`open`)."""

    def __init__(self, path: str, group):
        self.path, self.group = path, group
        self._arrays: Dict[str, Any] = {}
        self._create_lock = threading.Lock()
        self._chunk_locks = [threading.Lock() for _ in range(64)]

    # ------------------------------------------------------------------ create
    @classmethod
    def create(cls, path: str, *, n: int, meta: dict, lon: Sequence[float], lat: Sequence[float],
               temporal: Optional[dict], models: Sequence[str]) -> "ZarrExportStore":
        """A new store with its coordinates and (all not exported) statuses."""
        zarr = _zarr()
        group = zarr.open_group(path, mode="w", zarr_format=3)
        group.attrs[ATTR] = dict(meta, complete=False)
        self = cls(path, group)
        c = min(COORD_CHUNK, max(1, n))
        self._put("point", np.arange(n, dtype=np.int64), c, {"long_name": "point index"})
        self._put("lon", np.asarray(lon, dtype=np.float64), c,
                  {"standard_name": "longitude", "units": "degrees_east", "long_name": "ROI centre longitude"})
        self._put("lat", np.asarray(lat, dtype=np.float64), c,
                  {"standard_name": "latitude", "units": "degrees_north", "long_name": "ROI centre latitude"})
        t = temporal or {}
        for name, value in (("time_start", t.get("start")), ("time_end", t.get("end"))):
            if value:
                self._put(name, np.full(n, _days(value), dtype=np.int32), c,
                          {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                           "long_name": f"time window {name.split('_')[1]} (inclusive start, exclusive end)"})
        for key in models:
            arr = group.create_array(status_key(key), shape=(n,), chunks=(c,), dtype="int8",
                                     fill_value=NOT_EXPORTED, dimension_names=["point"],
                                     attributes={**STATUS_ATTRS, "coordinates": self.coords()})
            self._arrays[status_key(key)] = arr
        return self

    def _put(self, name: str, data: np.ndarray, chunk: int, attrs: dict) -> None:
        arr = self.group.create_array(name, shape=data.shape, chunks=(chunk,), dtype=data.dtype,
                                      dimension_names=["point"], attributes=attrs)
        arr[:] = data
        self._arrays[name] = arr

    def coords(self) -> str:
        names = [c for c in ("lon", "lat", "time_start", "time_end") if c in self.group.array_keys()] \
            if hasattr(self.group, "array_keys") else ["lon", "lat"]
        return " ".join(names)

    @classmethod
    def open(cls, path: str, mode: str = "r") -> "ZarrExportStore":
        zarr = _zarr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group = zarr.open_group(path, mode=mode, zarr_format=3)
        return cls(path, group)

    def array(self, name: str):
        arr = self._arrays.get(name)
        if arr is None:
            arr = self._arrays[name] = self.group[name]
        return arr

    def has(self, name: str) -> bool:
        return name in self._arrays or name in set(self.group.array_keys())

    def data_array(self, name: str, row_shape: Tuple[int, ...], n: int, chunk: int, *, kind: str,
                   attrs: dict):
        """The ``(point, ...)`` float32 array ``name``, created on first use; a later row of
        another shape is an error (a Zarr array holds one shape)."""
        with self._create_lock:
            arr = self._arrays.get(name)
            if arr is None and name in set(self.group.array_keys()):
                arr = self._arrays[name] = self.group[name]
            if arr is None:
                key = name.split("__", 1)[1]
                if kind == "input":
                    dims = ["point", f"band__{key}", f"y__{key}", f"x__{key}"][:1 + len(row_shape)]
                else:
                    dims = ["point", f"dim__{key}", f"y__{key}", f"x__{key}"][:1 + len(row_shape)]
                arr = self.group.create_array(
                    name, shape=(n,) + tuple(row_shape), chunks=(chunk,) + tuple(row_shape), dtype="float32",
                    fill_value=np.nan, dimension_names=dims, attributes={**attrs, "coordinates": self.coords()})
                self._arrays[name] = arr
        if tuple(arr.shape[1:]) != tuple(row_shape):
            raise ValueError(f"{self.path}: {name} holds rows of shape {list(arr.shape[1:])}, got one of "
                             f"{list(row_shape)}; a Zarr export holds one shape per model (ROIs of one size)")
        return arr

    # ------------------------------------------------------------------- write
    def _locks(self, name: str, chunk: int, rows: np.ndarray):
        ids = sorted({hash((name, int(c))) % len(self._chunk_locks) for c in np.unique(rows // chunk)})
        return [self._chunk_locks[k] for k in ids]

    def write_rows(self, name: str, rows: np.ndarray, data: np.ndarray) -> None:
        """Rows ``rows`` (ascending) of array ``name``; a whole-chunk range is written as is,
        anything else merged into the chunks it touches."""
        arr = self.array(name)
        chunk = arr.chunks[0]
        locks = self._locks(name, chunk, rows)
        for lk in locks:
            lk.acquire()
        try:
            if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
                arr[int(rows[0]):int(rows[-1]) + 1] = data
            else:
                arr.set_orthogonal_selection((rows,), data)
        finally:
            for lk in reversed(locks):
                lk.release()

    def statuses(self, model_key: str) -> np.ndarray:
        return np.asarray(self.array(status_key(model_key))[:])

    def set_meta(self, meta: dict) -> None:
        self.group.attrs[ATTR] = meta

    def finish(self, meta: dict) -> None:
        """Mark the store complete and consolidate its metadata (one read opens it all)."""
        zarr = _zarr()
        self.set_meta(dict(meta, complete=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(self.path)

    def array_names(self) -> List[str]:
        return sorted(self.group.array_keys())


__all__ = ["ZarrExportStore", "point_chunk", "status_key", "crs_key", "is_store", "run_metadata",
           "remove_store", "NOT_EXPORTED", "OK", "FAILED", "ATTR"]
