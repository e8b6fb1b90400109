"""Per-item exports at scale: static data once, sharded folders, the run index (resume and
loading read it), a lazy sequence of manifests, a lazy loader, NetCDF writer processes.

Thresholds are lowered with monkeypatch so the tests stay small; the production values
are the documented ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pytest
import xarray as xr

from rs_embed import load_export
from rs_embed.io import layout as L
from rs_embed.io import load as loadmod
from rs_embed.io import nc_pool, run_index
from rs_embed.io.lazy import LazySequence

import fakes
from fakes import T, ex


def _kw(prov, n=6, models=("fake_stats",), **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=list(models), backend=prov,
                show_progress=False, **extra)


def test_production_thresholds_are_the_documented_ones():
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "pages", "export.md")).read()
    assert L.SHARD_THRESHOLD == 10_000 and L.SHARD_SIZE == 4096 and nc_pool.POOL_MIN_POINTS == 200
    assert "more than 10,000 points" in doc and "i // 4096:04d" in doc and "200 or more points" in doc


# --------------------------------------------------------------------- sharding


def test_a_large_export_is_sharded_and_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "SHARD_THRESHOLD", 6)
    monkeypatch.setattr(L, "SHARD_SIZE", 4)
    flat, big = tmp_path / "flat", tmp_path / "big"
    ex(_kw(fakes.FakeProvider(), n=6), out=str(flat), layout="per_item")
    res = ex(_kw(fakes.FakeProvider(), n=10), out=str(big), layout="per_item")
    # at the threshold: the flat public layout, unchanged
    assert sorted(f for f in os.listdir(flat) if f.endswith(".npz")) == [f"p{i:05d}.npz" for i in range(6)]
    assert json.loads((flat / "rs_embed_export.json").read_text())["file_layout"] == {"kind": "flat"}
    # past it: sub-folders of SHARD_SIZE points, recorded in the run manifest
    assert sorted(e for e in os.listdir(big) if not e.startswith(".")) == [
        "0000", "0001", "0002", "rs_embed_export.json", "rs_embed_index.parquet"]
    assert sorted(os.listdir(big / "0001")) == [f"p{i:05d}{e}" for i in range(4, 8) for e in (".json", ".npz")]
    run = json.loads((big / "rs_embed_export.json").read_text())
    assert run["file_layout"]["kind"] == "sharded" and run["file_layout"]["shard_size"] == 4
    assert "spatials" not in run and "names" not in run  # in the index
    point = json.loads((big / "0002" / "p00009.json").read_text())
    assert point["run_manifest"] == "../rs_embed_export.json" and point["npz_path"] == str(big / "0002" / "p00009.npz")
    assert res[9]["npz_path"] == point["npz_path"] and res[9]["models"][0]["describe"] == run["models"][0]["describe"]
    a, b = load_export(flat), load_export(big)
    np.testing.assert_array_equal(a.embedding("fake_stats"), b.embedding("fake_stats")[:6])
    assert b.n_items == 10 and b.status == "ok" and b.names[9] == "p00009"
    assert list(b.spatials) == [p.to_dict() for p in fakes.points(10)]
    # resume reads the index; without it, the shard folders are scanned
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=10), out=str(big), layout="per_item", resume=True)
    assert prov.calls == 0
    os.remove(big / "rs_embed_index.parquet")
    assert load_export(big).models["fake_stats"].failed_indices == []
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=10), out=str(big), layout="per_item", resume=True)
    assert prov.calls == 0 and (big / "rs_embed_index.parquet").exists()


# ------------------------------------------------------------- index and resume


@pytest.fixture
def done(tmp_path):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider(), n=6), out=str(d), layout="per_item")
    return d


def test_resume_reads_the_index_not_the_point_manifests(done, monkeypatch):
    for i in range(6):  # still there, but not read: garbage would fail any parse
        (done / f"p{i:05d}.json").write_text("{not json")
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=6), out=str(done), layout="per_item", resume=True)
    assert prov.calls == 0


@pytest.mark.parametrize("index", ["missing", "corrupted", "stale"])
def test_resume_without_a_usable_index_scans_the_point_manifests(done, index):
    path = done / "rs_embed_index.parquet"
    if index == "missing":
        os.remove(path)
    elif index == "corrupted":
        data = bytearray(path.read_bytes())
        data[len(data) // 2:len(data) // 2 + 64] = b"\0" * 64
        path.write_bytes(bytes(data))
    else:  # rows of another request: fingerprints differ from this run's
        import pyarrow as pa
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        t = t.set_column(t.schema.get_field_index("fingerprint"), "fingerprint", pa.array(["0" * 40] * 6))
        pq.write_table(t, path)
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=6), out=str(done), layout="per_item", resume=True)
    assert prov.calls == 0
    assert load_export(done).status == "ok"


@pytest.mark.parametrize("index", [True, False])
def test_a_flipped_byte_is_exported_again(done, index):
    if not index:
        os.remove(done / "rs_embed_index.parquet")
    p = done / "p00003.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=6), out=str(done), layout="per_item", resume=True)
    assert sorted({lon for lon, _ in prov.fetched}) == [fakes.points(6)[3].lon]
    assert load_export(done).status == "ok"


def test_failed_points_in_the_index_are_retried(tmp_path):
    pts = fakes.points(6)
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider(permanent=[pts[2].lon]), n=6), out=str(d), layout="per_item",
       continue_on_error=True)
    import pyarrow.parquet as pq

    rows = pq.read_table(d / "rs_embed_index.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert rows[2]["error"].startswith("ProviderError") and rows[2]["file_sha1"] and rows[0]["model_status"] == ["ok"]
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=6), out=str(d), layout="per_item", resume=True)
    assert sorted({lon for lon, _ in prov.fetched}) == [pts[2].lon]


def test_index_parts_merge_newest_row_wins(tmp_path, monkeypatch):
    """What resume finds after a kill: the index of the run's start plus its part files."""
    monkeypatch.setattr(run_index, "FLUSH_ROWS", 2)
    names, fps = [f"p{i:05d}" for i in range(5)], [str(i) * 40 for i in range(5)]
    w = run_index.RunIndexWriter(str(tmp_path), names=names, fingerprints=fps, files=lambda i: names[i] + ".npz",
                                 spatials=[{"lon": i} for i in range(5)], models=["m"])
    w.write_full(final=True)  # all pending
    for i in (0, 1, 2):
        w.set(i, status="ok" if i != 1 else "failed", model_status=["ok" if i != 1 else "failed"], record=None)
    w.set(1, status="ok", model_status=["ok"], record=None)  # a retry, later
    parts = os.listdir(tmp_path / run_index.PARTS_DIR)
    assert len(parts) == 2  # flushed every 2 rows: (0, 1), then (2, 1 again)
    rows = run_index.read_index(str(tmp_path))
    assert rows.col("status") == ["ok", "ok", "ok", "pending", "pending"]
    assert rows.col("spatial")[4] == '{"lon": 4}' and rows.models == ["m"]
    (tmp_path / run_index.PARTS_DIR / sorted(parts)[-1]).write_bytes(b"garbage")  # a damaged part is skipped
    assert run_index.read_index(str(tmp_path)).col("status")[:3] == ["ok", "failed", "pending"]


# ------------------------------------------------------------------ lazy results


def test_export_batch_returns_a_lazy_sequence(done):
    res = ex(_kw(fakes.FakeProvider(), n=6), out=str(done), layout="per_item", resume=True)
    assert isinstance(res, Sequence) and isinstance(res, LazySequence) and not isinstance(res, list)
    every = [json.loads((done / f"p{i:05d}.json").read_text()) for i in range(6)]
    assert len(res) == 6 and res[-1]["point_index"] == 5 and res[0] is res[0]  # cached
    assert [m["point_index"] for m in res] == list(range(6))
    assert [m["point_index"] for m in res[1:5:2]] == [1, 3] and len(res[2:]) == 4 and res[::-1][0] == res[5]
    assert res == list(res) and res != list(res)[:5] and res[:2] == [res[0], res[1]]
    assert [m["request_fingerprint"] for m in res] == [m["request_fingerprint"] for m in every]
    assert res[0]["models"][0]["meta"]["sensor"] == every[0]["models"][0]["meta"].get("sensor", res[0][
        "models"][0]["meta"]["sensor"])
    with pytest.raises(IndexError):
        res[6]
    with pytest.raises(TypeError):
        res["p00000"]


def test_points_not_reached_are_none(tmp_path):
    import threading

    cancel = threading.Event()
    prov = fakes.FakeProvider(on_fetch=lambda s, _: cancel.set() if s.lon >= fakes.points(6)[2].lon else None)
    res = ex(_kw(prov, n=6, chunk_size=1, num_workers=1), out=str(tmp_path / "x"), layout="per_item",
             cancel=cancel)
    assert len(res) == 6 and res[0] is not None and res[5] is None


# ------------------------------------------------------------------- lazy loader


def test_one_models_embeddings_are_read_without_the_others(tmp_path, monkeypatch):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider(), n=5, models=("fake_stats", "fake_other", "fake_red")), out=str(d),
       layout="per_item")
    read, parsed = [], []
    real_npy, real_manifest = loadmod._Arrays._npy, loadmod._point_manifest
    monkeypatch.setattr(loadmod._Arrays, "_npy", lambda self, key: read.append(key) or real_npy(self, key))
    monkeypatch.setattr(loadmod, "_point_manifest", lambda p: parsed.append(p) or real_manifest(p))
    r = load_export(d)
    assert read == [] and parsed == []  # the run manifest and the index only
    assert r.embedding("fake_red").shape == (5, 4)
    assert read == ["embedding__fake_red"] * 5 and parsed == []
    assert r.models["fake_stats"].inputs is None  # inputs only when asked
    assert r.models["fake_red"].meta[3]["input"]["shape"] == [2, 8, 8] and len(parsed) == 1
    assert r.models["fake_red"].meta[3]["sensor"]["bands"] == ["B4", "B8"]
    # a patch two models share is read once, and both get the same array
    read.clear()
    r = load_export(d, inputs=True)
    a, b = r.models["fake_stats"].inputs, r.models["fake_other"].inputs
    assert a is b and a.shape == (5, 4, 8, 8) and read == ["input_chw__fake_stats"] * 5


# ----------------------------------------------------------------------- NetCDF


def test_netcdf_points_are_written_in_writer_processes(tmp_path, monkeypatch):
    monkeypatch.setattr("rs_embed.export.per_item.POOL_MIN_POINTS", 1)
    writes = []
    real = nc_pool.NetCDFPool.write

    def spy(self, path, variables, attrs):
        rec = real(self, path, variables, attrs)
        writes.append((path, [w.proc.pid for w in self._all]))
        return rec

    monkeypatch.setattr(nc_pool.NetCDFPool, "write", spy)
    kw = _kw(fakes.FakeProvider(), n=8, models=("fake_stats", "fake_red"), format="netcdf", writer_workers=2)
    ex(kw, out=str(tmp_path / "pool"), layout="per_item")
    monkeypatch.setattr("rs_embed.export.per_item.POOL_MIN_POINTS", 10**9)
    ex(dict(kw, backend=fakes.FakeProvider()), out=str(tmp_path / "here"), layout="per_item")
    assert len(writes) == 8 and os.getpid() not in {p for _, pids in writes for p in pids}
    a, b = load_export(tmp_path / "pool", inputs=True), load_export(tmp_path / "here", inputs=True)
    for m in ("fake_stats", "fake_red"):
        np.testing.assert_array_equal(a.embedding(m), b.embedding(m))
        np.testing.assert_array_equal(a.inputs(m), b.inputs(m))
    with xr.open_dataset(tmp_path / "pool" / "p00007.nc") as ds:
        assert list(ds["band"].values) == list(fakes.BANDS) and ds.attrs["point_index"] == 7
    prov = fakes.FakeProvider()  # their checksums verify on resume
    ex(dict(kw, backend=prov), out=str(tmp_path / "pool"), layout="per_item", resume=True)
    assert prov.calls == 0
