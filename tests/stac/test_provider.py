"""The STAC provider against real servers on 127.0.0.1: reads, radiometry, masks, composites."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import scenes
from rs_embed import sample
from rs_embed.errors import ProviderError
from rs_embed.geometry import roi_grid
from rs_embed.providers.local import LocalProvider
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

L2A = "COPERNICUS/S2_SR_HARMONIZED"
FOREST = sample.points(labels=["forest"])[1].spatial
ROI = PointBuffer(FOREST.lon, FOREST.lat, 500)
#: a point inside the cloud block of the "cloudy" scene (rows 200..700, cols 300..900)
CLOUD_XY = (sample.BOUNDS_UTM[0] + 10 * 600, sample.BOUNDS_UTM[3] - 10 * 450)


def window(scene: str, days: int = 1) -> TemporalSpec:
    """A window holding only ``scene``."""
    from datetime import date, timedelta

    d = date.fromisoformat(scenes.SCENES[scene].datetime[:10])
    return TemporalSpec.range(d.isoformat(), (d + timedelta(days=days)).isoformat())


def sensor(bands=scenes.BANDS, **kw) -> SensorSpec:
    kw.setdefault("cloudy_pct", 100)
    return SensorSpec(L2A, tuple(bands), scale_m=kw.pop("scale_m", 10), **kw)


def local_for(archive, tmp_path, scene: str) -> LocalProvider:
    """The local provider over the very files the STAC items point at."""
    spec = scenes.SCENES[scene]
    doc = {"type": "rs_embed.scene", "id": scene, "collection": L2A, "datetime": spec.datetime,
           "nodata": 0, "bands": {b: str(archive.es_file(scene, b)) for b in (*scenes.BANDS, "SCL")}}
    path = tmp_path / f"{scene}.json"
    path.write_text(json.dumps(doc))
    return LocalProvider(str(path))


def roi_at_utm(x: float, y: float, buffer_m: float = 300) -> PointBuffer:
    from rs_embed.geometry import transformer

    lon, lat = transformer(sample.CRS, "EPSG:4326").transform(x, y)
    return PointBuffer(lon, lat, buffer_m)


# -------------------------------------------------------------------------- windowed reads


def test_a_patch_reads_a_small_fraction_of_each_file(es, archive, cog_server):
    # a place no other test reads, so GDAL's process-wide block cache cannot hide requests
    roi = PointBuffer(*sample.points(labels=["cropland"])[2].spatial.center, 500)
    patch = es.fetch(roi, window("pre"), sensor())
    assert patch.data.shape == (len(scenes.BANDS), 100, 100)
    for band in (*scenes.BANDS, "SCL"):
        name = f"{scenes.item_id('earth-search', scenes.SCENES['pre'])}/{scenes.ESA[band]}.tif"
        served = cog_server.served(name)
        size = os.path.getsize(archive.es_file("pre", band))
        frac = cog_server.bytes_served(name) / size
        if size > 256 * 1024:  # a tiny file (the SCL) is read whole by the first request
            assert served and all(s.status in (200, 206) for s in served)
            assert all(s.method == "HEAD" or s.start is not None for s in served), "whole-file GET"
            assert 0 < frac < 0.25, (band, frac)


def test_coarse_scales_read_overviews(es, cog_server):
    name = f"{scenes.item_id('earth-search', scenes.SCENES['pre'])}/B04.tif"
    roi = PointBuffer(ROI.lon, ROI.lat, 2400)
    fine = es.fetch(roi, window("pre"), sensor(("B4",)))
    fine_bytes = cog_server.bytes_served(name)
    cog_server.reset()
    coarse = es.fetch(roi, window("pre"), sensor(("B4",), scale_m=60))
    assert coarse.meta["overview_level"] == {"B4": 1}  # 40 m: the coarsest not coarser than 60 m
    assert fine.meta["overview_level"] == {"B4": None}
    assert cog_server.bytes_served(name) < fine_bytes / 4
    # averaged overview pixels agree with the full-resolution mean of the same ground
    assert abs(float(coarse.data.mean()) - float(fine.data.mean())) < 0.02 * float(fine.data.mean())


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("scene", ["pre", "zone19"])
def test_stac_path_equals_the_local_path_on_the_same_pixels(es, archive, tmp_path, scene):
    roi = PointBuffer(ROI.lon, ROI.lat, 1000)
    s = sensor()
    stac = es.fetch(roi, window(scene), s)
    local = local_for(archive, tmp_path, scene).fetch(roi, window(scene), s)
    assert stac.grid == local.grid == roi_grid(roi, 10)
    assert stac.grid.crs == "EPSG:32618"  # the ROI's zone, whatever the item's
    np.testing.assert_allclose(stac.data, local.data, rtol=0, atol=1e-4)
    assert stac.meta["items"][0]["id"] == scenes.item_id("earth-search", scenes.SCENES[scene])


def test_an_item_in_the_neighbouring_zone_lands_on_the_same_ground(es):
    roi = PointBuffer(ROI.lon, ROI.lat, 1000)
    own = es.fetch(roi, window("pre"), sensor(("B4", "B8")))
    other = es.fetch(roi, window("zone19"), sensor(("B4", "B8")))
    rel = np.abs(other.data - own.data).mean() / own.data.mean()
    assert rel < 0.05  # two resamplings of the same real pixels; a shifted grid would be far off


# ---------------------------------------------------------------------------- radiometry


@pytest.mark.parametrize("scene", ["post", "applied"])
def test_earth_search_offsets_are_handled_per_item(es, scene):
    pre = es.fetch(ROI, window("pre"), sensor())
    other = es.fetch(ROI, window(scene), sensor())
    np.testing.assert_allclose(other.data, pre.data, rtol=0, atol=1e-3)
    rec = other.meta["radiometry"][0]
    assert rec["earthsearch:boa_offset_applied"] is (scene == "applied")
    assert rec["bands"]["B4"]["bias_dn"] == (-1000.0 if scene == "post" else 0.0)


def test_planetary_computer_offset_from_the_processing_baseline(pc):
    pre = pc.fetch(ROI, window("pre"), sensor())
    post = pc.fetch(ROI, window("post"), sensor())
    np.testing.assert_allclose(post.data, pre.data, rtol=0, atol=1e-3)
    assert post.meta["radiometry"][0]["bands"]["B4"]["bias_dn"] == -1000.0
    assert post.meta["radiometry"][0]["bands"]["B4"]["asset"] == "B04"
    assert post.meta["radiometry"][0]["bands"]["B4"]["source"] == "processing_baseline"


# ------------------------------------------------------------------ clouds and composites


def _cloud_and_clear_pixels(patch):
    from rs_embed.geometry import transformer

    g = patch.grid
    a, _, c, _, e, f = g.transform
    x, y = transformer(sample.CRS, g.crs).transform(*CLOUD_XY)
    cloud = (int((y - f) / e), int((x - c) / a))
    return cloud


def test_scl_masking_and_composite_semantics(es_api):
    from rs_embed.providers.stac import StacProvider

    from servers import FAST

    roi = roi_at_utm(CLOUD_XY[0] + 2500, CLOUD_XY[1], 3500)  # half cloud block, half clear
    t = TemporalSpec.range("2020-06-14", "2020-06-26")  # pre + cloudy
    s = sensor(("B4",), cloudy_pct=50)
    es = StacProvider(es_api.url, preset="earth-search", **FAST)
    pre = es.fetch(roi, window("pre"), s).data[0]
    mosaic = es.fetch(roi, t, sensor(("B4",), cloudy_pct=50, composite="mosaic"))
    median = es.fetch(roi, t, s)
    assert [i["id"].rsplit("_", 1)[1] for i in median.meta["items"]] == ["pre", "cloudy"]
    assert median.meta["cloud_mask"]["band"] == "SCL" and median.meta["cloud_mask"]["masked_pixels"] > 0
    cloud = _cloud_and_clear_pixels(median)
    is_cloud = np.zeros(pre.shape, bool)
    g = median.grid
    xs = g.transform[2] + 10 * (np.arange(g.width) + 0.5)
    ys = g.transform[5] - 10 * (np.arange(g.height) + 0.5)
    from rs_embed.geometry import transformer

    X, Y = np.meshgrid(xs, ys)
    sx, sy = transformer(g.crs, sample.CRS).transform(X, Y)
    col = ((sx - sample.BOUNDS_UTM[0]) // 10).astype(int)
    row = ((sample.BOUNDS_UTM[3] - sy) // 10).astype(int)
    is_cloud = (row >= scenes.CLOUD_ROWS.start + 3) & (row < scenes.CLOUD_ROWS.stop - 3) \
        & (col >= scenes.CLOUD_COLS.start + 3) & (col < scenes.CLOUD_COLS.stop - 3)
    clear = (row < scenes.CLOUD_ROWS.start - 3) | (row >= scenes.CLOUD_ROWS.stop + 3) \
        | (col < scenes.CLOUD_COLS.start - 3) | (col >= scenes.CLOUD_COLS.stop + 3)
    assert is_cloud.sum() > 1000 and clear.sum() > 1000 and is_cloud[cloud]
    # mosaic: the latest scene on top where it is clear, the older one where it is cloud
    np.testing.assert_allclose(mosaic.data[0][clear], pre[clear] + 100, atol=1e-3)
    np.testing.assert_allclose(mosaic.data[0][is_cloud], pre[is_cloud], atol=1e-3)
    # median of two: their mean where both are clear, the clear one under the cloud
    np.testing.assert_allclose(median.data[0][clear], pre[clear] + 50, atol=1e-3)
    np.testing.assert_allclose(median.data[0][is_cloud], pre[is_cloud], atol=1e-3)
    # without the mask the cloud enters the median
    raw = StacProvider(es_api.url, preset="earth-search", mask_clouds=False, **FAST).fetch(roi, t, s)
    np.testing.assert_allclose(raw.data[0][is_cloud], (pre[is_cloud] + 9000) / 2, atol=1e-3)


def test_cloudy_pct_filters_items_and_order_is_deterministic(es):
    t = TemporalSpec.range("2020-06-01", "2020-08-01")
    ids = lambda items: [i["id"].rsplit("_", 1)[1] for i in items]  # noqa: E731
    assert ids(es.items(ROI, t, sensor(("B4",), cloudy_pct=30))) == ["pre", "zone19"]
    assert ids(es.items(ROI, t, sensor(("B4",), cloudy_pct=90))) == ["hazy", "pre", "cloudy", "zone19"]
    # this ROI lies under the cloud block: the cloudy item is masked out, so not used
    p = es.fetch(ROI, t, sensor(("B4",), cloudy_pct=90))
    assert ids(p.meta["items"]) == ["hazy", "pre", "zone19"]
    p = es.fetch(ROI, t, sensor(("B4",), cloudy_pct=30))
    assert p.meta["cloud_filter"] == "eo:cloud_cover <= 30"
    assert p.meta["items"][0] == {"id": scenes.item_id("earth-search", scenes.SCENES["pre"]),
                                  "collection": "sentinel-2-l2a", "datetime": "2020-06-15T15:49:11Z",
                                  "eo:cloud_cover": 3.0}


def test_searches_are_cached_per_collection_box_and_window(es):
    t = window("pre")
    es.fetch(ROI, t, sensor(("B4",)))
    es.fetch(ROI, t, sensor(("B8", "B11")))
    assert es.search.requests == 1
    es.fetch(ROI, window("post"), sensor(("B4",)))
    assert es.search.requests == 2


# ------------------------------------------------------------------------------- faults


def test_cog_reads_retry_503_and_429_then_succeed(es, cog_server):
    name = f"{scenes.item_id('earth-search', scenes.SCENES['pre'])}/B04.tif"
    clean = es.fetch(ROI, window("pre"), sensor(("B4",)))
    cog_server.reset()
    es.reader.options["VSI_CACHE"] = "FALSE"
    cog_server.fail_next(name, 503, 429)
    patch = es.fetch(ROI, window("pre"), sensor(("B4",)))
    np.testing.assert_array_equal(patch.data, clean.data)
    statuses = [s.status for s in cog_server.served(name)]
    assert statuses[:3] == [503, 429, 200] or statuses[:2] == [503, 429]
    assert any(s in (200, 206) for s in statuses[2:])
    assert np.isfinite(patch.data).all()


def test_other_4xx_fail_fast_with_the_servers_message(es, cog_server):
    name = f"{scenes.item_id('earth-search', scenes.SCENES['pre'])}/B04.tif"
    cog_server.fail_next(name, *([403] * 50))
    with pytest.raises(ProviderError, match="403") as err:
        es.fetch(ROI, window("pre"), sensor(("B4",)))
    assert err.value.transient is False
    assert [s.status for s in cog_server.served(name)][:1] == [403]
    assert "injected 403" in str(err.value)  # the server's own words
    # GDAL falls back from merged ranges to single tiles, but never retries a 403 (with
    # max_retries=3 a retry loop over those requests would make a dozen or more)
    assert len([s for s in cog_server.served(name) if s.status == 403]) <= 8


def test_no_items_in_the_window_names_the_window_and_the_cloud_filter(es):
    with pytest.raises(ProviderError) as err:
        es.fetch(ROI, TemporalSpec.range("2019-01-01", "2019-02-01"), sensor(("B4",), cloudy_pct=20))
    msg = str(err.value)
    assert "[2019-01-01, 2019-02-01)" in msg and "eo:cloud_cover <= 20" in msg and "sentinel-2-l2a" in msg
    with pytest.raises(ProviderError, match="all 1 item.* cloudier") as err:
        es.fetch(ROI, window("hazy"), sensor(("B4",), cloudy_pct=20))
    assert err.value.transient is False


def test_an_roi_outside_every_item(es):
    with pytest.raises(ProviderError, match="no 'sentinel-2-l2a' items cover") as err:
        es.fetch(PointBuffer(10.0, 45.0, 500), window("pre"), sensor(("B4",)))
    assert "lon 9.99" in str(err.value)


def test_a_server_that_is_down():
    from rs_embed.providers.stac import StacProvider
    from servers import free_port

    dead = StacProvider(f"http://127.0.0.1:{free_port()}", preset="earth-search", max_retries=1,
                        retry_base_s=0.01, fetch_timeout_s=2)
    with pytest.raises(ProviderError, match="cannot reach the STAC API at http://127.0.0.1") as err:
        dead.fetch(ROI, window("pre"), sensor(("B4",)))
    assert err.value.transient is True


def test_checks_before_any_request(es):
    with pytest.raises(ProviderError, match="requester-pays") as err:
        es.check(SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4",)))
    assert "COPERNICUS/S2_SR_HARMONIZED" in str(err.value)
    with pytest.raises(ProviderError, match="no asset for band"):
        es.check(SensorSpec(L2A, ("B4", "B99")))
    with pytest.raises(ProviderError, match="has no collection serving"):
        es.check(SensorSpec("COPERNICUS/S1_GRD", ("VV",)))
    assert es.search.requests == 0


# ----------------------------------------------------------------------- footprints


def test_footprints_are_geojson_of_the_items_found(es):
    fc = es.footprints(ROI, TemporalSpec.range("2020-06-01", "2020-08-01"), sensor(("B4",), cloudy_pct=30))
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["id"].rsplit("_", 1)[1] for f in fc["features"]] == ["pre", "zone19"]
    assert all(f["geometry"]["type"] == "Polygon" for f in fc["features"])
