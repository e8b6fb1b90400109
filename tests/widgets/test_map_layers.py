"""Imagery under the map: the embedded sample and local catalogs, offline, true to place."""

import base64
import io
import shutil

import numpy as np
import pytest
from ipyleaflet import ImageOverlay, Polygon, TileLayer
from PIL import Image

from rs_embed import sample
from rs_embed.widgets import RoiPicker, catalog_layers, sample_layers
from rs_embed.widgets.quicklook import rgb_band_indices, robust_stretch


def decode(url):
    head, data = url.split(",", 1)
    assert head.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_sample_quicklook_and_footprint_lie_on_the_scene():
    layers, bounds = sample_layers()
    overlay, footprint = layers
    assert isinstance(overlay, ImageOverlay) and isinstance(footprint, Polygon)
    assert bounds == pytest.approx(sample.BOUNDS, abs=2e-4)
    (s, w), (n, e) = overlay.bounds
    assert (w, s, e, n) == pytest.approx(sample.BOUNDS, abs=2e-4)
    img = decode(overlay.url)
    assert img.mode == "RGBA" and max(img.size) == 768
    rgba = np.asarray(img)
    assert rgba[..., 3].mean() > 200  # mostly opaque: real pixels, not an empty picture
    assert rgba[..., :3].std() > 20


def test_a_local_catalog_folder_is_drawn_too(tmp_path):
    for band in ("B4", "B3", "B2", "B8"):
        shutil.copy(sample.band_path(band), tmp_path / f"T18SVG_20160101_{band}.tif")
    layers, bounds = catalog_layers(tmp_path)
    assert [type(x) for x in layers] == [ImageOverlay, Polygon]
    assert "T18SVG_20160101" in layers[0].name
    assert bounds == pytest.approx(sample.BOUNDS, abs=2e-4)
    picker = RoiPicker(show_sample=False, catalog=str(tmp_path))
    assert layers[0].name in [layer.name for layer in picker.layers.layers_of("Imagery")]
    lat, lon = picker.map.center
    assert sample.BOUNDS[0] < lon < sample.BOUNDS[2] and sample.BOUNDS[1] < lat < sample.BOUNDS[3]


def test_a_bad_catalog_is_a_message_not_a_crash(tmp_path):
    picker = RoiPicker(show_sample=False, catalog=str(tmp_path))  # an empty folder
    assert "no readable scenes" in picker._status.value


def test_basemaps_offline_by_default_web_on_request():
    picker = RoiPicker(show_sample=False)
    base = picker.map.layers[0]
    assert isinstance(base, TileLayer) and base.url.startswith("data:image/png")
    osm = RoiPicker(show_sample=False, basemap="osm").map.layers[0]
    assert "openstreetmap" in osm.url  # tiles load in the browser if it has a network
    with pytest.raises(ValueError, match="basemap"):
        RoiPicker(show_sample=False, basemap="google")


def test_band_names_and_robust_stretch():
    assert rgb_band_indices(["B2", "B3", "B4", "B8"]) == (2, 1, 0)
    assert rgb_band_indices(["B02", "B03", "B04"]) == (2, 1, 0)
    assert rgb_band_indices(["red", "green", "blue"]) == (0, 1, 2)
    assert rgb_band_indices(["VV", "VH"]) is None
    band = np.linspace(0, 100, 10_000, dtype=np.float32).reshape(1, 100, 100)
    band[0, 0, :5] = 1e6  # a few saturated pixels
    band[0, 1, 0] = np.nan
    out = robust_stretch(band)
    assert out.max() == 1 and out.min() == 0 and np.isfinite(out).all()
    assert 0.45 < out[0, 50, 50] < 0.55  # the outliers did not squash the range
    valid = np.ones((100, 100), bool)
    valid[:50] = False  # e.g. nodata: percentiles come from the valid half only
    assert robust_stretch(band, valid=valid)[0, 50, 0] == 0


def test_missing_notebook_extra_names_the_extra(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "ipyleaflet", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "rs_embed.widgets.roi_picker")
    with pytest.raises(ImportError, match=r"pip install 'rs_embed\[notebook\]'"):
        importlib.import_module("rs_embed.widgets.roi_picker")
