"""The ``gse`` product: annual time, coverage, pooling of valid unit vectors."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.models import describe_model, get_embedder
from rs_embed.models.gse import BANDS, COLLECTION, GSEEmbedder
from rs_embed.specs import OutputSpec, PointBuffer, SensorSpec, TemporalSpec


@pytest.fixture
def gse():
    return get_embedder("gse", device="cpu")


def unit_pixels(h, w, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, h, w))
    return (x / np.linalg.norm(x, axis=0, keepdims=True)).astype(np.float32)


def test_describe_is_the_precomputed_annual_product():
    d = describe_model("gse")
    assert d["type"] == "precomputed"
    assert d["inputs"] == {"collection": COLLECTION, "bands": [f"A{i:02d}" for i in range(64)]}
    assert d["temporal"]["mode"] == "year" and d["temporal"]["coverage"] == [2017, 2025]
    assert d["defaults"]["scale_m"] == 10 and d["defaults"]["composite"] == "mosaic"
    sensor = GSEEmbedder(device="cpu").default_sensor()
    assert sensor.collection == COLLECTION and sensor.bands == BANDS and sensor.scale_m == 10


def test_year_is_used_a_range_warns_and_uses_its_start_year():
    assert GSEEmbedder.resolve_temporal(TemporalSpec.year(2021)) == TemporalSpec.year(2021)
    with pytest.warns(UserWarning, match="reads the year it starts in, 2019"):
        t = GSEEmbedder.resolve_temporal(TemporalSpec.range("2019-11-01", "2020-03-01"))
    assert t == TemporalSpec.year(2019)


@pytest.mark.parametrize("temporal", [TemporalSpec.year(2016), TemporalSpec.year(2031),
                                      TemporalSpec.range("2014-01-01", "2020-01-01")])
def test_years_outside_the_coverage_are_an_error_naming_it(temporal):
    with pytest.warns(UserWarning) if temporal.mode == "range" else nullcontext():
        with pytest.raises(ModelError, match="covers the years 2017..2025"):
            GSEEmbedder.resolve_temporal(temporal)
    with pytest.raises(ModelError, match=r"TemporalSpec.year\(Y\)"):
        GSEEmbedder.resolve_temporal(None)


def test_pooled_is_the_renormalised_mean_of_valid_pixels(gse):
    sensor = GSEEmbedder(device="cpu").default_sensor()
    x = unit_pixels(20, 20)
    x[:, :5, :] = 0.0  # no data on the top rows (fill value)
    x[:, 10, 10] = np.nan
    res = gse.embed(x, sensor=sensor, output=OutputSpec.pooled())
    valid = np.ones((20, 20), bool)
    valid[:5] = False
    valid[10, 10] = False
    expected = x[:, valid].astype(np.float64).mean(axis=1)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(res.data, expected, rtol=1e-5, atol=1e-6)
    assert res.data.dtype == np.float32 and res.data.shape == (64,)
    assert np.linalg.norm(res.data) == pytest.approx(1.0, abs=1e-6)
    assert res.meta["valid_fraction"] == pytest.approx(valid.mean())


def test_max_pooling_and_grid(gse):
    sensor = GSEEmbedder(device="cpu").default_sensor()
    x = unit_pixels(8, 6, seed=3)
    pooled = gse.embed(x, sensor=sensor, output=OutputSpec.pooled("max")).data
    m = x.reshape(64, -1).max(axis=1)
    np.testing.assert_allclose(pooled, m / np.linalg.norm(m), rtol=1e-5)
    grid = gse.embed(x, sensor=sensor, output=OutputSpec.grid())
    assert grid.data.shape == (64, 8, 6)
    np.testing.assert_array_equal(grid.data, x)


def test_batch_equals_single(gse):
    sensor = GSEEmbedder(device="cpu").default_sensor()
    xs = [unit_pixels(10, 10, seed=s) for s in range(3)]
    batch = gse.embed_batch(xs, sensor=sensor, output=OutputSpec.pooled())
    for x, b in zip(xs, batch):
        np.testing.assert_array_equal(b.data, gse.embed(x, sensor=sensor, output=OutputSpec.pooled()).data)


def test_no_valid_pixel_is_an_error_not_a_vector_of_nan(gse):
    sensor = GSEEmbedder(device="cpu").default_sensor()
    with pytest.raises(ModelError, match="no valid pixel"):
        gse.embed(np.zeros((64, 4, 4), np.float32), sensor=sensor, output=OutputSpec.pooled())
    with pytest.raises(ModelError, match="A00..A63"):
        gse.embed(np.zeros((3, 4, 4), np.float32), sensor=SensorSpec(COLLECTION, ("A00", "A01", "A02")),
                  output=OutputSpec.pooled())


def test_gse_through_earth_engine(provider, transport, gse):
    sensor = GSEEmbedder(device="cpu").default_sensor()
    roi = PointBuffer(-58.3816, -34.6037, 1000)
    # the year a range starts in, even if the caller passes the range itself
    patch = provider.fetch(roi, TemporalSpec.range("2022-06-01", "2022-09-01"), sensor)
    (call,) = transport.compute_pixels_calls()
    assert call.body["bandIds"][:64] == list(BANDS)
    assert call.body["grid"]["crsCode"] == "EPSG:32721"
    assert call.body["grid"]["dimensions"] == {"width": 200, "height": 200}
    assert patch.meta["temporal"] == {"start": "2022-01-01", "end": "2023-01-01"}
    assert patch.meta["cloud_filter"] is None and patch.meta["composite"] == "mosaic"
    grid = gse.embed(patch.data, sensor=sensor, output=OutputSpec.grid())
    assert grid.data.shape == (64, 200, 200)
    pooled = gse.embed(patch.data, sensor=sensor, output=OutputSpec.pooled())
    assert np.linalg.norm(pooled.data) == pytest.approx(1.0, abs=1e-5)


def test_get_embedding_gse_on_gee_end_to_end(transport):
    import rs_embed

    roi = PointBuffer(-58.3816, -34.6037, 500)
    e = rs_embed.get_embedding("gse", spatial=roi, temporal=TemporalSpec.year(2022), backend="gee")
    assert e.data.shape == (64,) and np.linalg.norm(e.data) == pytest.approx(1.0, abs=1e-5)
    assert e.meta["type"] == "precomputed" and e.meta["backend"] == "gee"
    (call,) = transport.compute_pixels_calls()
    assert call.body["grid"]["dimensions"] == {"width": 100, "height": 100}
    g = rs_embed.get_embedding("gse", spatial=roi, temporal=TemporalSpec.year(2022), backend="gee",
                               output=OutputSpec.grid())
    assert g.data.shape == (64, 100, 100)
