"""``import rs_embed`` stays light: no torch, rasterio, xarray or notebook modules."""

import json
import subprocess
import sys

HEAVY = ["torch", "rasterio", "xarray", "netCDF4", "matplotlib", "ipywidgets", "ipyleaflet",
         "ee", "pyproj", "open_clip", "timm", "torchgeo"]


def _loaded_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_is_light():
    mods = _loaded_after("import rs_embed")
    assert not [m for m in HEAVY if m in mods]


def test_specs_and_model_catalog_are_light():
    mods = _loaded_after("import rs_embed\nrs_embed.PointBuffer(0, 0, 10)\n"
                         "rs_embed.TemporalSpec.year(2020)\nrs_embed.list_models()\n"
                         "rs_embed.describe_model('rcf')")
    assert not [m for m in HEAVY if m in mods and m not in ("pyproj",)]
