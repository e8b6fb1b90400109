"""ROI files: CSV and GeoJSON round trips, plain point tables, clear errors."""

import json

import pytest

from rs_embed import BBox, PointBuffer, SpecError
from rs_embed.widgets.rois import Roi, load_rois, save_rois

ROIS = [Roi("harbour", PointBuffer(121.50123456789, 31.2, 1250.5)),
        Roi("fields_2", BBox(121.0, 31.0, 121.1, 31.05)),
        Roi("x.3", PointBuffer(-70.6, -33.4, 640.0))]


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_round_trip_is_exact(tmp_path, suffix):
    path = save_rois(tmp_path / f"sub/rois{suffix}", ROIS)
    assert load_rois(path) == ROIS
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def test_geojson_is_plain_geojson(tmp_path):
    obj = json.loads(save_rois(tmp_path / "r.geojson", ROIS).read_text())
    assert obj["type"] == "FeatureCollection"
    assert obj["features"][0]["geometry"] == {"type": "Point", "coordinates": [121.50123456789, 31.2]}
    assert obj["features"][0]["properties"]["buffer_m"] == 1250.5
    assert obj["features"][1]["geometry"]["type"] == "Polygon"


def test_plain_point_table_gets_default_buffer_and_names(tmp_path):
    p = tmp_path / "points.csv"
    p.write_text("Longitude,Latitude\n121.5,31.2\n121.6,31.3\n")
    rois = load_rois(p, default_buffer_m=500)
    assert [r.name for r in rois] == ["roi_01", "roi_02"]
    assert rois[1].spatial == PointBuffer(121.6, 31.3, 500)


def test_geojson_polygon_from_a_gis_becomes_its_bbox(tmp_path):
    p = tmp_path / "field.json"
    p.write_text(json.dumps({"type": "Feature", "properties": {"name": "field"}, "geometry": {
        "type": "Polygon", "coordinates": [[[10, 50], [10.2, 50.1], [10.1, 50.3], [10, 50]]]}}))
    assert load_rois(p) == [Roi("field", BBox(10, 50, 10.2, 50.3))]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(SpecError, match="unique"):
        save_rois(tmp_path / "a.csv", [ROIS[0], ROIS[0]])
    with pytest.raises(SpecError, match="file format"):
        save_rois(tmp_path / "a.txt", ROIS)
    with pytest.raises(SpecError, match="ROI name"):
        Roi("../evil", PointBuffer(0, 0, 10))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lon,lat\na,12,north\n")
    with pytest.raises(SpecError, match=r"bad.csv row 1: lat must be a number, got 'north'"):
        load_rois(bad)
    with pytest.raises(FileNotFoundError):
        load_rois(tmp_path / "missing.csv")
