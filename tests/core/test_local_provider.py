"""The local provider on the embedded sample and on catalogs written here with rasterio."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import from_bounds

from rs_embed import BBox, PointBuffer, ProviderError, SensorSpec, SpecError, TemporalSpec, sample
from rs_embed.geometry import roi_grid, transformer
from rs_embed.providers import get_provider
from rs_embed.providers.local import LocalProvider
from rs_embed.sensors import canonical_band

UTM = "EPSG:32618"
X0, Y0 = 500_000.0, 4_400_000.0  # top-left of the synthetic scenes (UTM 18N, ~39.7 N)


def lonlat(x, y):
    return transformer(UTM, "EPSG:4326").transform(x, y)


def roi(x, y, buffer_m=500):
    lon, lat = lonlat(x, y)
    return PointBuffer(lon, lat, buffer_m)


def write_tif(path, data, *, res=10.0, x0=X0, y0=Y0, crs=UTM, nodata=None):
    data = np.asarray(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs=crs, nodata=nodata,
                       transform=Affine(res, 0, x0, 0, -res, y0), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate", predictor=2) as dst:
        dst.write(data, 1)
    return path


def const(value, shape=(300, 300), dtype="uint16"):
    return np.full(shape, value, dtype=dtype)


S2 = SensorSpec(sample.COLLECTION, sample.BANDS, scale_m=10)


# ------------------------------------------------------------------ the sample


def test_sample_fetch_is_float32_chw_on_the_roi_grid():
    provider = LocalProvider()
    p = sample.points()[20]
    patch = provider.fetch(p.spatial, sample.TEMPORAL, S2)
    assert patch.data.dtype == np.float32 and patch.data.shape == (13, 100, 100)
    assert patch.bands == sample.BANDS
    assert patch.grid == roi_grid(p.spatial, 10)
    m = patch.meta
    assert m["backend"] == "local" and m["n_scenes"] == 1 and m["scenes"] == [sample.scene()["id"]]
    assert m["nodata_fraction"] == 0.0 and m["composite"] == "median" and m["value_scale"] == 1e-4
    assert m["temporal"] == {"start": "2015-06-23", "end": "2016-06-11"}
    assert m["resampling"]["B4"] == "bilinear"
    # on the native, aligned 10 m grid bilinear returns the stored digital numbers exactly
    with rasterio.open(sample.band_path("B8")) as src:
        direct = src.read(1, window=from_bounds(*patch.grid.bounds, transform=src.transform))
    np.testing.assert_array_equal(patch.data[sample.BANDS.index("B8")], direct.astype(np.float32))
    assert json.dumps(patch.describe())  # manifest-ready


def test_sample_other_scales_bbox_and_collection_alias():
    provider = LocalProvider()
    p = sample.points()[3].spatial
    at60 = provider.fetch(p, None, SensorSpec("COPERNICUS/S2", ("B1", "B4", "B9"), scale_m=60))
    assert at60.data.shape == (3, 17, 17) and at60.meta["temporal"] is None
    field = {q.name: q for q in sample.points()}["field_1"]
    lon, lat = field.lon, field.lat
    box = BBox(lon - 0.01, lat - 0.008, lon + 0.01, lat + 0.008)
    patch = provider.fetch(box, sample.TEMPORAL, SensorSpec(sample.COLLECTION, ("B2", "B11"), scale_m=20))
    g = roi_grid(box, 20)
    assert patch.data.shape == (2, g.height, g.width) and patch.meta["nodata_fraction"] == 0.0
    assert np.all(patch.data > 0)


def test_default_backend_and_sample_folder_serve_the_same_pixels():
    assert isinstance(get_provider("local"), LocalProvider)
    p = sample.points()[0].spatial
    sensor = SensorSpec(sample.COLLECTION, ("B3", "B8A"))
    a = LocalProvider().fetch(p, sample.TEMPORAL, sensor)
    b = LocalProvider(sample.DATA_DIR).fetch(p, sample.TEMPORAL, sensor)
    np.testing.assert_array_equal(a.data, b.data)


def test_fetch_is_thread_safe():
    provider = LocalProvider()
    sensor = SensorSpec(sample.COLLECTION, ("B2", "B4", "B8", "B11"))
    spatials = sample.spatials(buffer_m=300)[::3]
    serial = [provider.fetch(s, sample.TEMPORAL, sensor).data for s in spatials]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda s: provider.fetch(s, sample.TEMPORAL, sensor).data, spatials * 2))
    for k, arr in enumerate(threaded):
        np.testing.assert_array_equal(arr, serial[k % len(spatials)])


def test_uncovered_roi_or_window_says_what_the_catalog_covers():
    provider = LocalProvider()
    with pytest.raises(ProviderError) as e:
        provider.fetch(PointBuffer(-76.5, 37.6, 500), sample.TEMPORAL, S2)
    msg = str(e.value)
    assert "no scene reaches the ROI" in msg and "lon -75.7285..-75.5779" in msg
    assert "[2015-06-23, 2016-06-11)" in msg and e.value.transient is False
    with pytest.raises(ProviderError) as e:
        provider.fetch(sample.points()[0].spatial, TemporalSpec.year(2020), S2)
    assert "no scene overlaps the time window" in str(e.value) and "2015-06-23" in str(e.value)
    # a window that only overlaps the sample's date window is served
    assert provider.fetch(sample.points()[0].spatial, TemporalSpec.range("2016-06-01", "2016-07-01"),
                          SensorSpec(sample.COLLECTION, ("B2",))).meta["n_scenes"] == 1
    assert "lat 37.5852..37.7050" in provider.coverage()


def test_unknown_band_and_collection_name_what_is_available():
    provider = LocalProvider()
    with pytest.raises(ProviderError) as e:
        provider.fetch(sample.points()[0].spatial, None, SensorSpec(sample.COLLECTION, ("B4", "B13")))
    assert "'B13'" in str(e.value) and "the bands found are B1, B2, B3" in str(e.value)
    assert "sensor=SensorSpec(" in str(e.value)
    with pytest.raises(ProviderError) as e:
        provider.fetch(sample.points()[0].spatial, None, SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",)))
    assert "COPERNICUS/S2_HARMONIZED" in str(e.value) and "COPERNICUS/S2_SR_HARMONIZED" in str(e.value)
    assert provider.bands() == list(sample.BANDS)
    with pytest.raises(SpecError):
        provider.fetch("not a spatial", None, S2)
    with pytest.raises(SpecError):
        LocalProvider(resampling="cubic")
    with pytest.raises(SpecError, match="does not exist"):
        LocalProvider("/no/such/folder")


# ------------------------------------------------------------ windowed reading


def test_reads_only_the_window_around_the_roi(tmp_path, monkeypatch):
    n = 3000  # a 30 km x 30 km raster for a 1 km ROI
    rows, cols = np.mgrid[0:n, 0:n]
    data = ((rows * 3 + cols) % 4000 + 1).astype("uint16")
    write_tif(tmp_path / "big_20200601_B4.tif", data)
    provider = LocalProvider(tmp_path)
    windows = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        windows.append(kwargs.get("window"))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    x, y = X0 + 12_000, Y0 - 17_000
    patch = provider.fetch(roi(x, y), None, SensorSpec("any", ("B4",)))
    assert windows and all(w is not None for w in windows)
    assert all(w.width * w.height <= 110 * 110 for w in windows), windows
    assert patch.meta["source_pixels_read"] <= 110 * 110 < n * n / 500
    col0 = int(round((patch.grid.bounds[0] - X0) / 10))
    row0 = int(round((Y0 - patch.grid.bounds[3]) / 10))
    np.testing.assert_array_equal(patch.data[0], data[row0:row0 + 100, col0:col0 + 100])


# ------------------------------------------------------------------ compositing


@pytest.fixture()
def three_dates(tmp_path):
    """Three scenes of one place: 100, 300 and 1000, the last with a nodata left half."""
    for day, value in (("20200601", 100), ("20200610", 300), ("20200620", 1000)):
        b4 = const(value)
        if day == "20200620":
            b4[:, :150] = 0
        write_tif(tmp_path / f"S2_{day}_B4.tif", b4, nodata=0)
        write_tif(tmp_path / f"S2_{day}_B08.tif", const(value + 5), nodata=0)
    return tmp_path


def test_median_and_mosaic_over_several_scenes(three_dates):
    provider = LocalProvider(three_dates)
    assert [s.id for s in provider.scenes] == ["S2_20200601", "S2_20200610", "S2_20200620"]
    spatial = roi(X0 + 1500, Y0 - 1500, buffer_m=1000)  # straddles the nodata edge
    med = provider.fetch(spatial, None, SensorSpec("X", ("B4", "B8")))
    mos = provider.fetch(spatial, None, SensorSpec("X", ("B4", "B8"), composite="mosaic"))
    left = slice(0, 90)  # x < X0 + 1500 is the nodata half of the last scene
    right = slice(110, 200)
    assert np.all(med.data[0][:, left] == 200) and np.all(med.data[0][:, right] == 300)
    assert np.all(mos.data[0][:, left] == 300) and np.all(mos.data[0][:, right] == 1000)
    assert np.all(med.data[1] == 305) and np.all(mos.data[1] == 1005)
    assert med.meta["n_scenes"] == 3 and med.meta["nodata_fraction"] == 0.0
    assert mos.meta["scene_dates"] == ["2020-06-01", "2020-06-10", "2020-06-20"]
    # the window is half-open: [06-01, 06-20) leaves the third scene out
    june = TemporalSpec.range("2020-06-01", "2020-06-20")
    two = provider.fetch(spatial, june, SensorSpec("X", ("B4",), composite="mosaic"))
    assert two.meta["scenes"] == ["S2_20200601", "S2_20200610"] and np.all(two.data == 300)
    assert provider.list_scenes(spatial, june, SensorSpec("X", ("B4",))) == two.meta["scenes"]
    one = provider.fetch(spatial, TemporalSpec.range("2020-06-01", "2020-06-02"), SensorSpec("X", ("B4",)))
    assert np.all(one.data == 100)


def test_fill_value_and_nodata_fraction_on_partial_coverage(tmp_path):
    b4 = const(500, (100, 100))
    b4[:, 80:] = 0  # a nodata strip inside the raster
    write_tif(tmp_path / "edge_2021-03-04_B4.tif", b4, nodata=0)
    write_tif(tmp_path / "edge_2021-03-04_B3.tif", const(400, (100, 100)), nodata=0)
    provider = LocalProvider(tmp_path)
    # the ROI's east half lies beyond the raster (x > X0 + 1000)
    sensor = SensorSpec("X", ("B3", "B4"), fill_value=-9)
    patch = provider.fetch(roi(X0 + 1000, Y0 - 500), None, sensor)
    assert patch.data.shape == (2, 100, 100)
    valid = patch.data[1] == 500
    filled = np.all(patch.data == -9, axis=0)
    assert np.all(valid | filled)
    # 30 of every 100 columns hold data (x in [X0+500, X0+800)); B3 alone would have 50
    assert patch.meta["nodata_fraction"] == pytest.approx(0.7, abs=0.02)
    assert patch.meta["nodata_pixels"] == int(filled.sum())
    assert np.all(patch.data[0][valid] == 400)


# ---------------------------------------------------------------- catalog formats


def test_stac_catalog_of_local_files(tmp_path):
    write_tif(tmp_path / "items" / "a" / "red.tif", const(1234, dtype="uint16"))
    write_tif(tmp_path / "items" / "a" / "nir08.tif", const(2345, (150, 150)), res=20)
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "S2B_T18_20210701",
        "geometry": None, "bbox": None,
        "properties": {"datetime": "2021-07-01T15:49:11Z", "eo:cloud_cover": 4.0,
                       "platform": "sentinel-2b"},
        "assets": {
            "red": {"href": "./red.tif", "type": "image/tiff; application=geotiff",
                    "roles": ["data"], "eo:bands": [{"name": "red", "common_name": "red"}]},
            "nir08": {"href": "nir08.tif", "type": "image/tiff; application=geotiff",
                      "raster:bands": [{"nodata": 0, "scale": 0.0001}]},
            "thumbnail": {"href": "./thumb.png", "type": "image/png", "roles": ["thumbnail"]},
            "blue": {"href": "https://example.com/blue.tif", "type": "image/tiff"},
        },
        "links": [],
    }
    (tmp_path / "items" / "a" / "item.json").write_text(json.dumps(item))
    coll = {"type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l2a",
            "description": "", "license": "proprietary", "extent": {},
            "links": [{"rel": "item", "href": "./items/a/item.json"}]}
    (tmp_path / "collection.json").write_text(json.dumps(coll))
    cat = {"type": "Catalog", "stac_version": "1.0.0", "id": "root", "description": "",
           "links": [{"rel": "child", "href": "collection.json"}]}
    (tmp_path / "catalog.json").write_text(json.dumps(cat))

    provider = LocalProvider(tmp_path / "catalog.json")
    assert provider.bands() == ["B4", "B8A"]
    assert provider.skipped_remote == ["https://example.com/blue.tif"]
    spatial = roi(X0 + 1500, Y0 - 1500)
    july = TemporalSpec.range("2021-07-01", "2021-07-02")
    patch = provider.fetch(spatial, july, SensorSpec("sentinel-2-l2a", ("B4", "B8A"), cloudy_pct=10))
    assert patch.meta["scenes"] == ["S2B_T18_20210701"] and patch.meta["value_scale"] == 1e-4
    assert np.all(patch.data[0] == 1234) and np.all(patch.data[1] == 2345)
    with pytest.raises(ProviderError, match="no scene overlaps"):
        provider.fetch(spatial, TemporalSpec.range("2021-07-02", "2021-08-01"),
                       SensorSpec("sentinel-2-l2a", ("B4",)))
    with pytest.raises(ProviderError, match="exceed cloudy_pct=2"):
        provider.fetch(spatial, july, SensorSpec("sentinel-2-l2a", ("B4",), cloudy_pct=2))
    # the sensor vocabulary knows the Earth Engine id of the same product ...
    got = provider.fetch(spatial, july, SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",)))
    np.testing.assert_array_equal(got.data, patch.data[:1])
    # ... and that Level-1C is another product
    with pytest.raises(ProviderError, match="sentinel-2-l2a"):
        provider.fetch(spatial, july, SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4",)))
    aliased = LocalProvider(tmp_path, aliases={"MYLAB/S2_L2A": "sentinel-2-l2a"})
    got = aliased.fetch(spatial, july, SensorSpec("MYLAB/S2_L2A", ("B4",)))
    np.testing.assert_array_equal(got.data, patch.data[:1])


def test_sidecar_scene_with_a_categorical_band_and_cloud_cover(tmp_path):
    rows, cols = np.mgrid[0:150, 0:150]
    write_tif(tmp_path / "s" / "b4.tif", (1000 + 10 * cols).astype("uint16"), res=20)
    classes = np.where(cols < 75, 4, np.where(rows < 75, 8, 5)).astype("uint8")
    write_tif(tmp_path / "s" / "scl.tif", classes, res=20)
    write_tif(tmp_path / "s" / "cloudy_b4.tif", const(9999, (150, 150)), res=20)
    for name, b4, cloud in (("clear", "b4.tif", 5.0), ("cloudy", "cloudy_b4.tif", 80.0)):
        (tmp_path / "s" / f"{name}.json").write_text(json.dumps({
            "type": "rs_embed.scene", "id": name, "collection": "MY/S2", "datetime": "2022-05-01",
            "cloud_cover": cloud, "bands": {"B04": b4, "SCL": {"file": "scl.tif"}}}))
    provider = LocalProvider(tmp_path)
    assert {s.id for s in provider.scenes} == {"clear", "cloudy"}
    patch = provider.fetch(roi(X0 + 1500, Y0 - 1500), None, SensorSpec("MY/S2", ("B4", "SCL"), scale_m=10))
    assert patch.meta["scenes"] == ["clear"]  # cloudy_pct=30 drops the 80 % scene
    assert patch.meta["resampling"] == {"B4": "bilinear", "SCL": "nearest"}
    assert set(np.unique(patch.data[1])) <= {4.0, 5.0, 8.0}
    assert len(np.unique(patch.data[0])) > 60  # 20 m ramp interpolated at 10 m: new values
    nearest = LocalProvider(tmp_path, resampling="nearest")
    assert set(np.unique(nearest.fetch(roi(X0 + 1500, Y0 - 1500), None,
                                       SensorSpec("MY/S2", ("B4",))).data) % 10) == {0.0}


def test_file_name_convention():
    assert canonical_band("b04") == "B4" and canonical_band("B8a") == "B8A" and canonical_band("scl") == "SCL"


def test_esa_names_and_undated_files(tmp_path):
    write_tif(tmp_path / "T18TVL_20200601T154911_B04_10m.tif", const(7))
    write_tif(tmp_path / "undated" / "B2.tif", const(8))
    provider = LocalProvider(tmp_path)
    by_id = {s.id: s for s in provider.scenes}
    assert by_id["T18TVL_20200601T154911"].datetime == "2020-06-01"
    assert set(by_id["T18TVL_20200601T154911"].bands) == {"B4"}
    assert not by_id["undated"].dated and set(by_id["undated"].bands) == {"B2"}
    # undated scenes serve any window
    patch = provider.fetch(roi(X0 + 1500, Y0 - 1500), TemporalSpec.year(1999), SensorSpec("X", ("B2",)))
    assert np.all(patch.data == 8) and patch.meta["scene_dates"] == ["undated"]
    single = LocalProvider(tmp_path / "undated" / "B2.tif")  # one raster is a catalog too
    assert [s.id for s in single.scenes] == ["undated"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProviderError, match="no readable scenes"):
        LocalProvider(tmp_path / "empty")
