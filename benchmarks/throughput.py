"""Throughput of the local provider and the weight-free embedders on CPU.

Prints patches per second for

* ``LocalProvider().fetch`` on the embedded sample points, and
* each embedder's ``embed`` (one patch at a time) and ``embed_batch`` (16 at once),

for 1 km and 5 km buffers (200 x 200 and 1000 x 1000 pixels at 10 m).

    python benchmarks/throughput.py [--models rcf spectral] [--buffers 1000 5000]
                                    [--batch 16] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable, List

import numpy as np


def _rate(fn: Callable[[], object], items: int, min_seconds: float) -> float:
    """Items per second of ``fn`` (each call handles ``items``), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * items / elapsed


def main(argv: List[str] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["rcf", "spectral"])
    ap.add_argument("--buffers", nargs="+", type=float, default=[1000.0, 5000.0],
                    help="PointBuffer.buffer_m values (half the side, metres)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--min-seconds", type=float, default=3.0,
                    help="time each measurement at least this long")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch
    from tqdm.auto import tqdm

    import rs_embed
    from rs_embed.models import get_embedder
    from rs_embed.providers.local import LocalProvider
    from rs_embed.specs import OutputSpec, PointBuffer

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, numpy {np.__version__}")
    provider = LocalProvider()
    points = rs_embed.sample.points()
    temporal = rs_embed.sample.TEMPORAL
    rows = []
    for name in args.models:
        embedder = get_embedder(name, device="cpu")
        sensor = embedder.default_sensor()
        for buffer_m in args.buffers:
            spatials = [PointBuffer(p.spatial.lon, p.spatial.lat, buffer_m) for p in points]
            patches = [provider.fetch(s, temporal, sensor).data
                       for s in tqdm(spatials[:args.batch], desc=f"fetch {name} {buffer_m:g} m", leave=False)]
            while len(patches) < args.batch:
                patches.append(patches[len(patches) % len(spatials)])
            side = patches[0].shape[1]
            it = iter(range(10**9))

            def fetch_one():
                s = spatials[next(it) % len(spatials)]
                provider.fetch(s, temporal, sensor)

            fetch_rate = _rate(fetch_one, 1, args.min_seconds)
            for mode in ("pooled", "grid"):
                out = OutputSpec(mode)
                single = _rate(lambda: embedder.embed(patches[0], sensor=sensor, output=out), 1,
                               args.min_seconds)
                batch = _rate(lambda: embedder.embed_batch(patches, sensor=sensor, output=out),
                              len(patches), args.min_seconds)
                rows.append((name, f"{side}x{side}", len(sensor.bands), mode, fetch_rate, single, batch))

    header = ("model", "patch", "bands", "output", "fetch/s", "embed/s", f"batch{args.batch}/s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, patch, bands, mode, f, s, b in rows:
        print(f"{name} | {patch} | {bands} | {mode} | {f:.1f} | {s:.2f} | {b:.2f}")


if __name__ == "__main__":
    main()
