"""copernicus: a Copernicus-Embed-025 GeoTIFF (768 bands, 0.25 degree, zero-filled ocean)
served over HTTP with Range requests; only the ROI's cells are read."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import rs_embed
from rs_embed import BBox, OutputSpec, PointBuffer, TemporalSpec, providers
from rs_embed.providers import copernicus_embed as cp

W, H = 32, 32          # lon -0.125..7.875, lat 40.125..48.125: cell centres on multiples of 0.25
ORIGIN = (-0.125, 48.125)


@pytest.fixture
def served(http_root, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(768, H, W)).astype(np.float32)
    data[:, 3, 4] = 0.0                        # an "ocean" cell (the product's zero fill)
    path = http_root.root / "embed_map_310k.tif"
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=768, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(*ORIGIN, 0.25, 0.25),
                       interleave="pixel", blockysize=1) as dst:
        dst.write(data)
    provider = cp.CopernicusEmbedProvider(url=f"{http_root.url}/embed_map_310k.tif")
    monkeypatch.setitem(providers._factories, "copernicus_embed", lambda: provider)
    monkeypatch.delitem(providers._instances, "copernicus_embed", raising=False)
    yield http_root, data, path
    providers._instances.pop("copernicus_embed", None)


def _cell(lon, lat):
    return int(np.floor((ORIGIN[1] - lat) / 0.25)), int(np.floor((lon - ORIGIN[0]) / 0.25))


def test_point_reads_its_cell_through_range_requests(served):
    server, data, path = served
    lon, lat = 2.02, 45.47
    with pytest.warns(UserWarning, match="one edition"):
        emb = rs_embed.get_embedding("copernicus", spatial=PointBuffer(lon, lat, 2000), backend="auto")
    r, c = _cell(lon, lat)
    np.testing.assert_allclose(emb.data, data[:, r, c], atol=1e-6)
    assert emb.meta["type"] == "precomputed" and emb.meta["input"]["crs"] == "EPSG:4326"
    tif = [(m, rng) for m, p, rng in server.requests if p.endswith(".tif") and m == "GET"]
    assert tif and all(rng for _, rng in tif), "every read of the map is a Range request"
    got = sum(int(b) - int(a) + 1 for _, rng in tif for a, b in re.findall(r"(\d+)-(\d+)", rng))
    assert got < path.stat().st_size / 4


def test_region_grid_marks_ocean_cells_nan_and_pools_the_rest(served):
    _, data, _ = served
    roi = BBox(0.90, 47.05, 1.30, 47.35)        # touches cells rows 3..4, cols 4..5
    t = TemporalSpec.year(2021)
    grid = rs_embed.get_embedding("copernicus", spatial=roi, temporal=t, output=OutputSpec.grid())
    assert grid.data.shape == (768, 2, 2)
    want = data[:, 3:5, 4:6].copy()
    want[:, 0, 0] = np.nan
    np.testing.assert_allclose(grid.data, want, atol=1e-6, equal_nan=True)
    assert grid.meta["input"]["nodata_fraction"] == 0.25
    pooled = rs_embed.get_embedding("copernicus", spatial=roi, temporal=t)
    np.testing.assert_allclose(pooled.data, np.nanmean(want.reshape(768, -1), axis=1), atol=1e-5)
    mx = rs_embed.get_embedding("copernicus", spatial=roi, temporal=t, output=OutputSpec.pooled("max"))
    np.testing.assert_allclose(mx.data, np.nanmax(want.reshape(768, -1), axis=1), atol=1e-6)
    with pytest.raises(rs_embed.ModelError, match="2021..2021"):
        rs_embed.get_embedding("copernicus", spatial=roi, temporal=TemporalSpec.year(2019))


def test_outside_the_map_and_a_missing_file_are_clear(served, tmp_path):
    with pytest.raises(rs_embed.ProviderError, match="outside"):
        rs_embed.get_embedding("copernicus", spatial=PointBuffer(60.0, 10.0, 1000),
                               temporal=TemporalSpec.year(2021))
    bad = cp.CopernicusEmbedProvider(url=str(tmp_path / "nope.tif"))
    sensor = rs_embed.SensorSpec(cp.COLLECTION, cp.BANDS)
    with pytest.raises(rs_embed.ProviderError, match=cp.URL_ENV):
        bad.fetch(PointBuffer(1.0, 45.0, 1000), None, sensor)
