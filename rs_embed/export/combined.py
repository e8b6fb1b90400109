"""The combined layout: every point and model in one file, checkpointed as it goes.

While the export runs, each chunk becomes a *shard* in ``<out>.parts/``: a ``.bin``
of compressed row pieces (see :mod:`rs_embed.io.npz`) and a ``.json`` index with the
metas, statuses and errors of its points, written atomically, index last. A
checkpoint therefore costs only the new chunk, never a rewrite of what is done, and a
killed run resumes from the shards it finds (same request fingerprint only).

At the end the final file is assembled once: for ``.npz`` by copying the compressed
pieces into the zip (no recompression), for ``.nc`` by streaming rows into NetCDF
variables. Arrays first, manifest last, both renamed into place. The shards are
removed when every point succeeded and kept otherwise, so ``resume=True`` retries only
the failed points. A run that stops (``continue_on_error=False``, a failed checkpoint
write, Ctrl-C, a failed assembly) writes no final file; ``checkpoint.json`` then says
``stage: stopped`` and records the cause. A cancelled run (its ``cancel`` event) assembles
what it finished, marked ``stage: stopped`` too.

Every shard and the final file record their SHA-1 (computed while writing); a resume
keeps only files that still match it. The ``.parts`` folder carries a marker file: a
folder of that name without it is the user's, and is never written to or deleted.
The export holds a lock (``.<out>.rs_embed.lock``) for the run.

Memory does not grow with the run: once a shard is written, only its pieces' places
(a few numpy integers per point and slot, :class:`PointIndex`) stay in memory; metas,
errors and reports are read back from the shard indexes, in point order, when the
manifest is streamed out (:mod:`rs_embed.io.manifest_lines`). Assembly reads the
shards through a reader that keeps a handful of files open, whatever their number.
Above :data:`RETURN_FULL_MAX` points the returned manifest's per-point lists are lazy
(read from the manifest file when first used).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import SpecError
from ..io import keys as K
from ..io.atomic import (FileRecord, atomic_write_path_record, atomic_write_record, dumps_json,
                         refreshed, remove_stale_temps, verify_file, write_json)
from ..io.manifest import MANIFEST_VERSION, aggregate_status, json_safe, utc_now
from ..io.netcdf import (NC_LOCK, NcVar, NetCDFWriter, embedding_var, export_attrs, input_var,
                         lonlat_vars)
from ..io.manifest_lines import (Raw, json_list, read_head, read_manifest, write_manifest,
                                 write_manifest_dict)
from ..io.npz import (COMPRESSLEVEL, Piece, PieceReader, array_bytes, compress_piece,
                      inflate_piece, npy_header, raw_piece, write_npz_pieces)
from .job import ExportJob, package_version, run_locked
from .outputs import output_for
from .pipeline import (Cancelled, Fetched, Outcomes, Timings, interruption, nodata_warning,
                       run_chunks, stop_record, warn_mostly_nodata)
from .progress import Progress
from .writer import Writer

_SHARD = re.compile(r"^s(\d{6})\.json$")
_OWN_FILE = re.compile(r"^s\d{6}\.(json|bin)$")
CHECKPOINT = "checkpoint.json"


#: up to this many points the returned manifest is a plain dict (equal to the file);
#: above, its per-point lists are read from the manifest file when first used
RETURN_FULL_MAX = 2_000


class PointIndex:
    """Per point: which shard holds its record, its statuses and where its pieces lie.

    Numpy arrays of fixed width (about 25 bytes per point and slot), so a million points
    cost tens of MB, not the GB their records would as dicts.
    """

    def __init__(self, n: int, slots: List[str], models: List[str]):
        self.n = n
        self.seq = np.full(n, -1, dtype=np.int32)
        self.pos = np.zeros(n, dtype=np.int32)
        self.ok = {m: np.zeros(n, dtype=bool) for m in models}
        self.shape_id = {k: np.full(n, -1, dtype=np.int16) for k in slots}
        self.offset = {k: np.zeros(n, dtype=np.int64) for k in slots}
        self.length = {k: np.zeros(n, dtype=np.uint32) for k in slots}
        self.raw = {k: np.zeros(n, dtype=np.uint32) for k in slots}
        self.crc = {k: np.zeros(n, dtype=np.uint32) for k in slots}
        self.shapes: List[tuple] = []
        self._shape_ids: Dict[tuple, int] = {}

    def _shape(self, shape) -> int:
        key = tuple(int(v) for v in shape)
        sid = self._shape_ids.get(key)
        if sid is None:
            sid = self._shape_ids[key] = len(self.shapes)
            self.shapes.append(key)
        return sid

    def _slot(self, key: str, i: int, slot: dict) -> None:
        ref = slot.get("ref") if slot else None
        if not ref or "shape" not in slot:
            self.shape_id[key][i] = -1
            return
        off, length, raw, crc = ref
        self.shape_id[key][i] = self._shape(slot["shape"])
        self.offset[key][i], self.length[key][i], self.raw[key][i], self.crc[key][i] = off, length, raw, crc

    def set(self, rec: dict, seq: int, pos: int) -> None:
        i = int(rec["i"])
        self.seq[i], self.pos[i] = seq, pos
        for gid, grec in rec["groups"].items():
            if f"g{gid}" in self.shape_id:
                self._slot(f"g{gid}", i, grec)
        for key, ok in self.ok.items():
            mrec = rec["models"].get(key)
            ok[i] = bool(mrec) and mrec.get("status") == "ok"
            if f"m{key}" in self.shape_id:
                self._slot(f"m{key}", i, mrec if ok[i] else {})

    def rows(self, slot: str) -> np.ndarray:
        """Indices of the points with a stored piece in ``slot``, ascending."""
        return np.flatnonzero(self.shape_id[slot] >= 0)

    def shape_of(self, slot: str, i: int) -> tuple:
        return self.shapes[int(self.shape_id[slot][i])]

    def row_shapes(self, slot: str, rows: np.ndarray) -> set:
        return {self.shapes[s] for s in np.unique(self.shape_id[slot][rows])}

    def piece(self, slot: str, i: int, path: str) -> Piece:
        return Piece(raw_len=int(self.raw[slot][i]), crc=int(self.crc[slot][i]), path=path,
                     offset=int(self.offset[slot][i]), length=int(self.length[slot][i]))


class SlotPieces(Sequence):
    """The pieces of one stacked array (header first), made on demand from the index:
    never a list of a million :class:`Piece` objects."""

    def __init__(self, head: Optional[Piece], index: PointIndex, slot: str, rows: np.ndarray, bin_path):
        self.head, self.index, self.slot, self.rows, self.bin_path = head, index, slot, rows, bin_path

    def __len__(self) -> int:
        return len(self.rows) + (self.head is not None)

    def __getitem__(self, j):
        if self.head is not None:
            if j == 0:
                return self.head
            j -= 1
        i = int(self.rows[j])
        return self.index.piece(self.slot, i, self.bin_path(int(self.index.seq[i])))

    def __iter__(self) -> Iterator[Piece]:
        for j in range(len(self)):
            yield self[j]


class ShardRecords:
    """Point records read back from the shard indexes, a few shards parsed at a time.

    Points are asked for in ascending order, which is shard order within one run, so
    each shard is parsed about once; a resumed run mixes older and newer shards, which
    the small cache absorbs.
    """

    def __init__(self, export: "CombinedExport", size: int = 16):
        self.export, self.size = export, size
        self._cache: "OrderedDict[int, list]" = OrderedDict()

    def _points(self, seq: int) -> list:
        pts = self._cache.get(seq)
        if pts is not None:
            self._cache.move_to_end(seq)
            return pts
        with open(self.export.shard_json(seq), "rb") as fh:
            pts = json.loads(fh.read())["points"]
        self._cache[seq] = pts
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return pts

    def get(self, i: int) -> Optional[dict]:
        seq = int(self.export.index.seq[i])
        if seq < 0:
            return None
        return self._points(seq)[int(self.export.index.pos[i])]


def _error_text(err: Optional[dict]) -> Optional[str]:
    return None if err is None else f"{err['type']}: {err['message']}"


class CombinedExport:
    def __init__(self, job: ExportJob):
        self.job = job
        self.path = job.target.path
        self.base = os.path.splitext(self.path)[0]
        self.manifest_path = self.base + ".json"
        self.parts = K.parts_dir(self.base)
        self.version = package_version()
        #: the format's final output (how shards become the file or store)
        self.output = output_for(self)
        self.output.check()  # before any work: what the format cannot hold
        self.fingerprint = job.request_fingerprint
        # NetCDF, Parquet and Zarr recompress at assembly: their shards only need to be fast
        self.level = COMPRESSLEVEL if job.format == "npz" else 0
        #: npz embeddings are stored uncompressed (floats barely compress): a reader maps
        #: them from the file instead of inflating them
        self.stored = job.format == "npz"
        slots = [f"g{g.gid}" for g in job.groups] + [f"m{m.key}" for m in job.models]
        self.index = PointIndex(job.n_items, slots, [m.key for m in job.models])
        #: mostly-nodata warnings by point (the only per-point data kept: rare)
        self.warnings: Dict[int, List[dict]] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self.write_errors: List[Tuple[List[int], BaseException]] = []
        self.created_at = utc_now()
        self.resumed = 0
        self.file_record: Optional[FileRecord] = None

    # -------------------------------------------------------------- preflight
    def preflight(self) -> None:
        """Refuse (``SpecError``) to touch a ``.parts`` folder or files rs_embed did not make."""
        if os.path.lexists(self.parts) and not (
                os.path.isdir(self.parts) and not os.path.islink(self.parts)
                and os.path.isfile(os.path.join(self.parts, K.PARTS_MARKER))):
            raise SpecError(f"{self.parts!r} exists and was not created by rs_embed (it has no "
                            f"{K.PARTS_MARKER} marker); rs_embed keeps its checkpoints there and "
                            "never deletes what it did not make: move it, or choose another out")
        if os.path.lexists(self.manifest_path) and not os.path.isfile(self.manifest_path):
            raise SpecError(f"{self.manifest_path!r} exists and is not a regular file; choose another out")
        self.output.preflight()
        if os.path.exists(self.manifest_path):
            if not _is_combined_manifest(self.manifest_path):
                raise SpecError(f"{self.manifest_path!r} exists and is not an export manifest; rs_embed "
                                "does not overwrite files it did not write: move it, or choose another out")
        elif os.path.isfile(self.path) and not self.output.is_ours(self.path):
            raise SpecError(f"{self.path!r} exists and is not an export (no rs_embed arrays in it); rs_embed "
                            "does not overwrite files it did not write: move it, or choose another out")

    # ----------------------------------------------------------------- resume
    def bin_path(self, seq: int) -> str:
        return os.path.join(self.parts, f"s{seq:06d}.bin")

    def shard_json(self, seq: int) -> str:
        return os.path.join(self.parts, f"s{seq:06d}.json")

    def _finished_manifest(self) -> Optional[dict]:
        """The manifest of a finished export of this request whose file still checks out.

        Only the small members before the per-point lists are read to decide (a million
        points' metas are not parsed to learn that nothing is left to do)."""
        try:
            head = read_head(self.manifest_path)
            m = head if head is not None else read_manifest(self.manifest_path, lazy=False)
        except (OSError, ValueError):
            return None
        if not (isinstance(m, dict) and m.get("request_fingerprint") == self.fingerprint
                and m.get("status") == "ok" and m.get("stage", "done") == "done"):
            return None
        record = FileRecord.from_dict({"size": m.get("file_size"), "sha1": m.get("file_sha1"),
                                       "stat": m.get("file_stat")})
        how = self.output.verify(record)
        if how is None:  # missing, truncated or other bytes than the manifest's checksum
            return None
        if how == "hashed":  # verified in full: remember the file's new signature
            try:
                full = read_manifest(self.manifest_path, lazy=False)
                full["file_stat"] = list(refreshed(self.output.record_path, record).signature)
                write_manifest_dict(self.manifest_path, full)
            except (OSError, ValueError):
                pass
        try:
            return self._returned(self.manifest_path)
        except (OSError, ValueError):
            return None

    def _returned(self, path: str) -> dict:
        """What ``export_batch`` returns: the manifest, lazy per-point lists past RETURN_FULL_MAX."""
        return read_manifest(path, lazy=self.job.n_items > RETURN_FULL_MAX)

    def _load_checkpoint(self) -> None:
        """Read every shard index of a matching checkpoint; later shards win per point.

        A shard counts only when its ``.bin`` still matches the checksum recorded when it
        was written; the points of any other shard are exported again.
        """
        try:
            with open(os.path.join(self.parts, CHECKPOINT), "rb") as fh:
                cp = json.loads(fh.read())
        except (OSError, ValueError):
            cp = None
        if not isinstance(cp, dict) or cp.get("request_fingerprint") != self.fingerprint \
                or cp.get("level") != self.level or cp.get("embeddings_stored", False) != self.stored:
            self._clear_parts()
            return
        remove_stale_temps(self.parts)
        seqs = sorted(int(m.group(1)) for m in map(_SHARD.match, os.listdir(self.parts)) if m)
        for seq in seqs:
            try:
                with open(os.path.join(self.parts, f"s{seq:06d}.json"), "rb") as fh:
                    shard = json.loads(fh.read())
            except (OSError, ValueError):
                continue
            if not isinstance(shard, dict) or shard.get("request_fingerprint") != self.fingerprint \
                    or not isinstance(shard.get("points"), list):
                continue
            if verify_file(self.bin_path(seq), FileRecord.from_dict(shard.get("bin_record"))) is None:
                continue
            self._index_shard(seq, shard["points"])
            self._seq = max(self._seq, seq + 1)

    def _index_shard(self, seq: int, recs: List[dict]) -> None:
        for pos, rec in enumerate(recs):
            i = int(rec["i"])
            self.index.set(rec, seq, pos)
            found = [g["warning"] for g in rec["groups"].values() if g.get("warning")]
            if found:
                self.warnings[i] = found
            else:
                self.warnings.pop(i, None)

    # ------------------------------------------------------------ parts folder
    def _make_parts(self) -> None:
        os.makedirs(self.parts, exist_ok=True)
        marker = os.path.join(self.parts, K.PARTS_MARKER)
        if not os.path.exists(marker):
            write_json(marker, {"created_by": "rs_embed", "target": self.path,
                                "version": self.version, "created_at": self.created_at})

    def _clear_parts(self, remove_folder: bool = False) -> None:
        """Delete what rs_embed wrote in ``.parts`` (shards, checkpoint, its temporary
        files) and nothing else; the folder itself only once it is empty."""
        if not os.path.isfile(os.path.join(self.parts, K.PARTS_MARKER)):
            return
        remove_stale_temps(self.parts)
        left = []
        with os.scandir(self.parts) as entries:
            for entry in entries:
                if (_OWN_FILE.match(entry.name) or entry.name == CHECKPOINT) and entry.is_file(follow_symlinks=False):
                    try:
                        os.remove(entry.path)
                        continue
                    except OSError:
                        pass
                left.append(entry.name)
        if remove_folder and all(name == K.PARTS_MARKER for name in left):
            try:  # anything else left in there is not ours: then the folder stays
                os.remove(os.path.join(self.parts, K.PARTS_MARKER))
                os.rmdir(self.parts)
            except OSError:
                pass

    def _point_done(self, i: int) -> bool:
        return self.index.seq[i] >= 0 and all(ok[i] for ok in self.index.ok.values())

    # ----------------------------------------------------------------- shards
    def _point_record(self, i: int, fetched: Fetched, outcomes: Outcomes) -> Tuple[dict, list]:
        """The JSON record of one point, and the arrays to store with their slots."""
        job = self.job
        arrays = []
        groups = {}
        for g in job.groups:
            res = fetched[i][g.gid]
            grec: Dict[str, Any] = {"error": res.error(), "attempts": res.attempts,
                                    "report": res.report, "ref": None,
                                    "nodata_fraction": res.nodata_fraction,
                                    "warning": nodata_warning(job, i, g, res)}
            if res.ok:
                p = res.patch
                grec.update(shape=list(p.data.shape), crs=p.grid.crs, transform=list(p.grid.transform),
                            bands=list(p.bands))
                if job.save_inputs:
                    arrays.append((grec, np.ascontiguousarray(p.data, dtype=np.float32), False, f"g{g.gid}", i))
            groups[str(g.gid)] = grec
        models = {}
        for m in job.models:
            out = outcomes[m.key][i]
            mrec: Dict[str, Any] = {"status": out.status, "meta": out.meta, "error": out.error(), "ref": None}
            if out.status == "ok":
                mrec["shape"] = list(out.data.shape)
                if job.save_embeddings:
                    arrays.append((mrec, out.data, self.stored, f"m{m.key}", i))
            models[m.key] = mrec
        return {"i": i, "groups": groups, "models": models}, arrays

    def _write_shard(self, seq: int, recs: List[dict], arrays: list) -> None:
        bin_path = os.path.join(self.parts, f"s{seq:06d}.bin")

        def write_bin(fh):
            offset = 0
            for slot, arr, stored, *_ in arrays:
                piece = raw_piece(array_bytes(arr)) if stored else compress_piece(array_bytes(arr), self.level)
                fh.write(piece.data)
                slot["ref"] = piece.to_ref(offset)
                offset += piece.length
            return offset

        self.output.add_shard(recs, arrays)  # before the index: a shard found means its rows are out
        size, record = atomic_write_record(bin_path, write_bin)
        write_json(os.path.join(self.parts, f"s{seq:06d}.json"),
                   json_safe({"request_fingerprint": self.fingerprint, "seq": seq, "bin_size": size,
                              "bin_record": record.to_dict(), "points": recs}))
        with self._lock:
            self._index_shard(seq, recs)

    def _handle(self, writer: Writer, progress: Progress):
        def handle(chunk: List[int], fetched: Fetched, outcomes: Outcomes) -> None:
            if not chunk:
                return
            recs, arrays = [], []
            for i in chunk:
                rec, arrs = self._point_record(i, fetched, outcomes)
                recs.append(rec)
                arrays.extend(arrs)
            seq = self._seq
            self._seq += 1

            def done(err, chunk=chunk):
                if err is not None:
                    with self._lock:
                        self.write_errors.append((chunk, err))
                progress.advance(len(chunk), failed=len(chunk) if err is not None else sum(
                    any(m["status"] != "ok" for m in rec["models"].values()) for rec in recs))

            writer.submit(lambda: self._write_shard(seq, recs, arrays), done)
        return handle

    # --------------------------------------------------------------- assembly
    def _npz_array(self, entries: List[Tuple[str, Any]], slot: str, stacked_key: str,
                   point_key, *, stack_partial: bool, stored: bool = False) -> Optional[dict]:
        """Queue one slot's rows as a stacked array, else as one array per point.

        Rows stack when their shapes agree and, unless ``stack_partial``, every point has
        one (the public layout: ``embeddings__<m>`` only when all points succeeded).
        """
        n = self.job.n_items
        idx = self.index
        rows = idx.rows(slot)
        if not len(rows):
            return None
        shapes = idx.row_shapes(slot, rows)
        if len(shapes) == 1 and (stack_partial or len(rows) == n):
            shape = (len(rows),) + shapes.pop()
            entries.append((stacked_key, SlotPieces(self._header(npy_header("<f4", shape), stored),
                                                    idx, slot, rows, self.bin_path), stored))
            info = {"npz_key": stacked_key, "shape": list(shape), "dtype": "float32"}
            if len(rows) != n:
                info["indices"] = rows.tolist()
            return info
        keys = []
        for i in rows.tolist():
            k = point_key(i)
            keys.append(k)
            entries.append((k, SlotPieces(self._header(npy_header("<f4", idx.shape_of(slot, i)), stored),
                                          idx, slot, np.asarray([i]), self.bin_path), stored))
        return {"npz_keys": keys, "indices": rows.tolist(), "dtype": "float32",
                "shapes": [list(idx.shape_of(slot, i)) for i in rows.tolist()]}

    def _header(self, header: bytes, stored: bool) -> Piece:
        return raw_piece(header) if stored else compress_piece(header, self.level)

    def _assemble_npz(self) -> Tuple[Dict[str, dict], Dict[str, dict], List[str]]:
        job = self.job
        entries: List[Tuple[str, Any]] = []
        inputs_info: Dict[str, dict] = {}
        emb_info: Dict[str, dict] = {}
        for m in job.models:
            g = m.group
            if job.save_inputs and m is g.owner:
                # without a manifest to say which rows a partial stack holds, the file must
                # say it itself: one key per point
                info = self._npz_array(entries, f"g{g.gid}", K.inputs_key(m.key),
                                       lambda i, k=m.key: K.point_input_key(k, i),
                                       stack_partial=job.save_manifest)
                if info is not None:
                    inputs_info[m.key] = info
            if job.save_embeddings:
                info = self._npz_array(entries, f"m{m.key}", K.embeddings_key(m.key),
                                       lambda i, k=m.key: K.point_embedding_key(k, i), stack_partial=False,
                                       stored=self.stored)
                if info is not None:
                    emb_info[m.key] = info
        self.file_record = write_npz_pieces(self.path, entries, PieceReader())
        return inputs_info, emb_info, [e[0] for e in entries]

    def _row(self, reader: PieceReader, slot: str, i: int) -> np.ndarray:
        piece = self.index.piece(slot, i, self.bin_path(int(self.index.seq[i])))
        data = inflate_piece(reader.read(piece))
        return np.frombuffer(data, dtype="<f4").reshape(self.index.shape_of(slot, i))

    def _assemble_netcdf(self) -> Tuple[Dict[str, dict], Dict[str, dict], List[str]]:
        job = self.job
        n = job.n_items
        inputs_info: Dict[str, dict] = {}
        emb_info: Dict[str, dict] = {}
        names: List[str] = []
        attrs = export_attrs(title="rs_embed combined export", created_at=self.created_at,
                             backend=job.backend, device=job.device_resolved, n_items=n,
                             version=self.version,
                             extra={"request_fingerprint": self.fingerprint, "layout": "combined"})
        lon = [s.center[0] for s in job.spatials]
        lat = [s.center[1] for s in job.spatials]

        def build(tmp: str) -> None:
            reader = PieceReader()
            with NC_LOCK:
                w = NetCDFWriter(tmp, attrs)
                try:
                    w.define(NcVar("point", ("point",), (n,), "i4", {"long_name": "point index"}, compress=False))
                    w.put("point", np.arange(n, dtype="i4"))
                    for var, data in lonlat_vars(lon, lat, point_dim=True):
                        w.define(var)
                        w.put(var.name, data)
                    w.define(NcVar("spatial", ("point",), (n,), str,
                                   {"long_name": "ROI as JSON (rs_embed spec)"}))
                    for a in range(0, n, 65536):
                        w.ds.variables["spatial"][a:a + 65536] = np.asarray(
                            [json.dumps(d) for d in job.spatial_dicts[a:a + 65536]], dtype=object)
                    for m in job.models:
                        g = m.group
                        if job.save_inputs and m is g.owner:
                            info = self._nc_stack(w, reader, f"g{g.gid}", m, kind="input", bands=g.sensor.bands,
                                                  collection=g.sensor.collection, gid=g.gid)
                            if info:
                                inputs_info[m.key] = info
                        if job.save_embeddings:
                            info = self._nc_stack(w, reader, f"m{m.key}", m, kind="embedding")
                            if info:
                                emb_info[m.key] = info
                    names.extend(k for k in w.vars if k not in ("point", "lon", "lat", "spatial"))
                finally:
                    w.close()
                    reader.close()

        self.file_record = atomic_write_path_record(self.path, build)[1]
        return inputs_info, emb_info, names

    def _nc_stack(self, w: NetCDFWriter, reader: PieceReader, slot: str, m, *, kind: str,
                  bands=None, collection: str = "", gid: Optional[int] = None) -> Optional[dict]:
        n = self.job.n_items
        idx = self.index
        rows = idx.rows(slot)
        if not len(rows):
            return None
        shapes = idx.row_shapes(slot, rows)
        if len(shapes) == 1:  # dense over all points, NaN rows where missing
            shape = (n,) + shapes.pop()
            if kind == "input":
                key = K.inputs_key(m.key)
                w.define(input_var(key, shape, bands=bands, collection=collection, point_dim=True))
                w.define(NcVar(f"crs__{m.key}", ("point",), (n,), str, {"long_name": "CRS of each input patch"}))
                w.define(NcVar(f"transform__{m.key}", ("point", "affine"), (n, 6), "f8",
                               {"long_name": "affine transform (a, b, c, d, e, f) of each input patch",
                                "units": "m"}, compress=False))
                w.ds.variables[key].setncattr("grid_mapping_per_point", f"crs__{m.key} transform__{m.key}")
                crs = np.asarray([""] * n, dtype=object)
                tr = np.full((n, 6), np.nan)
                records = ShardRecords(self)
                for i in rows.tolist():
                    grec = records.get(i)["groups"][str(gid)]
                    crs[i] = grec["crs"]
                    tr[i] = grec["transform"]
                w.put(f"crs__{m.key}", crs)
                w.put(f"transform__{m.key}", tr)
            else:
                key = K.embeddings_key(m.key)
                w.define(embedding_var(key, shape, model=m.name, point_dim=True))
            for i in rows.tolist():
                w.put(key, self._row(reader, slot, i), index=i)
            info = {"npz_key": key, "shape": list(shape), "dtype": "float32"}
            if len(rows) != n:
                info["valid_indices"] = rows.tolist()
            return info
        ks = []
        for i in rows.tolist():  # ragged: one variable per point
            shp = idx.shape_of(slot, i)
            if kind == "input":
                k = K.point_input_key(m.key, i)
                var = input_var(k, shp, bands=bands, collection=collection, point_dim=False)
            else:
                k = K.point_embedding_key(m.key, i)
                var = embedding_var(k, shp, model=m.name, point_dim=False)
            var.attrs.pop("coordinates", None)
            var.attrs["point_index"] = i
            w.define(var)
            w.put(k, self._row(reader, slot, i))
            ks.append(k)
        return {"npz_keys": ks, "indices": rows.tolist(), "dtype": "float32",
                "shapes": [list(idx.shape_of(slot, i)) for i in rows.tolist()]}

    # -------------------------------------------------------------- manifest
    def _per_point(self):
        """One pass over the points in order, from the shard indexes: per model its metas
        and inspections as JSON in spool files, its failures; per group the nodata fractions."""
        job = self.job
        n = job.n_items
        records = ShardRecords(self)
        spools = {m.key: (tempfile.TemporaryFile(dir=self.parts), tempfile.TemporaryFile(dir=self.parts))
                  for m in job.models}
        nodata = {g.gid: np.full(n, np.nan) for g in job.groups}
        failed: Dict[str, List[int]] = {m.key: [] for m in job.models}
        by_index: Dict[str, Dict[str, str]] = {m.key: {} for m in job.models}
        errors: List[dict] = []
        any_report = {m.key: False for m in job.models}
        bufs: Dict[str, Tuple[list, list]] = {m.key: ([], []) for m in job.models}
        try:
            for i in range(n):
                rec = records.get(i)
                if rec is not None:
                    for g in job.groups:
                        grec = rec["groups"].get(str(g.gid))
                        if grec is not None and grec.get("nodata_fraction") is not None:
                            nodata[g.gid][i] = grec["nodata_fraction"]
                for m in job.models:
                    mrec = rec["models"].get(m.key) if rec else None
                    metas, reports = bufs[m.key]
                    if mrec is not None and mrec["status"] == "ok":
                        metas.append(dumps_json(mrec["meta"]))
                    else:
                        metas.append(b"null")
                        failed[m.key].append(i)
                        err = (mrec or {}).get("error") or {"type": "NotExported", "stage": "cancelled",
                                                             "message": "point was not exported (cancelled)"}
                        by_index[m.key][str(i)] = _error_text(err)
                        errors.append({"point_index": i, "model": m.name, **err})
                    grec = rec["groups"].get(str(m.group.gid)) if rec else None
                    report = grec.get("report") if grec else None
                    any_report[m.key] = any_report[m.key] or report is not None
                    keep = report if (job.fail_on_bad_input or m.sensor.check_input) else None
                    reports.append(b"null" if keep is None else dumps_json(keep))
                    if len(metas) >= 4096 or i == n - 1:
                        for fh, buf in zip(spools[m.key], (metas, reports)):
                            fh.write((b"," if fh.tell() else b"") + b",".join(buf))
                            buf.clear()
        except BaseException:
            for a, b in spools.values():
                a.close()
                b.close()
            raise
        return spools, nodata, failed, by_index, errors, any_report

    @staticmethod
    def _spooled(fh) -> "Raw":
        def write(out):
            out.write(b"[")
            fh.seek(0)
            while True:
                block = fh.read(1 << 20)
                if not block:
                    break
                out.write(block)
            out.write(b"]")
        return Raw(write)

    def _write_manifest(self, inputs_info, emb_info, keys: List[str], timings: dict,
                        stage: Optional[dict] = None) -> dict:
        """Stream the manifest to its file (arrays are in place already); returns its dict."""
        job = self.job
        n = job.n_items
        spools, nodata, failed, by_index, errors, any_report = self._per_point()
        try:
            entries, statuses = [], []
            for m in job.models:
                g = m.group
                f = failed[m.key]
                status = "ok" if not f else ("failed" if len(f) == n else "partial")
                statuses.append(status)
                inputs = None
                if job.save_inputs:
                    inputs = inputs_info.get(g.owner.key)
                    if inputs is not None and m is not g.owner:
                        inputs = dict(inputs, dedup_reused=True, reused_from=g.owner.name)
                bi = by_index[m.key]
                nd = nodata[g.gid]
                entries.append(json_safe([
                    ("model", m.name), ("sensor", m.sensor_dict), ("status", status), ("describe", m.describe),
                    ("inputs", inputs), ("embeddings", emb_info.get(m.key) if job.save_embeddings else None),
                    ("failed_indices", f), ("errors_by_index", bi),
                    ("error", (next(iter(bi.values())) if status == "failed" and bi else None)),
                    ("model_config", m.config),
                ]) + [
                    ("metas", self._spooled(spools[m.key][0])),
                    ("nodata_fractions", json_list(None if np.isnan(v) else float(v) for v in nd)),
                    ("inspections", self._spooled(spools[m.key][1]) if any_report[m.key] else None),
                ])
            record = self.file_record
            path_keys = self.output.path_keys(keys)
            stop = stage or {"stage": "done", "resume_incomplete": False, "stop_error": None}
            head = json_safe([
                ("request_fingerprint", self.fingerprint),
                ("status", aggregate_status(statuses)),
                ("stage", stop["stage"]), ("resume_incomplete", stop["resume_incomplete"]),
                ("file_size", record.size), ("file_sha1", record.sha1), ("file_stat", list(record.signature)),
                ("created_at", self.created_at), ("completed_at", utc_now()),
                ("backend", job.backend), ("device", job.device_resolved), ("n_items", n),
                ("temporal", job.temporal.to_dict() if job.temporal is not None else None),
                ("output", job.output.to_dict()),
            ] + path_keys + [
                ("manifest_path", self.manifest_path if job.save_manifest else None),
                ("summary", {"total_models": len(entries), "ok_models": statuses.count("ok"),
                             "failed_models": statuses.count("failed"),
                             "partial_models": statuses.count("partial"),
                             "total_points": n, "resumed_points": self.resumed}),
                ("layout", "combined"), ("format", job.format), ("input_prep", job.input_prep.to_dict()),
                ("timings", timings), ("checkpoint_dir", self.parts), ("package_version", self.version),
                ("manifest_version", MANIFEST_VERSION), ("stop_error", stop["stop_error"]),
            ])
            tail = [("spatials", json_list(job.spatial_dicts)), ("errors", json_safe(errors)),
                    ("warnings", json_safe(self.point_warnings()))]
            target = self.manifest_path if job.save_manifest else os.path.join(self.parts, "manifest.json")
            write_manifest(target, head + tail, len(head), entries)
            result = self._returned(target)
            if not job.save_manifest:
                result = read_manifest(target, lazy=False)
                os.remove(target)
            return result
        finally:
            for a, b in spools.values():
                a.close()
                b.close()

    # -------------------------------------------------------------------- run
    def _write_checkpoint(self, stage: str, errors: Optional[List[dict]] = None) -> None:
        job = self.job
        write_json(os.path.join(self.parts, CHECKPOINT), json_safe({
            "request_fingerprint": self.fingerprint, "level": self.level, "embeddings_stored": self.stored,
            "n_items": job.n_items,
            "format": job.format, "created_at": self.created_at, "target": self.path,
            "stage": stage, "resume_incomplete": stage != "done",
            "errors": errors or [], "manifest_version": MANIFEST_VERSION}))

    def _write_abort(self):
        """A checkpoint that could not be written stops the export (there is no final
        file to assemble without it)."""
        with self._lock:
            if not self.write_errors:
                return None
            chunk, err = self.write_errors[0]
        return chunk[0], self._write_exception(chunk, err)

    @staticmethod
    def _write_exception(chunk: List[int], err: BaseException) -> OSError:
        exc = OSError(f"writing the checkpoint of points {chunk[0]}..{chunk[-1]} failed: "
                      f"{type(err).__name__}: {err}; run again with resume=True to continue")
        exc.__cause__ = err
        exc.point_index, exc.model, exc.stage = chunk[0], None, "write"  # type: ignore[attr-defined]
        exc.cause = {"type": type(err).__name__, "message": str(err)}  # type: ignore[attr-defined]
        return exc

    def point_warnings(self) -> List[dict]:
        """The mostly-nodata warnings of every point (one per point and input group)."""
        return [w for i in sorted(self.warnings) for w in self.warnings[i]]

    def _stopped(self, stop) -> None:
        """Record why the run stopped in the checkpoint (best effort), then raise."""
        try:
            self._write_checkpoint("stopped", [stop_record(stop)])
        except OSError:
            pass
        raise stop[1]

    def run(self) -> dict:
        folder = os.path.dirname(os.path.abspath(self.path))
        return run_locked(folder, K.combined_lock(self.base), self.path, self.preflight,
                          lambda: self._run_locked(folder))

    def _run_locked(self, folder: str) -> dict:
        job = self.job
        remove_stale_temps(folder)
        if job.resume:
            done = self._finished_manifest()
            if done is not None:
                return done
            if os.path.isdir(self.parts):
                self._load_checkpoint()
        elif os.path.isdir(self.parts):
            self._clear_parts()
        self._make_parts()
        self._write_checkpoint("running")
        todo = [i for i in range(job.n_items) if not self._point_done(i)]
        self.output.start(todo)
        self.resumed = job.n_items - len(todo)
        timings = Timings()
        writer = Writer(async_write=job.async_write, workers=job.writer_workers,
                        bound=max(2, job.writer_workers), retries=job.max_retries,
                        backoff_s=job.retry_backoff_s)
        progress = Progress(job.show_progress, job.n_items, [m.name for m in job.models],
                            desc=f"export {os.path.basename(self.path)}", callback=job.progress_cb)
        progress.overall.update(self.resumed)
        stop = None
        try:
            stop = run_chunks(job, todo, progress, timings, self._handle(writer, progress), batch=True,
                              cancel=job.cancel, abort=self._write_abort)
        except Cancelled:
            stop = interruption("cancelled")
        except KeyboardInterrupt as exc:
            stop = interruption("interrupted", exc)
        except Exception as exc:  # anything unexpected: recorded, then raised
            stop = interruption("error", exc)
        finally:
            try:
                writer.close()
            finally:
                progress.close()
        if self.write_errors and (stop is None or stop[0] is not None):
            chunk, err = self.write_errors[0]
            if stop is None or chunk[0] <= stop[0]:
                stop = (chunk[0], self._write_exception(chunk, err))
        cancelled = stop is not None and isinstance(stop[1], Cancelled)
        if stop is not None and not cancelled:
            self._stopped(stop)
        warn_mostly_nodata(job, [w for w in self.point_warnings() if w["point_index"] in set(todo)])
        t0 = time.perf_counter()
        try:
            inputs_info, emb_info, keys = self.output.finish()
            manifest = self._write_manifest(
                inputs_info, emb_info, keys,
                timings.as_dict(writer.seconds, {"assemble_s": round(time.perf_counter() - t0, 3)}),
                {"stage": "stopped", "resume_incomplete": True, "stop_error": stop_record(stop)}
                if cancelled else None)
        except BaseException as exc:  # disk full, Ctrl-C...: no final file; the shards stay
            where = exc.filename if isinstance(exc, OSError) and exc.filename else self.path
            if isinstance(exc, Exception):
                exc.point_index, exc.model, exc.stage = None, None, "assemble"  # type: ignore[attr-defined]
                exc.cause = {"type": type(exc).__name__,  # type: ignore[attr-defined]
                             "message": f"assembling {where}: {exc}"}
            self._stopped((None, exc))
        if manifest["status"] == "ok" and not cancelled:
            self._clear_parts(remove_folder=True)
        else:  # kept for resume=True: say how this run ended
            self._write_checkpoint("stopped" if cancelled else "done",
                                   [stop_record(stop)] if cancelled else None)
        return manifest


def _is_combined_manifest(path: str) -> bool:
    head = read_head(path)
    if head is not None:  # ours, line by line: its first lines say so
        return head.get("layout") == "combined" and "point_index" not in head
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("models"), list) and "point_index" not in doc


def _has_export_arrays(path: str) -> bool:
    """Whether an existing array file is an export (``.npz`` with rs_embed keys; a ``.nc``
    with rs_embed's global attributes)."""
    prefixes = ("embedding", "input_chw__", "inputs_bchw__")
    if path.lower().endswith(".npz"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                return any(n.startswith(prefixes) for n in z.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    try:
        from ..io.netcdf import _netcdf4

        with _netcdf4().Dataset(path, "r") as ds:
            return "n_items" in ds.ncattrs() or any(v.startswith(prefixes) for v in ds.variables)
    except Exception:
        return False


__all__ = ["CombinedExport"]
