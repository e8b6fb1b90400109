"""Several models reading one collection share one request per patch."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from rs_embed import models as model_registry
from rs_embed.errors import ProviderError
from rs_embed.geometry import roi_grid
from rs_embed.models.base import EmbedResult, Embedder
from rs_embed.providers.gee.replay import SyntheticPixels, npy_reply
from rs_embed.specs import OutputSpec, PointBuffer, SensorSpec, TemporalSpec

S2 = "COPERNICUS/S2_SR_HARMONIZED"
T = TemporalSpec.range("2022-06-01", "2022-09-01")
ROI = PointBuffer(2.3522, 48.8566, 300)  # 60 x 60 px at 10 m
RGB = SensorSpec(S2, ("B4", "B3", "B2"))
NIR = SensorSpec(S2, ("B8", "B4"), fill_value=-1.0)
ALL = SensorSpec(S2, ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"))


def test_three_sensors_of_one_collection_cost_one_request(provider, transport):
    patches = provider.fetch_many(ROI, T, [RGB, NIR, ALL])
    (call,) = transport.compute_pixels_calls()
    union = ["B4", "B3", "B2", "B8", "B5", "B6", "B7", "B8A", "B11", "B12"]
    assert call.body["bandIds"] == union + ["_rs_valid_0", "_rs_valid_1", "_rs_valid_2", "_rs_scenes"]
    answer = SyntheticPixels().array(call.body)
    for sensor, patch in zip([RGB, NIR, ALL], patches):
        assert patch.bands == sensor.bands
        assert patch.data.shape == (len(sensor.bands), 60, 60)
        for i, band in enumerate(sensor.bands):
            np.testing.assert_array_equal(patch.data[i], answer[band])
        assert patch.meta["shared_by"] == 3 and patch.meta["requests"] == 1


def test_each_sensor_gets_its_own_mask_and_fill_value(provider, transport):
    def nir_masked_on_left(body):
        arr = SyntheticPixels().array(body)
        arr["_rs_valid_1"][:, :30] = 0  # the B8/B4 sensor lacks B8 on the left half
        return npy_reply(arr)

    transport.handler = nir_masked_on_left
    rgb, nir = provider.fetch_many(ROI, T, [RGB, NIR])
    assert rgb.meta["nodata_fraction"] == 0.0 and (rgb.data != 0).all()
    assert nir.meta["nodata_fraction"] == pytest.approx(0.5)
    assert (nir.data[:, :, :30] == -1.0).all() and (nir.data[:, :, 30:] != -1.0).all()


def test_sensors_that_read_different_pixels_do_not_share(provider, transport):
    cloudier = SensorSpec(S2, ("B4",), cloudy_pct=80)
    coarser = SensorSpec(S2, ("B4",), scale_m=20)
    s1 = SensorSpec("COPERNICUS/S1_GRD", ("VV",))
    patches = provider.fetch_many(ROI, T, [RGB, cloudier, coarser, s1, NIR])
    calls = transport.compute_pixels_calls()
    assert len(calls) == 4  # RGB+NIR share; the others each need their own pixels
    assert [p.bands for p in patches] == [RGB.bands, ("B4",), ("B4",), ("VV",), NIR.bands]
    assert patches[2].data.shape == (1, 30, 30)


def test_a_failed_request_fails_only_the_sensors_it_served(provider, transport):
    def no_radar(body):
        return npy_reply(SyntheticPixels(scenes=0 if "VV" in body["bandIds"] else 2,
                                         masked="VV" in body["bandIds"]).array(body))

    transport.handler = no_radar
    s1 = SensorSpec("COPERNICUS/S1_GRD", ("VV", "VH"), orbit="ASCENDING")
    rgb, radar, nir = provider.fetch_many(ROI, T, [RGB, s1, NIR], return_exceptions=True)
    assert rgb.data.shape == (3, 60, 60) and nir.data.shape == (2, 60, 60)
    assert isinstance(radar, ProviderError) and radar.transient is False
    assert "no COPERNICUS/S1_GRD_FLOAT scenes on ASCENDING orbits" in str(radar)
    with pytest.raises(ProviderError, match="S1_GRD_FLOAT"):
        provider.fetch_many(ROI, T, [RGB, s1])


# ---------------------------------------------------------------- through export_batch


def _band_mean_model(name, sensor):
    class BandMean(Embedder):
        @classmethod
        def _describe(cls):
            return {"type": "on_the_fly", "backend": ["gee"],
                    "inputs": {"collection": sensor.collection, "bands": list(sensor.bands)},
                    "temporal": {"mode": "range"}, "output": ["pooled"],
                    "defaults": {"scale_m": 10, "cloudy_pct": 30, "composite": "median",
                                 "image_size": None},
                    "modalities": [], "model_config": {}}

        def embed(self, input_chw, *, sensor, output):
            x = self.check_input(input_chw, sensor)
            return EmbedResult(x.reshape(x.shape[0], -1).mean(axis=1).astype(np.float32))

    BandMean.name = name
    BandMean.__name__ = f"BandMean_{name}"
    return BandMean


def test_export_batch_sends_one_request_per_patch_for_three_models(transport, tmp_path, monkeypatch):
    export = importlib.import_module("rs_embed.export")
    export_batch = getattr(export, "export_batch", None)
    if export_batch is None:
        pytest.skip("rs_embed.export.export_batch is not available yet")
    names = ["gee_t_rgb", "gee_t_nir", "gee_t_all"]
    for name, sensor in zip(names, [RGB, NIR, ALL]):
        monkeypatch.setitem(model_registry._registry, name, _band_mean_model(name, sensor))
    spatials = [PointBuffer(2.35 + 0.01 * i, 48.85, 200) for i in range(3)]
    export_batch(spatials=spatials, temporal=T, models=names, out=str(tmp_path / "run"),
                 layout="combined", backend="gee", output=OutputSpec.pooled(),
                 save_inputs=True, show_progress=False, num_workers=3)
    calls = transport.compute_pixels_calls()
    assert len(calls) == len(spatials)
    for c in calls:
        assert c.body["bandIds"][:10] == ["B4", "B3", "B2", "B8", "B5", "B6", "B7", "B8A", "B11", "B12"]
    # each model still received exactly its own bands, from the shared answer
    by_x = {c.body["grid"]["affineTransform"]["translateX"]: SyntheticPixels().array(c.body) for c in calls}
    with np.load(tmp_path / "run.npz") as z:
        for name, sensor in zip(names, [RGB, NIR, ALL]):
            inputs = z[f"inputs_bchw__{name}"]
            assert inputs.shape == (3, len(sensor.bands), 40, 40)
            for i, roi in enumerate(spatials):
                answer = by_x[roi_grid(roi, 10).transform[2]]
                for j, band in enumerate(sensor.bands):
                    np.testing.assert_array_equal(inputs[i, j], answer[band])
