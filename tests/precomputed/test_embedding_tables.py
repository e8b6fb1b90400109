"""majortom / earthindex: GeoParquet embedding tables in their published layouts, served
over HTTP; lookups read only the row groups and columns an ROI needs."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="table lookups need the 'models-tables' extra")
gpd = pytest.importorskip("geopandas")
import pandas as pd  # noqa: E402
from shapely.geometry import Point, box  # noqa: E402

import rs_embed  # noqa: E402
from rs_embed import PointBuffer, TemporalSpec, providers  # noqa: E402
from rs_embed.geometry import utm_epsg  # noqa: E402
from rs_embed.providers import embedding_tables as et  # noqa: E402


def _bytes(server, name):
    got = [(m, rng) for m, p, rng in server.requests if p.endswith(name) and m == "GET"]
    assert got and all(rng for _, rng in got)
    return sum(int(b) - int(a) + 1 for _, rng in got for a, b in re.findall(r"(\d+)-(\d+)", rng))


@pytest.fixture
def majortom(http_root, monkeypatch):
    rng = np.random.default_rng(0)
    lats = np.repeat(np.arange(40.0, 44.0, 0.01), 5)              # 2000 fragments, sorted by lat
    lons = np.tile(np.arange(10.0, 10.1, 0.02), len(lats) // 5)
    n = len(lats)
    times = pd.to_datetime(np.where(np.arange(n) % 2 == 0, "2021-05-03T10:00:00", "2022-07-09T10:00:00"), utc=True)
    df = gpd.GeoDataFrame({
        "unique_id": [f"frag{i:04d}" for i in range(n)],
        "embedding": list(rng.normal(size=(n, 256)).astype(np.float32)),
        "timestamp": times, "product_id": [f"S2A_{i}" for i in range(n)],
        "grid_cell": [f"{int(la)}U_{int(lo)}R" for la, lo in zip(lats, lons)],
        "centre_lat": lats, "centre_lon": lons,
    }, geometry=[box(lo - 0.01, la - 0.01, lo + 0.01, la + 0.01) for lo, la in zip(lons, lats)], crs="EPSG:4326")
    path = http_root.root / "part_00001.parquet"
    df.to_parquet(path, row_group_size=50)
    prov = et.EmbeddingTableProvider(et.MAJOR_TOM, urls=[f"{http_root.url}/part_00001.parquet"])
    monkeypatch.setitem(providers._factories, "majortom", lambda: prov)
    monkeypatch.delitem(providers._instances, "majortom", raising=False)
    yield http_root, df, path
    providers._instances.pop("majortom", None)


def _expected(df, lon, lat, buffer_m, radius_m, lon_col="centre_lon", lat_col="centre_lat"):
    crs = f"EPSG:{utm_epsg(lon, lat)}"
    pts = gpd.GeoSeries(gpd.points_from_xy(df[lon_col], df[lat_col]), crs="EPSG:4326").to_crs(crs)
    c = gpd.GeoSeries([Point(lon, lat)], crs="EPSG:4326").to_crs(crs)[0]
    half = buffer_m + radius_m + 10.0   # the ROI grid snaps to 10 m
    return ((pts.x - c.x).abs() <= half) & ((pts.y - c.y).abs() <= half)


def test_majortom_lookup_pools_the_rows_under_the_roi_in_the_window(majortom):
    server, df, path = majortom
    lon, lat = 10.04, 42.01
    emb = rs_embed.get_embedding("majortom", spatial=PointBuffer(lon, lat, 1000),
                                 temporal=TemporalSpec.range("2021-01-01", "2022-01-01"), backend="auto")
    sel = _expected(df, lon, lat, 1000, 1120) & (df["timestamp"].dt.year == 2021)
    assert 1 <= sel.sum() < 20
    want = np.stack(df.loc[sel, "embedding"].to_list()).mean(axis=0)
    np.testing.assert_allclose(emb.data, want, atol=1e-5)
    rows = emb.meta["input"]["rows"]
    assert sorted(r["unique_id"] for r in rows) == sorted(df.loc[sel, "unique_id"])
    assert all(r["timestamp"].startswith("2021") for r in rows)
    read = _bytes(server, "part_00001.parquet")
    assert read < path.stat().st_size / 4, (read, path.stat().st_size)    # row-group pruning
    anytime = rs_embed.get_embedding("majortom", spatial=PointBuffer(lon, lat, 1000))
    assert anytime.meta["input"]["n_rows"] > len(rows)


def test_majortom_miss_and_grid_refusal_are_clear(majortom):
    with pytest.raises(rs_embed.ProviderError, match="no embedding row within 1120 m"):
        rs_embed.get_embedding("majortom", spatial=PointBuffer(30.0, 10.0, 500))
    with pytest.raises(rs_embed.ModelError, match="pooled output only"):
        rs_embed.get_embedding("majortom", spatial=PointBuffer(10.04, 42.01, 500), output=rs_embed.OutputSpec.grid())


def test_earthindex_lookup_by_point_geometry(http_root, monkeypatch):
    rng = np.random.default_rng(1)
    xs, ys = np.meshgrid(np.arange(-3.0, -2.95, 0.003), np.arange(51.0, 51.05, 0.003))
    n = xs.size
    df = gpd.GeoDataFrame({"id": [f"ei{i}" for i in range(n)],
                           "embedding": list(rng.normal(size=(n, 384)).astype(np.float32))},
                          geometry=gpd.points_from_xy(xs.ravel(), ys.ravel()), crs="EPSG:4326")
    df.to_parquet(http_root.root / "30UWB_2024.parquet")
    other = df.copy()
    other["geometry"] = gpd.points_from_xy(xs.ravel() + 40, ys.ravel() - 40)
    other.to_parquet(http_root.root / "37PAA_2024.parquet")
    prov = et.EmbeddingTableProvider(et.EARTH_INDEX, urls=[f"{http_root.url}/37PAA_2024.parquet",
                                                            f"{http_root.url}/30UWB_2024.parquet"])
    monkeypatch.setitem(providers._factories, "earthindex", lambda: prov)
    monkeypatch.delitem(providers._instances, "earthindex", raising=False)
    try:
        lon, lat = -2.977, 51.021
        emb = rs_embed.get_embedding("earthindex", spatial=PointBuffer(lon, lat, 300))
        d = df.assign(lon=df.geometry.x, lat=df.geometry.y)
        sel = _expected(d, lon, lat, 300, 160, "lon", "lat")
        np.testing.assert_allclose(emb.data, np.stack(d.loc[sel, "embedding"].to_list()).mean(0), atol=1e-5)
        assert emb.data.shape == (384,) and emb.meta["input"]["n_rows"] == int(sel.sum())
        # the far tile's GeoParquet bbox misses the ROI: its footer is read, never its rows
        far = _bytes(http_root, "37PAA_2024.parquet")
        assert far < (http_root.root / "37PAA_2024.parquet").stat().st_size / 2
        assert rs_embed.describe_model("earthindex")["embedding_dim"] == 384
    finally:
        providers._instances.pop("earthindex", None)
