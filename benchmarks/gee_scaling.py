"""Earth Engine fetch throughput versus num_workers, against a replayed service.

The real ``earthengine-api`` client sends every request; a ``ReplayTransport``
answers each ``computePixels`` after a fixed latency (Earth Engine typically takes
0.3-2 s per patch). Patches/s should grow about linearly with ``num_workers`` until
the per-project in-flight limiter (40 by default) caps it at ~40 / latency.

    .venv/bin/python benchmarks/gee_scaling.py [--latency 0.25] [--workers 1 8 32 64]

No network is used and nothing is written.
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.5, help="seconds per computePixels answer")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--limit", type=int, default=40, help="in-flight limit per project")
    ap.add_argument("--buffer-m", type=float, default=1000.0, help="PointBuffer half-side (m)")
    ap.add_argument("--min-patches", type=int, default=16)
    args = ap.parse_args()

    import ee

    ee.deprecation._FetchDataCatalogStac = lambda: {}  # offline: skip the catalogue download
    from rs_embed.providers.gee import GEEProvider, initialize, set_max_concurrent
    from rs_embed.providers.gee.replay import ReplayTransport, SyntheticPixels, npy_reply
    from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

    cache, lock = {}, threading.Lock()
    synth = SyntheticPixels()

    def answer(body):  # same pixels for every patch: measure the client, not the fake server
        key = (body["grid"]["dimensions"]["width"], body["grid"]["dimensions"]["height"],
               tuple(body["bandIds"]))
        with lock:
            if key not in cache:
                cache[key] = npy_reply(synth.array(body))
            return cache[key]

    transport = ReplayTransport(answer, latency_s=args.latency)
    initialize("benchmark-project", credentials=None, http_transport=transport, force=True)
    set_max_concurrent(args.limit)
    provider = GEEProvider()
    sensor = SensorSpec("COPERNICUS/S2_SR_HARMONIZED",
                        ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"))
    temporal = TemporalSpec.range("2022-06-01", "2022-09-01")

    # warm-up: first request builds caches in the client
    provider.fetch(PointBuffer(10.0, 45.0, args.buffer_m), temporal, sensor)

    print(f"latency {args.latency:.3f} s/request, in-flight limit {args.limit}, "
          f"patch {2 * args.buffer_m:.0f} m, {len(sensor.bands)} bands")
    print(f"{'workers':>8} {'patches':>8} {'seconds':>8} {'patches/s':>10} {'ideal':>8} "
          f"{'efficiency':>10} {'peak in flight':>15}")
    base = None
    for workers in args.workers:
        n = max(args.min_patches, 6 * workers)
        rois = [PointBuffer(10.0 + 0.01 * (i % 100), 45.0 + 0.01 * (i // 100), args.buffer_m)
                for i in range(n)]
        transport.reset()
        provider.limiter().reset_peak()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(provider.fetch, r, temporal, sensor) for r in rois]
            for f in tqdm(futures, desc=f"{workers} workers", leave=False):
                f.result()
        dt = time.perf_counter() - t0
        rate = n / dt
        base = base or rate
        ideal = min(workers, args.limit) / args.latency
        print(f"{workers:>8} {n:>8} {dt:>8.2f} {rate:>10.1f} {ideal:>8.1f} "
              f"{rate / ideal:>10.0%} {transport.peak_in_flight:>15}")


if __name__ == "__main__":
    main()
