"""STAC fetch throughput versus num_workers, against local servers with replayed latency.

A real STAC API (``rustac serve``) holds Earth Search shaped items; a static HTTP
server with Range support serves the COGs (written from the embedded real scene, as
the tests do) and waits ``--latency`` seconds before every answer, like a distant
object store (S3 from another region answers a range request in ~30-100 ms). Each
patch is one real fetch (search, windowed reads of every band and the SCL,
harmonisation, masking, median) run by a pool of ``num_workers`` threads, as the export
engine's fetch stage does. Also printed: the share of each file's bytes a patch reads.

    .venv/bin/python benchmarks/stac_scaling.py [--latency 0.05] [--workers 1 8 32]

Needs the 'stac' extra and rustac (``make test`` installs both). No network is used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "stac"))  # the test archive and servers


def run_setting(api_url: str, workers: int, buffer_m: float, patches: int, bands: str) -> dict:
    """One setting, in a fresh process (so GDAL's block cache starts cold)."""
    from rs_embed import sample
    from rs_embed.providers.stac import StacProvider
    from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

    rois = [PointBuffer(p.lon, p.lat, buffer_m) for p in sample.points(min(buffer_m, 500.0))][:patches]
    sensor = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", tuple(bands.split(",")), cloudy_pct=100)
    t = TemporalSpec.range("2020-06-15", "2020-06-16")
    prov = StacProvider(api_url, preset="earth-search", max_concurrent_reads=64)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futs = [pool.submit(prov.fetch, r, t, sensor) for r in rois]
        for f in tqdm(futs, desc=f"num_workers={workers}", leave=False):
            f.result()
    dt = time.perf_counter() - t0
    return {"patches": len(rois), "seconds": dt, "peak_reads": prov.limiter.peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds before every COG answer")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--buffer-m", type=float, default=500.0, help="PointBuffer half-side (m)")
    ap.add_argument("--patches", type=int, default=33, help="patches per setting (distinct ROIs)")
    ap.add_argument("--bands", default="B2,B3,B4,B8", help="bands per patch (plus SCL)")
    ap.add_argument("--one", nargs=2, metavar=("API_URL", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        res = run_setting(args.one[0], int(args.one[1]), args.buffer_m, args.patches, args.bands)
        print(json.dumps(res))
        return

    import scenes
    from servers import CogServer, StacApiServer

    from rs_embed import sample
    from rs_embed.providers.stac import StacProvider
    from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = scenes.write_archive(root / "cogs")
        cog = CogServer(archive.root)
        api = StacApiServer(scenes.write_items(archive, root / "items", "earth-search", cog.url,
                                               scenes=["pre"]))
        try:
            print(f"latency {args.latency * 1000:.0f} ms per COG request, {args.patches} patches of "
                  f"{2 * args.buffer_m:.0f} m, bands {args.bands} + SCL, one cold process per setting")
            for workers in args.workers:
                cog.reset()
                cog.latency_s = args.latency
                cmd = [sys.executable, __file__, "--one", api.url, str(workers), "--buffer-m",
                       str(args.buffer_m), "--patches", str(args.patches), "--bands", args.bands]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                res = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"num_workers={workers:>3}: {res['patches'] / res['seconds']:7.2f} patches/s "
                      f"({res['seconds']:.2f} s; {len(cog.log)} HTTP requests; peak reads in "
                      f"flight {res['peak_reads']})")
            cog.latency_s = 0.0
            # the share of each file's bytes one patch reads (a place the runs above skipped)
            fresh = StacProvider(api.url, preset="earth-search")
            roi = PointBuffer(*sample.points(labels=["cropland"])[5].spatial.center, args.buffer_m)
            cog.reset()
            fresh.fetch(roi, TemporalSpec.range("2020-06-15", "2020-06-16"),
                        SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B2", "B8", "B11"), cloudy_pct=100))
            iid = scenes.item_id("earth-search", scenes.SCENES["pre"])
            for band in ("B2", "B8", "B11", "SCL"):
                name = f"{iid}/{scenes.ESA[band]}.tif"
                size = os.path.getsize(archive.es_file("pre", band))
                print(f"bytes read for one {2 * args.buffer_m:.0f} m patch, {band}: "
                      f"{cog.bytes_served(name) / size:.1%} of {size / 1e6:.2f} MB "
                      f"({len(cog.served(name))} requests)")
        finally:
            api.close()
            cog.close()


if __name__ == "__main__":
    main()
