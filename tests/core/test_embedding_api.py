"""The embedding API on the embedded sample, as a user calls it."""

import numpy as np
import pytest

import rs_embed
from rs_embed import (FetchSpec, InputPrepSpec, Model, ModelError, OutputSpec, PointBuffer,
                      SensorSpec, SpecError, describe_model, get_embedding,
                      get_embeddings_batch, list_models)

T = rs_embed.sample.TEMPORAL
ROI = PointBuffer(-75.62, 37.67, 1000)


def test_rcf_on_the_sample_is_finite_deterministic_float32():
    a = get_embedding("rcf", spatial=ROI, temporal=T, backend="local")
    b = get_embedding("rcf", spatial=ROI, temporal=T, backend="local")
    assert a.data.shape == (512,) and a.data.dtype == np.float32
    assert np.isfinite(a.data).all()
    assert a.data.tobytes() == b.data.tobytes()
    for key in ("model", "type", "backend", "source", "sensor", "temporal", "image_size",
                "pooling", "grid_hw", "cls_removed", "input_prep"):
        assert key in a.meta, key
    assert a.meta["model"] == "rcf" and a.meta["backend"] == "local"
    assert a.meta["input"]["crs"] == "EPSG:32618"
    assert a.meta["input"]["shape"][1:] == [200, 200]
    assert a.meta["temporal"] == T.to_dict()


def test_grid_output_is_d_h_w():
    g = get_embedding("rcf", spatial=ROI, temporal=T, backend="local", output=OutputSpec.grid())
    assert g.data.ndim == 3 and g.data.shape[0] == 512
    assert list(g.data.shape[1:]) == g.meta["grid_hw"]
    assert g.meta["pooling"] is None


def test_batch_equals_loop_of_single_calls():
    pts = [p.spatial for p in rs_embed.sample.points()[:6]]
    for model in ("rcf", "spectral"):
        batch = get_embeddings_batch(model, spatials=pts, temporal=T, backend="local")
        singles = [get_embedding(model, spatial=p, temporal=T, backend="local") for p in pts]
        assert len(batch) == len(pts)
        for b, s in zip(batch, singles):
            np.testing.assert_allclose(b.data, s.data, rtol=1e-6, atol=1e-6)


def test_model_object_reuses_one_embedder_and_accepts_options():
    m = Model("rcf", backend="local", dim=64, seed=3)
    e = m.get_embedding(spatial=PointBuffer(-75.62, 37.67, 300), temporal=T)
    assert e.data.shape == (64,)
    assert m.describe()["model_config"]["dim"]["default"] == 512
    assert "Model('rcf'" in repr(m)


def test_fetch_and_sensor_together_are_refused():
    with pytest.raises(ModelError, match="not both"):
        get_embedding("rcf", spatial=ROI, temporal=T, backend="local",
                      sensor=SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4",)), fetch=FetchSpec(scale_m=20))


def test_fetch_adjusts_the_default_sensor():
    e = get_embedding("spectral", spatial=ROI, temporal=T, backend="local", fetch=FetchSpec(scale_m=20))
    assert e.meta["sensor"]["scale_m"] == 20
    assert e.meta["input"]["shape"][1:] == [100, 100]


def test_sensor_replaces_the_bands():
    s = SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4", "B8"), scale_m=10)
    e = get_embedding("spectral", spatial=ROI, temporal=T, backend="local", sensor=s)
    assert e.meta["input"]["bands"] == ["B4", "B8"]
    assert e.meta["sensor"]["bands"] == ["B4", "B8"]


def test_unknown_model_gets_a_suggestion():
    with pytest.raises(ModelError, match=r"unknown model 'rfc'.*did you mean 'rcf'"):
        get_embedding("rfc", spatial=ROI, temporal=T, backend="local")


def test_unknown_model_option_is_named():
    with pytest.raises(ModelError, match=r"unknown option\(s\) \['varient'\]"):
        get_embedding("rcf", spatial=ROI, temporal=T, backend="local", varient="large")


def test_bad_device_and_bad_arguments_are_named():
    with pytest.raises(ModelError, match="device must be"):
        get_embedding("rcf", spatial=ROI, temporal=T, backend="local", device="tpu")
    with pytest.raises(SpecError, match="spatial must be a PointBuffer or BBox"):
        get_embedding("rcf", spatial=(-75.6, 37.6), temporal=T, backend="local")
    with pytest.raises(SpecError, match="temporal must be a TemporalSpec"):
        get_embedding("rcf", spatial=ROI, temporal="2016", backend="local")
    with pytest.raises(SpecError, match="input_prep"):
        get_embedding("rcf", spatial=ROI, temporal=T, backend="local", input_prep="squash")
    with pytest.raises(SpecError, match="spatials must not be empty"):
        get_embeddings_batch("rcf", spatials=[], temporal=T, backend="local")
    with pytest.raises(SpecError, match="backend 'nowhere'"):
        get_embedding("rcf", spatial=ROI, temporal=T, backend="nowhere")


def test_catalog_lists_and_describes_without_weights():
    names = list_models()
    assert {"rcf", "spectral"} <= set(names)
    d = describe_model("rcf")
    for key in ("type", "inputs", "temporal", "output", "defaults", "model_config"):
        assert key in d
    d["defaults"]["scale_m"] = -1  # a copy: the catalog is not changed
    assert describe_model("rcf")["defaults"]["scale_m"] != -1


def test_tiled_input_prep_matches_grid_size():
    e = get_embedding("rcf", spatial=ROI, temporal=T, backend="local", output=OutputSpec.grid(),
                      input_prep=InputPrepSpec.tile(tile_size=128))
    assert e.data.ndim == 3 and e.meta["tiles"] == 4


def test_tiling_pads_a_patch_smaller_than_one_tile_and_honours_max_pooling():
    small = PointBuffer(-75.62, 37.67, 300)   # 60 x 60 px, tile 128: one padded tile
    g = get_embedding("rcf", spatial=small, temporal=T, backend="local", output=OutputSpec.grid(),
                      input_prep=InputPrepSpec.tile(tile_size=128), grid_cell=16)
    assert g.meta["tiles"] == 1
    assert g.data.shape[1:] == (4, 4)        # round(60 * 8 / 128) cells a side, not 8
    mean = get_embedding("rcf", spatial=ROI, temporal=T, backend="local",
                         input_prep=InputPrepSpec.tile(tile_size=128))
    mx = get_embedding("rcf", spatial=ROI, temporal=T, backend="local",
                       output=OutputSpec.pooled("max"), input_prep=InputPrepSpec.tile(tile_size=128))
    assert (mx.data >= mean.data - 1e-6).all() and (mx.data > mean.data + 1e-6).any()


def test_a_patch_mostly_outside_the_imagery_is_flagged_at_the_callers_line():
    edge = PointBuffer(-75.58, 37.70, 1000)   # the scene ends inside this square
    with pytest.warns(UserWarning, match=r"1 of 1 patch\(es\) are mostly nodata") as rec:
        e = get_embedding("spectral", spatial=edge, temporal=T, backend="local")
    assert e.meta["input"]["nodata_fraction"] >= 0.5
    assert rec[0].filename == __file__


def test_patches_inside_the_imagery_raise_no_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_embedding("spectral", spatial=ROI, temporal=T, backend="local")
