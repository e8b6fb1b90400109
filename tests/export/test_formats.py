"""GeoParquet and Zarr outputs of combined exports: real files through the public API,
read back by load_export, geopandas, DuckDB and xarray; resume after SIGKILL; clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from rs_embed import OutputSpec, PointBuffer, BBox, export_batch, load_export
from rs_embed.errors import SpecError
from rs_embed.geometry import roi_grid

import fakes

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["fake_stats", "fake_red"]


def _base(n=40, **kw):
    return dict(spatials=fakes.points(n), temporal=fakes.T, models=MODELS, layout="combined",
                chunk_size=8, show_progress=False, **kw)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One request exported as npz, parquet and zarr (a failing point included)."""
    root = tmp_path_factory.mktemp("formats")
    bad = fakes.points(40)[7].center[0]
    out = {}
    for fmt in ("npz", "parquet", "zarr"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_batch(**_base(), out=str(root / fmt / "run"), backend=fakes.FakeProvider(permanent=[bad]),
                         format=fmt, continue_on_error=True, save_inputs=fmt != "parquet")
        out[fmt] = str(root / fmt / "run")
    return out


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("lazy", [False, True])
def test_load_export_equals_the_npz_export(exports, fmt, lazy):
    ref = load_export(exports["npz"], inputs=True)
    r = load_export(exports[fmt], lazy=lazy, inputs=True)
    assert r.format == fmt and r.n_items == 40 and r.status == "partial"
    for m in MODELS:
        a, b = r.embedding(m), ref.embedding(m)
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        assert r.models[m].failed_indices == [7]
        if fmt == "zarr":
            assert np.array_equal(r.inputs(m), ref.inputs(m), equal_nan=True)
        else:
            assert r.inputs(m) is None  # a table of pooled vectors holds no patches


def test_parquet_is_geoparquet_for_geopandas(exports):
    import geopandas as gpd
    import shapely

    path = exports["parquet"] + ".parquet"
    gdf = gpd.read_parquet(path)
    assert gdf.crs.to_epsg() == 4326
    assert len(gdf) == 40 * len(MODELS)
    assert set(gdf.model) == set(MODELS)
    row = gdf[(gdf.model == "fake_stats") & (gdf.point_index == 3)].iloc[0]
    sp = fakes.points(40)[3]
    want = shapely.Polygon(roi_grid(sp, 10).lonlat_ring())
    assert row.geometry.equals_exact(want, 1e-9)
    assert (row.lon, row.lat) == sp.center and row.utm_crs == "EPSG:32632"
    assert len(row.embedding) == 8 and row.status == "ok"
    failed = gdf[gdf.point_index == 7]
    assert set(failed.status) == {"failed"} and failed.embedding.isna().all()
    assert "no imagery" in failed.error.iloc[0]
    meta = json.loads(__import__("pyarrow.parquet", fromlist=["x"]).read_metadata(path).metadata[b"geo"])
    assert meta["version"] == "1.1.0" and meta["columns"]["geometry"]["encoding"] == "WKB"
    assert meta["columns"]["geometry"]["crs"]["id"]["code"] == 4326


def test_parquet_reads_in_duckdb_without_the_spatial_extension(exports):
    import duckdb

    path = exports["parquet"] + ".parquet"
    rows = duckdb.sql(f"SELECT model, count(*) AS n, sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) AS ok, "
                      f"max(len(embedding)) AS d FROM '{path}' GROUP BY model ORDER BY model").fetchall()
    assert rows == [("fake_red", 40, 39, 8), ("fake_stats", 40, 39, 8)]


def test_parquet_carries_the_run_metadata(exports):
    import pyarrow.parquet as pq

    path = exports["parquet"] + ".parquet"
    meta = json.loads(pq.read_metadata(path).metadata[b"rs_embed"])
    man = json.loads(open(exports["parquet"] + ".json").read())
    assert meta["request_fingerprint"] == man["request_fingerprint"]
    assert [m["model"] for m in meta["models"]] == MODELS and meta["models"][0]["describe"]
    assert man["parquet_path"].endswith("run.parquet")


def test_zarr_opens_in_xarray_with_dims_and_coordinates(exports):
    import xarray as xr

    ds = xr.open_zarr(exports["zarr"] + ".zarr")
    assert ds.sizes["point"] == 40
    assert {"lon", "lat", "time_start", "time_end"} <= set(ds.coords)
    emb = ds["embeddings__fake_stats"]
    assert emb.dims == ("point", "dim__fake_stats")
    assert np.isnan(emb[7].values).all() and int(ds["status__fake_stats"][7]) == 2
    assert ds["inputs_bchw__fake_stats"].dims[0] == "point"
    assert str(ds.time_start.values[0])[:10] == "2022-06-01"
    ds2 = xr.open_dataset(exports["zarr"] + ".zarr", engine="zarr")
    assert ds2.sizes["point"] == 40


@pytest.mark.parametrize("fmt", ["npz", "parquet", "zarr"])
def test_to_geodataframe_and_to_xarray_for_every_format(exports, fmt):
    r = load_export(exports[fmt])
    gdf = r.to_geodataframe()
    assert gdf.crs.to_epsg() == 4326 and len(gdf) == 80
    ok = gdf[(gdf.model == "fake_red") & (gdf.status == "ok")]
    assert np.allclose(np.stack(ok.embedding.to_list()), r.embedding("fake_red")[ok.point_index])
    ds = r.to_xarray()
    assert ds.sizes["point"] == 40 and "lon" in ds.coords
    assert np.array_equal(np.asarray(ds["embeddings__fake_red"]), r.embedding("fake_red"), equal_nan=True)


def test_to_geodataframe_of_a_per_item_export(tmp_path):
    export_batch(spatials=fakes.points(5), temporal=fakes.T, models=["fake_stats"], out=str(tmp_path / "d"),
                 layout="per_item", backend=fakes.FakeProvider(), show_progress=False)
    r = load_export(tmp_path / "d")
    gdf = r.to_geodataframe()
    assert len(gdf) == 5 and list(gdf.name) == [f"p{i:05d}" for i in range(5)]
    assert r.to_xarray()["embeddings__fake_stats"].shape == (5, 8)


def test_zarr_holds_grid_embeddings(tmp_path):
    out = str(tmp_path / "g")
    export_batch(**_base(12), out=out, backend=fakes.FakeProvider(), format="zarr", output=OutputSpec.grid())
    ref = str(tmp_path / "gn")
    export_batch(**_base(12), out=ref, backend=fakes.FakeProvider(), format="npz", output=OutputSpec.grid())
    a, b = load_export(out), load_export(ref)
    assert a.embedding("fake_stats").shape == (12, 4, 2, 2)
    assert np.array_equal(a.embedding("fake_stats"), b.embedding("fake_stats"))


def test_resume_of_a_finished_export_reads_nothing_again(tmp_path):
    for fmt in ("parquet", "zarr"):
        out = str(tmp_path / fmt)
        kw = _base(16, save_inputs=fmt == "zarr")
        export_batch(**kw, out=out, backend=fakes.FakeProvider(), format=fmt)
        prov = fakes.FakeProvider()
        res = export_batch(**kw, out=out, backend=prov, format=fmt, resume=True)
        assert prov.calls == 0 and res["status"] == "ok"


def _progress(out: str) -> int:
    parts = out + ".parts"
    return sum(f.startswith("s") and f.endswith(".json") for f in os.listdir(parts)) * 16 if os.path.isdir(parts) else 0


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, fmt):
    n = 240
    env = dict(os.environ, CRASH_JOB_FORMAT=fmt)

    def run(out, *extra, latency="0.01"):
        return subprocess.Popen([sys.executable, os.path.join(HERE, "crash_job.py"), out, "combined", str(n),
                                 latency, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    out = str(tmp_path / "killed" / "run")
    os.makedirs(os.path.dirname(out))
    proc = run(out)
    deadline = time.monotonic() + 120
    while _progress(out) < n // 3:
        assert proc.poll() is None, f"the export ended before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done = _progress(out)
    assert done < n
    if fmt == "parquet":
        assert not os.path.exists(out + ".parquet")  # the final file only appears when complete
    else:  # the store is readable while (and after) the run: what it holds is whole
        import xarray as xr

        ds = xr.open_zarr(out + ".zarr", consolidated=False)
        st = np.asarray(ds["status__fake_stats"])
        if "embeddings__fake_stats" in ds:  # created with the first whole chunk of points
            emb = np.asarray(ds["embeddings__fake_stats"])
            assert np.isfinite(emb[st == 1]).all() and np.isnan(emb[st == 0]).all()
        else:
            assert (st == 0).all()
    resumed = run(out, "--resume")
    assert resumed.wait(120) == 0, resumed.stderr.read()
    calls = json.loads(resumed.stdout.read().strip().splitlines()[-1])["calls"]
    assert calls <= 2 * (n - done + 16)  # finished points were not fetched again
    ref = str(tmp_path / "ref" / "run")
    os.makedirs(os.path.dirname(ref))
    assert run(ref, latency="0").wait(120) == 0
    a, b = load_export(out), load_export(ref)
    assert a.status == "ok" and a.n_items == n and not os.path.exists(out + ".parts")
    for m in ("fake_stats", "fake_red"):
        assert np.array_equal(a.embedding(m), b.embedding(m))
    if fmt == "zarr":
        a2, b2 = load_export(out, inputs=True), load_export(ref, inputs=True)
        assert np.array_equal(a2.inputs("fake_stats"), b2.inputs("fake_stats"))


def test_parquet_refuses_grid_output_naming_zarr(tmp_path):
    with pytest.raises(SpecError, match="format='zarr'"):
        export_batch(**_base(4), out=str(tmp_path / "x"), backend=fakes.FakeProvider(), format="parquet",
                     output=OutputSpec.grid(), save_inputs=False)
    assert not os.listdir(tmp_path)


def test_parquet_warns_once_that_it_keeps_no_inputs(tmp_path):
    with pytest.warns(UserWarning, match="stores no input patches"):
        res = export_batch(**_base(4), out=str(tmp_path / "x"), backend=fakes.FakeProvider(), format="parquet")
    assert all(e["inputs"] is None for e in res["models"])


def test_zarr_refuses_ragged_patches_before_any_work(tmp_path):
    prov = fakes.FakeProvider()
    rois = [PointBuffer(11.0, 46.0, 40), PointBuffer(11.1, 46.0, 60)]
    with pytest.raises(SpecError, match=r"spatials\[1\].*6 x 6|spatials\[1\]"):
        export_batch(spatials=rois, temporal=fakes.T, models=["fake_stats"], out=str(tmp_path / "x"),
                     layout="combined", format="zarr", backend=prov, show_progress=False)
    assert prov.calls == 0 and not os.listdir(tmp_path)
    # pooled embeddings alone do not depend on the patch size
    export_batch(spatials=rois, temporal=fakes.T, models=["fake_stats"], out=str(tmp_path / "y"),
                 layout="combined", format="zarr", backend=prov, save_inputs=False, show_progress=False)


def test_parquet_and_zarr_need_the_combined_layout(tmp_path):
    for fmt in ("parquet", "zarr"):
        with pytest.raises(SpecError, match="layout='combined'"):
            export_batch(spatials=fakes.points(2), temporal=fakes.T, models=["fake_stats"],
                         out=str(tmp_path / "d"), layout="per_item", format=fmt, backend=fakes.FakeProvider())


def test_a_missing_extra_is_named_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "zarr" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'rs_embed\[zarr\]'"):
        export_batch(**_base(2), out=str(tmp_path / "x"), backend=fakes.FakeProvider(), format="zarr")
    assert not os.listdir(tmp_path)


def test_zarr_does_not_overwrite_a_folder_it_did_not_write(tmp_path):
    store = tmp_path / "x.zarr"
    store.mkdir()
    (store / "mine.txt").write_text("keep")
    with pytest.raises(SpecError, match="not an rs_embed Zarr export"):
        export_batch(**_base(2), out=str(tmp_path / "x"), backend=fakes.FakeProvider(), format="zarr")
    assert (store / "mine.txt").read_text() == "keep"


def test_explicit_extensions_are_accepted(tmp_path):
    res = export_batch(**_base(3, save_inputs=False), out=str(tmp_path / "a.parquet"),
                       backend=fakes.FakeProvider(), format="parquet")
    assert res["parquet_path"].endswith("a.parquet")
    res = export_batch(**_base(3), out=str(tmp_path / "b.zarr"), backend=fakes.FakeProvider(), format="zarr")
    assert res["zarr_path"].endswith("b.zarr") and os.path.isdir(tmp_path / "b.zarr")
    assert load_export(tmp_path / "b.zarr").n_items == 3
    with pytest.raises(SpecError, match="ends with '.npz'"):
        export_batch(**_base(3), out=str(tmp_path / "c.npz"), backend=fakes.FakeProvider(), format="zarr")


def test_cli_writes_parquet_and_zarr(tmp_path, capsys):
    from rs_embed.cli import main
    from rs_embed.providers import register_provider

    register_provider("fmtfake", fakes.FakeProvider)
    csv = tmp_path / "pts.csv"
    csv.write_text("11.0,46.0\n11.01,46.0\n")
    base = ["--models", "fake_stats", "--backend", "fmtfake", "--start", "2022-06-01", "--end", "2022-09-01",
            "--buffer-m", "40", "--no-progress", "--no-inputs"]
    assert main(["export", "--rois", str(csv), *base, "--out", str(tmp_path / "t.parquet")]) == 0
    assert main(["export", "--rois", str(csv), *base, "--out", str(tmp_path / "s"), "--format", "zarr"]) == 0
    assert load_export(tmp_path / "t.parquet").n_items == 2
    assert load_export(tmp_path / "s.zarr").embedding("fake_stats").shape == (2, 8)


def test_lonboard_builds_a_layer_from_the_parquet_file(exports):
    import geopandas as gpd
    lonboard = pytest.importorskip("lonboard")

    gdf = gpd.read_parquet(exports["parquet"] + ".parquet")
    m = lonboard.viz(gdf[["geometry", "model", "status", "lon"]])
    assert len(m.layers) >= 1
