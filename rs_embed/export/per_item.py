"""The per-item layout: one array file and one manifest per point, plus a run manifest.

``<out_dir>/<name>.npz|.nc`` holds every model's input and embedding for one point;
``<name>.json`` describes it (the public rs-embed field names). ``rs_embed_export.json``
records the whole run (names, statuses, errors) so a reader knows ``n_items`` even
when trailing points failed. Resume skips a point only when its manifest says
``ok`` with the same request fingerprint and its array file is there; failed,
partial and changed points are exported again.

The run manifest lists the request fingerprint of every point (``point_fingerprints``):
files left in the folder by another request (an earlier run with another window, say,
that this run stopped before overwriting) stay on disk but are not part of this
export, and the reader treats them as missing.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Dict, List, Optional

import numpy as np

from ..errors import SpecError
from ..io import keys as K
from ..io.atomic import (FileRecord, atomic_write_path_record, refreshed, remove_stale_temps,
                         verify_file, write_json)
from ..io.manifest import (MANIFEST_VERSION, PointFingerprints, aggregate_status, json_safe,
                           request_fingerprint, sha1_array, utc_now)
from ..io.netcdf import (crs_var, embedding_var, export_attrs, input_var, lonlat_vars,
                         write_netcdf)
from ..io.npz import write_npz
from .job import ExportJob, package_version, run_locked
from .pipeline import (Cancelled, Fetched, Outcomes, Timings, interruption, nodata_warning,
                       run_chunks, stop_record, warn_mostly_nodata)
from .progress import Progress
from .writer import Writer


def _error_text(err: Optional[dict]) -> Optional[str]:
    return None if err is None else f"{err['type']}: {err['message']}"


class PerItemExport:
    def __init__(self, job: ExportJob):
        self.job = job
        self.dir = job.target.path
        self.ext = K.EXTENSIONS[job.format]
        self.version = package_version()
        self.fingerprints = PointFingerprints(job.fingerprint_common())
        self.manifests: List[Optional[dict]] = [None] * job.n_items
        self.created_at = utc_now()
        self._lock = threading.Lock()
        self.write_errors: Dict[int, BaseException] = {}
        self.resumed = 0
        self.point_fingerprints = [self.fingerprints(d) for d in job.spatial_dicts]
        # one instance shared by every point's manifest (keeps 100k-point runs small)
        self._temporal = job.temporal.to_dict() if job.temporal is not None else None
        self._output = job.output.to_dict()
        self._input_prep = job.input_prep.to_dict()

    # ------------------------------------------------------------------ paths
    def array_path(self, i: int) -> str:
        return os.path.join(self.dir, self.job.names[i] + self.ext)

    def manifest_path(self, i: int) -> str:
        return os.path.join(self.dir, self.job.names[i] + ".json")

    # ----------------------------------------------------------------- resume
    def _finished(self, i: int, fingerprint: str) -> Optional[dict]:
        try:
            with open(self.manifest_path(i), "rb") as fh:
                m = json.loads(fh.read())
        except (OSError, ValueError):
            return None
        if not isinstance(m, dict) or m.get("request_fingerprint") != fingerprint or m.get("status") != "ok":
            return None
        record = FileRecord.from_dict({"size": m.get("file_size"), "sha1": m.get("file_sha1"),
                                       "stat": m.get("file_stat")})
        how = verify_file(self.array_path(i), record)
        if how is None:  # missing, truncated, or other bytes than its manifest's checksum
            return None
        if how == "hashed" and self.job.save_manifest:
            # verified in full (the file was copied or touched): remember its new signature
            m["file_stat"] = list(refreshed(self.array_path(i), record).signature)
            try:
                write_json(self.manifest_path(i), m)
            except OSError:
                pass
        shared = {p.name: p for p in self.job.models}
        for entry in m.get("models") or []:  # share the big static parts again
            p = shared.get(entry.get("model"))
            if p is not None and entry.get("describe") == p.describe:
                entry["describe"] = p.describe
        return m

    # --------------------------------------------------------------- manifests
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
            entries.append({
                "model": m.name, "status": out.status, "sensor": m.sensor_dict, "describe": m.describe,
                "input": inp, "embedding": emb, "meta": out.meta, "error": _error_text(err),
                "error_info": err, "model_config": m.config, "fetch_attempts": res.attempts,
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
            "input_prep": self._input_prep,
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
        }

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
        attrs = export_attrs(title=f"rs_embed export, point {i} ({job.names[i]})",
                             created_at=manifest["created_at"], backend=job.backend,
                             device=job.device_resolved, n_items=1, version=self.version,
                             extra={"point_index": i, "name": job.names[i], "status": manifest["status"],
                                    "request_fingerprint": manifest["request_fingerprint"],
                                    "spatial": json.dumps(job.spatial_dicts[i])})
        return atomic_write_path_record(path, lambda tmp: write_netcdf(tmp, variables, attrs))[1]

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
        self.manifests[i] = safe

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
        return safe

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
                        safe = self._mark_write_failed(manifest, err)
                        with self._lock:
                            self.write_errors[i] = err
                            self.manifests[i] = safe
                    progress.advance(1, failed=int(err is not None or manifest.get("status") != "ok"))

                writer.submit(lambda i=i, a=arrays, f={i: point_fetch}, m=manifest: self._write_point(i, a, f, m), done)
        return handle

    # -------------------------------------------------------------------- run
    def run_manifest(self, status: str, stage: str, timings: Optional[dict] = None,
                     stop_error: Optional[dict] = None) -> dict:
        job = self.job
        per_model: Dict[str, dict] = {m.name: {"model": m.name, "sensor": m.sensor_dict, "ok_points": 0,
                                               "failed_indices": []} for m in job.models}
        errors, warnings = [], []
        counts = {"ok": 0, "partial": 0, "failed": 0, "missing": 0}
        for i, man in enumerate(self.manifests):
            if man is None:
                counts["missing"] += 1
                continue
            counts[man["status"]] = counts.get(man["status"], 0) + 1
            warnings.extend(man.get("warnings") or [])
            for e in man.get("models") or []:
                pm = per_model.get(e.get("model"))
                if pm is None:
                    continue
                if e.get("status") == "ok":
                    pm["ok_points"] += 1
                else:
                    pm["failed_indices"].append(i)
            errors.extend(man.get("errors") or [])
        if stop_error is not None and not any(
                e.get("point_index") == stop_error["point_index"] and e.get("model") == stop_error["model"]
                and e.get("stage") == stop_error["stage"] for e in errors):
            errors.append(stop_error)
        for pm in per_model.values():
            pm["status"] = ("ok" if not pm["failed_indices"] and pm["ok_points"] == job.n_items else
                            "failed" if pm["ok_points"] == 0 else "partial")
        return json_safe({
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
            "names": job.names,
            "files": [n + self.ext for n in job.names],
            "spatials": job.spatial_dicts,
            "temporal": job.temporal.to_dict() if job.temporal is not None else None,
            "output": job.output.to_dict(),
            "input_prep": job.input_prep.to_dict(),
            "models": list(per_model.values()),
            "request_fingerprint": request_fingerprint({**job.fingerprint_common(), "spatials": job.spatial_dicts}),
            "point_fingerprints": self.point_fingerprints,
            "summary": {"total_points": job.n_items, "ok_points": counts["ok"],
                        "partial_points": counts["partial"], "failed_points": counts["failed"],
                        "missing_points": counts["missing"], "resumed_points": self.resumed},
            "errors": errors,
            "warnings": warnings,
            "timings": timings,
            "package_version": self.version,
            "manifest_version": MANIFEST_VERSION,
        })

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
        for name in self.job.names:
            for fname in (name + self.ext, name + ".json"):
                if fname in present and not _is_manifest(os.path.join(self.dir, name + ".json")):
                    raise SpecError(
                        f"{os.path.join(self.dir, fname)!r} exists and was not written by an export "
                        "(no export manifest beside it); rs_embed does not overwrite files it did not "
                        "write: move it, or choose another out or other names")

    # -------------------------------------------------------------------- run
    def run(self) -> List[dict]:
        return run_locked(self.dir, K.per_item_lock(self.dir), self.dir, self.preflight, self._run_locked)

    def _run_locked(self) -> List[dict]:
        job = self.job
        remove_stale_temps(self.dir)
        todo = []
        for i in range(job.n_items):
            if job.resume:
                m = self._finished(i, self.point_fingerprints[i])
                if m is not None:
                    self.manifests[i] = m
                    self.resumed += 1
                    continue
            todo.append(i)
        run_path = os.path.join(self.dir, K.RUN_MANIFEST)
        if job.resume and not todo:  # nothing to do, but the run manifest must say so
            return self._finish(run_path, None, Timings(), None)
        if job.save_manifest:
            write_json(run_path, self.run_manifest("running", "running"))
        timings = Timings()
        writer = Writer(async_write=job.async_write, workers=job.writer_workers,
                        bound=job.chunk_size + job.writer_workers, retries=job.max_retries,
                        backoff_s=job.retry_backoff_s)
        progress = Progress(job.show_progress, job.n_items, [m.name for m in job.models],
                            desc=f"export {os.path.basename(os.path.abspath(self.dir))}",
                            callback=job.progress_cb)
        progress.overall.update(self.resumed)
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
                progress.close()
        warn_mostly_nodata(job, [w for i in todo if self.manifests[i] is not None
                                 for w in self.manifests[i].get("warnings") or ()])
        return self._finish(run_path, stop, timings, writer)

    def _finish(self, run_path: str, stop, timings: Timings, writer: Optional[Writer]) -> List[dict]:
        job = self.job
        if self.write_errors and not job.continue_on_error and (stop is None or stop[0] is not None):
            # a write failed: the export stops there, even when it was noticed only after
            # the last point (or after another stop of a later point)
            i, err = min(self.write_errors.items())
            if stop is None or i <= stop[0]:
                stop = (i, self._write_exception(i, err))
        statuses = [m["status"] if m is not None else "failed" for m in self.manifests]
        status = aggregate_status(statuses)
        asked = stop is not None and (isinstance(stop[1], (Cancelled, KeyboardInterrupt)))
        if stop is not None and not asked:
            status = "failed"
        stage = "stopped" if stop is not None else "done"
        if job.save_manifest:  # always rewritten: a resume or a crash must not leave it stale
            try:
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
        return self.manifests  # type: ignore[return-value]


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
