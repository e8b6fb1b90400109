"""A export run as its own process (the crash and fingerprint tests start it and kill it).

    python crash_job.py OUT LAYOUT N_POINTS LATENCY [--resume]

Prints one JSON line: provider calls and the request fingerprint(s). With the
environment variable ``CRASH_JOB_GATE`` naming a file, every fetch waits while that file
exists, so a test can hold the export (and its lock) for as long as it needs.
``CRASH_JOB_FORMAT`` sets the format (default npz).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakes  # noqa: E402
from rs_embed import TemporalSpec, export_batch  # noqa: E402


def main() -> None:
    out, layout, n, latency = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    gate = os.environ.get("CRASH_JOB_GATE")

    def wait_at_gate(spatial, sensor):
        while gate and os.path.exists(gate):
            time.sleep(0.01)

    prov = fakes.FakeProvider(latency=latency, on_fetch=wait_at_gate)
    res = export_batch(spatials=fakes.points(n), temporal=TemporalSpec.range("2022-06-01", "2022-09-01"),
                       models=["fake_stats", "fake_red"], out=out, layout=layout, backend=prov,
                       chunk_size=16, num_workers=4, resume="--resume" in sys.argv, show_progress=False,
                       format=os.environ.get("CRASH_JOB_FORMAT", "npz"),
                       save_inputs=os.environ.get("CRASH_JOB_FORMAT") != "parquet")
    fps = [m["request_fingerprint"] for m in res] if layout == "per_item" else [res["request_fingerprint"]]
    print(json.dumps({"calls": prov.calls, "fingerprints": fps}))


if __name__ == "__main__":
    main()
