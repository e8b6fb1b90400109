"""Every spec rejects bad input with a SpecError that names the field and the value."""

import math
import pickle

import pytest

from rs_embed import (BBox, FetchSpec, InputPrepSpec, OutputSpec, PointBuffer, SensorSpec,
                      SpecError, TemporalSpec)
from rs_embed.specs import spatial_from_dict


@pytest.mark.parametrize("kwargs, field, value", [
    (dict(lon=181, lat=0, buffer_m=10), "lon", "181"),
    (dict(lon=-180.5, lat=0, buffer_m=10), "lon", "-180.5"),
    (dict(lon=0, lat=90.01, buffer_m=10), "lat", "90.01"),
    (dict(lon=0, lat=-91, buffer_m=10), "lat", "-91"),
    (dict(lon=math.nan, lat=0, buffer_m=10), "lon", "nan"),
    (dict(lon=0, lat=math.nan, buffer_m=10), "lat", "nan"),
    (dict(lon=0, lat=0, buffer_m=0), "buffer_m", "0"),
    (dict(lon=0, lat=0, buffer_m=-5), "buffer_m", "-5"),
    (dict(lon=0, lat=0, buffer_m=math.inf), "buffer_m", "inf"),
    (dict(lon="east", lat=0, buffer_m=10), "lon", "east"),
    (dict(lon=0, lat=0, buffer_m=10, crs="EPSG:3857"), "crs", "EPSG:3857"),
])
def test_point_buffer_rejects(kwargs, field, value):
    with pytest.raises(SpecError) as e:
        PointBuffer(**kwargs)
    msg = str(e.value)
    assert f"PointBuffer.{field}" in msg and value in msg


@pytest.mark.parametrize("args, field", [
    ((10, 0, 5, 1), "minlon"),          # min >= max
    ((0, 1, 1, 1), "minlat"),
    ((-200, 0, 1, 1), "minlon"),
    ((0, 0, 1, 95), "maxlat"),
    ((0, math.nan, 1, 1), "minlat"),
])
def test_bbox_rejects(args, field):
    with pytest.raises(SpecError, match=f"BBox.{field}"):
        BBox(*args)


def test_bbox_rejects_other_crs():
    with pytest.raises(SpecError, match=r"BBox.crs.*EPSG:32618"):
        BBox(0, 0, 1, 1, crs="EPSG:32618")


def test_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        PointBuffer(0, 0, -1)


def test_temporal_year_and_range_are_half_open():
    y = TemporalSpec.year(2022)
    assert (y.mode, y.year, y.start, y.end) == ("year", 2022, "2022-01-01", "2023-01-01")
    r = TemporalSpec.range("2022-06-01", "2022-09-01")
    assert (r.mode, r.year, r.start, r.end) == ("range", None, "2022-06-01", "2022-09-01")
    assert TemporalSpec.range("2022-06-01", "2022-06-02").end_date.day == 2  # one-day window
    assert TemporalSpec("year", year=2022) == y and hash(TemporalSpec.year(2022)) == hash(y)
    assert TemporalSpec.from_dict(r.to_dict()) == r
    assert repr(r) == "TemporalSpec.range('2022-06-01', '2022-09-01')"  # no memory address
    assert pickle.loads(pickle.dumps(r)) == r


@pytest.mark.parametrize("make, field, value", [
    (lambda: TemporalSpec.range("2022-13-01", "2023-01-01"), "start", "2022-13-01"),
    (lambda: TemporalSpec.range("2022-01-01", "soon"), "end", "soon"),
    (lambda: TemporalSpec.range("2022-06-01", "2022-06-01"), "start", "2022-06-01"),
    (lambda: TemporalSpec.range("2022-06-02", "2022-06-01"), "start", "2022-06-02"),
    (lambda: TemporalSpec("month", year=2022), "mode", "month"),
    (lambda: TemporalSpec.year("2022"), "year", "2022"),
    (lambda: TemporalSpec.year(1492), "year", "1492"),
])
def test_temporal_rejects(make, field, value):
    with pytest.raises(SpecError) as e:
        make()
    assert f"TemporalSpec.{field}" in str(e.value) and value in str(e.value)


def test_temporal_is_immutable():
    t = TemporalSpec.year(2020)
    with pytest.raises(Exception):
        t.start = "2021-01-01"


@pytest.mark.parametrize("kwargs, field, value", [
    (dict(bands=("B4",), composite="mean"), "composite", "mean"),
    (dict(bands=("B4",), scale_m=0), "scale_m", "0"),
    (dict(bands=("B4",), scale_m=-10), "scale_m", "-10"),
    (dict(bands=("B4",), cloudy_pct=120), "cloudy_pct", "120"),
    (dict(bands=()), "bands", "()"),
    (dict(bands=("B4", "B4")), "bands", "B4"),
    (dict(bands=("B4",), fill_value="x"), "fill_value", "x"),
])
def test_sensor_rejects(kwargs, field, value):
    with pytest.raises(SpecError) as e:
        SensorSpec(collection="COPERNICUS/S2_HARMONIZED", **kwargs)
    assert f"SensorSpec.{field}" in str(e.value) and value in str(e.value)


def test_sensor_rejects_empty_collection():
    with pytest.raises(SpecError, match="SensorSpec.collection"):
        SensorSpec(collection="", bands=("B4",))


def test_fetch_overrides_only_what_it_sets():
    s = SensorSpec("COPERNICUS/S2_HARMONIZED", ["B4", "B3"], scale_m=10, cloudy_pct=30)
    assert s.bands == ("B4", "B3")
    f = FetchSpec(scale_m=20, composite="mosaic").apply(s)
    assert (f.scale_m, f.composite, f.cloudy_pct, f.bands) == (20, "mosaic", 30, ("B4", "B3"))
    with pytest.raises(SpecError, match="FetchSpec.composite"):
        FetchSpec(composite="max")
    with pytest.raises(SpecError, match="FetchSpec.scale_m"):
        FetchSpec(scale_m=0)
    with pytest.raises(SpecError, match="FetchSpec.cloudy_pct"):
        FetchSpec(cloudy_pct=-1)


def test_output_specs():
    assert OutputSpec.pooled() == OutputSpec("pooled", "mean")
    assert OutputSpec.pooled("max").pooling == "max"
    assert OutputSpec.grid().mode == "grid"
    with pytest.raises(SpecError, match=r"OutputSpec.mode.*'vector'"):
        OutputSpec("vector")
    with pytest.raises(SpecError, match=r"OutputSpec.pooling.*'median'"):
        OutputSpec.pooled("median")
    with pytest.raises(SpecError, match=r"OutputSpec.grid_orientation.*'south'"):
        OutputSpec.grid(grid_orientation="south")


def test_input_prep_specs():
    assert InputPrepSpec.coerce("tile") == InputPrepSpec.tile()
    assert InputPrepSpec.coerce(None) is None
    assert InputPrepSpec.auto().max_tiles == 4
    with pytest.raises(SpecError, match=r"InputPrepSpec.mode.*'crop'"):
        InputPrepSpec("crop")
    with pytest.raises(SpecError, match=r"InputPrepSpec.tile_size.*0"):
        InputPrepSpec.tile(tile_size=0)
    with pytest.raises(SpecError, match=r"InputPrepSpec.max_tiles.*-1"):
        InputPrepSpec.tile(max_tiles=-1)
    with pytest.raises(SpecError, match="tile_stride"):
        InputPrepSpec.tile(tile_size=224, tile_stride=112)
    with pytest.raises(SpecError, match=r"input_prep.*'squash'"):
        InputPrepSpec.coerce("squash")


def test_spatials_round_trip_through_dicts():
    p = PointBuffer(-75.62, 37.67, 1000)
    b = BBox(-75.7, 37.6, -75.6, 37.7)
    assert spatial_from_dict(p.to_dict()) == p
    assert spatial_from_dict(b.to_dict()) == b
    # the public rs-embed writes them without a type tag
    assert spatial_from_dict({"lon": 1.0, "lat": 2.0, "buffer_m": 5.0, "crs": "EPSG:4326"}) == PointBuffer(1, 2, 5)
