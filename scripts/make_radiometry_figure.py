"""Draw the "before / after" figure of the Radiometry and geometry docs page.

The embedded scene is written as a post-2022 product would be stored: every valid
digital number + 1000 (ESA's processing-baseline 04.00 offset). Read with nothing
declared it is used as stored ("before": about +0.1 reflectance everywhere, NDVI
pulled towards 0); read with its baseline declared it is harmonised back to the
original ("after"). The figure shows true colour, the red-band reflectance histogram
and NDVI for the original, before and after.

    python scripts/make_radiometry_figure.py [--out docs/pages/img/radiometry_offset.png]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "docs", "pages", "img",
                                                      "radiometry_offset.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rs_embed import PointBuffer, SensorSpec, TemporalSpec, sample
    from rs_embed.providers.local import LocalProvider

    lon0, lat0, lon1, lat1 = sample.BOUNDS
    roi = PointBuffer((lon0 + lon1) / 2, (lat0 + lat1) / 2, 3000)
    bands = ("B4", "B3", "B2", "B8")
    with tempfile.TemporaryDirectory() as tmp:
        files = sample.write_copy(tmp, offset_dn=1000)
        doc = {"type": "rs_embed.scene", "id": "copy_2023", "datetime": "2023-06-15", "nodata": 0,
               "bands": {b: files[b] for b in bands}}
        plain = os.path.join(tmp, "plain.json")
        with open(plain, "w") as f:
            json.dump(doc, f)
        declared = os.path.join(tmp, "declared.json")
        with open(declared, "w") as f:
            json.dump(dict(doc, processing_baseline="04.00"), f)
        late = TemporalSpec.range("2023-06-01", "2023-07-01")
        sensor = SensorSpec(sample.COLLECTION, bands)
        original = LocalProvider().fetch(roi, sample.TEMPORAL, sensor).data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unknown-baseline warning is the point here
            before = LocalProvider(plain).fetch(roi, late, sensor).data
        after = LocalProvider(declared).fetch(roi, late, sensor).data

    def refl(x):
        return x.astype(np.float64) / 10000.0

    def rgb(x):
        return np.clip(refl(x[:3]).transpose(1, 2, 0) / 0.25, 0, 1)

    def ndvi(x):
        r = refl(x)
        return (r[3] - r[0]) / (r[3] + r[0])

    panels = [("original\n(pre-2022 values)", original),
              ("post-2022 copy, baseline unknown:\nused as stored (before)", before),
              ("post-2022 copy, baseline 04.00 declared:\nharmonised (after)", after)]
    fig, axes = plt.subplots(3, 3, figsize=(11, 10.5), dpi=80)
    for col, (title, x) in enumerate(panels):
        axes[0, col].imshow(rgb(x))
        axes[0, col].set_title(title, fontsize=9)
        axes[0, col].set_axis_off()
        im = axes[1, col].imshow(ndvi(x), vmin=-0.6, vmax=0.8, cmap="RdYlGn")
        axes[1, col].set_title(f"NDVI (mean {np.nanmean(ndvi(x)):.3f})", fontsize=9)
        axes[1, col].set_axis_off()
        axes[2, col].hist(refl(x[0]).ravel(), bins=120, range=(0, 0.35), color="tab:red")
        axes[2, col].set_title(f"B4 reflectance (median {np.median(refl(x[0])):.3f})", fontsize=9)
        axes[2, col].set_xlabel("reflectance")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="NDVI")
    fig.suptitle("Sentinel-2 processing baseline 04.00: +1000 DN, removed when the baseline is known\n"
                 "(6 km of the embedded scene; the same stretch in every panel)", fontsize=11)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, bbox_inches="tight")
    plt.close(fig)
    diff = float(np.abs(after - original).max())
    print(f"wrote {args.out}; max |after - original| = {diff} DN")


if __name__ == "__main__":
    main()
