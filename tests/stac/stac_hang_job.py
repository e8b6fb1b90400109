"""Exports over STAC servers that stop answering, run as their own process.

    python stac_hang_job.py SPEC_JSON

SPEC_JSON names the runs: ``{"runs": [{"api": URL, "out": DIR, "start": DAY, "end": DAY,
"fetch_timeout_s": S or null}], "points": [[lon, lat, buffer_m], ...]}``. Each run is one
``export_batch(layout="per_item", continue_on_error=True)`` with a ``StacProvider`` on
the given API. Prints one JSON line per run (its wall time and each point's status and
error), or ``{"interrupted_at": t}`` when Ctrl-C ends it.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rs_embed import PointBuffer, SensorSpec, TemporalSpec, export_batch  # noqa: E402
from rs_embed.providers.stac import StacProvider  # noqa: E402

SENSOR = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B2", "B3", "B4", "B8"), cloudy_pct=100)


def main() -> None:
    spec = json.loads(sys.argv[1])
    points = [PointBuffer(*p) for p in spec["points"]]
    try:
        for run in spec["runs"]:
            prov = StacProvider(run["api"], preset="earth-search", max_retries=2, retry_base_s=0.01,
                                retry_cap_s=0.05)
            extra = {} if run.get("fetch_timeout_s") is None else {"fetch_timeout_s": run["fetch_timeout_s"]}
            print(json.dumps({"started": time.time()}), flush=True)
            t0 = time.monotonic()
            res = export_batch(spatials=points, temporal=TemporalSpec.range(run["start"], run["end"]),
                               models=["rcf"], sensor=SENSOR, backend=prov, out=run["out"],
                               layout="per_item", continue_on_error=True, show_progress=False,
                               device="cpu", **extra)
            seconds = time.monotonic() - t0
            print(json.dumps({"seconds": seconds, "points": [
                {"status": m["status"], "error": m["models"][0].get("error_info")} for m in res]}),
                flush=True)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted_at": time.time()}), flush=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
