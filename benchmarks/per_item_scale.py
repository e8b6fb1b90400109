"""Per-item exports at scale: points/s, peak RSS, resume and load_export of a finished export.

Workload: a fast fake provider (16 x 16 px x 4 bands, no latency) and a cheap model
(D = 512), both through the public extension points; inputs and embeddings saved.
Each measurement runs in its own process so peak RSS is that step's alone.

    python benchmarks/per_item_scale.py --n 10000                 # npz
    python benchmarks/per_item_scale.py --n 10000 --format netcdf
    python benchmarks/per_item_scale.py --n 10000 --format netcdf --nc-in-process  # no writer processes
    python benchmarks/per_item_scale.py --n 100000 --keep /tmp/x  # keep the export

Prints one JSON line per step: export (points/s, peak RSS, per-point manifest bytes),
resume of the finished export (seconds, share of the export time, peak RSS) and
``load_export(path)`` of one model's embeddings (seconds, peak RSS, array bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

BANDS = ("B2", "B3", "B4", "B8")
SIZE, DIM = 16, 512
LON0, STEP = 10.0, 1e-4


def _register():
    from rs_embed.geometry import Grid
    from rs_embed.models import register_model
    from rs_embed.models.base import EmbedResult, Embedder
    from rs_embed.providers.base import Patch, Provider

    grid = Grid("EPSG:32632", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), SIZE, SIZE)
    base = np.arange(len(BANDS) * SIZE * SIZE, dtype=np.float32).reshape(len(BANDS), SIZE, SIZE)

    class FastProvider(Provider):
        name = "scale_fake"

        def fetch(self, spatial, temporal, sensor) -> Patch:
            i = int(round((spatial.lon - LON0) / STEP))
            return Patch(base + np.float32(i % 997), tuple(sensor.bands), grid,
                         {"scenes": ["FAKE"], "nodata_fraction": 0.0})

    class CheapModel(Embedder):
        name = "scale_cheap"
        _proj = np.random.default_rng(1).normal(size=(len(BANDS), DIM)).astype(np.float32)

        @classmethod
        def _describe(cls) -> dict:
            return {"type": "on_the_fly", "inputs": {"collection": "FAKE/S2", "bands": list(BANDS)},
                    "temporal": {"mode": "range"}, "output": ["pooled"],
                    "defaults": {"scale_m": 10, "image_size": None}, "model_config": {}}

        def embed(self, input_chw, *, sensor, output) -> EmbedResult:
            x = self.check_input(input_chw, sensor)
            return EmbedResult((x.mean(axis=(1, 2)) / 1000.0) @ self._proj, {})

    register_model("scale_cheap", CheapModel)
    return FastProvider()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(args) -> dict:
    from rs_embed import PointBuffer, TemporalSpec, export_batch, load_export

    provider = _register()
    if args.step == "load":
        t0 = time.perf_counter()
        res = load_export(args.out)
        emb = res.embedding("scale_cheap")
        return {"step": "load", "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(_peak_mb()),
                "array_mb": round(emb.nbytes / 2**20, 1), "n": res.n_items}
    if args.nc_in_process:  # NetCDF written in this process, under the HDF5 lock (as before the pool)
        import rs_embed.export.per_item as per_item

        per_item.POOL_MIN_POINTS = 10**12
    pts = [PointBuffer(LON0 + STEP * i, 45.0, 80.0) for i in range(args.n)]
    t0 = time.perf_counter()
    out = export_batch(spatials=pts, temporal=TemporalSpec.range("2022-06-01", "2022-09-01"),
                       models=["scale_cheap"], out=args.out, layout="per_item", backend=provider,
                       format=args.format, resume=args.step == "resume", show_progress=False,
                       device="cpu", chunk_size=64)
    dt = time.perf_counter() - t0
    rec = {"step": args.step, "seconds": round(dt, 2), "points_per_s": round(args.n / dt, 1),
           "peak_rss_mb": round(_peak_mb()), "returned": type(out).__name__}
    if args.step == "export":
        first = out[0].get("manifest_path")
        rec["point_manifest_bytes"] = os.path.getsize(first) if first else None
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--format", default="npz", choices=("npz", "netcdf"))
    ap.add_argument("--keep", help="folder to export into (kept); default: a temporary folder")
    ap.add_argument("--nc-in-process", action="store_true", help="NetCDF without the writer processes")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(_child(args)))
        return
    root = args.keep or tempfile.mkdtemp(prefix="rs_embed_scale_")
    out = os.path.join(root, f"per_item_{args.n}_{args.format}")
    shutil.rmtree(out, ignore_errors=True)
    export_s = None
    try:
        for step in ("export", "resume", "load"):
            cmd = [sys.executable, __file__, "--step", step, "--out", out, "--n", str(args.n),
                   "--format", args.format] + (["--nc-in-process"] if args.nc_in_process else [])
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rec = json.loads(line)
            if step == "export":
                export_s = rec["seconds"]
            elif step == "resume" and export_s:
                rec["share_of_export"] = f"{100 * rec['seconds'] / export_s:.1f} %"
            rec.update(n=args.n, format=args.format, nc_in_process=args.nc_in_process)
            print(json.dumps(rec), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
