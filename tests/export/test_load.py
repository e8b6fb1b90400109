"""load_export: both layouts and formats, NaN rows aligned by point index, clear errors."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pytest

from rs_embed import ExportResult, load_export

import fakes
from fakes import T, ex

MODELS = ["fake_stats", "fake_red"]


def _kw(prov, n=6):
    return dict(spatials=fakes.points(n), temporal=T, models=MODELS, backend=prov, show_progress=False)


@pytest.mark.parametrize("layout,fmt", [("per_item", "npz"), ("per_item", "netcdf"), ("combined", "npz"),
                                        ("combined", "netcdf")])
def test_load_every_layout_and_format(layout, fmt, tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout=layout, format=fmt)
    path = tmp_path / "x" if layout == "per_item" else tmp_path / ("x.npz" if fmt == "npz" else "x.nc")
    r = load_export(path, inputs=True)
    assert isinstance(r, ExportResult) and r.layout == layout and r.format == fmt
    assert r.n_items == 6 and r.status == "ok" and r.ok_models == MODELS and r.failed_models == []
    assert r.spatials == [p.to_dict() for p in fakes.points(6)] and r.temporal == T.to_dict()
    assert r.embedding("fake_stats").shape == (6, 8) and r.embedding("fake_red").shape == (6, 4)
    assert r.inputs("fake_red").shape == (6, 2, 8, 8)
    assert len(r.models["fake_stats"].meta) == 6 and r.models["fake_stats"].meta[0]["model"] == "fake_stats"
    assert isinstance(r.manifest, dict)
    direct = fakes.FakeProvider().fetch(fakes.points(6)[4], T, _s2())
    np.testing.assert_array_equal(r.inputs("fake_stats")[4], direct.data)
    assert load_export(path, inputs=False).models["fake_stats"].inputs is None
    assert load_export(path).models["fake_stats"].inputs is None  # inputs only when asked


def _s2():
    from rs_embed import SensorSpec

    return SensorSpec(fakes.COLLECTION, fakes.BANDS)


def test_combined_loads_from_json_and_from_the_out_name(tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "run"), layout="combined")
    a = load_export(tmp_path / "run.json")
    b = load_export(str(tmp_path / "run"))
    np.testing.assert_array_equal(a.embedding("fake_stats"), b.embedding("fake_stats"))


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_rows_stay_aligned_when_a_model_fails_everywhere_or_at_the_end(layout, tmp_path, monkeypatch):

    def broken(self, inputs, **kw):
        raise RuntimeError("red is broken (fake)")

    monkeypatch.setattr(fakes.RedStatsEmbedder, "embed_batch", broken)
    monkeypatch.setattr(fakes.RedStatsEmbedder, "embed", broken)
    pts = fakes.points(6)
    ex(_kw(fakes.FakeProvider(permanent=[pts[5].lon])), out=str(tmp_path / "x"), layout=layout,
       continue_on_error=True)
    r = load_export(tmp_path / "x" if layout == "per_item" else tmp_path / "x.npz")
    assert r.n_items == 6  # the failed last point does not vanish
    assert r.status == "partial" and r.failed_models == ["fake_red"] and r.ok_models == []
    emb = r.embedding("fake_stats")
    assert np.isnan(emb[5]).all() and not np.isnan(emb[:5]).any()
    assert r.models["fake_stats"].status == "partial" and r.models["fake_stats"].meta[5] == {}
    with pytest.raises(ValueError, match="fake_red.*failed"):
        r.embedding("fake_red")
    assert "red is broken" in r.models["fake_red"].error or "no imagery" in r.models["fake_red"].error
    with pytest.raises(KeyError, match="'nope' is not in this export"):
        r.embedding("nope")


def test_per_item_status_is_partial_not_ok(tmp_path):
    pts = fakes.points(4)
    ex(_kw(fakes.FakeProvider(permanent=[pts[1].lon]), n=4), out=str(tmp_path / "x"), layout="per_item",
       continue_on_error=True)
    r = load_export(tmp_path / "x")
    assert r.status == "partial" and r.models["fake_stats"].status == "partial"
    assert r.models["fake_stats"].failed_indices == [1]


def test_per_item_missing_trailing_files_keep_n_items(tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="per_item")
    os.remove(tmp_path / "x" / "p00005.npz")
    r = load_export(tmp_path / "x")
    assert r.n_items == 6 and np.isnan(r.embedding("fake_stats")[5]).all()
    assert r.models["fake_stats"].status == "partial"


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        load_export(tmp_path / "missing.npz")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not an export"):
        load_export(tmp_path / "notes.txt")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no manifest"):
        load_export(tmp_path / "plain.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no export"):
        load_export(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("[1, 2]")
    np.savez(tmp_path / "bad.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an export manifest"):
        load_export(tmp_path / "bad.json")


def test_netcdf_without_xarray_names_the_packages(tmp_path, monkeypatch):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="combined", format="netcdf")
    real_import = builtins.__import__

    def no_xarray(name, *a, **k):
        if name.split(".")[0] in ("xarray", "netCDF4"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_xarray)
    with pytest.raises(ImportError, match="pip install xarray netCDF4"):
        load_export(tmp_path / "x.nc")


def test_reads_files_laid_out_like_the_public_rs_embed(tmp_path):
    """A combined export with dense and ragged keys and a per-item folder, as the public rs-embed writes them."""
    n = 3
    emb = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    inp = np.ones((n, 2, 5, 5), np.float32)
    np.savez_compressed(tmp_path / "pub.npz", embeddings__m_1=emb, inputs_bchw__m_1=inp,
                        embedding__other__00000=emb[0], embedding__other__00002=emb[2])
    (tmp_path / "pub.json").write_text(json.dumps({
        "created_at": "2025-01-01T00:00:00Z", "status": "partial", "n_items": n, "temporal": None,
        "spatials": [{"lon": 1.0, "lat": 2.0, "buffer_m": 100, "crs": "EPSG:4326"}] * n,
        "models": [
            {"model": "m-1", "status": "ok", "embeddings": {"npz_key": "embeddings__m_1"},
             "inputs": {"npz_key": "inputs_bchw__m_1"}, "metas": [{}, {}, {}]},
            {"model": "other", "status": "partial",
             "embeddings": {"npz_keys": ["embedding__other__00000", "embedding__other__00002"], "indices": [0, 2]},
             "metas": [{"a": 1}, None, {"a": 3}], "failed_indices": [1]},
        ]}))
    r = load_export(tmp_path / "pub.npz")
    np.testing.assert_array_equal(r.embedding("m-1"), emb)
    o = r.embedding("other")
    assert np.isnan(o[1]).all() and (o[[0, 2]] == emb[[0, 2]]).all()
    d = tmp_path / "items"
    d.mkdir()
    for i in (0, 2):  # no run manifest, no point 1 file
        np.savez(d / f"p{i:05d}.npz", embedding__m=emb[i])
        (d / f"p{i:05d}.json").write_text(json.dumps({
            "point_index": i, "status": "ok", "spatial": {"lon": 1.0, "lat": 2.0, "buffer_m": 1, "crs": "EPSG:4326"},
            "models": [{"model": "m", "status": "ok", "embedding": {"npz_key": "embedding__m"}}]}))
    r = load_export(d)
    assert r.n_items == 3 and np.isnan(r.embedding("m")[1]).all() and r.models["m"].status == "partial"


def test_format_keys_readable_by_public_reader_rules(tmp_path):
    """Our combined partial export uses the public key scheme: per-point keys + indices."""
    pts = fakes.points(5)
    m = ex(_kw(fakes.FakeProvider(permanent=[pts[2].lon]), n=5), out=str(tmp_path / "x"), layout="combined",
           continue_on_error=True)
    e = next(e for e in m["models"] if e["model"] == "fake_stats")
    assert e["embeddings"]["npz_keys"] == [f"embedding__fake_stats__{i:05d}" for i in (0, 1, 3, 4)]
    assert e["embeddings"]["indices"] == [0, 1, 3, 4]
    assert e["inputs"]["npz_key"] == "inputs_bchw__fake_stats" and e["inputs"]["indices"] == [0, 1, 3, 4]
    with np.load(tmp_path / "x.npz") as z:
        assert z["inputs_bchw__fake_stats"].shape == (4, 4, 8, 8)
