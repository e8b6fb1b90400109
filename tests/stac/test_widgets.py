"""The notebook layer: STAC backends in the export panel, item footprints on the ROI map."""

from __future__ import annotations

import pytest

pytest.importorskip("ipyleaflet")

from rs_embed import sample  # noqa: E402
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec  # noqa: E402


def test_the_export_panel_lists_the_stac_backends():
    from rs_embed.widgets import ExportPanel

    panel = ExportPanel()
    for name in ("earth-search", "planetary-computer", "stac", "alphaearth"):
        assert name in panel.backend_w.options


def test_the_roi_picker_shows_the_items_found_for_the_window(es):
    import ipyleaflet as L

    from rs_embed.widgets import RoiPicker

    picker = RoiPicker(show_sample=False)
    picker.add(PointBuffer(*sample.points()[20].spatial.center, 500))
    picker.add(PointBuffer(*sample.points()[22].spatial.center, 500))
    s = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",), cloudy_pct=30)
    fc = picker.show_footprints(es, TemporalSpec.range("2020-06-01", "2020-08-01"), s)
    assert len(fc["features"]) == 2  # pre and zone19, each once for both ROIs
    layers = [l for l in picker.map.layers if isinstance(l, L.GeoJSON)]
    assert len(layers) == 1 and "2 item(s)" in picker.message
    assert [f["id"] for f in layers[0].data["features"]] == [f["id"] for f in fc["features"]]
    picker.show_footprints(es, TemporalSpec.range("2023-06-01", "2023-08-01"), s)
    assert len([l for l in picker.map.layers if isinstance(l, L.GeoJSON)]) == 1  # replaced
