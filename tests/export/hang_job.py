"""An export whose provider stops answering after a few points, run as its own process.

    python hang_job.py OUT LAYOUT N_POINTS HANG_AFTER

The interrupt test presses Ctrl-C (SIGINT) while the export waits on fetches that never
return; the process must exit promptly. Prints one JSON line when interrupted.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakes  # noqa: E402
from rs_embed import TemporalSpec, export_batch  # noqa: E402


def main() -> None:
    out, layout, n, hang_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    prov = fakes.HangingProvider(hang_after=hang_after)
    try:
        export_batch(spatials=fakes.points(n), temporal=TemporalSpec.range("2022-06-01", "2022-09-01"),
                     models=["fake_stats"], out=out, layout=layout, backend=prov, chunk_size=4,
                     num_workers=4, show_progress=False)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted_at": time.time(), "hung": prov.hung}), flush=True)
        sys.exit(130)
    print(json.dumps({"finished": True}), flush=True)


if __name__ == "__main__":
    main()
