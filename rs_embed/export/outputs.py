"""The final output of a combined export, one small class per format.

The engine (:mod:`rs_embed.export.combined`) writes every finished chunk of points as a
checkpoint shard; a :class:`CombinedOutput` turns shards into the format's output:

* :meth:`~CombinedOutput.check` refuses, before any work, requests the format cannot hold;
* :meth:`~CombinedOutput.start` runs once before the first chunk (a Zarr store is opened
  or created there and caught up with the shards a resumed run found);
* :meth:`~CombinedOutput.add_shard` sees each shard's rows in a writer thread, before the
  shard's index is written (Zarr writes them into the store as the run goes);
* :meth:`~CombinedOutput.finish` builds (or completes) the output from the shards found
  and returns what the manifest says of it;
* :meth:`~CombinedOutput.verify` says whether a finished output still checks out.

Only the shards carry state between these calls, so a run that only writes shards and a
later ``finish`` from the shards found give the same output.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import SpecError
from ..io import keys as K
from ..io.atomic import FileRecord, atomic_write_record, verify_file

Infos = Tuple[Dict[str, dict], Dict[str, dict], List[str]]


class CombinedOutput:
    format = ""
    #: the shards keep input patches (False: this format stores none)
    stores_inputs = True

    def __init__(self, export):
        self.export = export
        self.job = export.job
        self.path = export.path

    def check(self) -> None:
        """Refuse (``SpecError``) what this format cannot hold, before any work."""

    def is_ours(self, path: str) -> bool:
        from .combined import _has_export_arrays

        return _has_export_arrays(path)

    def preflight(self) -> None:
        path = self.path
        if os.path.lexists(path) and not os.path.isfile(path):
            raise SpecError(f"{path!r} exists and is not a regular file; choose another out")

    def start(self, todo: List[int]) -> None:
        """Before the first chunk of this run (``todo``: the points it will export)."""

    def add_shard(self, recs: List[dict], arrays: list) -> None:
        """A shard's point records and ``(slot, array, stored, slot_name, point)`` rows."""

    def finish(self) -> Infos:
        raise NotImplementedError

    def path_keys(self, keys: List[str]) -> list:
        raise NotImplementedError

    @property
    def record_path(self) -> str:
        """The file whose size and SHA-1 the manifest records."""
        return self.path

    def verify(self, record: Optional[FileRecord]) -> Optional[str]:
        return verify_file(self.record_path, record)

    def clear(self) -> None:
        """Remove a previous output before a fresh (not resumed) run, where needed."""


class NpzOutput(CombinedOutput):
    format = "npz"

    def finish(self) -> Infos:
        return self.export._assemble_npz()

    def path_keys(self, keys):
        return [("npz_path", self.path), ("npz_keys", keys)]


class NetcdfOutput(CombinedOutput):
    format = "netcdf"

    def finish(self) -> Infos:
        return self.export._assemble_netcdf()

    def path_keys(self, keys):
        return [("nc_path", self.path), ("nc_variables", keys)]


def run_metadata(export) -> dict:
    """What a Parquet file or Zarr store carries of its run (the manifest's head, static part)."""
    from ..io.manifest import MANIFEST_VERSION, json_safe

    job = export.job
    return json_safe({
        "request_fingerprint": export.fingerprint, "created_at": export.created_at,
        "backend": job.backend, "device": job.device_resolved, "n_items": job.n_items,
        "temporal": job.temporal.to_dict() if job.temporal is not None else None,
        "output": job.output.to_dict(), "input_prep": job.input_prep.to_dict(),
        "layout": "combined", "format": job.format, "save_inputs": job.save_inputs,
        "save_embeddings": job.save_embeddings, "package_version": export.version,
        "manifest_version": MANIFEST_VERSION,
        "models": [{"model": m.name, "key": m.key, "sensor": m.sensor_dict, "describe": m.describe,
                    "model_config": m.config} for m in job.models],
    })


# ---------------------------------------------------------------------- parquet


class ParquetOutput(CombinedOutput):
    """GeoParquet (:mod:`rs_embed.io.geoparquet`), streamed from the shards row group by row group."""

    format = "parquet"
    stores_inputs = False

    def check(self) -> None:
        job = self.job
        if job.output.mode != "pooled":
            raise SpecError(f"format='parquet' stores one pooled vector per ROI and model; output="
                            f"{job.output!r} gives grids: use format='zarr' for grid embeddings "
                            "(or output=OutputSpec.pooled())")
        if job.save_inputs:
            warnings.warn("format='parquet' stores no input patches (a table of pooled embeddings): "
                          "save_inputs=True is ignored; use format='zarr' to keep the patches, or "
                          "save_inputs=False to silence this", UserWarning, stacklevel=4)
            job.opts["save_inputs"] = False

    def is_ours(self, path: str) -> bool:
        from ..io.geoparquet import file_metadata

        return file_metadata(path) is not None

    def path_keys(self, keys):
        return [("parquet_path", self.path), ("parquet_columns", keys)]

    def finish(self) -> Infos:
        from ..io import geoparquet as G
        from ..io.manifest import PointFingerprints
        from ..io.npz import PieceReader
        from tqdm.auto import tqdm

        x, job = self.export, self.job
        n = job.n_items
        idx = x.index
        dims = {}
        for m in job.models:
            rows = idx.rows(f"m{m.key}") if job.save_embeddings else np.zeros(0, int)
            shapes = idx.row_shapes(f"m{m.key}", rows) if len(rows) else set()
            if len(shapes) > 1:
                raise ValueError(f"the embeddings of {m.name!r} differ in shape ({sorted(shapes)}): "
                                 "format='parquet' holds one vector size per model; use format='zarr'")
            dims[m.key] = int(np.prod(shapes.pop())) if shapes else 0
        dim = max(dims.values()) if dims else 1
        if len({d for d in dims.values() if d}) > 1:
            dim = max(dims.values())  # models of other sizes are padded with NaN
        fps = PointFingerprints(job.fingerprint_common())
        meta = run_metadata(x)
        records = None
        emb_info: Dict[str, dict] = {}

        def write(fh):
            nonlocal records
            from .combined import ShardRecords, _error_text

            records = ShardRecords(x)
            w = G.GeoParquetWriter(fh, dim, meta)
            reader = PieceReader()
            step = G.rows_per_group(dim)
            bar = tqdm(total=n * len(job.models), desc="parquet", disable=not job.show_progress, leave=False)
            try:
                for m in job.models:
                    slot = f"m{m.key}"
                    for a in range(0, n, step):
                        pts = np.arange(a, min(n, a + step))
                        sp = job.spatials[a:a + len(pts)]
                        rings, crs, bounds = G.footprints(sp, m.sensor.scale_m)
                        ok = idx.ok[m.key][pts].copy()
                        has = idx.shape_id[slot][pts] >= 0 if slot in idx.shape_id else np.zeros(len(pts), bool)
                        emb = np.full((len(pts), dim), np.nan, dtype=np.float32)
                        for j in np.flatnonzero(has):
                            row = x._row(reader, slot, int(pts[j])).reshape(-1)
                            emb[j, :row.size] = row
                        ok &= has if job.save_embeddings else ok
                        errors: List[Optional[str]] = [None] * len(pts)
                        for j in np.flatnonzero(~idx.ok[m.key][pts]):
                            rec = records.get(int(pts[j]))
                            mrec = rec["models"].get(m.key) if rec else None
                            err = (mrec or {}).get("error") or {"type": "NotExported",
                                                                 "message": "point was not exported"}
                            errors[j] = _error_text(err)
                        w.write(model=m.name, index=pts, names=job.names[a:a + len(pts)], ok=ok, errors=errors,
                                lon=np.array([s.center[0] for s in sp]), lat=np.array([s.center[1] for s in sp]),
                                rings=rings, crs=crs, bounds=bounds, temporal=job.temporal.to_dict()
                                if job.temporal is not None else None,
                                fingerprints=[fps(d) for d in job.spatial_dicts[a:a + len(pts)]],
                                embeddings=emb)
                        bar.update(len(pts))
                w.close({m.name: dims[m.key] for m in job.models})
            finally:
                reader.close()
                bar.close()
            return w.row_groups

        groups, x.file_record = atomic_write_record(self.path, write)
        for m in job.models:
            if job.save_embeddings and dims[m.key]:
                emb_info[m.key] = {"column": "embedding", "model": m.name, "shape": [n, dims[m.key]],
                                   "dtype": "float32", "row_groups": groups.get(m.name, [])}
        return {}, emb_info, list(G.schema(dim).names)


# ------------------------------------------------------------------------- zarr


class ZarrOutput(CombinedOutput):
    """Zarr v3 (:mod:`rs_embed.io.zarr_store`), written chunk by chunk as the run goes."""

    format = "zarr"

    def __init__(self, export):
        super().__init__(export)
        self.store = None
        self._lock = threading.Lock()
        self._pending: Dict[int, dict] = {}
        self.expected: Optional[np.ndarray] = None
        self.chunk = 1

    def check(self) -> None:
        from ..geometry import grid_shape

        job = self.job
        if not (job.save_inputs or job.output.mode == "grid"):
            return
        for g in job.groups:
            first = None
            for i, sp in enumerate(job.spatials):
                shp = grid_shape(sp, g.sensor.scale_m)
                if first is None:
                    first = (i, shp)
                elif shp != first[1]:
                    why = "save_inputs=True" if job.save_inputs else f"output={job.output!r}"
                    raise SpecError(
                        f"format='zarr' holds one patch size per model, but spatials[{first[0]}]="
                        f"{job.spatials[first[0]]!r} gives {first[1][0]} x {first[1][1]} px and spatials[{i}]="
                        f"{sp!r} gives {shp[0]} x {shp[1]} px at scale_m={g.sensor.scale_m:g} ({why}): use "
                        "ROIs of one size (PointBuffer with one buffer_m), save_inputs=False with pooled "
                        "output, or format='npz'/'netcdf'")

    def is_ours(self, path: str) -> bool:
        from ..io.zarr_store import is_store

        return is_store(path)

    def preflight(self) -> None:
        path = self.path
        if os.path.lexists(path):
            if not os.path.isdir(path) or os.path.islink(path):
                raise SpecError(f"{path!r} exists and is not a folder; a Zarr store is a folder: choose another out")
            if os.listdir(path) and not self.is_ours(path):
                raise SpecError(f"{path!r} exists and is not an rs_embed Zarr export; rs_embed does not "
                                "overwrite folders it did not write: move it, or choose another out")

    def path_keys(self, keys):
        return [("zarr_path", self.path), ("zarr_arrays", keys)]

    def clear(self) -> None:
        from ..io.zarr_store import remove_store

        remove_store(self.path)

    @property
    def record_path(self) -> str:
        return os.path.join(self.path, "zarr.json")

    def verify(self, record: Optional[FileRecord]) -> Optional[str]:
        from ..io.zarr_store import run_metadata as store_meta

        meta = store_meta(self.path)
        if not meta or meta.get("request_fingerprint") != self.export.fingerprint or not meta.get("complete"):
            return None
        return verify_file(self.record_path, record)

    # ------------------------------------------------------------- the store
    def _row_bytes(self) -> int:
        from ..geometry import grid_shape

        job = self.job
        b = 0
        if job.save_inputs and job.spatials:
            for g in job.groups:
                w, h = grid_shape(job.spatials[0], g.sensor.scale_m)
                b = max(b, 4 * len(g.sensor.bands) * w * h)
        return max(b, 4 * 512)

    def _slots(self):
        """``(slot name, array name, kind, model or group)`` of every stored array."""
        job = self.job
        out = []
        for m in job.models:
            g = m.group
            if job.save_inputs and m is g.owner:
                out.append((f"g{g.gid}", K.inputs_key(m.key), "input", g))
            if job.save_embeddings:
                out.append((f"m{m.key}", K.embeddings_key(m.key), "embedding", m))
        return out

    def start(self, todo: List[int]) -> None:
        from ..io import zarr_store as Z

        x, job = self.export, self.job
        n = job.n_items
        self.chunk = Z.point_chunk(self._row_bytes(), n)
        meta = Z.run_metadata(self.path) if os.path.isdir(self.path) else None
        keys = [m.key for m in job.models]
        if meta is not None and job.resume and meta.get("request_fingerprint") == x.fingerprint:
            self.store = Z.ZarrExportStore.open(self.path, mode="a")
            self.store.set_meta(dict(run_metadata(x), complete=False))
            self.chunk = meta.get("point_chunk", self.chunk)
        else:
            Z.remove_store(self.path)
            self.store = Z.ZarrExportStore.create(
                self.path, n=n, meta=dict(run_metadata(x), point_chunk=self.chunk),
                lon=[s.center[0] for s in job.spatials], lat=[s.center[1] for s in job.spatials],
                temporal=job.temporal.to_dict() if job.temporal is not None else None, models=keys)
        nchunks = -(-n // self.chunk)
        self.expected = np.bincount(np.asarray(todo, dtype=np.int64) // self.chunk, minlength=nchunks)
        self._catch_up(set(todo))

    def _in_store(self) -> np.ndarray:
        done = np.ones(self.job.n_items, bool)
        for m in self.job.models:
            done &= self.store.statuses(m.key) != 0
        return done

    def _catch_up(self, todo: set) -> None:
        """Points the shards hold but the store does not (a run killed before their chunk
        was written): written now from the shards."""
        x = self.export
        have = x.index.seq >= 0
        missing = np.flatnonzero(have & ~self._in_store())
        missing = np.asarray([i for i in missing.tolist() if i not in todo], dtype=np.int64)
        if len(missing):
            self._from_shards(missing)

    def _from_shards(self, points: np.ndarray) -> None:
        from ..io.npz import PieceReader

        x = self.export
        reader = PieceReader()
        try:
            for a in range(0, len(points), self.chunk):
                block = points[a:a + self.chunk]
                buf = {"points": [], "data": {}, "status": {}}
                for i in block.tolist():
                    self._gather(buf, i, lambda slot, i=i: (x._row(reader, slot, i)
                                                            if x.index.shape_id[slot][i] >= 0 else None),
                                 {m.key: bool(x.index.ok[m.key][i]) for m in self.job.models})
                self._flush(buf)
        finally:
            reader.close()

    def _gather(self, buf: dict, i: int, row, ok: Dict[str, bool]) -> None:
        buf["points"].append(i)
        for slot, name, kind, owner in self._slots():
            arr = row(slot)
            if arr is not None:
                buf["data"].setdefault(slot, {})[i] = arr
        for key, good in ok.items():
            buf["status"].setdefault(key, {})[i] = good

    def add_shard(self, recs: List[dict], arrays: list) -> None:
        by = {(slot_name, i): arr for _, arr, _, slot_name, i in arrays}
        ready = []
        with self._lock:
            for rec in recs:
                i = int(rec["i"])
                c = i // self.chunk
                buf = self._pending.setdefault(c, {"points": [], "data": {}, "status": {}})
                self._gather(buf, i, lambda slot, i=i: by.get((slot, i)),
                             {k: mrec.get("status") == "ok" for k, mrec in rec["models"].items()})
                if len(buf["points"]) >= self.expected[c]:
                    ready.append(self._pending.pop(c))
        for buf in ready:
            self._flush(buf)

    def _flush(self, buf: dict) -> None:
        """One chunk's rows: data first, statuses last (a set status means the rows are there)."""
        from ..io import zarr_store as Z

        st = self.store
        n = self.job.n_items
        for slot, name, kind, owner in self._slots():
            rows = buf["data"].get(slot)
            if not rows:
                continue
            pts = np.asarray(sorted(rows), dtype=np.int64)
            data = np.stack([np.asarray(rows[i], dtype=np.float32) for i in pts.tolist()])
            if kind == "input":
                attrs = {"long_name": "input patch", "bands": list(owner.sensor.bands),
                         "collection": owner.sensor.collection, "units": "reflectance",
                         "models": [m.name for m in owner.models]}
            else:
                attrs = {"long_name": f"embedding of {owner.name}", "model": owner.name}
            st.data_array(name, data.shape[1:], n, self.chunk, kind=kind, attrs=attrs)
            st.write_rows(name, pts, data)
        for key, codes in buf["status"].items():
            pts = np.asarray(sorted(codes), dtype=np.int64)
            st.write_rows(Z.status_key(key), pts,
                          np.asarray([Z.OK if codes[i] else Z.FAILED for i in pts.tolist()], dtype=np.int8))

    def finish(self) -> Infos:
        x, job = self.export, self.job
        with self._lock:
            left, self._pending = list(self._pending.values()), {}
        for buf in left:
            self._flush(buf)
        self._catch_up(set())
        names = self.store.array_names()
        self.store.finish(dict(run_metadata(x), point_chunk=self.chunk))
        root = os.path.join(self.path, "zarr.json")
        h = hashlib.sha1()
        with open(root, "rb") as fh:
            data = fh.read()
        h.update(data)
        st = os.stat(root)
        x.file_record = FileRecord(len(data), h.hexdigest(), (st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        n = job.n_items
        inputs_info: Dict[str, dict] = {}
        emb_info: Dict[str, dict] = {}
        for slot, name, kind, owner in self._slots():
            if name not in names:
                continue
            shape = [n] + list(self.store.array(name).shape[1:])
            info = {"zarr_array": name, "shape": shape, "dtype": "float32"}
            rows = x.index.rows(slot)
            if len(rows) != n:
                info["valid_indices"] = rows.tolist()
            key = owner.owner.key if kind == "input" else owner.key
            (inputs_info if kind == "input" else emb_info)[key] = info
        return inputs_info, emb_info, names


OUTPUTS = {"npz": NpzOutput, "netcdf": NetcdfOutput, "parquet": ParquetOutput, "zarr": ZarrOutput}


def output_for(export) -> CombinedOutput:
    return OUTPUTS[export.job.format](export)


__all__ = ["CombinedOutput", "NpzOutput", "NetcdfOutput", "ParquetOutput", "ZarrOutput", "OUTPUTS",
           "output_for", "run_metadata"]
