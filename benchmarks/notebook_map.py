"""How the ROI map copes with many ROIs: time to add 1,000 and to redraw after one edit.

Measures the kernel side (the picker's Python work and the widget messages it builds),
which is what made the old map freeze: one Polygon and one Marker widget per ROI and a
table rebuilt from scratch on every change. Run: ``python benchmarks/notebook_map.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="ROIs to add (default 1000)")
    ap.add_argument("--repeat", type=int, default=5, help="edits timed (default 5)")
    args = ap.parse_args()

    from rs_embed import PointBuffer, sample
    from rs_embed.widgets import RoiPicker

    w, s, e, n = sample.BOUNDS
    rng = np.random.default_rng(0)
    pts = [(f"p{i:05d}", PointBuffer(float(lon), float(lat), 200.0))
           for i, (lon, lat) in enumerate(zip(rng.uniform(w - 0.05, e + 0.05, args.n),
                                              rng.uniform(s - 0.05, n + 0.05, args.n)))]
    picker = RoiPicker(buffer_m=200)

    t0 = time.perf_counter()
    picker.add_many(pts)
    t_add = time.perf_counter() - t0

    t0 = time.perf_counter()
    for lon, lat in zip(rng.uniform(w, e, 50), rng.uniform(s, n, 50)):
        picker.add_point(float(lon), float(lat))
    t_click = (time.perf_counter() - t0) / 50

    edits = []
    for k in range(args.repeat):
        name = picker.names[(k * 97) % len(picker.names)]
        lon, lat = picker.rois[picker.names.index(name)].spatial.center
        t0 = time.perf_counter()
        picker.move(name, lon + 0.001, lat)
        edits.append(time.perf_counter() - t0)
    renames = []
    for k in range(args.repeat):
        t0 = time.perf_counter()
        picker.rename(picker.names[k], f"renamed_{k}")
        renames.append(time.perf_counter() - t0)

    outside = len(picker.outside)
    print(f"ROIs on the map: {len(picker.rois)} ({outside} marked outside the imagery)")
    print(f"add {args.n} ROIs in one call:         {t_add * 1000:8.1f} ms")
    print(f"one click (add one ROI) at {len(picker.rois)} ROIs: {t_click * 1000:8.1f} ms")
    print(f"redraw after moving one ROI:       {statistics.median(edits) * 1000:8.1f} ms (median of {args.repeat})")
    print(f"redraw after renaming one ROI:     {statistics.median(renames) * 1000:8.1f} ms (median of {args.repeat})")
    print(f"GeoJSON layers: {len(picker._chunks)}, drag handles: {len(picker._handles)}, "
          f"table rows built: {len(picker._table.children)}")


if __name__ == "__main__":
    main()
