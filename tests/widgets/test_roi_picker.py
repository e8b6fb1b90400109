"""RoiPicker: map events (simulated through ipyleaflet's own handlers) edit the ROIs."""

import ipyleaflet as L
import pytest
from pyproj import Transformer

from rs_embed import BBox, PointBuffer
from rs_embed.widgets import RoiPicker
from rs_embed.widgets.footprints import utm_crs


def click(picker, lat, lon, kind="click"):
    picker.map._handle_leaflet_event(None, {"event": "interaction", "type": kind,
                                            "coordinates": [lat, lon]}, None)


def draw_rectangle(picker, minlon, minlat, maxlon, maxlat):
    ring = [[minlon, minlat], [minlon, maxlat], [maxlon, maxlat], [maxlon, minlat], [minlon, minlat]]
    picker._draw._handle_leaflet_event(None, {"event": "draw:created", "geo_json": {
        "type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}}, None)


def roi_polygons(picker):
    return [l for l in picker.map.layers if isinstance(l, L.Polygon) and l.name.startswith("ROI ")]


@pytest.fixture
def picker():
    return RoiPicker(show_sample=False)


def test_clicks_add_true_size_squares_with_names(picker):
    changes = []
    picker.observe(lambda ch: changes.append(ch["new"]), names="rois")
    click(picker, 31.2, 121.5)
    click(picker, 31.3, 121.5, kind="mousemove")  # only clicks count
    picker._buffer.value = 2500
    click(picker, 31.25, 121.6)
    assert picker.names == ["roi_01", "roi_02"]
    assert picker.spatials == [PointBuffer(121.5, 31.2, 1000), PointBuffer(121.6, 31.25, 2500)]
    assert len(changes) == 2
    assert len(picker._table.children) == 2
    # the outline drawn on the map is the ROI's square on the ground
    poly = roi_polygons(picker)[1]
    to_utm = Transformer.from_crs("EPSG:4326", utm_crs(121.6, 31.25), always_xy=True)
    xs, ys = to_utm.transform([p[1] for p in poly.locations], [p[0] for p in poly.locations])
    assert max(xs) - min(xs) == pytest.approx(5000, abs=0.01)
    assert max(ys) - min(ys) == pytest.approx(5000, abs=0.01)


def test_click_modes_and_rectangles(picker):
    picker.mode = "off"
    click(picker, 10, 10)
    assert picker.names == []
    assert picker._draw not in picker.map.controls
    picker._mode.value = "box"  # the toggle buttons drive the mode
    assert picker._draw in picker.map.controls
    click(picker, 10, 10)
    draw_rectangle(picker, 121.0, 31.0, 121.1, 31.05)
    assert picker.rois[0].spatial == BBox(121.0, 31.0, 121.1, 31.05)
    assert picker.names == ["roi_01"]


def test_dragging_a_marker_moves_the_roi(picker):
    picker.add_point(121.5, 31.2, name="harbour")
    picker.add_bbox(121.0, 31.0, 121.1, 31.1, name="box")
    _, shape, marker = picker._roi_layers["harbour"]
    marker.location = [31.0, 121.0]  # what the browser sends at the end of a drag
    assert picker.spatials[0] == PointBuffer(121.0, 31.0, 1000)
    lats = [p[0] for p in shape.locations]
    lons = [p[1] for p in shape.locations]
    assert (min(lats) + max(lats)) / 2 == pytest.approx(31.0, abs=1e-4)  # the outline followed
    assert (min(lons) + max(lons)) / 2 == pytest.approx(121.0, abs=1e-4)
    _, _, box_marker = picker._roi_layers["box"]
    box_marker.location = [32.05, 122.05]
    moved = picker.spatials[1]
    assert (moved.minlon, moved.minlat, moved.maxlon, moved.maxlat) == pytest.approx((122.0, 32.0, 122.1, 32.1))


def test_table_rename_resize_delete(picker):
    click(picker, 31.2, 121.5)
    click(picker, 31.3, 121.6)
    name_box = picker._table.children[0].children[0]
    name_box.value = "harbour"
    assert picker.names == ["harbour", "roi_02"]
    picker._table.children[1].children[0].value = "harbour"  # duplicate: refused, said in the panel
    assert picker.names == ["harbour", "roi_02"]
    assert "already exists" in picker._status.value
    picker._table.children[1].children[0].value = "a/b"
    assert picker.names == ["harbour", "roi_02"]
    picker._table.children[1].children[2].value = 300  # buffer field of the row
    assert picker.spatials[1].buffer_m == 300
    picker._table.children[0].children[-1].click()  # delete button
    assert picker.names == ["roi_02"]
    assert len(roi_polygons(picker)) == 1
    click(picker, 0, 0)
    assert picker.names == ["roi_02", "roi_03"]  # numbers are not reused


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_save_and_load_through_the_widgets(picker, tmp_path, suffix):
    click(picker, 31.2, 121.5)
    picker.mode = "box"
    draw_rectangle(picker, 121.0, 31.0, 121.1, 31.05)
    picker._path.value = str(tmp_path / f"rois{suffix}")
    picker._save.click()
    other = RoiPicker(show_sample=False)
    other._path.value = picker._path.value
    other._load.click()
    assert other.rois == picker.rois
    assert "loaded 2 ROIs" in other._status.value
    other._path.value = str(tmp_path / "missing.csv")
    other._load.click()
    assert "no ROI file" in other._status.value and other.rois == picker.rois
