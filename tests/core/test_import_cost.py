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


def test_weight_free_spectral_runs_without_importing_torch():
    from rs_embed.models.base import _gpu_may_exist

    if _gpu_may_exist():
        import pytest

        pytest.skip("a GPU device node exists: device='auto' rightly asks torch")
    mods = _loaded_after(
        "import rs_embed\nfrom rs_embed import PointBuffer, get_embedding\n"
        "e = get_embedding('spectral', spatial=PointBuffer(-75.62, 37.67, 200),\n"
        "                  temporal=rs_embed.sample.TEMPORAL, backend='local')\n"
        "assert e.meta['device'] == 'cpu'")
    assert "torch" not in mods
