"""The run index of a per-item export: one Parquet row per point.

``<out_dir>/rs_embed_index.parquet`` holds, per point: ``index``, ``name``, ``status``
(``pending`` until the point's files are written, then ``ok``/``partial``/``failed``),
``fingerprint`` (the point's request fingerprint), ``file`` (the array file, relative to
the folder), ``file_size`` / ``file_sha1`` and the file's stat signature
(``file_mtime_ns``, ``file_ctime_ns``, ``file_ino``: what resume verifies),
``model_status`` (one status per model, in the run manifest's order), ``error`` (text),
``errors`` / ``warnings`` (JSON of the records, null when none), ``nodata_fraction``,
``spatial`` (JSON) and ``written_ns`` (when the row was written).

Crash-safe as the run goes: the whole index is written (atomically) when the run
starts and when it ends; in between, each batch of finished points is appended as a
small part file in ``.rs_embed_index.parts/`` (atomically too). A reader merges the
index and its parts, the newest row of each point winning, so after a kill every point
whose row reached disk is known; the others are looked up in their point manifests.
Resume and ``load_export`` read this instead of parsing every point manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .atomic import FileRecord, atomic_write

INDEX_NAME = "rs_embed_index.parquet"
PARTS_DIR = ".rs_embed_index.parts"
STATUSES = ("pending", "ok", "partial", "failed")
CODE = {s: k for k, s in enumerate(STATUSES)}
#: finished points per part file, and the longest a finished point waits for its row
FLUSH_ROWS = 2048
FLUSH_SECONDS = 5.0
#: rows per row group of the whole index
BLOCK_ROWS = 65_536


def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def schema():
    pa, _ = _pa()
    return pa.schema([
        ("index", pa.int64()), ("name", pa.string()), ("status", pa.string()),
        ("fingerprint", pa.string()), ("file", pa.string()), ("file_size", pa.int64()),
        ("file_sha1", pa.string()), ("file_mtime_ns", pa.int64()), ("file_ctime_ns", pa.int64()),
        ("file_ino", pa.int64()), ("model_status", pa.list_(pa.string())), ("error", pa.string()),
        ("errors", pa.string()), ("warnings", pa.string()), ("nodata_fraction", pa.float64()),
        ("spatial", pa.string()), ("written_ns", pa.int64()),
    ])


def _write_table(path: str, table) -> None:
    pa, pq = _pa()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue()
    atomic_write(path, lambda fh: fh.write(memoryview(data)))


class RunIndexWriter:
    """The index state of a running export, in compact arrays (no dict per point)."""

    def __init__(self, directory: str, *, names: Sequence[str], fingerprints: Sequence[str],
                 files: Callable[[int], str], spatials: Sequence[Any], models: Sequence[str],
                 enabled: bool = True):
        n, m = len(names), len(models)
        self.dir, self.enabled = directory, enabled
        self.names, self.fingerprints, self.files, self.spatials = names, fingerprints, files, spatials
        self.models = list(models)
        self.status = np.zeros(n, np.uint8)
        self.model_status = np.zeros((n, m), np.uint8)
        self.size = np.full(n, -1, np.int64)
        self.sig = np.zeros((n, 3), np.int64)
        self.sha1 = np.zeros(n, "S40")
        self.nodata = np.full(n, np.nan)
        self.written = np.zeros(n, np.int64)
        # sparse: only points that have any
        self.error: Dict[int, str] = {}
        self.errors: Dict[int, list] = {}
        self.warnings: Dict[int, list] = {}
        self._pending: List[int] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._seq = 0
        self._run_ns = time.time_ns()

    # --------------------------------------------------------------- updates
    def set(self, i: int, *, status: str, model_status: Sequence[str], record: Optional[FileRecord],
            error: Optional[str] = None, errors: Optional[list] = None, warnings: Optional[list] = None,
            nodata: Optional[float] = None, written_ns: Optional[int] = None, flush: bool = True) -> None:
        with self._lock:
            self.status[i] = CODE[status]
            self.model_status[i] = [CODE.get(s, 3) for s in model_status]
            if record is None:
                self.size[i], self.sig[i], self.sha1[i] = -1, (0, 0, 0), b""
            else:
                self.size[i], self.sig[i], self.sha1[i] = record.size, record.signature, record.sha1.encode()
            self.nodata[i] = np.nan if nodata is None else nodata
            self.written[i] = written_ns if written_ns is not None else time.time_ns()
            for store, value in ((self.error, error), (self.errors, errors), (self.warnings, warnings)):
                if value:
                    store[i] = value
                else:
                    store.pop(i, None)
            self._pending.append(i)
            due = len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._last_flush > FLUSH_SECONDS
        if flush and due:
            self.flush()

    def record(self, i: int) -> Optional[FileRecord]:
        if self.size[i] < 0:
            return None
        return FileRecord(int(self.size[i]), self.sha1[i].decode(), tuple(int(v) for v in self.sig[i]))

    def status_of(self, i: int) -> str:
        return STATUSES[self.status[i]]

    # ---------------------------------------------------------------- tables
    def table(self, rows: Optional[Sequence[int]] = None):
        pa, _ = _pa()
        idx = (np.arange(len(self.names)) if rows is None else
               np.arange(rows.start, rows.stop, dtype=np.int64) if isinstance(rows, range) else
               np.asarray(sorted(rows), dtype=np.int64))
        with self._lock:
            st = self.status[idx]
            ms = self.model_status[idx]
            size, sig, sha1 = self.size[idx], self.sig[idx], self.sha1[idx]
            nodata, written = self.nodata[idx], self.written[idx]
            error = [self.error.get(int(i)) for i in idx]
            errors = [json.dumps(self.errors[int(i)]) if int(i) in self.errors else None for i in idx]
            warns = [json.dumps(self.warnings[int(i)]) if int(i) in self.warnings else None for i in idx]
        has_file = size >= 0
        statuses = np.asarray(STATUSES, dtype=object)
        m = ms.shape[1]
        flat = pa.array(statuses[ms.reshape(-1)].tolist(), pa.string())
        model_status = pa.ListArray.from_arrays(pa.array(np.arange(0, len(idx) * m + 1, m, dtype=np.int32)), flat)
        spatial = [json.dumps(self.spatials[int(i)]) for i in idx]
        cols = {
            "index": pa.array(idx, pa.int64()),
            "name": pa.array([self.names[int(i)] for i in idx], pa.string()),
            "status": pa.array(statuses[st].tolist(), pa.string()),
            "fingerprint": pa.array([self.fingerprints[int(i)] for i in idx], pa.string()),
            "file": pa.array([self.files(int(i)) for i in idx], pa.string()),
            "file_size": pa.array(size, pa.int64(), mask=~has_file),
            "file_sha1": pa.array([s.decode() if h else None for s, h in zip(sha1.tolist(), has_file)], pa.string()),
            "file_mtime_ns": pa.array(sig[:, 0], pa.int64(), mask=~has_file),
            "file_ctime_ns": pa.array(sig[:, 1], pa.int64(), mask=~has_file),
            "file_ino": pa.array(sig[:, 2], pa.int64(), mask=~has_file),
            "model_status": model_status,
            "error": pa.array(error, pa.string()),
            "errors": pa.array(errors, pa.string()),
            "warnings": pa.array(warns, pa.string()),
            "nodata_fraction": pa.array(nodata, pa.float64(), mask=np.isnan(nodata)),
            "spatial": pa.array(spatial, pa.string()),
            "written_ns": pa.array(written, pa.int64()),
        }
        meta = {b"rs_embed:models": json.dumps(self.models).encode()}
        return pa.Table.from_pydict(cols, schema=schema().with_metadata(meta))

    # ----------------------------------------------------------------- files
    def flush(self) -> None:
        """Append the rows finished since the last flush as a part file."""
        if not self.enabled:
            return
        with self._flush_lock:
            with self._lock:
                rows, self._pending = self._pending, []
                self._last_flush = time.monotonic()
                self._seq += 1
                seq = self._seq
            if not rows:
                return
            parts = os.path.join(self.dir, PARTS_DIR)
            os.makedirs(parts, exist_ok=True)
            _write_table(os.path.join(parts, f"part-{self._run_ns}-{seq:08d}.parquet"), self.table(rows))

    def _write_blocks(self, path: str) -> None:
        """The whole index, :data:`BLOCK_ROWS` rows at a time (one row group each): a
        million points are never one table in memory."""
        pa, pq = _pa()
        n = len(self.names)

        def write(fh):
            first = self.table(range(0, min(n, BLOCK_ROWS)))
            with pq.ParquetWriter(fh, first.schema, compression="zstd") as out:
                out.write_table(first)
                for a in range(BLOCK_ROWS, n, BLOCK_ROWS):
                    out.write_table(self.table(range(a, min(n, a + BLOCK_ROWS))))

        atomic_write(path, write)

    def write_full(self, *, final: bool) -> None:
        """The whole index; at the end of a run the parts are removed (they are in it)."""
        if not self.enabled:
            return
        with self._flush_lock:
            with self._lock:
                self._pending = []
            self._write_blocks(os.path.join(self.dir, INDEX_NAME))
            if final:
                shutil.rmtree(os.path.join(self.dir, PARTS_DIR), ignore_errors=True)


class IndexRows:
    """The merged rows of an index, one per point (``None`` where a point has no row)."""

    def __init__(self, table, models: Optional[List[str]]):
        self.table = table
        self.models = models
        self._cols: Dict[str, Any] = {}
        idx = table.column("index").to_numpy()
        self.n_rows = len(idx)
        self.index = idx

    def col(self, name: str) -> list:
        """A column as a Python list, aligned with :attr:`index` (cached)."""
        if name not in self._cols:
            self._cols[name] = self.table.column(name).to_pylist()
        return self._cols[name]

    def status_codes(self) -> np.ndarray:
        return np.asarray([CODE.get(s, 0) for s in self.col("status")], np.uint8)

    def model_status_codes(self) -> Optional[np.ndarray]:
        """``(rows, models)`` status codes, or None when the rows disagree on the models."""
        import pyarrow.compute as pc

        col = self.table.column("model_status").combine_chunks()
        m = len(self.models or [])
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if self.n_rows and (np.any(lengths != m) or m == 0):
            return None
        flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
        codes = np.asarray([CODE.get(s, 3) for s in flat], np.uint8) if len(flat) else np.zeros(0, np.uint8)
        return codes.reshape(self.n_rows, m)

    def record(self, k: int) -> Optional[FileRecord]:
        size = self.col("file_size")[k]
        sha1 = self.col("file_sha1")[k]
        if size is None or sha1 is None:
            return None
        sig = (self.col("file_mtime_ns")[k] or 0, self.col("file_ctime_ns")[k] or 0, self.col("file_ino")[k] or 0)
        return FileRecord(int(size), str(sha1), sig)

    def json_col(self, name: str, k: int) -> Any:
        text = self.col(name)[k]
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None


def read_index(directory: str, columns: Optional[Sequence[str]] = None) -> Optional[IndexRows]:
    """The index of ``directory`` merged with its parts; None when there is none or it cannot
    be read (a damaged index is ignored: the point manifests are read instead)."""
    pa, pq = _pa()
    want = list(columns) if columns is not None else None
    if want is not None:
        for c in ("index", "written_ns"):
            if c not in want:
                want.append(c)
    tables, models = [], None
    main = os.path.join(directory, INDEX_NAME)
    paths = [main] if os.path.isfile(main) else []
    parts = os.path.join(directory, PARTS_DIR)
    try:
        paths += sorted(os.path.join(parts, f) for f in os.listdir(parts)
                        if f.endswith(".parquet") and not f.startswith("."))
    except OSError:
        pass
    if not paths:
        return None
    for path in paths:
        try:
            t = pq.read_table(path, columns=want)
            if not set(schema().names) >= set(t.column_names) or "index" not in t.column_names:
                raise ValueError("not a run index")
            md = (t.schema.metadata or {}).get(b"rs_embed:models")
            if md is not None:
                ms = json.loads(md)
                models = ms if models is None or models == ms else models
            tables.append(t.select(want) if want is not None else t)
        except Exception:  # damaged: its points are looked up in their manifests
            if path == main:
                return None
    if not tables:
        return None
    try:
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except Exception:
        return None
    if len(tables) > 1:
        table = table.sort_by([("index", "ascending"), ("written_ns", "ascending")])
        idx = table.column("index").to_numpy()
        keep = np.ones(len(idx), bool)
        if len(idx):
            keep[:-1] = idx[1:] != idx[:-1]
        table = table.filter(pa.array(keep))
    return IndexRows(table, models)


def has_index(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, INDEX_NAME)) or os.path.isdir(os.path.join(directory, PARTS_DIR))


__all__ = ["RunIndexWriter", "IndexRows", "read_index", "has_index", "INDEX_NAME", "PARTS_DIR", "STATUSES",
           "FLUSH_ROWS", "FLUSH_SECONDS"]
