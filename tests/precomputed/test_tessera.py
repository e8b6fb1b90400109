"""tessera: geotessera pointed at a local server holding tiles in the published layout;
point and region reads, cross-UTM-zone mosaics, dequantisation, nodata, versions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("geotessera", reason="tessera needs the 'models-tessera' extra")
pytest.importorskip("pyarrow", reason="tessera needs the 'models-tessera' extra")

import rs_embed  # noqa: E402
from rs_embed import BBox, OutputSpec, PointBuffer, SensorSpec, TemporalSpec  # noqa: E402
from rs_embed import providers  # noqa: E402
from rs_embed.errors import ModelError, ProviderError  # noqa: E402
from rs_embed.geometry import roi_grid, transformer  # noqa: E402
from rs_embed.providers import tessera as tp  # noqa: E402

from .tessera_files import expected_at, write_registries, write_tile  # noqa: E402

RES = 200.0
SENSOR = SensorSpec("TESSERA/v1", tp.BANDS, scale_m=RES)
Y2024 = TemporalSpec.year(2024)


@pytest.fixture
def served(http_root, tmp_path, monkeypatch):
    """Two tiles either side of the UTM 31/32 boundary (lon 6), one far away."""
    root = http_root.root
    tiles = [write_tile(root, "v1", 2024, 5.95, 45.05, res=RES, seed=1,
                        zero_scale_box=(5.90, 45.02, 5.93, 45.05)),
             write_tile(root, "v1", 2024, 6.05, 45.05, res=RES, seed=2),
             write_tile(root, "v1", 2024, 20.05, 10.05, res=RES, seed=3)]
    write_registries(root, "v1", tiles)
    provider = tp.TesseraProvider(base_url=http_root.url, embeddings_dir=str(tmp_path / "tiles"))
    monkeypatch.setitem(providers._factories, "tessera", lambda: provider)
    monkeypatch.delitem(providers._instances, "tessera", raising=False)
    yield http_root, tiles, provider
    providers._instances.pop("tessera", None)


def _pixel_lonlat(grid):
    a, _, c, _, e, f = grid.transform
    xs = c + a * (np.arange(grid.width) + 0.5)
    ys = f + e * (np.arange(grid.height) + 0.5)
    xx, yy = np.meshgrid(xs, ys)
    lon, lat = transformer(grid.crs, "EPSG:4326").transform(xx.ravel(), yy.ravel())
    return np.asarray(lon).reshape(xx.shape), np.asarray(lat).reshape(xx.shape)


def test_region_across_utm_zones_is_mosaicked_onto_the_roi_grid(served):
    server, tiles, _ = served
    roi = BBox(5.96, 45.03, 6.04, 45.08)
    emb = rs_embed.get_embedding("tessera", spatial=roi, temporal=Y2024, sensor=SENSOR,
                                 output=OutputSpec.grid(), backend="auto")
    square = roi_grid(roi, RES)
    assert square.roi is not None  # the box is a rectangle: fetched as its enclosing square
    grid = square.roi_grid()       # ... and the grid cropped back to the box itself
    assert emb.data.shape == (128, grid.height, grid.width)
    assert emb.meta["input"]["crs"] == grid.crs == "EPSG:32632"
    assert emb.meta["grid_georef"]["transform"] == pytest.approx(list(grid.transform))
    assert (emb.meta["grid_georef"]["width"], emb.meta["grid_georef"]["height"]) == (grid.width, grid.height)
    assert emb.meta["input"]["tile_crs"] == ["EPSG:32631", "EPSG:32632"]
    lon, lat = _pixel_lonlat(grid)
    want = np.stack([expected_at(tiles, lo, la) for lo, la in zip(lon.ravel(), lat.ravel())], axis=1)
    want = want.reshape(128, grid.height, grid.width)
    west = lon < 6.0
    assert west.any() and (~west).any()
    np.testing.assert_array_equal(np.isnan(emb.data), np.isnan(want))
    np.testing.assert_allclose(emb.data, want, rtol=0, atol=1e-6, equal_nan=True)
    assert np.isfinite(emb.data).all()         # both zones filled, no seam of nodata
    assert emb.meta["input"]["dataset_version"] == "v1" and emb.meta["input"]["year"] == 2024
    # only the two tiles under the ROI were read, never the far one
    got = server.paths()
    assert any("grid_5.95_45.05.npy" in p for p in got) and any("grid_6.05_45.05.npy" in p for p in got)
    assert not any("grid_20.05_10.05" in p for p in got)


def test_point_read_matches_geotessera_sampling_and_pools_valid_pixels(served, tmp_path):
    server, tiles, provider = served
    lon, lat = 6.07, 45.06
    emb = rs_embed.get_embedding("tessera", spatial=PointBuffer(lon, lat, 300), temporal=Y2024,
                                 sensor=SENSOR, output=OutputSpec.grid(), backend="auto")
    from geotessera import GeoTessera
    ref = GeoTessera(dataset_version="v1", embeddings_dir=str(provider.embeddings_dir),
                     registry_dir=str(server.root / "v1"))
    want = ref.sample_embeddings_at_points([(lon, lat)], year=2024, auto_download=False)[0]
    h, w = emb.data.shape[1:]
    grid = roi_grid(PointBuffer(lon, lat, 300), RES)
    plon, plat = _pixel_lonlat(grid)
    r, c = np.unravel_index(np.argmin((plon - lon) ** 2 + (plat - lat) ** 2), plon.shape)
    np.testing.assert_allclose(emb.data[:, r, c], want, atol=1e-6)
    pooled = rs_embed.get_embedding("tessera", spatial=PointBuffer(lon, lat, 300), temporal=Y2024,
                                    sensor=SENSOR, backend="auto")
    np.testing.assert_allclose(pooled.data, emb.data.reshape(128, -1).mean(axis=1), atol=1e-5)
    assert pooled.meta["type"] == "precomputed" and pooled.meta["valid_pixels"] == h * w


def test_nodata_is_nan_and_pooling_skips_it(served):
    _, tiles, provider = served
    roi = BBox(5.905, 45.015, 5.945, 45.06)      # covers the zero-scale patch of the west tile
    grid = rs_embed.get_embedding("tessera", spatial=roi, temporal=Y2024, sensor=SENSOR,
                                  output=OutputSpec.grid())
    bad = np.isnan(grid.data).all(axis=0)
    assert 0.1 < bad.mean() < 0.9
    # the patch (the box's enclosing square) marks the same pixels in its mask, and its
    # nodata_fraction counts them, as every provider does
    patch = provider.fetch(roi, Y2024, SENSOR)
    r, c, h, w = patch.grid.roi
    np.testing.assert_array_equal(~patch.valid[r:r + h, c:c + w], bad)
    assert grid.meta["input"]["nodata_fraction"] == pytest.approx(1.0 - patch.valid.mean())
    pooled = rs_embed.get_embedding("tessera", spatial=roi, temporal=Y2024, sensor=SENSOR)
    np.testing.assert_allclose(pooled.data, np.nanmean(grid.data.reshape(128, -1), axis=1), atol=1e-5)


def test_default_sensor_version_and_time_rules(served):
    _, _, provider = served
    d = rs_embed.describe_model("tessera")
    assert d["type"] == "precomputed" and d["inputs"]["collection"] == "TESSERA/v1"
    assert d["embedding_dim"] == 128 and d["temporal"]["mode"] == "year"
    with pytest.warns(UserWarning, match="reads the year it starts in, 2024"):
        rs_embed.get_embedding("tessera", spatial=PointBuffer(6.07, 45.06, 300),
                               temporal=TemporalSpec.range("2024-03-01", "2024-06-01"), sensor=SENSOR)
    with pytest.raises(ModelError, match="annual product"):
        rs_embed.get_embedding("tessera", spatial=PointBuffer(6.07, 45.06, 300), sensor=SENSOR)
    with pytest.raises(ProviderError, match="never mixes dataset versions"):
        provider.fetch(PointBuffer(6.07, 45.06, 300), Y2024, SensorSpec("TESSERA/v2", tp.BANDS, scale_m=RES))
    with pytest.raises(ProviderError, match="no embedding covers"):
        provider.fetch(PointBuffer(100.0, 10.0, 300), Y2024, SENSOR)


def test_export_routes_tessera_beside_imagery_models(served, tmp_path):
    """backend='local' serves spectral; tessera still reads its own product, and the local
    catalog's failure there (the sample lies elsewhere) fails only spectral's point."""
    man = rs_embed.export_batch(spatials=[PointBuffer(6.07, 45.06, 300)], temporal=Y2024,
                                models=[rs_embed.ExportModelRequest("tessera", sensor=SENSOR), "spectral"],
                                out=str(tmp_path / "mix"), layout="combined", backend="local",
                                continue_on_error=True, show_progress=False)
    tess, spec = man["models"]
    assert man["backend"] == "local+tessera"
    assert tess["status"] == "ok" and spec["status"] == "failed"
    assert "local catalog" in str(spec["errors_by_index"] or spec["error"])
    meta = tess["metas"][0]
    assert meta["input"]["dataset_version"] == "v1" and meta["input"]["source"] == "geotessera"
    res = rs_embed.load_export(str(tmp_path / "mix.npz"))
    assert res.models["tessera"].embeddings.shape == (1, 128)
