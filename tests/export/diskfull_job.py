"""An export into a file system that fills up, run as its own process on a small tmpfs.

    python diskfull_job.py FOLDER per_item     # the disk fills while points are written
    python diskfull_job.py FOLDER combined     # the disk fills during the final assembly

Prints one JSON line: the error raised, what is on disk, and how a resume went once
space was freed.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakes  # noqa: E402
from rs_embed import TemporalSpec, export_batch, load_export  # noqa: E402
from rs_embed.export import combined  # noqa: E402

T = TemporalSpec.range("2022-06-01", "2022-09-01")


def run(folder: str, layout: str, prov, **kw):
    return export_batch(spatials=fakes.points(40, buffer_m=200.0), temporal=T, models=["fake_stats"],
                        out=os.path.join(folder, "x"), layout=layout, backend=prov, show_progress=False,
                        chunk_size=4, **kw)


def main() -> None:
    folder, layout = sys.argv[1], sys.argv[2]
    filler = os.path.join(folder, "filler")
    if layout == "combined":  # shards fit; then the disk is filled just before the assembly
        real = combined.CombinedExport._assemble_npz

        def fill_then_assemble(self):
            st = os.statvfs(folder)
            with open(filler, "wb") as fh:
                try:
                    fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 8192))
                except OSError:
                    pass
            return real(self)

        combined.CombinedExport._assemble_npz = fill_then_assemble
    out = {"layout": layout}
    try:
        run(folder, layout, fakes.FakeProvider())
        out["error"] = None
    except OSError as exc:
        out.update(error=str(exc), type=type(exc).__name__)
    out["files"] = sorted(os.listdir(folder))
    if layout == "combined":
        combined.CombinedExport._assemble_npz = real
        with open(os.path.join(folder, "x.parts", "checkpoint.json")) as fh:
            out["checkpoint"] = json.load(fh)
        os.remove(filler)
        prov = fakes.FakeProvider()
        m = run(folder, layout, prov, resume=True)
        out.update(resumed_status=m["status"], resume_calls=prov.calls,
                   loaded=load_export(os.path.join(folder, "x.npz")).status)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
