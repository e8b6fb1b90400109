"""How well export_batch overlaps its stages, what it costs in memory, checkpoints and resumes.

Workload: a provider that answers each fetch after a fixed
latency (default 150 ms, about one Earth Engine request) with an S2-like 4-band
200 x 200 float32 patch, a model with a fixed CPU cost per patch, 8 fetch workers,
chunks of 16, inputs and embeddings saved, npz.

For each layout (per_item, combined) and N points (default 512) it measures, in the
same run, every stage alone and then the whole export:

* fetch  = the provider alone through a pool of ``num_workers`` threads
           (ideal: N x latency / num_workers)
* infer  = the embedder alone on the N patches (one at a time for per_item on CPU,
           batches of ``chunk_size`` for combined); the model spends ``cost_ms`` of
           CPU time per patch
* write  = the writers alone on the N payloads (per_item: npz + manifest per point;
           combined: checkpoint shards, then the final file)
* wall   = export_batch end to end

and prints points/s and efficiency = largest stage / wall (1.0 = perfect overlap).

Then: peak RSS of separate processes exporting N=512 and N=4096 points (per_item must
stay within 10 %; combined must stay far below the size of all inputs), the cost of each
combined checkpoint over the run (must not grow with the data already written), and
the time to resume a finished 2,000-point export (must be under 2 % of its export; every
file's checksum is verified, by its stat signature when untouched), and of a copy of it
(every file re-hashed).

    python benchmarks/export_pipeline.py                 # everything, with the defaults above
    python benchmarks/export_pipeline.py --quick         # smaller N, for a quick look
    python benchmarks/export_pipeline.py --only stages --n 256 --latency 0.15 --cost-ms 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rs_embed import PointBuffer, TemporalSpec, export_batch  # noqa: E402
from rs_embed.geometry import Grid  # noqa: E402
from rs_embed.models import register_model  # noqa: E402
from rs_embed.models.base import EmbedResult, Embedder  # noqa: E402
from rs_embed.providers.base import Patch, Provider  # noqa: E402

BANDS = ("B2", "B3", "B4", "B8")
SIZE = 200
TEMPORAL = TemporalSpec.range("2022-06-01", "2022-09-01")
LON0, STEP = 10.0, 1e-3


def _base_patch() -> np.ndarray:
    """A smooth field plus noise in Sentinel-2 digital numbers (like real reflectance x 10000)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    bands = []
    for b in range(len(BANDS)):
        field = 1500 + 800 * np.sin(3 * x + b) * np.cos(2 * y - b) + rng.normal(0, 120, (SIZE, SIZE))
        bands.append(np.round(np.clip(field, 0, 10000)))
    return np.stack(bands).astype(np.float32)


BASE = _base_patch()
GRID = Grid("EPSG:32632", (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0), SIZE, SIZE)


def point_index(spatial) -> int:
    return int(round((spatial.lon - LON0) / STEP))


def make_patch(i: int) -> np.ndarray:
    return BASE + np.float32(i % 251)  # a new array per point, as a real fetch returns


class LatencyProvider(Provider):
    """Answers after ``latency`` seconds with a fresh 4 x 200 x 200 float32 patch."""

    name = "bench"

    def __init__(self, latency: float):
        self.latency = latency

    def fetch(self, spatial, temporal, sensor) -> Patch:
        if self.latency:
            time.sleep(self.latency)
        return Patch(make_patch(point_index(spatial)), tuple(sensor.bands), GRID,
                     {"scenes": ["BENCH"], "nodata_fraction": 0.0})


class CostModel(Embedder):
    """Per-band statistics through a fixed projection to 128 dims, after ``cost_ms`` of CPU work."""

    name = "bench_cost"
    has_batch = True
    cost_ms = 10.0
    _proj = np.random.default_rng(1).normal(size=(16, 128)).astype(np.float32)

    @classmethod
    def _describe(cls) -> dict:
        return {"type": "on_the_fly", "inputs": {"collection": "BENCH/S2", "bands": list(BANDS)},
                "temporal": {"mode": "range"}, "output": ["pooled"],
                "defaults": {"scale_m": 10, "image_size": None}, "model_config": {}}

    @classmethod
    def burn(cls, n: int) -> None:
        """``cost_ms`` of this thread's CPU time per patch (a fixed amount of work, like a model)."""
        end = time.thread_time() + cls.cost_ms * n / 1000.0
        a = np.ones((96, 96), np.float32)
        while time.thread_time() < end:
            a = np.tanh(a @ a * 1e-3)

    def _vec(self, x: np.ndarray) -> np.ndarray:
        s = np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2)), x.min(axis=(1, 2)), x.max(axis=(1, 2))])
        return (s / 1000.0) @ self._proj

    def embed(self, input_chw, *, sensor, output) -> EmbedResult:
        x = self.check_input(input_chw, sensor)
        self.burn(1)
        return EmbedResult(self._vec(x).astype(np.float32), {})

    def embed_batch(self, inputs, *, sensor, output):
        xs = [self.check_input(x, sensor) for x in inputs]
        self.burn(len(xs))
        return [EmbedResult(self._vec(x).astype(np.float32), {}) for x in xs]


register_model("bench_cost", CostModel)


def spatials(n: int) -> List[PointBuffer]:
    return [PointBuffer(LON0 + STEP * i, 45.0, 1000.0) for i in range(n)]


def run_export(out: str, layout: str, n: int, latency: float, **kw) -> float:
    t0 = time.perf_counter()
    export_batch(spatials=spatials(n), temporal=TEMPORAL, models=["bench_cost"], out=out, layout=layout,
                 backend=LatencyProvider(latency), format="npz", save_inputs=True, save_embeddings=True,
                 chunk_size=16, num_workers=8, show_progress=False, **kw)
    return time.perf_counter() - t0


# ------------------------------------------------------------------ stages alone


def fetch_alone(n: int, latency: float, workers: int) -> float:
    prov = LatencyProvider(latency)
    sensor = CostModel(device="cpu").default_sensor()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda s: prov.fetch(s, TEMPORAL, sensor), spatials(n)):
            pass
    return time.perf_counter() - t0


def infer_alone(patches: List[np.ndarray], batch: bool, chunk: int) -> float:
    from rs_embed.inference import embed_inputs
    from rs_embed.specs import InputPrepSpec, OutputSpec

    emb = CostModel(device="cpu")
    sensor = emb.default_sensor()
    t0 = time.perf_counter()
    for k in range(0, len(patches), chunk):
        part = patches[k:k + chunk]
        if batch:
            embed_inputs(emb, part, sensor=sensor, output=OutputSpec.pooled(), input_prep=InputPrepSpec.resize(),
                         batch=True)
        else:
            for x in part:
                embed_inputs(emb, [x], sensor=sensor, output=OutputSpec.pooled(), input_prep=InputPrepSpec.resize(),
                             batch=False)
    return time.perf_counter() - t0


def write_alone(patches: List[np.ndarray], layout: str, folder: str, writers: int, chunk: int) -> float:
    """The writer code the export uses, on ready payloads, with the same number of threads."""
    from rs_embed.io.atomic import atomic_write, write_json
    from rs_embed.io.manifest import sha1_array
    from rs_embed.io.npz import array_bytes, compress_piece, npy_header, write_npz, write_npz_pieces, PieceReader, Piece

    emb = [np.zeros(128, np.float32) + i for i in range(len(patches))]
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    if layout == "per_item":
        def one(i):
            arrays = {"input_chw__bench_cost": patches[i], "embedding__bench_cost": emb[i]}
            sha = {k: sha1_array(a) for k, a in arrays.items()}
            path = os.path.join(folder, f"p{i:05d}.npz")
            write_npz(path, arrays)
            write_json(os.path.join(folder, f"p{i:05d}.json"), {"point_index": i, "sha1": sha, "npz_path": path})

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(one, range(len(patches))))
    else:
        refs: Dict[int, tuple] = {}

        def shard(k):
            path = os.path.join(folder, f"s{k:06d}.bin")
            rows = []

            def w(fh):
                off = 0
                for i in range(k, min(k + chunk, len(patches))):
                    for arr in (patches[i], emb[i]):
                        p = compress_piece(array_bytes(arr))
                        fh.write(p.data)
                        rows.append((i, arr.ndim, p.to_ref(off)))
                        off += p.length
                return off

            size = atomic_write(path, w)
            write_json(path[:-4] + ".json", {"bin_size": size, "rows": rows})
            for i, nd, ref in rows:
                refs[(i, nd)] = (path, ref)

        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(shard, range(0, len(patches), chunk)))
        n = len(patches)
        entries = [("inputs_bchw__bench_cost", [compress_piece(npy_header("<f4", (n, len(BANDS), SIZE, SIZE)))]
                    + [Piece.from_ref(*refs[(i, 3)]) for i in range(n)]),
                   ("embeddings__bench_cost", [compress_piece(npy_header("<f4", (n, 128)))]
                    + [Piece.from_ref(*refs[(i, 1)]) for i in range(n)])]
        write_npz_pieces(os.path.join(folder, "run.npz"), entries, PieceReader())
    return time.perf_counter() - t0


def stages(args, root: str) -> dict:
    out = {}
    n = args.n
    patches = [make_patch(i) for i in range(n)]
    for layout in ("per_item", "combined"):
        f = fetch_alone(n, args.latency, 8)
        i = infer_alone(patches, batch=(layout == "combined"), chunk=16)
        w = write_alone(patches, layout, os.path.join(root, f"write_{layout}"), 2, 16)
        shutil.rmtree(os.path.join(root, f"write_{layout}"), ignore_errors=True)
        shard_times: List[float] = []
        if layout == "combined":
            from rs_embed.export import combined

            real = combined.CombinedExport._write_shard

            def timed(self, seq, recs, arrays):
                t = time.perf_counter()
                real(self, seq, recs, arrays)
                shard_times.append(time.perf_counter() - t)

            combined.CombinedExport._write_shard = timed
        try:
            wall = run_export(os.path.join(root, f"export_{layout}", "run"), layout, n, args.latency)
        finally:
            if layout == "combined":
                combined.CombinedExport._write_shard = real
        shutil.rmtree(os.path.join(root, f"export_{layout}"), ignore_errors=True)
        largest = max(f, i, w)
        out[layout] = {"n": n, "fetch_s": f, "fetch_ideal_s": n * args.latency / 8, "infer_s": i, "write_s": w,
                       "wall_s": wall, "points_per_s": n / wall, "efficiency": largest / wall,
                       "bottleneck": ["fetch", "infer", "write"][[f, i, w].index(largest)]}
        if shard_times:
            q = max(1, len(shard_times) // 4)
            out[layout]["checkpoint_ms_first_quarter"] = 1000 * float(np.mean(shard_times[:q]))
            out[layout]["checkpoint_ms_last_quarter"] = 1000 * float(np.mean(shard_times[-q:]))
            out[layout]["checkpoints"] = len(shard_times)
        print(f"{layout:9s} N={n}: fetch {f:6.2f}s (ideal {n * args.latency / 8:.2f})  infer {i:6.2f}s  "
              f"write {w:6.2f}s  | export {wall:6.2f}s = {n / wall:6.1f} points/s  "
              f"efficiency {largest / wall:.2f} (bottleneck {out[layout]['bottleneck']})", flush=True)
        if shard_times:
            print(f"          checkpoint per chunk of 16: first quarter {out[layout]['checkpoint_ms_first_quarter']:.0f} ms,"
                  f" last quarter {out[layout]['checkpoint_ms_last_quarter']:.0f} ms ({len(shard_times)} checkpoints)",
                  flush=True)
    return out


# ------------------------------------------------------------------------ memory


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would include the parent's peak
    from before ``exec`` on Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def rss_child(n: int, layout: str, latency: float, root: str) -> None:
    wall = run_export(os.path.join(root, "run"), layout, n, latency)
    print(json.dumps({"n": n, "layout": layout, "peak_rss_mb": peak_rss_mb(), "wall_s": wall}))


def memory(args, root: str) -> dict:
    res = {}
    for layout in ("per_item", "combined"):
        for n in (512, args.big):
            folder = tempfile.mkdtemp(dir=root)
            env = dict(os.environ)
            proc = subprocess.run([sys.executable, __file__, "--rss-child", str(n), layout, str(args.rss_latency), folder,
                                   "--cost-ms", str(args.cost_ms)], capture_output=True, text=True, env=env)
            shutil.rmtree(folder, ignore_errors=True)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            res[f"{layout}_{n}"] = r
            print(f"{layout:9s} N={n:5d}: peak RSS {r['peak_rss_mb']:7.1f} MB  (export {r['wall_s']:.1f}s)", flush=True)
        small, big = res[f"{layout}_512"]["peak_rss_mb"], res[f"{layout}_{args.big}"]["peak_rss_mb"]
        inputs_mb = args.big * len(BANDS) * SIZE * SIZE * 4 / 2**20
        print(f"          N={args.big} vs 512: {100 * (big / small - 1):+.1f} %   (all inputs of N={args.big}: "
              f"{inputs_mb:.0f} MB)", flush=True)
        res[f"{layout}_growth"] = big / small - 1
    return res


# ------------------------------------------------------------------------ resume


def resume(args, root: str) -> dict:
    """A resume verifies every file against the checksum its manifest recorded: by the
    stat signature when the file is untouched (the fast path), by hashing it in full when
    the signature changed (here: the export copied to another folder, new inodes)."""
    res = {}
    for layout in ("per_item", "combined"):
        out = os.path.join(root, f"resume_{layout}", "run")
        t_export = run_export(out, layout, args.resume_n, args.latency)
        t_resume = run_export(out, layout, args.resume_n, args.latency, resume=True)
        copy = os.path.join(root, f"copy_{layout}")
        if layout == "per_item":
            shutil.copytree(out, os.path.join(copy, "run"))
        else:
            os.makedirs(copy)
            for ext in (".npz", ".json"):
                shutil.copy(out + ext, os.path.join(copy, "run" + ext))
        t_copied = run_export(os.path.join(copy, "run"), layout, args.resume_n, args.latency, resume=True)
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)
        shutil.rmtree(copy, ignore_errors=True)
        res[layout] = {"n": args.resume_n, "export_s": t_export, "resume_s": t_resume,
                       "ratio": t_resume / t_export, "resume_copied_s": t_copied,
                       "ratio_copied": t_copied / t_export}
        print(f"{layout:9s} N={args.resume_n}: export {t_export:6.1f}s, resume of the finished export "
              f"{t_resume:6.3f}s = {100 * t_resume / t_export:.2f} % of it (checksums by stat signature); "
              f"of a copy {t_copied:6.3f}s = {100 * t_copied / t_export:.2f} % (every file re-hashed)",
              flush=True)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="points of the stage/efficiency runs (default 512)")
    ap.add_argument("--big", type=int, default=4096, help="points of the large memory run (default 4096)")
    ap.add_argument("--resume-n", type=int, default=2000, help="points of the resume run (default 2000)")
    ap.add_argument("--latency", type=float, default=0.15, help="seconds per fetch (default 0.15)")
    ap.add_argument("--rss-latency", type=float, default=0.01,
                    help="seconds per fetch in the memory runs (memory does not depend on it; default 0.01)")
    ap.add_argument("--cost-ms", type=float, default=10.0, help="model CPU time per patch in ms (default 10)")
    ap.add_argument("--only", choices=("stages", "memory", "resume"), action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--quick", action="store_true", help="N=128, big=1024, resume-n=400")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--workdir", help="where to write the exports (default: a temporary folder)")
    ap.add_argument("--rss-child", nargs=4, metavar=("N", "LAYOUT", "LATENCY", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    CostModel.cost_ms = args.cost_ms
    if args.rss_child:
        n, layout, lat, folder = args.rss_child
        rss_child(int(n), layout, float(lat), folder)
        return
    if args.quick:
        args.n, args.big, args.resume_n = 128, 1024, 400
    parts = args.only or ["stages", "memory", "resume"]
    print(f"export_pipeline: latency {args.latency * 1000:.0f} ms/fetch, model {args.cost_ms:.0f} ms/patch, "
          f"4x{SIZE}x{SIZE} float32 patches, 8 workers, chunk 16, npz, inputs+embeddings saved; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    root = tempfile.mkdtemp(prefix="rs_embed_bench_", dir=args.workdir)
    results = {"latency_s": args.latency, "cost_ms": args.cost_ms}
    try:
        if "stages" in parts:
            results["stages"] = stages(args, root)
        if "memory" in parts:
            results["memory"] = memory(args, root)
        if "resume" in parts:
            results["resume"] = resume(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
