"""The per-item layout: one array file and one manifest per point, a run manifest, a run index.

``<out_dir>/<name>.npz|.nc`` holds every model's input and embedding for one point;
``<name>.json`` describes it (the public rs-embed field names). Exports of more than
``SHARD_THRESHOLD`` points put their point files in sub-folders
(:mod:`rs_embed.io.layout` decides where every file lives).

What is the same at every point is written once, in the run manifest
``rs_embed_export.json``: each model's ``describe``, ``model_config`` and the part of its
embedding ``meta`` fixed by the request (``meta_common``). A point manifest keeps every
field the format reference requires, but ``describe`` is a reference
(``{"$ref": "rs_embed_export.json#/models/<k>/describe"}``) and ``meta`` holds only what
is specific to the point; ``run_manifest`` names the file with the rest. Manifests
returned to the caller (a lazy sequence read from disk) and read by ``load_export`` have
the static parts put back.

The run index ``rs_embed_index.parquet`` (:mod:`rs_embed.io.run_index`) has one row per
point (status, fingerprint, file, checksum, errors) and grows as the run goes. Resume
reads it: a point counts as done only when its row says ``ok`` for the same request
fingerprint and its array file verifies against the row's checksum; failed, partial and
changed points are exported again. A point without a row (written after the last index
flush before a crash, or an export of an older version) is looked up in its manifest.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Dict, List, Optional

import numpy as np

from ..errors import SpecError
from ..io import keys as K
from ..io.atomic import FileRecord, refreshed, remove_stale_temps, verify_file, write_json
from ..io.layout import PerItemLayout
from ..io.lazy import LazySequence
from ..io.manifest import (MANIFEST_VERSION, PointFingerprints, aggregate_status, expand_point_manifest,
                           json_safe, sha1_array, slim_meta, utc_now)
from ..io.nc_pool import POOL_MIN_POINTS, NetCDFPool, write_netcdf_record
from ..io.netcdf import crs_var, embedding_var, export_attrs, input_var, lonlat_vars
from ..io.npz import write_npz
from ..io.run_index import CODE, INDEX_NAME as INDEX_FILE, PARTS_DIR, RunIndexWriter, read_index
from ..specs import InputPrepSpec
from .job import ExportJob, package_version, run_locked
from .pipeline import (Cancelled, Fetched, Outcomes, Timings, interruption, nodata_warning,
                       run_chunks, stop_record, warn_mostly_nodata)
from .progress import Progress
from .writer import Writer


#: variables of a per-item NetCDF file smaller than this are stored uncompressed (zlib and
#: its chunking cost more HDF5 time than they save bytes on a few KiB)
SMALL_VARIABLE = 64 * 1024


def _error_text(err: Optional[dict]) -> Optional[str]:
    return None if err is None else f"{err['type']}: {err['message']}"


def meta_common(job: ExportJob, m) -> dict:
    """The fields of model ``m``'s embedding meta that the request fixes (as
    :func:`rs_embed.inference.embedding_meta` fills them)."""
    caps = m.embedder.capabilities()
    return json_safe({
        "model": m.canonical, "type": caps.get("type", "on_the_fly"), "backend": job.backend,
        "source": m.sensor.collection, "sensor": m.sensor.to_dict(),
        "temporal": job.temporal.to_dict() if job.temporal is not None else None,
        "pooling": job.output.pooling if job.output.mode == "pooled" else None,
        "output": job.output.to_dict(),
        "input_prep": (InputPrepSpec.coerce(job.input_prep) or InputPrepSpec.resize()).to_dict(),
        "device": m.embedder.device, "model_config": dict(m.embedder.config),
    })


class PerItemExport:
    def __init__(self, job: ExportJob):
        self.job = job
        self.dir = job.target.path
        self.ext = K.EXTENSIONS[job.format]
        self.version = package_version()
        self.fingerprints = PointFingerprints(job.fingerprint_common())
        self.layout = PerItemLayout.for_export(self.dir, job.names, self.ext)
        self.created_at = utc_now()
        self._lock = threading.Lock()
        self.write_errors: Dict[int, BaseException] = {}
        self.resumed = 0
        self.point_fingerprints = self.fingerprints.many(job.spatial_dicts)
        self.index = RunIndexWriter(self.dir, names=job.names, fingerprints=self.point_fingerprints,
                                    files=self.layout.rel_file, spatials=job.spatial_dicts,
                                    models=[m.name for m in job.models], enabled=job.save_manifest)
        #: manifests that are not on disk (save_manifest=False, or the point's write failed)
        self.kept: Dict[int, dict] = {}
        #: NetCDF writer processes (HDF5 takes one file at a time per process)
        self.nc_pool: Optional[NetCDFPool] = None
        # one instance shared by every point's manifest
        self._temporal = job.temporal.to_dict() if job.temporal is not None else None
        self._output = job.output.to_dict()
        self._run_ref = self.layout.run_manifest_ref(0)
        self.static = {m.name: {"describe": m.describe, "meta_common": meta_common(job, m),
                                "model_config": m.config} for m in job.models}
        self._describe_ref = {m.name: {"$ref": f"{self._run_ref}#/models/{k}/describe"}
                              for k, m in enumerate(job.models)}

    # ------------------------------------------------------------------ paths
    def array_path(self, i: int) -> str:
        return self.layout.array_path(i)

    def manifest_path(self, i: int) -> str:
        return self.layout.manifest_path(i)

    # ----------------------------------------------------------------- resume
    def _resume(self) -> List[int]:
        """The points to export: all but those the index (or, without a row, the point's
        manifest) shows finished for this request, with a file that verifies."""
        job = self.job
        rows = read_index(self.dir) if job.save_manifest else None
        row_of: Dict[int, int] = {}
        codes = None
        if rows is not None:
            codes = rows.model_status_codes() if rows.models == [m.name for m in job.models] else None
            for k, i in enumerate(rows.index.tolist()):
                if 0 <= i < job.n_items:
                    row_of[i] = k
        todo = []
        for i in range(job.n_items):
            k = row_of.get(i)
            if k is not None and codes is not None and self._from_row(i, rows, k, codes):
                continue
            if k is not None and codes is not None and rows.col("status")[k] != "pending" \
                    and self._row_matches(i, rows, k):
                todo.append(i)  # a row of this request that is not ok (or whose file changed)
                continue
            if self._from_manifest(i):
                continue
            todo.append(i)
        return todo

    def _row_matches(self, i: int, rows, k: int) -> bool:
        return (rows.col("name")[k] == self.job.names[i] and rows.col("file")[k] == self.layout.rel_file(i)
                and rows.col("fingerprint")[k] == self.point_fingerprints[i])

    def _from_row(self, i: int, rows, k: int, codes) -> bool:
        if rows.col("status")[k] != "ok" or not self._row_matches(i, rows, k):
            return False
        record = rows.record(k)
        path = self.array_path(i)
        how = verify_file(path, record)
        if how is None or not os.path.exists(self.manifest_path(i)):
            return False
        if how == "hashed":
            record = refreshed(path, record)
        self.index.set(i, status="ok", model_status=[("pending", "ok", "partial", "failed")[c] for c in codes[k]],
                       record=record, warnings=rows.json_col("warnings", k),
                       nodata=rows.col("nodata_fraction")[k], written_ns=rows.col("written_ns")[k], flush=False)
        self.resumed += 1
        return True

    def _from_manifest(self, i: int) -> bool:
        """Resume from the point's manifest (no usable index row)."""
        try:
            with open(self.manifest_path(i), "rb") as fh:
                m = json.loads(fh.read())
        except (OSError, ValueError):
            return False
        if not isinstance(m, dict) or m.get("request_fingerprint") != self.point_fingerprints[i] \
                or m.get("status") != "ok":
            return False
        record = FileRecord.from_dict({"size": m.get("file_size"), "sha1": m.get("file_sha1"),
                                       "stat": m.get("file_stat")})
        how = verify_file(self.array_path(i), record)
        if how is None:  # missing, truncated, or other bytes than its manifest's checksum
            return False
        if how == "hashed":
            # verified in full (the file was copied or touched): remember its new signature
            record = refreshed(self.array_path(i), record)
            m["file_stat"] = list(record.signature)
            try:
                write_json(self.manifest_path(i), m)
            except OSError:
                pass
        by = {e.get("model"): e.get("status") for e in m.get("models") or [] if isinstance(e, dict)}
        self.index.set(i, status="ok", model_status=[by.get(p.name, "failed") for p in self.job.models],
                       record=record, warnings=m.get("warnings") or None, nodata=m.get("nodata_fraction"),
                       flush=False)
        self.resumed += 1
        return True

    # --------------------------------------------------------------- manifests
    def manifest(self, i: int) -> Optional[dict]:
        """Point ``i``'s manifest with its static parts (None when the point was not exported)."""
        kept = self.kept.get(i)
        if kept is not None:
            return kept
        if self.index.status[i] == CODE["pending"] or not self.job.save_manifest:
            return None
        try:
            with open(self.manifest_path(i), "rb") as fh:
                man = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        return expand_point_manifest(man, self.static, {"input_prep": self.job.input_prep.to_dict()})

    def manifests(self) -> LazySequence:
        return LazySequence(self.job.n_items, self.manifest, what="manifest")

    def _point_manifest(self, i: int, fetched: Fetched, outcomes: Outcomes,
                        arrays: Dict[str, np.ndarray]) -> dict:
        job = self.job
        entries, errors, warnings = [], [], []
        for g in job.groups:
            w = nodata_warning(job, i, g, fetched[i][g.gid])
            if w is not None:
                warnings.append(w)
        for m in job.models:
            g = m.group
            res = fetched[i][g.gid]
            out = outcomes[m.key][i]
            inp = None
            if res.ok:
                key = K.input_key(g.owner.key)
                inp = {"npz_key": key if key in arrays else None, "dtype": str(res.patch.data.dtype),
                       "shape": list(res.patch.data.shape), "sha1": None,
                       "nodata_fraction": res.nodata_fraction,
                       "inspection": res.report if (job.fail_on_bad_input or m.sensor.check_input) else None}
                if m is not g.owner:
                    inp["dedup_reused"] = True
            emb = None
            if out.status == "ok":
                key = K.embedding_key(m.key)
                emb = {"npz_key": key if key in arrays else None, "dtype": "float32",
                       "shape": list(out.data.shape), "sha1": None}
            err = out.error()
            if err is not None:
                errors.append({"point_index": i, "model": m.name, **err})
            meta = out.meta
            if isinstance(meta, dict):
                meta = slim_meta(json_safe(meta), self.static[m.name]["meta_common"])
            entries.append({
                "model": m.name, "status": out.status, "sensor": m.sensor_dict,
                "describe": self._describe_ref[m.name], "input": inp, "embedding": emb, "meta": meta,
                "error": _error_text(err), "error_info": err, "fetch_attempts": res.attempts,
            })
        n_failed = sum(e["status"] != "ok" for e in entries)
        fractions = [fetched[i][g.gid].nodata_fraction for g in job.groups]
        fractions = [f for f in fractions if f is not None]
        return {
            "created_at": utc_now(),
            "point_index": i,
            "name": job.names[i],
            "status": aggregate_status(e["status"] for e in entries),
            "backend": job.backend,
            "device": job.device_resolved,
            "models": entries,
            "spatial": job.spatial_dicts[i],
            "temporal": self._temporal,
            "output": self._output,
            "package_version": self.version,
            "summary": {"total_models": len(entries), "failed_models": n_failed,
                        "ok_models": len(entries) - n_failed},
            "errors": errors,
            "warnings": warnings,
            "nodata_fraction": max(fractions) if fractions else None,
            "request_fingerprint": self.point_fingerprints[i],
            "layout": "per_item",
            "format": job.format,
            "manifest_version": MANIFEST_VERSION,
            "run_manifest": self._run_ref,
        }

    def _index_point(self, i: int, manifest: dict, record: Optional[FileRecord]) -> None:
        self.index.set(i, status=manifest["status"], model_status=[e["status"] for e in manifest["models"]],
                       record=record,
                       error=next((e["error"] for e in manifest["models"] if e.get("error")), None),
                       errors=manifest.get("errors") or None, warnings=manifest.get("warnings") or None,
                       nodata=manifest.get("nodata_fraction"))

    def _arrays(self, i: int, fetched: Fetched, outcomes: Outcomes) -> Dict[str, np.ndarray]:
        job = self.job
        arrays: Dict[str, np.ndarray] = {}
        for m in job.models:
            g = m.group
            res = fetched[i][g.gid]
            if job.save_inputs and m is g.owner and res.ok:
                arrays[K.input_key(m.key)] = np.ascontiguousarray(res.patch.data, dtype=np.float32)
            out = outcomes[m.key][i]
            if job.save_embeddings and out.status == "ok":
                arrays[K.embedding_key(m.key)] = out.data
        return arrays

    # ------------------------------------------------------------------ write
    def _write_netcdf(self, path: str, i: int, arrays, fetched: Fetched, manifest: dict) -> None:
        job = self.job
        variables = []
        sp = job.spatials[i]
        lon, lat = sp.center
        variables += lonlat_vars(lon, lat, point_dim=False)
        for m in job.models:
            g = m.group
            key = K.input_key(m.key)
            if key in arrays:
                p = fetched[i][g.gid].patch
                variables.append((crs_var(m.key, p.grid.crs, p.grid.transform), 0))
                variables.append((input_var(key, arrays[key].shape, bands=p.bands, collection=g.sensor.collection,
                                            point_dim=False, crs=p.grid.crs, transform=p.grid.transform),
                                  arrays[key]))
            key = K.embedding_key(m.key)
            if key in arrays:
                variables.append((embedding_var(key, arrays[key].shape, model=m.name, point_dim=False),
                                  arrays[key]))
        for var, data in variables:  # one point, written whole: HDF5 costs per filter and fill
            var.fill = False
            if data is not None and getattr(data, "nbytes", 0) < SMALL_VARIABLE:
                var.compress = False
        attrs = export_attrs(title=f"rs_embed export, point {i} ({job.names[i]})",
                             created_at=manifest["created_at"], backend=job.backend,
                             device=job.device_resolved, n_items=1, version=self.version,
                             extra={"point_index": i, "name": job.names[i], "status": manifest["status"],
                                    "request_fingerprint": manifest["request_fingerprint"],
                                    "spatial": json.dumps(job.spatial_dicts[i])})
        return write_netcdf_record(path, variables, attrs, self.nc_pool)

    def _write_point(self, i: int, arrays: Dict[str, np.ndarray], fetched: Fetched, manifest: dict) -> None:
        sha = {k: sha1_array(a) for k, a in arrays.items()}
        for e in manifest["models"]:
            for rec in (e["input"], e["embedding"]):
                if rec is not None and rec["npz_key"] is not None:
                    rec["sha1"] = sha[rec["npz_key"]]
        path = self.array_path(i)
        if self.job.format == "npz":
            record = write_npz(path, arrays)
            manifest["npz_path"], manifest["npz_keys"] = path, list(arrays)
        else:
            record = self._write_netcdf(path, i, arrays, fetched, manifest)
            manifest["nc_path"], manifest["nc_variables"] = path, list(arrays)
        manifest["file_size"] = record.size
        manifest["file_sha1"] = record.sha1
        manifest["file_stat"] = list(record.signature)
        safe = json_safe(manifest)
        if self.job.save_manifest:
            safe["manifest_path"] = self.manifest_path(i)
            write_json(self.manifest_path(i), safe)
        else:
            self.kept[i] = expand_point_manifest(safe, self.static, {"input_prep": self.job.input_prep.to_dict()})
        self._index_point(i, safe, record)

    def _mark_write_failed(self, manifest: dict, err: BaseException) -> dict:
        """A point whose file could not be written: every model entry failed at stage
        ``write`` (no file, no sha1), so the returned manifest, the run manifest and the
        reader agree."""
        info = {"type": type(err).__name__, "message": str(err), "stage": "write"}
        text = _error_text(info)
        i = manifest["point_index"]
        for key in ("npz_path", "npz_keys", "nc_path", "nc_variables", "file_size", "file_sha1", "file_stat",
                    "manifest_path"):
            manifest.pop(key, None)
        errors = [e for e in manifest.get("errors") or []]
        failed_models = {e.get("model") for e in errors}
        for e in manifest["models"]:
            e["status"] = "failed"
            e["embedding"] = None
            if e["input"] is not None:
                e["input"] = dict(e["input"], npz_key=None, sha1=None)
            if e["error_info"] is None:
                e["error_info"], e["error"] = dict(info), text
            if e["model"] not in failed_models:
                errors.append({"point_index": i, "model": e["model"], **info})
        n = len(manifest["models"])
        manifest.update(status="failed", write_error=text, errors=errors,
                        summary={"total_models": n, "failed_models": n, "ok_models": 0})
        safe = json_safe(manifest)
        if self.job.save_manifest:  # best effort: replaces a manifest of an earlier run
            try:
                write_json(self.manifest_path(i), safe)
            except OSError:
                pass
        full = expand_point_manifest(safe, self.static, {"input_prep": self.job.input_prep.to_dict()})
        with self._lock:
            self.kept[i] = full
        self._index_point(i, safe, None)
        return full

    def _write_abort(self):
        """With ``continue_on_error=False`` a failed write stops the export."""
        if self.job.continue_on_error:
            return None
        with self._lock:
            if not self.write_errors:
                return None
            i, err = min(self.write_errors.items())
        return i, self._write_exception(i, err)

    def _write_exception(self, i: int, err: BaseException) -> OSError:
        exc = OSError(f"writing point {i} ({self.job.names[i]!r}) failed: {type(err).__name__}: {err}")
        exc.__cause__ = err
        exc.point_index, exc.model, exc.stage = i, None, "write"  # type: ignore[attr-defined]
        exc.cause = {"type": type(err).__name__, "message": str(err)}  # type: ignore[attr-defined]
        return exc

    def _handle(self, writer: Writer, progress: Progress):
        def handle(chunk: List[int], fetched: Fetched, outcomes: Outcomes) -> None:
            for i in chunk:
                arrays = self._arrays(i, fetched, outcomes)
                manifest = self._point_manifest(i, fetched, outcomes, arrays)
                point_fetch = {g.gid: fetched[i][g.gid] for g in self.job.groups}

                def done(err, i=i, manifest=manifest):
                    if err is not None:
                        self._mark_write_failed(manifest, err)
                        with self._lock:
                            self.write_errors[i] = err
                    progress.advance(1, failed=int(err is not None or manifest.get("status") != "ok"))

                writer.submit(lambda i=i, a=arrays, f={i: point_fetch}, m=manifest: self._write_point(i, a, f, m), done)
        return handle

    # -------------------------------------------------------------------- run
    def run_manifest(self, status: str, stage: str, timings: Optional[dict] = None,
                     stop_error: Optional[dict] = None) -> dict:
        job = self.job
        ix = self.index
        done = ix.status != CODE["pending"]
        per_model: List[dict] = []
        for k, m in enumerate(job.models):
            ok = ix.model_status[:, k] == CODE["ok"]
            per_model.append({"model": m.name, "sensor": m.sensor_dict, "ok_points": int(ok.sum()),
                              "failed_indices": np.flatnonzero(done & ~ok).tolist(),
                              "describe": m.describe, "model_config": m.config,
                              "meta_common": self.static[m.name]["meta_common"],
                              "input_key": K.input_key(m.group.owner.key) if job.save_inputs else None,
                              "embedding_key": K.embedding_key(m.key) if job.save_embeddings else None})
        errors = [e for i in sorted(ix.errors) for e in ix.errors[i]]
        warnings = [w for i in sorted(ix.warnings) for w in ix.warnings[i]]
        counts = {s: int((ix.status == CODE[s]).sum()) for s in ("ok", "partial", "failed")}
        counts["missing"] = int((~done).sum())
        if stop_error is not None and not any(
                e.get("point_index") == stop_error["point_index"] and e.get("model") == stop_error["model"]
                and e.get("stage") == stop_error["stage"] for e in errors):
            errors.append(stop_error)
        for pm in per_model:
            pm["status"] = ("ok" if not pm["failed_indices"] and pm["ok_points"] == job.n_items else
                            "failed" if pm["ok_points"] == 0 else "partial")
        run = {
            "created_at": self.created_at,
            "completed_at": utc_now() if stage == "done" else None,
            "layout": "per_item",
            "status": status,
            "stage": stage,
            "resume_incomplete": stage != "done",
            "stop_error": stop_error,
            "backend": job.backend,
            "device": job.device_resolved,
            "format": job.format,
            "n_items": job.n_items,
            "file_layout": self.layout.to_record(),
            "index": INDEX_FILE if job.save_manifest else None,
        }
        if not self.layout.sharded:  # small exports keep the per-point lists (older readers use them)
            run.update(names=list(job.names), files=[self.layout.rel_file(i) for i in range(job.n_items)],
                       spatials=list(job.spatial_dicts))
        run.update({
            "temporal": job.temporal.to_dict() if job.temporal is not None else None,
            "output": job.output.to_dict(),
            "input_prep": job.input_prep.to_dict(),
            "models": per_model,
            "request_fingerprint": job.request_fingerprint,
        })
        if not self.layout.sharded:
            run["point_fingerprints"] = list(self.point_fingerprints)
        run.update({
            "summary": {"total_points": job.n_items, "ok_points": counts["ok"],
                        "partial_points": counts["partial"], "failed_points": counts["failed"],
                        "missing_points": counts["missing"], "resumed_points": self.resumed},
            "errors": errors,
            "warnings": warnings,
            "timings": timings,
            "package_version": self.version,
            "manifest_version": MANIFEST_VERSION,
        })
        return json_safe(run)

    # -------------------------------------------------------------- preflight
    def preflight(self) -> None:
        """Refuse (``SpecError``) to overwrite files in the folder that rs_embed did not write.

        A folder with our run manifest is ours; otherwise every existing file this export
        would replace must belong to an export (a point manifest beside it).
        """
        try:
            present = {e.name for e in os.scandir(self.dir)}
        except FileNotFoundError:
            return
        if not present or K.RUN_MANIFEST in present and _is_manifest(os.path.join(self.dir, K.RUN_MANIFEST)):
            return
        if K.RUN_MANIFEST in present:
            raise SpecError(f"{os.path.join(self.dir, K.RUN_MANIFEST)!r} exists and is not an rs_embed run "
                            "manifest; rs_embed does not overwrite files it did not write: choose another out")
        for sub in self.layout.folders():
            if sub in present and os.path.isdir(os.path.join(self.dir, sub)):
                present |= {f"{sub}/{e.name}" for e in os.scandir(os.path.join(self.dir, sub))}
        for i in range(self.job.n_items):
            stem = self.layout.rel_stem(i)
            for fname in (stem + self.ext, stem + ".json"):
                if fname in present and not _is_manifest(self.manifest_path(i)):
                    raise SpecError(
                        f"{os.path.join(self.dir, fname)!r} exists and was not written by an export "
                        "(no export manifest beside it); rs_embed does not overwrite files it did not "
                        "write: move it, or choose another out or other names")

    # -------------------------------------------------------------------- run
    def run(self) -> LazySequence:
        return run_locked(self.dir, K.per_item_lock(self.dir), self.dir, self.preflight, self._run_locked)

    def _run_locked(self) -> LazySequence:
        job = self.job
        for folder in [self.dir, os.path.join(self.dir, PARTS_DIR)] + [
                os.path.join(self.dir, sub) for sub in self.layout.folders()]:
            remove_stale_temps(folder)
        todo = self._resume() if job.resume else list(range(job.n_items))
        run_path = os.path.join(self.dir, K.RUN_MANIFEST)
        if job.resume and not todo:  # nothing to do, but the run manifest must say so
            return self._finish(run_path, None, Timings(), None, todo)
        self.layout.make_folders()
        if job.save_manifest:
            write_json(run_path, self.run_manifest("running", "running"))
            # every point's row (pending until written); earlier part files are in it now
            self.index.write_full(final=True)
        timings = Timings()
        writer = Writer(async_write=job.async_write, workers=job.writer_workers,
                        bound=job.chunk_size + job.writer_workers, retries=job.max_retries,
                        backoff_s=job.retry_backoff_s)
        progress = Progress(job.show_progress, job.n_items, [m.name for m in job.models],
                            desc=f"export {os.path.basename(os.path.abspath(self.dir))}",
                            callback=job.progress_cb)
        progress.overall.update(self.resumed)
        if job.format == "netcdf" and job.async_write and len(todo) >= POOL_MIN_POINTS:
            self.nc_pool = NetCDFPool(job.writer_workers)
        stop = None
        try:
            stop = run_chunks(job, todo, progress, timings, self._handle(writer, progress),
                              batch=job.per_item_batch, cancel=job.cancel, abort=self._write_abort)
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
                if self.nc_pool is not None:
                    self.nc_pool.close()
                progress.close()
        warn_mostly_nodata(job, [w for i in todo for w in self.index.warnings.get(i) or ()])
        return self._finish(run_path, stop, timings, writer, todo)

    def _finish(self, run_path: str, stop, timings: Timings, writer: Optional[Writer],
                todo: List[int]) -> LazySequence:
        job = self.job
        if self.write_errors and not job.continue_on_error and (stop is None or stop[0] is not None):
            # a write failed: the export stops there, even when it was noticed only after
            # the last point (or after another stop of a later point)
            i, err = min(self.write_errors.items())
            if stop is None or i <= stop[0]:
                stop = (i, self._write_exception(i, err))
        codes = self.index.status
        statuses = {"ok" if c == CODE["ok"] else "partial" if c == CODE["partial"] else "failed"
                    for c in np.unique(codes).tolist()}
        status = aggregate_status(statuses)
        asked = stop is not None and (isinstance(stop[1], (Cancelled, KeyboardInterrupt)))
        if stop is not None and not asked:
            status = "failed"
        stage = "stopped" if stop is not None else "done"
        if job.save_manifest:  # always rewritten: a resume or a crash must not leave it stale
            try:
                self.index.write_full(final=True)
                write_json(run_path, self.run_manifest(status, stage,
                                                       timings.as_dict(writer.seconds if writer else 0.0),
                                                       stop_record(stop) if stop is not None else None))
            except OSError as exc:  # e.g. the disk is full: never hide why the export stopped
                if stop is None or isinstance(stop[1], Cancelled):
                    raise
                try:
                    stop[1].add_note(f"the run manifest could not be updated: {exc}")
                except AttributeError:  # pragma: no cover - Python < 3.11
                    pass
        if stop is not None and not isinstance(stop[1], Cancelled):
            raise stop[1]
        return self.manifests()


def _is_manifest(path: str) -> bool:
    """Whether ``path`` is an export manifest (ours or the public rs-embed's)."""
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("models"), list) and (
        "request_fingerprint" in doc or "point_index" in doc or "n_items" in doc)


__all__ = ["PerItemExport"]
