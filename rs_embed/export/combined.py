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
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import SpecError
from ..io import keys as K
from ..io.atomic import (FileRecord, atomic_write_path_record, atomic_write_record, refreshed,
                         remove_stale_temps, verify_file, write_json)
from ..io.manifest import (MANIFEST_VERSION, aggregate_status, json_safe, request_fingerprint,
                           utc_now)
from ..io.netcdf import (NC_LOCK, NcVar, NetCDFWriter, embedding_var, export_attrs, input_var,
                         lonlat_vars)
from ..io.npz import (COMPRESSLEVEL, Piece, PieceReader, array_bytes, compress_piece,
                      inflate_piece, npy_header, write_npz_pieces)
from .job import ExportJob, package_version, run_locked
from .pipeline import (Cancelled, Fetched, Outcomes, Timings, interruption, nodata_warning,
                       run_chunks, stop_record, warn_mostly_nodata)
from .progress import Progress
from .writer import Writer

_SHARD = re.compile(r"^s(\d{6})\.json$")
_OWN_FILE = re.compile(r"^s\d{6}\.(json|bin)$")
CHECKPOINT = "checkpoint.json"


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
        self.fingerprint = request_fingerprint({**job.fingerprint_common(), "spatials": job.spatial_dicts})
        # NetCDF is recompressed by HDF5 at assembly: its shards only need to be fast
        self.level = COMPRESSLEVEL if job.format == "npz" else 0
        self.records: Dict[int, dict] = {}
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
        for path in (self.manifest_path, self.path):
            if os.path.lexists(path) and not os.path.isfile(path):
                raise SpecError(f"{path!r} exists and is not a regular file; choose another out")
        if os.path.exists(self.manifest_path):
            if not _is_combined_manifest(self.manifest_path):
                raise SpecError(f"{self.manifest_path!r} exists and is not an export manifest; rs_embed "
                                "does not overwrite files it did not write: move it, or choose another out")
        elif os.path.exists(self.path) and not _has_export_arrays(self.path):
            raise SpecError(f"{self.path!r} exists and is not an export (no rs_embed arrays in it); rs_embed "
                            "does not overwrite files it did not write: move it, or choose another out")

    # ----------------------------------------------------------------- resume
    def _finished_manifest(self) -> Optional[dict]:
        try:
            with open(self.manifest_path, "rb") as fh:
                m = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        if not (isinstance(m, dict) and m.get("request_fingerprint") == self.fingerprint
                and m.get("status") == "ok" and m.get("stage", "done") == "done"):
            return None
        record = FileRecord.from_dict({"size": m.get("file_size"), "sha1": m.get("file_sha1"),
                                       "stat": m.get("file_stat")})
        how = verify_file(self.path, record)
        if how is None:  # missing, truncated or other bytes than the manifest's checksum
            return None
        if how == "hashed":  # verified in full: remember the file's new signature
            m["file_stat"] = list(refreshed(self.path, record).signature)
            try:
                write_json(self.manifest_path, m)
            except OSError:
                pass
        return m

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
                or cp.get("level") != self.level:
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
            bin_path = os.path.join(self.parts, f"s{seq:06d}.bin")
            if verify_file(bin_path, FileRecord.from_dict(shard.get("bin_record"))) is None:
                continue
            for rec in shard["points"]:
                rec["bin"] = bin_path
                self.records[int(rec["i"])] = rec
            self._seq = max(self._seq, seq + 1)

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
        for entry in os.scandir(self.parts):
            if (_OWN_FILE.match(entry.name) or entry.name == CHECKPOINT) and entry.is_file(follow_symlinks=False):
                try:
                    os.remove(entry.path)
                except OSError:
                    pass
        if remove_folder and all(e.name == K.PARTS_MARKER for e in os.scandir(self.parts)):
            try:  # anything else left in there is not ours: then the folder stays
                os.remove(os.path.join(self.parts, K.PARTS_MARKER))
                os.rmdir(self.parts)
            except OSError:
                pass

    def _point_done(self, rec: Optional[dict]) -> bool:
        return rec is not None and all(rec["models"].get(m.key, {}).get("status") == "ok"
                                       for m in self.job.models)

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
                    arrays.append((grec, np.ascontiguousarray(p.data, dtype=np.float32)))
            groups[str(g.gid)] = grec
        models = {}
        for m in job.models:
            out = outcomes[m.key][i]
            mrec: Dict[str, Any] = {"status": out.status, "meta": out.meta, "error": out.error(), "ref": None}
            if out.status == "ok":
                mrec["shape"] = list(out.data.shape)
                if job.save_embeddings:
                    arrays.append((mrec, out.data))
            models[m.key] = mrec
        return {"i": i, "groups": groups, "models": models}, arrays

    def _write_shard(self, seq: int, recs: List[dict], arrays: list) -> None:
        bin_path = os.path.join(self.parts, f"s{seq:06d}.bin")

        def write_bin(fh):
            offset = 0
            for slot, arr in arrays:
                piece = compress_piece(array_bytes(arr), self.level)
                fh.write(piece.data)
                slot["ref"] = piece.to_ref(offset)
                offset += piece.length
            return offset

        size, record = atomic_write_record(bin_path, write_bin)
        write_json(os.path.join(self.parts, f"s{seq:06d}.json"),
                   json_safe({"request_fingerprint": self.fingerprint, "seq": seq, "bin_size": size,
                              "bin_record": record.to_dict(), "points": recs}))
        with self._lock:
            for rec in recs:
                rec["bin"] = bin_path
                self.records[rec["i"]] = rec

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
    def _rows(self, pick) -> List[Tuple[int, dict, dict]]:
        out = []
        for i in range(self.job.n_items):
            rec = self.records.get(i)
            if rec is None:
                continue
            slot = pick(rec)
            if slot is not None:
                out.append((i, rec, slot))
        return out

    def _input_rows(self, gid: int):
        return self._rows(lambda r: r["groups"].get(str(gid)) if r["groups"].get(str(gid), {}).get("ref") else None)

    def _emb_rows(self, key: str):
        return self._rows(lambda r: r["models"].get(key) if (r["models"].get(key, {}).get("status") == "ok"
                                                             and r["models"][key].get("ref")) else None)

    @staticmethod
    def _piece(rec: dict, slot: dict) -> Piece:
        return Piece.from_ref(rec["bin"], slot["ref"])

    def _npz_array(self, entries: List[Tuple[str, List[Piece]]], rows, stacked_key: str,
                   point_key, *, stack_partial: bool) -> Optional[dict]:
        """Queue one model's rows as a stacked array, else as one array per point.

        Rows stack when their shapes agree and, unless ``stack_partial``, every point has
        one (the public layout: ``embeddings__<m>`` only when all points succeeded).
        """
        n = self.job.n_items
        shapes = {tuple(s["shape"]) for _, _, s in rows}
        if len(shapes) == 1 and (stack_partial or len(rows) == n):
            shape = (len(rows),) + shapes.pop()
            entries.append((stacked_key, [compress_piece(npy_header("<f4", shape), self.level)]
                            + [self._piece(r, s) for _, r, s in rows]))
            info = {"npz_key": stacked_key, "shape": list(shape), "dtype": "float32"}
            if len(rows) != n:
                info["indices"] = [i for i, _, _ in rows]
            return info
        if not rows:
            return None
        keys = [point_key(i) for i, _, _ in rows]
        for k, (_, r, s) in zip(keys, rows):
            entries.append((k, [compress_piece(npy_header("<f4", s["shape"]), self.level), self._piece(r, s)]))
        return {"npz_keys": keys, "indices": [i for i, _, _ in rows], "dtype": "float32",
                "shapes": [s["shape"] for _, _, s in rows]}

    def _assemble_npz(self) -> Tuple[Dict[str, dict], Dict[str, dict], List[str]]:
        job = self.job
        entries: List[Tuple[str, List[Piece]]] = []
        inputs_info: Dict[str, dict] = {}
        emb_info: Dict[str, dict] = {}
        for m in job.models:
            g = m.group
            if job.save_inputs and m is g.owner:
                # without a manifest to say which rows a partial stack holds, the file must
                # say it itself: one key per point
                info = self._npz_array(entries, self._input_rows(g.gid), K.inputs_key(m.key),
                                       lambda i, k=m.key: K.point_input_key(k, i),
                                       stack_partial=job.save_manifest)
                if info is not None:
                    inputs_info[m.key] = info
            if job.save_embeddings:
                info = self._npz_array(entries, self._emb_rows(m.key), K.embeddings_key(m.key),
                                       lambda i, k=m.key: K.point_embedding_key(k, i), stack_partial=False)
                if info is not None:
                    emb_info[m.key] = info
        self.file_record = write_npz_pieces(self.path, entries, PieceReader())
        return inputs_info, emb_info, [k for k, _ in entries]

    def _row(self, reader: PieceReader, rec: dict, slot: dict) -> np.ndarray:
        data = inflate_piece(reader.read(self._piece(rec, slot)))
        return np.frombuffer(data, dtype="<f4").reshape(slot["shape"])

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
                    w.put("spatial", np.asarray([json.dumps(d) for d in job.spatial_dicts], dtype=object))
                    for m in job.models:
                        g = m.group
                        if job.save_inputs and m is g.owner:
                            rows = self._input_rows(g.gid)
                            info = self._nc_stack(w, reader, rows, m, kind="input", bands=g.sensor.bands,
                                                  collection=g.sensor.collection)
                            if info:
                                inputs_info[m.key] = info
                        if job.save_embeddings:
                            info = self._nc_stack(w, reader, self._emb_rows(m.key), m, kind="embedding")
                            if info:
                                emb_info[m.key] = info
                    names.extend(k for k in w.vars if k not in ("point", "lon", "lat", "spatial"))
                finally:
                    w.close()
                    reader.close()

        self.file_record = atomic_write_path_record(self.path, build)[1]
        return inputs_info, emb_info, names

    def _nc_stack(self, w: NetCDFWriter, reader: PieceReader, rows, m, *, kind: str,
                  bands=None, collection: str = "") -> Optional[dict]:
        n = self.job.n_items
        if not rows:
            return None
        shapes = {tuple(s["shape"]) for _, _, s in rows}
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
                for i, _, s in rows:
                    crs[i] = s["crs"]
                    tr[i] = s["transform"]
                w.put(f"crs__{m.key}", crs)
                w.put(f"transform__{m.key}", tr)
            else:
                key = K.embeddings_key(m.key)
                w.define(embedding_var(key, shape, model=m.name, point_dim=True))
            for i, r, s in rows:
                w.put(key, self._row(reader, r, s), index=i)
            info = {"npz_key": key, "shape": list(shape), "dtype": "float32"}
            if len(rows) != n:
                info["valid_indices"] = [i for i, _, _ in rows]
            return info
        ks = []
        for i, r, s in rows:  # ragged: one variable per point
            if kind == "input":
                k = K.point_input_key(m.key, i)
                var = input_var(k, s["shape"], bands=bands, collection=collection, point_dim=False)
            else:
                k = K.point_embedding_key(m.key, i)
                var = embedding_var(k, s["shape"], model=m.name, point_dim=False)
            var.attrs.pop("coordinates", None)
            var.attrs["point_index"] = i
            w.define(var)
            w.put(k, self._row(reader, r, s))
            ks.append(k)
        return {"npz_keys": ks, "indices": [i for i, _, _ in rows], "dtype": "float32",
                "shapes": [s["shape"] for _, _, s in rows]}

    # -------------------------------------------------------------- manifest
    def _manifest(self, inputs_info, emb_info, keys: List[str], timings: dict) -> dict:
        job = self.job
        n = job.n_items
        entries, errors = [], []
        for m in job.models:
            g = m.group
            metas: List[Optional[dict]] = [None] * n
            nodata: List[Optional[float]] = [None] * n
            failed, by_index, inspections = [], {}, []
            any_report = False
            for i in range(n):
                rec = self.records.get(i)
                grec0 = rec["groups"].get(str(g.gid)) if rec else None
                if grec0 is not None:
                    nodata[i] = grec0.get("nodata_fraction")
                mrec = rec["models"].get(m.key) if rec else None
                if mrec is not None and mrec["status"] == "ok":
                    metas[i] = mrec["meta"]
                else:
                    failed.append(i)
                    err = (mrec or {}).get("error") or {"type": "NotExported", "stage": "cancelled",
                                                         "message": "point was not exported (cancelled)"}
                    by_index[str(i)] = _error_text(err)
                    errors.append({"point_index": i, "model": m.name, **err})
                grec = rec["groups"].get(str(g.gid)) if rec else None
                report = grec.get("report") if grec else None
                any_report = any_report or report is not None
                inspections.append(report if (job.fail_on_bad_input or m.sensor.check_input) else None)
            status = "ok" if not failed else ("failed" if len(failed) == n else "partial")
            inputs = None
            if job.save_inputs:
                inputs = inputs_info.get(g.owner.key)
                if inputs is not None and m is not g.owner:
                    inputs = dict(inputs, dedup_reused=True, reused_from=g.owner.name)
            entries.append({
                "model": m.name, "sensor": m.sensor_dict, "status": status, "describe": m.describe,
                "inputs": inputs, "embeddings": emb_info.get(m.key) if job.save_embeddings else None,
                "metas": metas, "failed_indices": failed, "errors_by_index": by_index,
                "error": (next(iter(by_index.values())) if status == "failed" and by_index else None),
                "model_config": m.config, "nodata_fractions": nodata,
                "inspections": inspections if any(r is not None for r in inspections) else None,
            })
        statuses = [e["status"] for e in entries]
        record = self.file_record
        path_keys = ({"npz_path": self.path, "npz_keys": keys} if job.format == "npz"
                     else {"nc_path": self.path, "nc_variables": keys})
        return json_safe({
            "created_at": self.created_at,
            "status": aggregate_status(statuses),
            "stage": "done",
            "resume_incomplete": False,
            "backend": job.backend,
            "device": job.device_resolved,
            "n_items": n,
            "temporal": job.temporal.to_dict() if job.temporal is not None else None,
            "output": job.output.to_dict(),
            "spatials": job.spatial_dicts,
            "models": entries,
            "request_fingerprint": self.fingerprint,
            **path_keys,
            "manifest_path": self.manifest_path if job.save_manifest else None,
            "summary": {"total_models": len(entries), "ok_models": statuses.count("ok"),
                        "failed_models": statuses.count("failed"), "partial_models": statuses.count("partial"),
                        "total_points": n, "resumed_points": self.resumed},
            "completed_at": utc_now(),
            "layout": "combined",
            "format": job.format,
            "input_prep": job.input_prep.to_dict(),
            "errors": errors,
            "warnings": self.point_warnings(),
            "timings": timings,
            "file_size": record.size,
            "file_sha1": record.sha1,
            "file_stat": list(record.signature),
            "checkpoint_dir": self.parts,
            "package_version": self.version,
            "manifest_version": MANIFEST_VERSION,
        })

    # -------------------------------------------------------------------- run
    def _write_checkpoint(self, stage: str, errors: Optional[List[dict]] = None) -> None:
        job = self.job
        write_json(os.path.join(self.parts, CHECKPOINT), json_safe({
            "request_fingerprint": self.fingerprint, "level": self.level, "n_items": job.n_items,
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
        return [grec["warning"] for i in sorted(self.records)
                for grec in self.records[i]["groups"].values() if grec.get("warning")]

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
        todo = [i for i in range(job.n_items) if not self._point_done(self.records.get(i))]
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
            if job.format == "npz":
                inputs_info, emb_info, keys = self._assemble_npz()
            else:
                inputs_info, emb_info, keys = self._assemble_netcdf()
            manifest = self._manifest(inputs_info, emb_info, keys,
                                      timings.as_dict(writer.seconds,
                                                      {"assemble_s": round(time.perf_counter() - t0, 3)}))
            if cancelled:
                manifest.update(stage="stopped", resume_incomplete=True, stop_error=stop_record(stop))
            else:
                manifest["stop_error"] = None
            if job.save_manifest:
                write_json(self.manifest_path, manifest)
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
