"""The export writes only inside its folder, through files it created, and deletes only its own."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from rs_embed import ProviderError, SpecError, load_export
from rs_embed.io import atomic
from rs_embed.io.npz import write_npz

import fakes
from fakes import T, ex


def _kw(prov, n=4):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats"], backend=prov, show_progress=False)


@pytest.fixture
def planted_names(monkeypatch):
    """Make mkstemp/mkdtemp try the name ``planted`` first, where a test put a symlink;
    yields how many times it was tried."""
    real = tempfile._get_candidate_names
    tried = []

    def names():
        tried.append("planted")
        yield "planted"
        yield from real()

    monkeypatch.setattr(tempfile, "_get_candidate_names", names)
    yield tried


def test_temporary_files_never_follow_a_planted_link(tmp_path, planted_names):
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    d = tmp_path / "x"
    d.mkdir()
    for final in ("p00000.npz", "p00000.json"):  # the temporary name the writer tries first
        os.symlink(victim, d / f".{final}.rs_embed-{atomic.host_tag()}-{os.getpid()}-planted.tmp")
    write_npz(str(d / "p00000.npz"), {"a": np.arange(3, dtype=np.float32)})
    atomic.write_json(str(d / "p00000.json"), {"ok": True})
    assert len(planted_names) == 2  # both writes tried the planted name first ...
    assert victim.read_text() == "precious"  # ... and did not follow it
    assert not os.path.islink(d / "p00000.npz") and np.load(d / "p00000.npz")["a"].tolist() == [0, 1, 2]


def test_netcdf_is_written_in_a_private_folder_never_through_a_link(tmp_path, planted_names):
    victim = tmp_path / "victim"
    victim.mkdir()
    d = tmp_path / "x"
    d.mkdir()
    os.symlink(victim, d / f".run.nc.rs_embed-{atomic.host_tag()}-{os.getpid()}-planted.tmpdir")
    ex(_kw(fakes.FakeProvider()), out=str(d / "run"), layout="combined", format="netcdf")
    assert planted_names and os.listdir(victim) == [] and load_export(d / "run.nc").status == "ok"


def test_a_link_at_a_final_name_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"precious")
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider()), out=str(d), layout="per_item")
    os.remove(d / "p00001.npz")
    os.symlink(victim, d / "p00001.npz")  # planted where the next run writes
    ex(_kw(fakes.FakeProvider()), out=str(d), layout="per_item")
    assert victim.read_bytes() == b"precious" and not os.path.islink(d / "p00001.npz")


def test_a_users_parts_folder_is_never_touched(tmp_path):
    parts = tmp_path / "run.parts"
    parts.mkdir()
    (parts / "thesis.tex").write_text("years of work")
    for resume in (False, True):
        with pytest.raises(SpecError, match=r"run\.parts' exists and was not created by rs_embed"):
            ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "run"), layout="combined", resume=resume)
    assert os.listdir(parts) == ["thesis.tex"] and (parts / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / "run.npz").exists()


def test_only_its_own_files_leave_the_parts_folder(tmp_path):
    pts = fakes.points(8)
    with pytest.raises(ProviderError):
        ex(_kw(fakes.FakeProvider(permanent=[pts[6].lon]), n=8), out=str(tmp_path / "run"), layout="combined",
           chunk_size=2)
    parts = tmp_path / "run.parts"
    assert (parts / ".rs_embed-parts").exists() and any(f.endswith(".bin") for f in os.listdir(parts))
    (parts / "my_notes.txt").write_text("mine")  # a user's file in our folder
    m = ex(_kw(fakes.FakeProvider(), n=8), out=str(tmp_path / "run"), layout="combined", chunk_size=2, resume=True)
    assert m["status"] == "ok"
    assert sorted(os.listdir(parts)) == [".rs_embed-parts", "my_notes.txt"]  # ours gone, theirs kept
    m = ex(_kw(fakes.FakeProvider(), n=8), out=str(tmp_path / "clean"), layout="combined")
    assert not (tmp_path / "clean.parts").exists()  # a folder with only our files goes entirely


def test_stale_temporaries_are_ours_only(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    d = tmp_path / "x"
    d.mkdir()
    stale_dir = d / f".run.nc.rs_embed-{atomic.host_tag()}-{dead}-abc123.tmpdir"
    stale_dir.mkdir()
    (stale_dir / "run.nc").write_bytes(b"half")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    os.symlink(outside, d / f".evil.rs_embed-{atomic.host_tag()}-{dead}-x.tmpdir")  # a link named like ours: not followed
    assert atomic.remove_stale_temps(str(d)) == 1
    assert not stale_dir.exists() and (outside / "keep").exists()
