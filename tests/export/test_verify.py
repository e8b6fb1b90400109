"""Resume keeps only what still holds its recorded checksum, made with the same provider settings."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from rs_embed import ProviderError, SensorSpec, load_export, sample
from rs_embed.io import atomic
from rs_embed.providers.local import LocalProvider

import fakes
from fakes import T, ex


def _kw(prov, n=6, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats", "fake_red"], backend=prov,
                show_progress=False, **extra)


def flip_byte_keep_times(path, offset=None):
    """Change one byte in place, same size, and set the modification time back."""
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(st.st_size // 2 if offset is None else offset)
        b = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.path.getsize(path) == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


@pytest.fixture
def hashes(monkeypatch):
    """Count the files verification re-hashes (the fast path hashes none)."""
    seen = []
    real = atomic._hash_file

    def counting(path):
        seen.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(atomic, "_hash_file", counting)
    return seen


def test_per_item_flipped_bytes_at_the_same_size_are_exported_again(tmp_path, hashes):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider()), out=str(d), layout="per_item")
    ref = (d / "p00002.npz").read_bytes()
    flip_byte_keep_times(d / "p00002.npz")
    hashes.clear()
    prov = fakes.FakeProvider()
    ex(_kw(prov), out=str(d), layout="per_item", resume=True)
    pts = fakes.points(6)
    assert sorted({lon for lon, _ in prov.fetched}) == [round(pts[2].lon, 6)]
    assert hashes == ["p00002.npz"]  # only the changed file was hashed (ctime changed with it)
    assert (d / "p00002.npz").read_bytes() == ref and load_export(d).status == "ok"


def test_the_fast_path_hashes_nothing_and_a_copied_export_is_verified_once(tmp_path, hashes):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider(), n=5), out=str(d), layout="per_item")
    hashes.clear()
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=5), out=str(d), layout="per_item", resume=True)
    assert prov.calls == 0 and hashes == []
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)  # new inodes: every file is checked once in full ...
    ex(_kw(prov, n=5), out=str(copy), layout="per_item", resume=True)
    assert prov.calls == 0 and sorted(hashes) == [f"p{i:05d}.npz" for i in range(5)]
    hashes.clear()
    ex(_kw(prov, n=5), out=str(copy), layout="per_item", resume=True)  # ... then remembered
    assert prov.calls == 0 and hashes == []


def test_combined_finished_file_with_flipped_bytes_is_rebuilt(tmp_path):
    ex(_kw(fakes.FakeProvider(), n=8), out=str(tmp_path / "x"), layout="combined")
    ref = (tmp_path / "x.npz").read_bytes()
    flip_byte_keep_times(tmp_path / "x.npz")
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=8), out=str(tmp_path / "x"), layout="combined", resume=True)
    assert prov.calls > 0 and m["status"] == "ok"
    assert (tmp_path / "x.npz").read_bytes() == ref


def test_combined_checkpoint_shard_with_flipped_bytes_is_redone(tmp_path):
    pts = fakes.points(24)
    with pytest.raises(ProviderError):
        ex(_kw(fakes.FakeProvider(permanent=[pts[20].lon]), n=24), out=str(tmp_path / "x"), layout="combined",
           chunk_size=4)
    shard = tmp_path / "x.parts" / "s000001.bin"  # points 4..7
    assert json.loads((tmp_path / "x.parts" / "s000001.json").read_text())["bin_record"]["sha1"]
    flip_byte_keep_times(shard)
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=24), out=str(tmp_path / "x"), layout="combined", chunk_size=4, resume=True)
    # the damaged shard's points and the failed point; every other shard is kept
    assert sorted({lon for lon, _ in prov.fetched}) == sorted(round(pts[i].lon, 6) for i in (4, 5, 6, 7, 20))
    assert m["status"] == "ok"
    ex(_kw(fakes.FakeProvider(), n=24), out=str(tmp_path / "ref"), layout="combined", chunk_size=4)
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "ref.npz").read_bytes()


# ---------------------------------------------------------- provider settings


class Settings(fakes.FakeProvider):
    def __init__(self, mode="a", **kw):
        super().__init__(**kw)
        self.mode = mode

    def settings(self):
        return {"mode": self.mode}


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_changed_provider_settings_are_exported_again(layout, tmp_path):
    first = ex(_kw(Settings("a"), n=4), out=str(tmp_path / "x"), layout=layout)
    if layout == "per_item":  # a lazy sequence reads the files: take what they say now
        first = list(first)
    same = Settings("a")
    ex(_kw(same, n=4), out=str(tmp_path / "x"), layout=layout, resume=True)
    assert same.calls == 0
    other = Settings("b")
    again = ex(_kw(other, n=4), out=str(tmp_path / "x"), layout=layout, resume=True)
    assert other.calls > 0
    fp = (lambda r: r[0]["request_fingerprint"]) if layout == "per_item" else (lambda r: r["request_fingerprint"])
    assert fp(first) != fp(again)


SPECTRAL_SENSOR = SensorSpec(sample.COLLECTION, ("B2", "B3", "B4", "B8", "B11", "B12"), scale_m=20)


@pytest.mark.parametrize("change", ["resampling", "catalog", "aliases"])
def test_local_provider_settings_enter_the_fingerprint(change, tmp_path):
    pts = [p.spatial for p in sample.points(200)[:2]]
    kw = dict(spatials=pts, temporal=sample.TEMPORAL, models=["spectral"], sensor=SPECTRAL_SENSOR,
              show_progress=False, out=str(tmp_path / "x"), layout="per_item")
    first = ex(kw, backend=LocalProvider())
    assert ex(kw, backend=LocalProvider(), resume=True)[0]["created_at"] == first[0]["created_at"]
    if change == "resampling":
        prov = LocalProvider(resampling="nearest")
    elif change == "aliases":
        prov = LocalProvider(aliases={"COPERNICUS/S2_SR_HARMONIZED": ["COPERNICUS/S2_HARMONIZED"]})
    else:  # the same scene described with another cloud cover: other catalog content
        cat = tmp_path / "catalog"
        shutil.copytree(sample.DATA_DIR, cat)
        doc = json.loads((cat / "scene.json").read_text())
        doc["cloud_cover"] = 7.5
        (cat / "scene.json").write_text(json.dumps(doc))
        prov = LocalProvider(cat)
    again = ex(kw, backend=prov, resume=True)
    assert again[0]["request_fingerprint"] != first[0]["request_fingerprint"]
    run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
    assert run["point_fingerprints"][0] == again[0]["request_fingerprint"]


def test_the_embedded_catalog_fingerprints_alike_wherever_it_lies(tmp_path):
    cat = tmp_path / "moved"
    shutil.copytree(sample.DATA_DIR, cat)
    assert LocalProvider(cat).settings()["catalog"] == LocalProvider().settings()["catalog"]
