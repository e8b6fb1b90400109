"""Layouts, formats and what is saved: file names, array keys and manifest fields of the public rs-embed."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence

import numpy as np
import pytest

from rs_embed import ExportTarget, OutputSpec, export_npz, load_export
from rs_embed.io.manifest import expand_point_manifest

import fakes
from fakes import T, ex

PER_ITEM_TOP = {"created_at", "point_index", "status", "backend", "device", "models", "spatial", "temporal",
                "output", "package_version", "summary", "request_fingerprint", "manifest_path"}
PER_ITEM_MODEL = {"model", "status", "sensor", "describe", "input", "embedding", "meta", "error"}
COMBINED_TOP = {"created_at", "status", "stage", "resume_incomplete", "backend", "device", "n_items", "temporal",
                "output", "spatials", "models", "request_fingerprint", "summary", "completed_at", "manifest_path"}
COMBINED_MODEL = {"model", "sensor", "status", "describe", "inputs", "embeddings", "metas", "failed_indices",
                  "errors_by_index", "error"}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _sha1(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_per_item_files_keys_and_manifest(tmp_path, base_kwargs, provider, pts):
    out = tmp_path / "items"
    res = ex(base_kwargs, models=["fake_stats", "fake_other", "fake_red"], out=str(out),
                       layout="per_item")
    run = json.loads((out / "rs_embed_export.json").read_text())
    static = {e["model"]: e for e in run["models"]}
    assert isinstance(res, Sequence) and len(res) == len(pts) and res == list(res)
    names = sorted(os.listdir(out))
    assert names == sorted([f"p{i:05d}{e}" for i in range(len(pts)) for e in (".npz", ".json")]
                           + ["rs_embed_export.json", "rs_embed_index.parquet"])
    # one fetch per point and distinct patch: fake_stats and fake_other share theirs
    assert provider.calls == 2 * len(pts)
    for i, m in enumerate(res):
        assert PER_ITEM_TOP <= set(m) and ("npz_path" in m and "npz_keys" in m)
        assert m["point_index"] == i and m["status"] == "ok" and ISO_Z.match(m["created_at"])
        assert m["summary"] == {"total_models": 3, "failed_models": 0, "ok_models": 3}
        assert m["spatial"] == pts[i].to_dict() and m["spatial"]["type"] == "PointBuffer"
        assert m["temporal"] == T.to_dict() and m["output"] == OutputSpec.pooled().to_dict()
        on_disk = json.loads((out / f"p{i:05d}.json").read_text())
        # on disk the static parts are in the run manifest; the returned manifest has them back
        assert PER_ITEM_TOP <= set(on_disk) and on_disk["run_manifest"] == "rs_embed_export.json"
        assert expand_point_manifest(on_disk, static, {"input_prep": run["input_prep"]}) == m
        for e in on_disk["models"]:
            assert PER_ITEM_MODEL <= set(e) and "$ref" in e["describe"] and "sensor" not in e["meta"]
        with np.load(out / f"p{i:05d}.npz") as z:
            assert sorted(z.files) == sorted(m["npz_keys"]) == sorted(
                ["input_chw__fake_stats", "embedding__fake_stats", "embedding__fake_other",
                 "input_chw__fake_red", "embedding__fake_red"])
            by = {e["model"]: e for e in m["models"]}
            assert [e["model"] for e in m["models"]] == ["fake_stats", "fake_other", "fake_red"]
            for e in m["models"]:
                assert PER_ITEM_MODEL <= set(e) and e["status"] == "ok" and e["error"] is None
                assert e["embedding"]["sha1"] == _sha1(z[e["embedding"]["npz_key"]])
                assert e["input"]["sha1"] == _sha1(z[e["input"]["npz_key"]])
                assert e["input"]["dtype"] == "float32" and e["embedding"]["dtype"] == "float32"
                assert e["meta"]["model"] == e["model"] and e["meta"]["backend"] == "fake"
            assert by["fake_other"]["input"]["dedup_reused"] is True
            assert by["fake_other"]["input"]["npz_key"] == "input_chw__fake_stats"
            assert "dedup_reused" not in by["fake_stats"]["input"]
            assert z["input_chw__fake_red"].shape == (2, 8, 8) and z["input_chw__fake_stats"].shape == (4, 8, 8)
            assert z["embedding__fake_stats"].dtype == np.float32 and z["embedding__fake_stats"].shape == (8,)
    assert run["n_items"] == len(pts) and run["status"] == "ok" and run["names"][0] == "p00000"
    assert run["file_layout"] == {"kind": "flat"} and run["index"] == "rs_embed_index.parquet"


def test_per_item_names_and_legacy_out_dir(tmp_path, base_kwargs, pts):
    names = [f"site-{i}" for i in range(len(pts))]
    res = ex(base_kwargs, out_dir=str(tmp_path / "d"), names=names)
    assert [m["name"] for m in res] == names
    assert all((tmp_path / "d" / f"{n}.npz").exists() and (tmp_path / "d" / f"{n}.json").exists() for n in names)
    r = load_export(tmp_path / "d")
    assert r.names == names and r.n_items == len(pts)


def test_model_keys_use_the_users_spelling(tmp_path, base_kwargs):
    res = ex(base_kwargs, spatials=base_kwargs["spatials"][:1], models=["Fake-Stats"],
                       out_dir=str(tmp_path / "d"))
    assert res[0]["npz_keys"] == ["input_chw__Fake_Stats", "embedding__Fake_Stats"]
    assert res[0]["models"][0]["model"] == "Fake-Stats"


@pytest.mark.parametrize("kw,expect", [
    (lambda d: dict(out=str(d / "run"), layout="combined"), "run.npz"),
    (lambda d: dict(out=str(d / "run.npz"), layout="combined"), "run.npz"),
    (lambda d: dict(out_path=str(d / "legacy.npz")), "legacy.npz"),
    (lambda d: dict(out_path=str(d / "legacy")), "legacy.npz"),
    (lambda d: dict(target=ExportTarget.combined(str(d / "t"))), "t.npz"),
])
def test_combined_paths(kw, expect, tmp_path, base_kwargs, pts):
    m = ex(base_kwargs, **kw(tmp_path))
    assert isinstance(m, dict)
    assert m["npz_path"] == str(tmp_path / expect)
    stem = os.path.splitext(expect)[0]
    assert sorted(os.listdir(tmp_path)) == sorted([expect, stem + ".json"])  # checkpoint folder removed
    on_disk = json.loads((tmp_path / f"{stem}.json").read_text())
    assert on_disk == m


def test_combined_keys_and_manifest(tmp_path, base_kwargs, provider, pts):
    m = ex(base_kwargs, models=["fake_stats", "fake_other", "fake_red"], out=str(tmp_path / "c"),
                     layout="combined")
    assert COMBINED_TOP <= set(m) and m["status"] == "ok" and m["n_items"] == len(pts)
    assert ISO_Z.match(m["created_at"]) and ISO_Z.match(m["completed_at"])
    assert m["summary"]["partial_models"] == 0 and m["summary"]["ok_models"] == 3
    assert m["spatials"] == [p.to_dict() for p in pts]
    assert provider.calls == 2 * len(pts)
    with np.load(tmp_path / "c.npz") as z:
        assert sorted(z.files) == sorted(m["npz_keys"]) == sorted(
            ["inputs_bchw__fake_stats", "embeddings__fake_stats", "embeddings__fake_other",
             "inputs_bchw__fake_red", "embeddings__fake_red"])
        assert z["inputs_bchw__fake_stats"].shape == (len(pts), 4, 8, 8)
        assert z["embeddings__fake_red"].shape == (len(pts), 4)
        by = {e["model"]: e for e in m["models"]}
        for e in m["models"]:
            assert COMBINED_MODEL <= set(e)
            assert e["embeddings"] == {"npz_key": f"embeddings__{e['model']}",
                                       "shape": list(z[f"embeddings__{e['model']}"].shape), "dtype": "float32"}
            assert len(e["metas"]) == len(pts) and e["failed_indices"] == [] and e["errors_by_index"] == {}
        assert by["fake_other"]["inputs"]["npz_key"] == "inputs_bchw__fake_stats"
        assert by["fake_other"]["inputs"]["dedup_reused"] is True
        # the same patch bytes the provider returns
        p = provider.fetch(pts[2], T, fakes_sensor())
        np.testing.assert_array_equal(z["inputs_bchw__fake_stats"][2], p.data)


def fakes_sensor():
    from rs_embed.specs import SensorSpec

    return SensorSpec(fakes.COLLECTION, fakes.BANDS)


def test_per_item_and_combined_hold_the_same_numbers(tmp_path, base_kwargs, pts):
    ex(base_kwargs, models=["fake_stats", "fake_red"], out=str(tmp_path / "i"), layout="per_item")
    ex(base_kwargs, models=["fake_stats", "fake_red"], out=str(tmp_path / "c"), layout="combined")
    a, b = load_export(tmp_path / "i", inputs=True), load_export(tmp_path / "c.npz", inputs=True)
    for model in ("fake_stats", "fake_red"):
        np.testing.assert_array_equal(a.embedding(model), b.embedding(model))
        np.testing.assert_array_equal(a.inputs(model), b.inputs(model))


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_save_inputs_and_embeddings_flags(layout, tmp_path, base_kwargs):
    for si, se in ((False, True), (True, False), (False, False)):
        d = tmp_path / f"{si}{se}"
        res = ex(base_kwargs, out=str(d / "x"), layout=layout, save_inputs=si, save_embeddings=se)
        keys = res[0]["npz_keys"] if layout == "per_item" else res["npz_keys"]
        assert any(k.startswith("input") for k in keys) is si
        assert any(k.startswith("embedding") for k in keys) is se
        if layout == "per_item":
            e = res[0]["models"][0]
            assert (e["input"]["npz_key"] is None) is (not si) and e["input"]["shape"] == [4, 8, 8]
            assert (e["embedding"]["npz_key"] is None) is (not se)
            assert e["meta"] is not None  # the model still ran
        else:
            e = res["models"][0]
            assert (e["inputs"] is None) is (not si) and (e["embeddings"] is None) is (not se)
            assert all(mm is not None for mm in e["metas"])


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_save_manifest_false_writes_no_json(layout, tmp_path, base_kwargs):
    res = ex(base_kwargs, out=str(tmp_path / "x"), layout=layout, save_manifest=False)
    jsons = [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".json")]
    assert jsons == []
    assert (res[0] if layout == "per_item" else res)["status"] == "ok"


def test_grid_output(tmp_path, base_kwargs, pts):
    m = ex(base_kwargs, output=OutputSpec.grid(), out=str(tmp_path / "g"), layout="combined")
    with np.load(tmp_path / "g.npz") as z:
        assert z["embeddings__fake_stats"].shape == (len(pts), 4, 2, 2)
    assert m["models"][0]["metas"][0]["grid_hw"] == [2, 2]


def test_export_npz(tmp_path, provider, pts):
    m = export_npz(spatial=pts[0], temporal=T, models=["fake_stats", "fake_red"], out_path=str(tmp_path / "a" / "b" / "one"),
                   backend=provider)
    assert m["npz_path"] == str(tmp_path / "a" / "b" / "one.npz") and m["n_items"] == 1
    with np.load(m["npz_path"]) as z:
        assert z["embeddings__fake_stats"].shape == (1, 8)
    assert (tmp_path / "a" / "b" / "one.json").exists()


# ----------------------------------------------------------------- NetCDF


def test_netcdf_combined_loads_in_plain_xarray(tmp_path, base_kwargs, pts):
    import xarray as xr

    m = ex(base_kwargs, models=["fake_stats", "fake_red"], out=str(tmp_path / "c"), layout="combined",
                     format="netcdf")
    assert m["nc_path"] == str(tmp_path / "c.nc") and "nc_variables" in m
    with xr.open_dataset(tmp_path / "c.nc") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["n_items"] == len(pts)
        for a in ("history", "created_at", "backend", "device"):
            assert a in ds.attrs
        v = ds["inputs_bchw__fake_stats"]
        assert v.dims == ("point", "band", "y", "x")
        assert list(ds["band"].values) == list(fakes.BANDS)
        assert ds["embeddings__fake_stats"].dims == ("point", "dim")
        assert ds["embeddings__fake_red"].dims[0] == "point"
        assert list(ds["point"].values) == list(range(len(pts)))
        np.testing.assert_allclose(ds["lon"].values, [p.lon for p in pts])
        assert ds["lon"].attrs["units"] == "degrees_east" and ds["lat"].attrs["units"] == "degrees_north"
        assert set(ds["embeddings__fake_stats"].coords) >= {"lon", "lat", "point"}
        assert ds["embeddings__fake_stats"].attrs["units"] == "1"
        assert ds["crs__fake_stats"].values[0].startswith("EPSG:326")
        np_version = ex(base_kwargs, models=["fake_stats", "fake_red"], out=str(tmp_path / "n"),
                                  layout="combined")
        with np.load(np_version["npz_path"]) as z:
            np.testing.assert_array_equal(ds["embeddings__fake_stats"].values, z["embeddings__fake_stats"])
            np.testing.assert_array_equal(v.values, z["inputs_bchw__fake_stats"])


def test_netcdf_per_item_loads_in_plain_xarray(tmp_path, base_kwargs, pts):
    import xarray as xr

    res = ex(base_kwargs, models=["fake_stats", "fake_red"], out=str(tmp_path / "d"),
                       layout="per_item", format="netcdf")
    assert res[0]["nc_path"].endswith("p00000.nc")
    with xr.open_dataset(tmp_path / "d" / "p00001.nc") as ds:
        v = ds["input_chw__fake_stats"]
        assert v.dims == ("band", "y", "x") and list(v["band"].values) == list(fakes.BANDS)
        assert ds["x"].attrs["units"] == "m" and ds["x"].attrs["standard_name"] == "projection_x_coordinate"
        assert float(ds["lon"]) == pytest.approx(pts[1].lon)
        assert ds["crs__fake_stats"].attrs["spatial_ref"].startswith("EPSG:")
        assert ds["embedding__fake_stats"].dims == ("dim",)
        assert ds["input_chw__fake_red"].dims[0] == "band__fake_red"
        assert ds.attrs["point_index"] == 1 and ds.attrs["Conventions"] == "CF-1.8"
        # pixel centres step by the 10 m pixel size, north-up
        assert np.allclose(np.diff(ds["x"].values), 10.0) and np.allclose(np.diff(ds["y"].values), -10.0)
