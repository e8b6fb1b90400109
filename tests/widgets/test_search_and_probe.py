"""SimilarityExplorer, ProbePanel, CompareView and point views, driven in process through
the same map events a browser sends."""

import numpy as np
import pytest

from rs_embed import OutputSpec, analysis, export_batch, load_export, sample
from rs_embed.widgets import CompareView, ProbePanel, RoiPicker, SimilarityExplorer, points_view
from rs_embed.widgets.points import LONBOARD_THRESHOLD

PTS = sample.points()


def click(m, lon, lat):
    m._handle_leaflet_event(None, {"event": "interaction", "type": "click", "coordinates": [lat, lon]}, None)


def centre(name):
    p = next(p for p in PTS if p.name == name)
    return p.spatial.center


@pytest.fixture
def picker():
    p = RoiPicker()
    p.add_many([(q.name, q.spatial) for q in PTS])
    return p


def test_a_click_sets_the_query_and_the_map_shows_the_ranked_hits(sample_export, picker):
    ex = SimilarityExplorer(sample_export, picker, model="rcf", k=5)
    assert picker.mode == "off"  # while the explorer picks, clicks do not add ROIs
    click(picker.map, *centre("field_1"))
    assert len(picker.rois) == 33 and ex.query == "field_1"
    expected = analysis.similarity_search(sample_export, "field_1", 5, model="rcf")
    assert ex.hits.names == expected.names
    assert ex.table.value.count("<tr class='rs-hit'>") == 5
    assert ex.table.value.index(expected.names[0]) < ex.table.value.index(expected.names[4])
    drawn = {f["properties"]["name"]: f["properties"]["style"] for f in ex._layer.data["features"]}
    assert set(drawn) == set(expected.names) | {"field_1"}
    assert len({drawn[n]["color"] for n in expected.names}) > 1  # a colour scale, not one colour
    assert "cosine similarity" in picker.layers.legend("Similarity")
    ex.k_w.value = 3
    assert len(ex.hits) == 3
    ex.mode = "off"
    assert picker.mode == "point"
    click(picker.map, -75.65, 37.64)
    assert len(picker.rois) == 34  # clicks add ROIs again


def test_positives_and_negatives_build_the_query(sample_export, picker):
    ex = SimilarityExplorer(sample_export, picker, model="spectral", k=4)
    ex.mode = "positive"
    for name in ("forest_1", "forest_2"):
        click(picker.map, *centre(name))
    ex.mode = "negative"
    click(picker.map, *centre("field_1"))
    assert ex.positives == ["forest_1", "forest_2"] and ex.negatives == ["field_1"]
    expected = analysis.similarity_search(sample_export, model="spectral", k=4,
                                          positives=["forest_1", "forest_2"], negatives=["field_1"])
    assert ex.hits.names == expected.names
    ex.mode = "positive"
    click(picker.map, *centre("field_1"))  # a negative clicked as positive moves over
    assert ex.negatives == [] and "field_1" in ex.positives
    click(picker.map, 10.0, 50.0)
    assert "no exported place here" in ex.status.value
    ex.clear()
    assert ex.hits is None and ex._layer.data["features"] == []


def test_label_by_clicking_then_probe(sample_export, picker):
    panel = ProbePanel(sample_export, picker)
    panel.labels_from_names()
    assert panel.labels["field_3"] == "field"
    panel.labels = dict(zip(sample.names(), sample.labels()))
    panel.label_w.value = "water"
    panel.labelling = True
    assert picker.mode == "off"
    click(picker.map, *centre("marsh_1"))  # relabel one marsh as water
    assert panel.labels["marsh_1"] == "water"
    click(picker.map, *centre("marsh_1"))  # the same label again removes it
    assert "marsh_1" not in panel.labels
    assert "32 of 33 places labelled" in panel.counts.value
    panel.labelling = False
    table = panel.run()
    assert {r.model for r in table} == {"rcf", "spectral"} and all(r.method == "knn" for r in table)
    assert all(r.accuracy > 0.7 for r in table)
    assert "rs-probe-table" in panel.results.value and "rs-probe-confusion" in panel.results.value
    assert len(panel._layer.data["features"]) == 32
    assert "forest" in picker.layers.legend("Labels")


def test_probe_panel_with_too_few_labels_says_so(sample_export):
    panel = ProbePanel(sample_export, labels={"field_1": "a", "field_2": "a"})
    panel.run_w.click()
    assert "two or more classes" in panel.message.value


def test_probe_panel_reads_labels_from_a_file(sample_export, tmp_path):
    (tmp_path / "lab.csv").write_text("name,cover\n" + "\n".join(f"{n},{l}" for n, l in
                                                                  zip(sample.names(), sample.labels())))
    panel = ProbePanel(sample_export)
    panel.file_w.value, panel.column_w.value = str(tmp_path / "lab.csv"), "cover"
    panel.load_w.click()
    assert len(panel.labels) == 33 and panel.labels["onley_center"] == "built-up"


def test_compare_view_splits_inputs_and_embeddings(tmp_path):
    pts = PTS[::8]
    runs = []
    for start, end in (("2015-06-23", "2016-06-11"), ("2015-07-01", "2016-06-11")):
        out = tmp_path / f"grid_{start}"
        export_batch(spatials=[p.spatial for p in pts], names=[p.name for p in pts],
                     temporal=sample.TEMPORAL.__class__.range(start, end), models=["rcf"],
                     output=OutputSpec.grid(), out=str(out), layout="per_item", backend="local",
                     show_progress=False)
        runs.append(load_export(out))
    view = CompareView(runs, "rcf")
    assert len(view.left.layers) == len(pts) and len(view.right.layers) == len(pts)
    assert view.split.left_layer is view.left and view.split.right_layer is view.right
    assert view.window.layout.display is None and len(view.window.options) == 2
    view.window.value = 1
    assert len(view.right.layers) == len(pts)


def test_pooled_compare_view_colours_each_roi(sample_export):
    view = CompareView(sample_export, "spectral")
    (layer,) = view.right.layers
    assert len(layer.data["features"]) == 33 and "variance" in view.legend.value


def test_many_points_switch_to_lonboard():
    import ipyleaflet
    import lonboard

    rng = np.random.default_rng(0)
    n = LONBOARD_THRESHOLD + 1000
    lons, lats = rng.uniform(-76, -75, n), rng.uniform(37, 38, n)
    big = points_view(lons, lats, values=rng.normal(size=n))
    assert isinstance(big, lonboard.Map)
    (layer,) = big.layers
    assert isinstance(layer, lonboard.ScatterplotLayer) and len(layer.table) == n
    small = points_view(lons[:100], lats[:100], labels=["a", "b"] * 50)
    assert isinstance(small, ipyleaflet.GeoJSON) and len(small.data["features"]) == 100
    colors = {f["properties"]["style"]["fillColor"] for f in small.data["features"]}
    assert len(colors) == 2
