"""Combined exports at scale: the streamed manifest, lazy loading of one model's arrays."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from rs_embed import load_export
from rs_embed.errors import ProviderError
from rs_embed.export import combined
from rs_embed.io import load as load_mod
from rs_embed.io.manifest_lines import LazyList, read_head, read_manifest

import fakes
from fakes import T, ex

MODELS = ["fake_stats", "fake_red"]


@pytest.fixture
def opened(monkeypatch):
    """Names of the zip members decompressed (opened) from now on."""
    names = []
    real = zipfile.ZipFile.open

    def spy(self, name, *a, **kw):
        names.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return real(self, name, *a, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


def _export(tmp_path, n=12, **kw):
    base = dict(spatials=fakes.points(n), temporal=T, models=MODELS, backend=fakes.FakeProvider(),
                show_progress=False, save_inputs=True)
    return ex(base, out=str(tmp_path / "run"), layout="combined", **kw)


def test_one_models_embeddings_are_read_alone_and_inputs_only_when_asked(tmp_path, opened):
    _export(tmp_path)
    eager = load_export(tmp_path / "run.npz", inputs=True, lazy=False)
    opened.clear()
    r = load_export(tmp_path / "run.npz", inputs=True, lazy=True)
    assert opened == [] and r.status == "ok" and r.n_items == 12  # nothing decompressed yet
    emb = r.embedding("fake_stats")
    assert opened == ["embeddings__fake_stats.npy"]  # not the other model's, not the inputs
    np.testing.assert_array_equal(emb, eager.embedding("fake_stats"))
    assert r.models["fake_stats"].meta[3] == eager.models["fake_stats"].meta[3] != {}
    np.testing.assert_array_equal(r.inputs("fake_red"), eager.inputs("fake_red"))
    assert opened == ["embeddings__fake_stats.npy", "inputs_bchw__fake_red.npy"]
    opened.clear()
    r = load_export(tmp_path / "run.npz", inputs=False, lazy=True)
    assert r.inputs("fake_stats") is None and r.embedding("fake_red").shape == (12, 4) and opened == [
        "embeddings__fake_red.npy"]


def test_large_exports_load_lazily_by_default_with_failures_where_they_were(tmp_path, monkeypatch):
    pts = fakes.points(12)
    bad = pts[5].lon
    with pytest.raises(ProviderError):
        _export(tmp_path, backend=fakes.FakeProvider(permanent=[bad]))
    m = _export(tmp_path, backend=fakes.FakeProvider(permanent=[bad]), continue_on_error=True)
    assert m["status"] == "partial"
    eager = load_export(tmp_path / "run.npz", inputs=True, lazy=False)
    monkeypatch.setattr(load_mod, "LAZY_MIN_POINTS", 10)
    r = load_export(tmp_path / "run.npz", inputs=True)
    lm = r.models["fake_stats"]
    assert isinstance(lm, load_mod.LazyModelResult) and not lm.loaded["embeddings"]
    assert lm.status == "partial" and lm.failed_indices == [5] and lm.meta[5] == {}
    np.testing.assert_array_equal(r.embedding("fake_stats"), eager.embedding("fake_stats"))
    assert lm.status == eager.models["fake_stats"].status and lm.failed_indices == [5]


def test_an_uncompressed_member_is_memory_mapped(tmp_path):
    arr = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez(tmp_path / "plain.npz", embeddings__m=arr)  # stored, not deflated
    r = load_export(tmp_path / "plain.npz")
    emb = r.embedding("m")
    assert isinstance(emb, np.memmap) and not emb.flags.writeable
    np.testing.assert_array_equal(emb, arr)


def test_the_manifest_is_plain_json_written_line_by_line(tmp_path, monkeypatch):
    monkeypatch.setattr(combined, "RETURN_FULL_MAX", 5)
    monkeypatch.setattr("rs_embed.io.manifest_lines.LAZY_MIN_BYTES", 100)
    m = _export(tmp_path, n=12)
    with open(tmp_path / "run.json") as fh:
        doc = json.load(fh)  # any JSON reader reads it whole
    assert len(doc["spatials"]) == 12 and all(len(e["metas"]) == 12 for e in doc["models"])
    assert isinstance(m["models"][0]["metas"], LazyList)  # past RETURN_FULL_MAX: read when used
    assert not m["models"][0]["metas"].loaded and len(m["models"][0]["metas"]) == 12
    assert m == doc and m["models"][0]["metas"].loaded
    head = read_head(str(tmp_path / "run.json"))
    assert head["status"] == "ok" and head["file_sha1"] == doc["file_sha1"] and "spatials" not in head
    assert read_manifest(str(tmp_path / "run.json"), lazy=False) == doc
    # the resume of the finished export reads the head only and returns the same manifest
    again = _export(tmp_path, n=12, resume=True)
    assert again == doc


def test_a_lazy_list_of_the_wrong_length_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("rs_embed.io.manifest_lines.LAZY_MIN_BYTES", 100)
    _export(tmp_path, n=12)
    path = tmp_path / "run.json"
    text = path.read_text().replace('"n_items": 12,', '"n_items": 13,')
    path.write_text(text)
    m = read_manifest(str(path))
    with pytest.raises(ValueError, match=r"'metas' lists 12 entries for n_items=13"):
        m["models"][0]["metas"][0]


def test_a_lazy_netcdf_export_reads_one_variable_per_use(tmp_path, monkeypatch):
    _export(tmp_path, format="netcdf")
    eager = load_export(tmp_path / "run.nc", inputs=True, lazy=False)
    keys = []
    real = load_mod._Arrays.get
    monkeypatch.setattr(load_mod._Arrays, "get", lambda self, key: (keys.append(key), real(self, key))[1])
    r = load_export(tmp_path / "run.nc", inputs=False, lazy=True)
    assert keys == []
    np.testing.assert_array_equal(r.embedding("fake_red"), eager.embedding("fake_red"))
    assert keys == ["embeddings__fake_red"] and r.inputs("fake_red") is None


def test_a_rehashed_finished_export_keeps_its_line_manifest(tmp_path):
    from rs_embed.io.manifest_lines import is_line_manifest

    first = _export(tmp_path, n=6)
    os.utime(tmp_path / "run.npz", (1_000_000_000, 1_000_000_000))  # new signature: hashed once
    again = _export(tmp_path, n=6, resume=True)
    assert again["file_stat"] != first["file_stat"] and again["file_sha1"] == first["file_sha1"]
    assert is_line_manifest(str(tmp_path / "run.json"))

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    with open(tmp_path / "run.json") as fh:
        doc = json.load(fh, object_pairs_hook=no_duplicates)
    assert doc == again and doc["models"][0]["metas"] == first["models"][0]["metas"]
