"""A file cannot crash load_export: every malformed manifest or archive is a ValueError naming it."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from rs_embed import load_export

import fakes
from fakes import T, ex

MODELS = ["fake_stats", "fake_red"]


def _kw(prov=None, n=4, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=MODELS, backend=prov or fakes.FakeProvider(),
                show_progress=False, **extra)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    ex(_kw(), out=str(root / "run"), layout="combined")
    ex(_kw(), out=str(root / "items"), layout="per_item")
    return root


@pytest.fixture
def combined(exports, tmp_path):
    for f in ("run.npz", "run.json"):
        shutil.copy(exports / f, tmp_path / f)
    return tmp_path


@pytest.fixture
def items(exports, tmp_path):
    shutil.copytree(exports / "items", tmp_path / "items")
    return tmp_path / "items"


def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _set(*path):
    """Set ``doc[k1][k2]... = value`` for ``_set(k1, k2, ..., value)``."""
    keys, value = path[:-1], path[-1]

    def fn(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return fn


@pytest.mark.parametrize("edit,field", [
    (_set("n_items", 10**10), "n_items"),
    (_set("n_items", -5), "n_items"),
    (_set("n_items", "4"), "n_items"),
    (_set("n_items", True), "n_items"),
    (_set("models", {"fake_stats": {}}), "models"),
    (_set("models", [1, 2]), "models"),
    (_set("models", 0, "model", None), "models[0].model"),
    (_set("models", 0, "status", "great"), "models[0].status"),
    (_set("models", 0, "failed_indices", [99]), "models[0].failed_indices[0]"),
    (_set("models", 0, "failed_indices", "1,2"), "models[0].failed_indices"),
    (_set("models", 0, "metas", 5), "models[0].metas"),
    (_set("models", 0, "embeddings", "embeddings__fake_stats"), "models[0].embeddings"),
    (_set("models", 0, "embeddings", "npz_key", 7), "models[0].embeddings.npz_key"),
    (_set("models", 0, "embeddings", "indices", ["a"]), "models[0].embeddings.indices[0]"),
    (_set("models", 0, "embeddings", "npz_keys", [1]), "models[0].embeddings.npz_keys"),
    (_set("spatials", "everywhere"), "spatials"),
    (_set("spatials", [{}, {}]), "n_items"),
    (_set("temporal", "2022"), "temporal"),
])
def test_malformed_combined_manifest_fields(combined, edit, field):
    _edit(combined / "run.json", edit)
    with pytest.raises(ValueError) as info:
        load_export(combined / "run.npz")
    assert type(info.value) is ValueError
    assert "run.json" in str(info.value) and repr(field) in str(info.value)


def test_negative_or_huge_sizes_never_allocate(combined):
    _edit(combined / "run.json", lambda d: (d.update(n_items=10**10), d.pop("spatials")))
    with pytest.raises(ValueError, match="n_items"):
        load_export(combined / "run.npz")


def _rewrite_member(src, dst, key, data: bytes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == key + ".npy" else zin.read(info))


def _npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("damage,what", [
    ("truncated", "not a readable .npz"),
    ("not a zip", "not a readable .npz"),
    ("forged header", r"claims shape \[10000000000, 8\]"),
    ("short data", r"claims shape \[4, 8\].*bytes are stored"),
    ("objects", "Python objects"),
    ("flipped data", "damaged"),
])
def test_damaged_archives(combined, damage, what):
    path = combined / "run.npz"
    raw = path.read_bytes()
    key = "embeddings__fake_stats"
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "not a zip":
        path.write_bytes(b"hello")
    elif damage == "forged header":
        _rewrite_member(combined / "run.npz", combined / "new.npz", key, _npy_header((10**10, 8)) + b"\0" * 128)
        os.replace(combined / "new.npz", path)
    elif damage == "short data":
        _rewrite_member(combined / "run.npz", combined / "new.npz", key, _npy_header((4, 8)) + b"\0" * 8)
        os.replace(combined / "new.npz", path)
    elif damage == "objects":
        _rewrite_member(combined / "run.npz", combined / "new.npz", key, _npy_header((4,), "|O") + b"\0" * 32)
        os.replace(combined / "new.npz", path)
    else:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(key + ".npy")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data = bytearray(raw)
        data[start + info.compress_size // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=what) as info:
        load_export(path)
    assert type(info.value) is ValueError and "run.npz" in str(info.value)


@pytest.mark.parametrize("target,edit,field", [
    ("rs_embed_export.json", _set("n_items", 10**10), "files"),
    ("rs_embed_export.json", _set("n_items", -1), "n_items"),
    ("rs_embed_export.json", _set("files", "p00000.npz"), "files"),
    ("rs_embed_export.json", _set("names", ["a"]), "names"),
    ("p00001.json", _set("models", "fake_stats"), "models"),
    ("p00001.json", _set("models", 0, "status", 3), "models[0].status"),
    ("p00001.json", _set("models", 0, "embedding", [1]), "models[0].embedding"),
])
@pytest.mark.parametrize("indexed", [True, False])
def test_malformed_per_item_manifests(items, target, edit, field, indexed):
    """With its run index a point manifest is read when its meta is asked for; without (older
    versions, the public rs-embed) when the export is loaded. Either way: a clear error."""
    _edit(items / target, edit)
    if not indexed:
        os.remove(items / "rs_embed_index.parquet")
    with pytest.raises(ValueError) as info:
        r = load_export(items)
        r.models["fake_stats"].meta[1]
    assert type(info.value) is ValueError and target in str(info.value) and repr(field) in str(info.value)


def test_per_item_without_run_manifest_refuses_a_far_point_index(items):
    os.remove(items / "rs_embed_export.json")
    _edit(items / "p00001.json", _set("point_index", 10**10))
    with pytest.raises(ValueError, match=r"point_index 10000000000 but the folder holds 4 point files"):
        load_export(items)


def test_a_point_manifest_that_is_not_json(items):
    (items / "p00002.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"p00002\.json"):
        load_export(items).models["fake_stats"].meta[2]
    os.remove(items / "rs_embed_index.parquet")
    with pytest.raises(ValueError, match=r"p00002\.json"):
        load_export(items)


@pytest.mark.parametrize("layout,fmt", [("per_item", "npz"), ("per_item", "netcdf"), ("combined", "npz"),
                                        ("combined", "netcdf")])
def test_exports_without_manifests_load_from_their_arrays(layout, fmt, tmp_path):
    pts = fakes.points(5)
    kw = _kw(fakes.FakeProvider(permanent=[pts[3].lon]), n=5, format=fmt, continue_on_error=True)
    ex(kw, out=str(tmp_path / "with"), layout=layout)
    ex(kw, out=str(tmp_path / "without"), layout=layout, save_manifest=False)
    assert not (tmp_path / "without.json").exists()
    if layout == "per_item":
        assert not [f for f in os.listdir(tmp_path / "without") if f.endswith(".json")]
    ext = ".npz" if fmt == "npz" else ".nc"
    a = load_export(tmp_path / ("with" if layout == "per_item" else "with" + ext), inputs=True)
    b = load_export(tmp_path / ("without" if layout == "per_item" else "without" + ext), inputs=True)
    assert b.layout == layout and b.n_items in (4, 5)  # a trailing failed point leaves no trace
    for model in MODELS:
        ea, eb = a.embedding(model), b.embedding(model)
        np.testing.assert_array_equal(ea[: b.n_items], eb)
        assert b.models[model].failed_indices == [3] and b.models[model].status == "partial"
    np.testing.assert_array_equal(a.inputs("fake_red")[:3], b.inputs("fake_red")[:3])
    if layout == "combined" and fmt == "netcdf":  # its global attributes carry n_items and the ROIs
        assert b.n_items == 5 and b.spatials == a.spatials


def test_a_plain_npz_is_still_not_an_export(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no manifest"):
        load_export(tmp_path / "plain.npz")
