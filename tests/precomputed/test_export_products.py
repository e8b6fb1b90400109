"""export_batch with three precomputed products side by side: each provider reads each
point's patch once, inputs and embeddings land in one combined file, and every
manifest entry says where its data came from."""

from __future__ import annotations

import collections

import numpy as np
import pytest

pytest.importorskip("geotessera")
pytest.importorskip("pyarrow")
gpd = pytest.importorskip("geopandas")
import pandas as pd  # noqa: E402
import rasterio  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

import rs_embed  # noqa: E402
from rs_embed import ExportModelRequest, PointBuffer, SensorSpec, TemporalSpec, providers  # noqa: E402
from rs_embed.providers import copernicus_embed as cp, embedding_tables as et, tessera as tp  # noqa: E402

from .tessera_files import write_registries, write_tile  # noqa: E402


@pytest.fixture
def three_products(http_root, tmp_path, monkeypatch):
    root = http_root.root
    tiles = [write_tile(root, "v1", 2021, 6.05, 45.05, res=200.0, seed=4)]
    write_registries(root, "v1", tiles)
    rng = np.random.default_rng(0)
    with rasterio.open(root / "cop.tif", "w", driver="GTiff", width=8, height=8, count=768, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(4.875, 46.125, .25, .25)) as dst:
        dst.write(rng.normal(size=(768, 8, 8)).astype(np.float32))
    lat, lon = np.repeat(np.linspace(45.0, 45.09, 10), 10), np.tile(np.linspace(6.0, 6.09, 10), 10)
    gpd.GeoDataFrame({"unique_id": np.arange(lat.size).astype(str),
                      "embedding": list(rng.normal(size=(lat.size, 32)).astype(np.float32)),
                      "timestamp": pd.Timestamp("2021-06-01", tz="UTC"), "centre_lat": lat, "centre_lon": lon},
                     geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_parquet(root / "mt.parquet")
    made = {"tessera": tp.TesseraProvider(base_url=http_root.url, embeddings_dir=str(tmp_path / "t")),
            "copernicus_embed": cp.CopernicusEmbedProvider(f"{http_root.url}/cop.tif"),
            "majortom": et.EmbeddingTableProvider(et.MAJOR_TOM, [f"{http_root.url}/mt.parquet"])}
    calls = collections.Counter()
    for name, prov in made.items():
        real = prov.fetch

        def counted(spatial, temporal, sensor, _real=real, _name=name):
            calls[(_name, spatial.lon, spatial.lat)] += 1
            return _real(spatial, temporal, sensor)

        prov.fetch = counted
        monkeypatch.setitem(providers._factories, name, lambda p=prov: p)
        monkeypatch.delitem(providers._instances, name, raising=False)
    yield calls
    for name in made:
        providers._instances.pop(name, None)


def test_three_products_one_fetch_per_point_each(three_products, tmp_path):
    calls = three_products
    pts = [PointBuffer(6.03, 45.03, 400), PointBuffer(6.07, 45.06, 400)]
    tess = ExportModelRequest("tessera", sensor=SensorSpec("TESSERA/v1", tp.BANDS, scale_m=200))
    man = rs_embed.export_batch(spatials=pts, temporal=TemporalSpec.year(2021),
                                models=[tess, "copernicus", "majortom"], out=str(tmp_path / "run"),
                                layout="combined", backend="auto", show_progress=False)
    assert [m["status"] for m in man["models"]] == ["ok", "ok", "ok"], [m.get("error") for m in man["models"]]
    assert set(man["backend"].split("+")) >= {"tessera", "copernicus_embed", "majortom"}
    assert sorted(calls.values()) == [1] * 6          # 3 providers x 2 points, each once
    res = rs_embed.load_export(str(tmp_path / "run.npz"))
    assert res.models["tessera"].embeddings.shape == (2, 128)
    assert res.models["copernicus"].embeddings.shape == (2, 768)
    assert res.models["majortom"].embeddings.shape == (2, 32)
    metas = {m["model"]: m["metas"][0]["input"] for m in man["models"]}
    assert metas["tessera"]["dataset_version"] == "v1"
    assert metas["copernicus"]["product"] == "Copernicus-Embed-025"
    assert metas["majortom"]["n_rows"] >= 1
