"""inspect_provider_patch: look at a raw patch without a model."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import rs_embed
from rs_embed import PointBuffer, ProviderError, SensorSpec, SpecError, get_embedding
from rs_embed import inspect_gee_patch, inspect_provider_patch
from rs_embed.input_checks import patch_report

S2 = "COPERNICUS/S2_HARMONIZED"
ROI = PointBuffer(-75.62, 37.67, 500)


def test_report_on_the_sample_is_json_and_sane(tmp_path):
    sensor = SensorSpec(S2, ("B4", "B3", "B2", "B8"), check_save_dir=str(tmp_path / "qc"))
    rep = inspect_provider_patch(spatial=ROI, temporal=rs_embed.sample.TEMPORAL, sensor=sensor,
                                 backend="local", name="marsh 1")
    json.dumps(rep)  # serialisable as promised
    assert rep["ok"] is True, rep["report"]["issues"]
    assert set(rep["report"]["bands"]) == {"B4", "B3", "B2", "B8"}
    b8 = rep["report"]["bands"]["B8"]
    assert 0 < b8["min"] <= b8["mean"] <= b8["max"] < 20000
    assert rep["report"]["nan_fraction"] == 0
    png = rep["artifacts"]["quicklook"]
    assert os.path.exists(png) and Path(png).read_bytes()[:4] == b"\x89PNG"
    assert rep["backend"] == "local" and rep["patch"]["crs"] == "EPSG:32618"


def test_return_array_and_old_name():
    sensor = SensorSpec(S2, ("B2",))
    rep = inspect_gee_patch(spatial=ROI, temporal=rs_embed.sample.TEMPORAL, sensor=sensor,
                            backend="local", return_array=True)
    assert rep["array_chw"].shape == (1, 100, 100)
    assert rep["array_chw"].dtype == np.float32


def test_value_range_flags_out_of_range():
    sensor = SensorSpec(S2, ("B8",))
    rep = inspect_provider_patch(spatial=ROI, temporal=rs_embed.sample.TEMPORAL, sensor=sensor,
                                 backend="local", value_range=(0, 10))
    assert rep["ok"] is False
    assert rep["report"]["out_of_range_fraction"] > 0.5
    with pytest.raises(SpecError, match="value_range"):
        inspect_provider_patch(spatial=ROI, sensor=sensor, backend="local", value_range=(5, 1))


def test_checks_catch_nan_constant_and_nodata():
    arr = np.ones((2, 10, 10), np.float32)
    arr[1, :6] = 0.0
    arr[1, 6:] = np.nan
    rep = patch_report(arr, ["B1", "B2"], fill_value=0.0)
    assert not rep["ok"]
    assert "B1" in rep["constant_bands"]
    assert rep["nan_fraction"] == pytest.approx(0.2)
    assert any("NaN" in i for i in rep["issues"])


def test_check_input_in_the_embedding_api_raises_on_a_bad_patch():
    # a band far outside Sentinel-2's range cannot happen on the sample, so ask for an
    # ROI half outside the scene: half the pixels are nodata
    minlon, minlat, maxlon, maxlat = rs_embed.sample.BOUNDS
    edge = PointBuffer(maxlon + 0.005, (minlat + maxlat) / 2, 2000)
    sensor = SensorSpec(S2, ("B4", "B8"), check_input=True, fill_value=0.0)
    with pytest.raises(ProviderError, match="input check failed"):
        get_embedding("spectral", spatial=edge, temporal=rs_embed.sample.TEMPORAL,
                      backend="local", sensor=sensor)
