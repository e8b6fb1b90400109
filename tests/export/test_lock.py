"""One writer per target: a second export fails at once naming the holder; locks never outlive runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from rs_embed import ProviderError, SpecError, load_export
from rs_embed.export import ExportLocked
from rs_embed.io.lock import ExportLock

import fakes
from fakes import T, ex

HERE = os.path.dirname(os.path.abspath(__file__))


def _lock_file(tmp_path, layout):
    return tmp_path / "x" / ".rs_embed.lock" if layout == "per_item" else tmp_path / ".x.rs_embed.lock"


def _kw(prov, n=8):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats", "fake_red"], backend=prov,
                show_progress=False)


def _start(out, layout, n=160, latency="0.02", gate=None):
    env = dict(os.environ, CRASH_JOB_GATE=str(gate)) if gate is not None else None
    return subprocess.Popen([sys.executable, os.path.join(HERE, "crash_job.py"), str(out), layout, str(n), latency],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_a_second_export_fails_fast_naming_the_holder(layout, tmp_path):
    out = tmp_path / "x"
    gate = tmp_path / "gate"  # the holder's fetches wait while it exists: it holds the lock for sure
    gate.touch()
    proc = _start(out, layout, gate=gate)
    try:
        _wait_for(_lock_file(tmp_path, layout), proc)
        prov = fakes.FakeProvider()
        t0 = time.monotonic()
        with pytest.raises(ExportLocked) as info:
            ex(_kw(prov, n=160), out=str(out), layout=layout)
        assert time.monotonic() - t0 < 2.0 and prov.calls == 0
        text = str(info.value)
        assert f"pid {proc.pid}" in text and socket.gethostname() in text and "since" in text
        assert info.value.holder["pid"] == proc.pid
        with pytest.raises(ExportLocked):  # resume too: never two writers
            ex(_kw(prov, n=160), out=str(out), layout=layout, resume=True)
        gate.unlink()
        assert proc.wait(120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    # the refused exports did not touch the holder's files
    res = load_export(out if layout == "per_item" else tmp_path / "x.npz")
    assert res.status == "ok" and res.n_items == 160
    assert not _lock_file(tmp_path, layout).exists()  # released when the holder finished
    prov = fakes.FakeProvider()
    ex(_kw(prov, n=160), out=str(out), layout=layout, resume=True)  # and free for the next one
    assert prov.calls == 0


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_a_lock_left_by_a_killed_export_is_stale_and_taken_over(layout, tmp_path):
    out = tmp_path / "x"
    proc = _start(out, layout, latency="0.05")
    try:
        _wait_for(_lock_file(tmp_path, layout), proc)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lock = _lock_file(tmp_path, layout)
    assert lock.exists() and json.loads(lock.read_text())["pid"] == proc.pid  # left behind
    prov = fakes.FakeProvider(latency=0.0)
    ex(_kw(prov, n=160), out=str(out), layout=layout, resume=True)  # the dead holder blocks nobody
    assert not lock.exists()
    assert load_export(out if layout == "per_item" else tmp_path / "x.npz").status == "ok"


def test_the_lock_is_released_on_every_exit_path(tmp_path):
    pts = fakes.points(6)
    lock = tmp_path / "x" / ".rs_embed.lock"
    with pytest.raises(ProviderError):  # a point fails and stops the export
        ex(_kw(fakes.FakeProvider(permanent=[pts[3].lon]), n=6), out=str(tmp_path / "x"), layout="per_item")
    assert not lock.exists()
    (tmp_path / "x" / "p00009.npz").write_bytes(b"mine")
    (tmp_path / "x" / "rs_embed_export.json").unlink()
    with pytest.raises(SpecError):  # refused after the lock was taken
        ex(_kw(fakes.FakeProvider(), n=10), out=str(tmp_path / "x"), layout="per_item")
    assert not lock.exists()

    def boom(*a, **k):
        raise RuntimeError("a bug in the writer (fake)")

    from rs_embed.export import per_item

    real = per_item.PerItemExport._point_manifest
    per_item.PerItemExport._point_manifest = boom
    try:
        with pytest.raises(RuntimeError, match="a bug in the writer"):
            ex(_kw(fakes.FakeProvider(), n=4), out=str(tmp_path / "y"), layout="per_item")
    finally:
        per_item.PerItemExport._point_manifest = real
    assert not (tmp_path / "y" / ".rs_embed.lock").exists()
    run = json.loads((tmp_path / "y" / "rs_embed_export.json").read_text())
    assert run["stage"] == "stopped" and run["stop_error"]["type"] == "RuntimeError"


def test_without_flock_the_lock_file_itself_is_the_lock(tmp_path, monkeypatch):
    """Windows and file systems without flock: exclusive create, stale when the pid is dead here."""
    from rs_embed.io import lock as lock_mod

    monkeypatch.setattr(lock_mod, "fcntl", None)
    path = str(tmp_path / ".lock")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    with open(path, "w") as fh:
        json.dump({"pid": int(dead), "host": socket.gethostname(), "started_at": "then"}, fh)
    with ExportLock(path, "target") as held:
        assert held.took_over["pid"] == int(dead)
        with pytest.raises(ExportLocked, match=f"pid {os.getpid()} on host"):
            ExportLock(path, "target").acquire()
    assert not os.path.exists(path)
    with open(path, "w") as fh:  # alive elsewhere, or on another host: never taken over
        json.dump({"pid": int(dead), "host": "another-host", "started_at": "then"}, fh)
    with pytest.raises(ExportLocked, match="another-host.*remove"):
        ExportLock(path, "target").acquire()


def test_two_exports_in_one_process_exclude_each_other(tmp_path):
    path = str(tmp_path / ".lock")
    with ExportLock(path, "t"):
        with pytest.raises(ExportLocked):
            ExportLock(path, "t").acquire()
    with ExportLock(path, "t"):
        pass


def test_a_symlink_at_the_lock_path_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "x").mkdir()
    os.symlink(victim, tmp_path / "x" / ".rs_embed.lock")
    with pytest.raises(SpecError, match="symbolic link"):
        ex(_kw(fakes.FakeProvider(), n=2), out=str(tmp_path / "x"), layout="per_item")
    assert victim.read_text() == "keep"
