"""RoiPicker: map events (simulated through ipyleaflet's own handlers) edit the ROIs;
outlines, handles, table and layer groups follow, and stay cheap with many ROIs."""

import ipyleaflet as L
import pytest
from pyproj import Transformer

import rs_embed
from rs_embed import BBox, PointBuffer, sample
from rs_embed.widgets import RoiPicker
from rs_embed.widgets import roi_picker as rp


def click(picker, lat, lon, kind="click"):
    picker.map._handle_leaflet_event(None, {"event": "interaction", "type": kind,
                                            "coordinates": [lat, lon]}, None)


def draw_rectangle(picker, minlon, minlat, maxlon, maxlat):
    ring = [[minlon, minlat], [minlon, maxlat], [maxlon, maxlat], [maxlon, minlat], [minlon, minlat]]
    picker._draw._handle_leaflet_event(None, {"event": "draw:created", "geo_json": {
        "type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}}, None)


def features(picker):
    return [f for layer in picker._chunks for f in layer.data["features"]]


def feature(picker, name):
    return next(f for f in features(picker) if f["properties"]["name"] == name)


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
    # the outline drawn on the map is the grid the export samples: 5 km on the ground
    ring = feature(picker, "roi_02")["geometry"]["coordinates"][0]
    grid = rs_embed.roi_grid(picker.spatials[1], 10.0)
    to_utm = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    xs, ys = to_utm.transform([p[0] for p in ring], [p[1] for p in ring])
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


def test_dragging_a_handle_moves_the_roi(picker):
    picker.add_point(121.5, 31.2, name="harbour")
    picker.add_bbox(121.0, 31.0, 121.1, 31.1, name="box")
    picker._handles["harbour"].location = [31.0, 121.0]  # what the browser sends after a drag
    assert picker.spatials[0] == PointBuffer(121.0, 31.0, 1000)
    ring = feature(picker, "harbour")["geometry"]["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    assert (min(lats) + max(lats)) / 2 == pytest.approx(31.0, abs=1e-3)  # the outline followed
    assert (min(lons) + max(lons)) / 2 == pytest.approx(121.0, abs=1e-3)
    picker._handles["box"].location = [32.05, 122.05]
    moved = picker.spatials[1]
    assert (moved.minlon, moved.minlat, moved.maxlon, moved.maxlat) == pytest.approx((122.0, 32.0, 122.1, 32.1))


def test_table_rename_resize_delete(picker):
    click(picker, 31.2, 121.5)
    click(picker, 31.3, 121.6)
    name_box = picker._table.children[0].children[0]
    name_box.value = "harbour"
    assert picker.names == ["harbour", "roi_02"]
    box = picker._table.children[1].children[0]
    box.value = "harbour"  # duplicate: refused, said in the panel, and the box shows the real name
    assert picker.names == ["harbour", "roi_02"]
    assert "already exists" in picker._status.value
    assert box.value == "roi_02"
    box.value = "a/b"
    assert picker.names == ["harbour", "roi_02"] and box.value == "roi_02"
    picker._table.children[1].children[2].value = 300  # buffer field of the row
    assert picker.spatials[1].buffer_m == 300
    picker._table.children[0].children[-1].click()  # delete button
    assert picker.names == ["roi_02"]
    assert len(features(picker)) == 1 and list(picker._handles) == ["roi_02"]
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


def test_layer_control_has_one_row_per_group():
    picker = RoiPicker()  # with the sample imagery
    for p in sample.points()[:8]:
        picker.add(p.spatial, p.name)
    groups = [layer for layer in picker.map.layers if isinstance(layer, L.LayerGroup)]
    assert [g.name for g in groups] == ["Imagery", "Scene footprints", "ROIs"]
    # everything else lives inside the groups: the base layer and three rows, not 22
    assert len(picker.map.layers) == 4 and picker.map.layers[0].base
    assert len(picker.layers.layers_of("ROIs")) == 1 + 8  # one GeoJSON layer, eight handles
    assert "square" in picker.layers.legend("ROIs") and "outside the imagery" in picker.layers.legend("ROIs")


def test_opacity_per_group_basemap_switch_and_goto():
    picker = RoiPicker()
    overlay = picker.layers.layers_of("Imagery")[0]
    picker.layers._rows["Imagery"].children[0].value = 0.4  # the group's slider
    assert overlay.opacity == pytest.approx(0.4)
    picker.add_point(-75.65, 37.64, name="a")
    picker.layers.set_opacity("ROIs", 0.5)
    assert picker._chunks[0].style["opacity"] == pytest.approx(0.45)
    picker.layers._basemap.value = "osm"
    assert "openstreetmap" in picker.map.layers[0].url and picker.map.layers[0].base
    picker.layers._basemap.value = "offline"
    assert picker.map.layers[0].url.startswith("data:image/png")
    picker.layers._goto.value = "-75.70, 37.60"
    assert picker.map.center == pytest.approx((37.60, -75.70)) and picker.map.zoom >= 13
    picker.layers._goto.value = "somewhere"
    assert "lon, lat" in picker.layers.message.value


def test_rois_outside_the_imagery_are_marked_before_export():
    picker = RoiPicker()
    picker.add(sample.points()[0].spatial, "inside")
    picker.add_point(-75.575, 37.65, buffer_m=500, name="edge")
    picker.add_point(10.0, 50.0, buffer_m=300, name="far")
    assert picker.coverage["inside"] == 1.0 and 0 < picker.coverage["edge"] < 0.5
    assert picker.coverage["far"] == 0.0
    assert picker.outside == ["edge", "far"]
    assert feature(picker, "far")["properties"]["style"]["dashArray"]
    assert feature(picker, "far")["properties"]["style"]["color"] == rp.STATE_COLORS["outside"]
    assert "2 outside the imagery" in picker._status.value
    rows = {r.children[0].value: r.children[1].value for r in picker._table.children}
    assert "partly outside the imagery" in rows["edge"] and "✓" not in rows["inside"]
    picker.move("far", -75.65, 37.64)  # moved onto the scene: no longer marked
    assert picker.outside == ["edge"]
    picker.check_imagery(None)
    assert picker.outside == []


def test_export_status_colours_and_clears_on_edit(picker):
    picker.add_point(121.5, 31.2, name="a")
    picker.add_point(121.6, 31.2, name="b")
    picker.mark_status({"a": "ok", "b": "failed"})
    assert feature(picker, "b")["properties"]["style"]["color"] == rp.STATE_COLORS["failed"]
    assert feature(picker, "a")["properties"]["style"]["color"] == rp.STATE_COLORS["ok"]
    picker.resize("b", 200)  # an edited ROI is a new request
    assert picker.statuses == {"a": "ok"}
    with pytest.raises(ValueError, match="statuses"):
        picker.mark_status({"a": "great"})


def test_overlays_follow_renames_and_drop_with_their_roi(picker):
    picker.add_point(121.5, 31.2, name="a")
    picker.add_point(121.6, 31.2, name="b")
    la, lb = L.Polygon(locations=[[0, 0], [1, 1], [1, 0]]), L.Polygon(locations=[[0, 0], [1, 1], [0, 1]])
    picker.attach("a", la)
    picker.attach("b", lb)
    picker.rename("a", "alpha")
    assert picker.attached("alpha") == [la] and la in picker.layers.layers_of("Embeddings")
    picker.move("alpha", 121.4, 31.2)  # the picture no longer shows the ROI
    assert la not in picker.layers.layers_of("Embeddings") and picker.attached("alpha") == []
    picker.remove("b")
    assert picker.layers.layers_of("Embeddings") == ()


def test_a_thousand_rois_stay_cheap(picker):
    picker.add_many([(f"p{i:04d}", PointBuffer(121.0 + 0.001 * (i % 100), 31.0 + 0.001 * (i // 100), 30))
                     for i in range(1000)])
    assert len(picker._chunks) == 1000 // rp.CHUNK
    assert picker._handles == {}  # past MAX_HANDLES only the selected ROI has a handle
    assert len(picker._table.children) == rp.PAGE_SIZE
    assert "1–20 of 1000" in picker._page_label.value and picker._pager.layout.display is None
    picker._next.click()
    assert picker._table.children[0].children[0].value == "p0020"
    before = [layer.data for layer in picker._chunks]
    picker.move("p0555", 121.5, 31.5)
    changed = [i for i, layer in enumerate(picker._chunks) if layer.data is not before[i]]
    assert changed == [5]  # one edit resends one GeoJSON layer
    picker.select("p0555")
    assert list(picker._handles) == ["p0555"]


def test_rois_given_at_construction_are_drawn_and_listed():
    box = BBox(-75.66, 37.64, -75.62, 37.68)
    picker = RoiPicker(rois=[("marsh", PointBuffer(-75.62, 37.67, 500)), box], show_sample=False)
    assert picker.names == ["marsh", "roi_01"]
    assert picker.spatials[1] == box
    assert {f["properties"]["name"] for f in features(picker)} == {"marsh", "roi_01"}
