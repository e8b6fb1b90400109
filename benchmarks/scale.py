"""How export_batch and load_export scale with the number of points.

Workload (default): a fast fake provider and a cheap model, both registered through the
public extension points (``register_provider``, ``register_model``): 16 x 16 px x 4
bands per point, a fixed projection to D = 512. ``--real``: the local backend with the
sample scene and ``rcf`` instead (use few points, e.g. ``--n 1k``).

For every N, layout (per_item, combined) and format (npz, netcdf, parquet, zarr) it runs,
each in a fresh child process so that the peak RSS (``ru_maxrss`` of the child) belongs to
that step alone:

* export  : points/s, peak RSS, RSS growth (the largest current RSS during the step minus
            the RSS before it, sampled every 20 ms: the peak alone can be the imports'),
            size of the returned object (deep ``sys.getsizeof``)
* resume  : ``resume=True`` on the finished export: seconds (and % of the export), peak RSS
* load    : ``load_export(..., inputs=False)`` then one model's embeddings as an array:
            seconds, peak RSS, and the array's size

with and without inputs (``--inputs yes no``; a GeoParquet export stores no input patches,
so its "yes" rows measure the same file). A format the installed code refuses is
skipped with a message. Prints a markdown table and writes a JSON file under
``benchmarks/results/``.

    python benchmarks/scale.py                                  # 1k, 10k, 100k; every layout/format
    python benchmarks/scale.py --n 10k 100k --layouts combined --formats npz --inputs yes
    python benchmarks/scale.py --n 1m --layouts combined --formats npz
    python benchmarks/scale.py --real --n 1k
    python benchmarks/scale.py --n 10k 1m --spatials arrays     # ROIs as one PointBuffers
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
BANDS = ("B2", "B3", "B4", "B8")
PX, D = 16, 512
FAKE_PROVIDER, FAKE_MODEL = "scale_fake", "scale_cheap"


# ------------------------------------------------------------------ workload


def _register() -> None:
    """The fake provider and cheap model, through the public extension points."""
    import numpy as np

    from rs_embed.geometry import roi_grid
    from rs_embed.models import register_model
    from rs_embed.models.base import EmbedResult, Embedder
    from rs_embed.providers import register_provider
    from rs_embed.providers.base import Patch, Provider

    base = np.random.default_rng(0).uniform(200, 3000, size=(len(BANDS), PX, PX)).astype(np.float32)

    class FastProvider(Provider):
        name = FAKE_PROVIDER

        def fetch(self, spatial, temporal, sensor):
            grid = roi_grid(spatial, sensor.scale_m)
            data = base[:, :grid.height, :grid.width] + np.float32(int(spatial.center[0] * 1e4) % 97)
            return Patch(data=data, bands=tuple(sensor.bands), grid=grid,
                         meta={"scenes": ["SCALE"], "nodata_fraction": 0.0})

    class CheapModel(Embedder):
        name = FAKE_MODEL
        has_batch = True
        _proj = np.random.default_rng(1).normal(size=(len(BANDS) * PX * PX, D)).astype(np.float32) / 1e4

        @classmethod
        def _describe(cls) -> dict:
            return {"type": "on_the_fly", "inputs": {"collection": "SCALE/S2", "bands": list(BANDS)},
                    "temporal": {"mode": "range"}, "output": ["pooled"],
                    "defaults": {"scale_m": 10, "image_size": None}, "model_config": {}}

        def _vec(self, xs):
            size = len(BANDS) * PX * PX
            flat = np.stack([x.reshape(-1) if x.size == size else np.resize(x, size) for x in xs])
            return (flat @ self._proj).astype(np.float32)

        def embed(self, input_chw, *, sensor, output):
            x = self.check_input(input_chw, sensor)
            return EmbedResult(self._vec([x])[0], {"cls_removed": False})

        def embed_batch(self, inputs, *, sensor, output):
            xs = [self.check_input(x, sensor) for x in inputs]
            return [EmbedResult(v, {"cls_removed": False}) for v in self._vec(xs)]

    register_provider(FAKE_PROVIDER, FastProvider)
    register_model(FAKE_MODEL, CheapModel)


def _request(n: int, real: bool) -> dict:
    from rs_embed import PointBuffer, TemporalSpec

    if real:
        import rs_embed.sample as sample

        side = max(1, int(n ** 0.5 + 0.999))
        lon0, lon1, lat0, lat1 = -75.715, -75.59, 37.595, 37.695
        pts = [PointBuffer(lon0 + (lon1 - lon0) * (k % side) / side, lat0 + (lat1 - lat0) * (k // side) / side, 80.0)
               for k in range(n)]
        return dict(spatials=pts, temporal=sample.TEMPORAL, models=["rcf"], backend="local")
    _register()
    # 80 m buffers at 10 m: 16 x 16 px; distinct points on a grid
    if os.environ.get("SCALE_SPATIALS", "list") == "arrays":
        import numpy as np

        from rs_embed import PointBuffers

        k = np.arange(n)
        pts = PointBuffers(10.0 + 0.002 * (k % 1000), 45.0 + 0.002 * (k // 1000), 80.0)
    else:
        pts = [PointBuffer(10.0 + 0.002 * (k % 1000), 45.0 + 0.002 * (k // 1000), 80.0) for k in range(n)]
    return dict(spatials=pts, temporal=TemporalSpec.range("2022-06-01", "2022-09-01"), models=[FAKE_MODEL],
                backend=FAKE_PROVIDER)


def _deep_size(obj, seen=None) -> int:
    """Bytes of ``obj`` and everything it references (each object once)."""
    seen = set() if seen is None else seen
    total, stack = 0, [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        elif hasattr(o, "__dict__") and not isinstance(o, type):
            stack.append(vars(o))
    return total


def _peak_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


class _RssSampler:
    """The largest current RSS seen while a step runs (sampled every 20 ms): ``ru_maxrss``
    alone hides a step whose memory stays under the peak the imports reached."""

    def __init__(self):
        import threading

        self.start_mb = self.max_mb = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _now() -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:  # not Linux: the peak is all there is
            return _peak_mb()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.max_mb = max(self.max_mb, self._now())

    def stop(self) -> float:
        """RSS growth of the step, in MB."""
        self._stop.set()
        self._thread.join()
        self.max_mb = max(self.max_mb, self._now())
        return self.max_mb - self.start_mb


def _out(workdir: str, layout: str, fmt: str) -> str:
    return os.path.join(workdir, f"{layout}_{fmt}")


# -------------------------------------------------------------------- child


def child(step: str, n: int, layout: str, fmt: str, inputs: bool, workdir: str, real: bool) -> dict:
    from rs_embed import export_batch, load_export

    req = _request(n, real)
    out = _out(workdir, layout, fmt)
    kw = dict(req, out=out, layout=layout, format=fmt, save_inputs=inputs, show_progress=False)
    gc.collect()
    base_mb = _peak_mb()
    sampler = _RssSampler()
    t0 = time.perf_counter()
    if step in ("export", "resume"):
        res = export_batch(**kw, resume=(step == "resume"))
        dt = time.perf_counter() - t0
        growth = sampler.stop()
        size = _deep_size(res) if step == "export" else None
        del res
        return {"seconds": dt, "points_per_s": n / dt, "peak_rss_mb": _peak_mb(), "start_rss_mb": base_mb,
                "rss_before_mb": sampler.start_mb, "rss_max_mb": sampler.max_mb, "rss_growth_mb": growth,
                "returned_mb": None if size is None else size / 1e6}
    # load: one model's embeddings, no inputs
    path = out if layout == "per_item" else _combined_path(out, fmt)
    try:
        r = load_export(path, inputs=False)
    except TypeError:  # an older load_export without the keyword
        r = load_export(path)
    arr = r.embedding(req["models"][0])
    arr = __import__("numpy").asarray(arr)  # a lazy array is read here
    dt = time.perf_counter() - t0
    growth = sampler.stop()
    return {"seconds": dt, "peak_rss_mb": _peak_mb(), "start_rss_mb": base_mb, "rss_growth_mb": growth,
            "array_mb": arr.nbytes / 1e6,
            "shape": list(arr.shape)}


def _combined_path(out: str, fmt: str) -> str:
    for ext in (".npz", ".nc", ".parquet", ".zarr"):
        if os.path.exists(out + ext):
            return out + ext
    return out


def _run_child(args: List[str], timeout: float) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _refused(fmt: str, layout: str) -> Optional[str]:
    """Why the installed code refuses this format/layout (None when it accepts it)."""
    from rs_embed import PointBuffer, TemporalSpec, export_batch

    _register()
    tmp = tempfile.mkdtemp(prefix="rs_embed_scale_probe_")
    try:
        export_batch(spatials=[PointBuffer(10.0, 45.0, 80.0)], temporal=TemporalSpec.range("2022-06-01", "2022-09-01"),
                     models=[FAKE_MODEL], backend=FAKE_PROVIDER, out=os.path.join(tmp, "x"), layout=layout,
                     format=fmt, show_progress=False)
    except Exception as exc:  # noqa: BLE001 - any refusal means: skip it
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


# --------------------------------------------------------------------- main


def _parse_n(text: str) -> int:
    t = text.lower().replace("_", "")
    mult = {"k": 1000, "m": 1_000_000}.get(t[-1], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def _fmt(v, spec="{:,.0f}") -> str:
    return "–" if v is None else spec.format(v)


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", nargs="+", default=["1k", "10k", "100k"], help="numbers of points (1k, 10k, 100k, 1m)")
    ap.add_argument("--layouts", nargs="+", default=["per_item", "combined"])
    ap.add_argument("--formats", nargs="+", default=["npz", "netcdf", "parquet", "zarr"])
    ap.add_argument("--inputs", nargs="+", default=["no", "yes"], choices=["no", "yes"])
    ap.add_argument("--steps", nargs="+", default=["export", "resume", "load"], choices=["export", "resume", "load"])
    ap.add_argument("--real", action="store_true", help="local backend and rcf instead of the fakes")
    ap.add_argument("--workdir", default=None, help="where exports go (default: a temporary folder, removed)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per step")
    ap.add_argument("--tag", default="", help="added to the result file's name")
    ap.add_argument("--spatials", default="list", choices=["list", "arrays"],
                    help="the ROIs as a list of PointBuffer (default) or as one PointBuffers (arrays)")
    ap.add_argument("--child", nargs=7, metavar=("STEP", "N", "LAYOUT", "FMT", "INPUTS", "WORKDIR", "REAL"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        step, n, layout, fmt, inputs, workdir, real = args.child
        print(json.dumps(child(step, int(n), layout, fmt, inputs == "yes", workdir, real == "yes")))
        return

    from tqdm.auto import tqdm

    import rs_embed

    os.environ["SCALE_SPATIALS"] = args.spatials  # read by the child processes

    combos = []
    for layout in args.layouts:
        for fmt in args.formats:
            if layout == "per_item" and fmt in ("parquet", "zarr"):
                continue
            why = _refused(fmt, layout)
            if why:
                print(f"# skipping layout={layout} format={fmt}: the installed rs_embed refuses it ({why})")
                continue
            for inp in args.inputs:
                combos.append((layout, fmt, inp))
    rows: List[Dict] = []
    root = args.workdir or tempfile.mkdtemp(prefix="rs_embed_scale_")
    try:
        for n_text in args.n:
            n = _parse_n(n_text)
            for layout, fmt, inp in tqdm(combos, desc=f"N={n:,}"):
                wd = os.path.join(root, f"{n}_{layout}_{fmt}_{inp}")
                shutil.rmtree(wd, ignore_errors=True)
                os.makedirs(wd)
                row = {"n": n, "layout": layout, "format": fmt, "inputs": inp == "yes"}
                for step in args.steps:
                    row[step] = _run_child([step, str(n), layout, fmt, inp, wd, "yes" if args.real else "no"],
                                           args.timeout)
                    if step == "export" and "error" in row[step]:
                        break
                rows.append(row)
                shutil.rmtree(wd, ignore_errors=True)
                print(_row_md(row), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "rs_embed": getattr(rs_embed, "__version__", "?"), "real": args.real, "spatials": args.spatials,
           "workload": "local+rcf" if args.real else f"fake {PX}x{PX}px x {len(BANDS)} bands, D={D}",
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print()
    print(f"# {env['workload']}, {env['cpus']} CPUs, python {env['python']}, rs_embed {env['rs_embed']}")
    print(HEADER)
    for row in rows:
        print(_row_md(row))
    os.makedirs(RESULTS, exist_ok=True)
    name = f"scale-{time.strftime('%Y%m%d-%H%M%S')}{('-' + args.tag) if args.tag else ''}.json"
    with open(os.path.join(RESULTS, name), "w") as fh:
        json.dump({"env": env, "rows": rows}, fh, indent=1)
    print(f"\nwritten {os.path.join(RESULTS, name)}")


HEADER = ("| layout | format | inputs | N | points/s | peak RSS (MB) | RSS growth (MB) | returned (MB) "
          "| resume s (% of export) | resume RSS (MB) | load s | load RSS (MB) | load growth (MB) | array (MB) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _row_md(row: dict) -> str:
    e, r, lo = row.get("export", {}), row.get("resume", {}), row.get("load", {})
    err = e.get("error") or r.get("error") or lo.get("error")
    pct = (100 * r["seconds"] / e["seconds"]) if r.get("seconds") and e.get("seconds") else None
    resume = "–" if r.get("seconds") is None else f"{r['seconds']:.2f} ({pct:.1f} %)"
    line = (f"| {row['layout']} | {row['format']} | {'yes' if row['inputs'] else 'no'} | {row['n']:,} "
            f"| {_fmt(e.get('points_per_s'))} | {_fmt(e.get('peak_rss_mb'))} | {_fmt(e.get('rss_growth_mb'))} "
            f"| {_fmt(e.get('returned_mb'), '{:,.1f}')} "
            f"| {resume} | {_fmt(r.get('peak_rss_mb'))} | {_fmt(lo.get('seconds'), '{:.2f}')} "
            f"| {_fmt(lo.get('peak_rss_mb'))} | {_fmt(lo.get('rss_growth_mb'))} | {_fmt(lo.get('array_mb'), '{:,.1f}')} |")
    return line + (f" error: {err}" if err else "")


if __name__ == "__main__":
    main()
