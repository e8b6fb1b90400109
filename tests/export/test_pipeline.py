"""The pipeline: concurrency, prefetch depth, batching, serial models, writers, atomic files, progress."""

from __future__ import annotations

import os
import json
import threading
import time

import numpy as np
import pytest

from rs_embed import load_export
from rs_embed.io import atomic

import fakes
from fakes import T, ex


def test_fetch_pool_uses_num_workers(tmp_path):
    prov = fakes.FakeProvider(latency=0.08)
    ex(dict(spatials=fakes.points(24), temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
       out=str(tmp_path / "x"), layout="per_item", num_workers=3, chunk_size=8)
    assert prov.max_active == 3
    prov2 = fakes.FakeProvider(latency=0.08)
    ex(dict(spatials=fakes.points(24), temporal=T, models=["fake_stats"], backend=prov2, show_progress=False),
       out=str(tmp_path / "y"), layout="per_item", num_workers=8, chunk_size=8)
    assert prov2.max_active == 8


class _Tracker:
    """Counts points embedded so far; the provider notes it at every fetch start."""

    def __init__(self):
        self.embedded = 0
        self.lead = []  # fetches started minus points embedded, at each fetch start
        self.started = 0
        self.lock = threading.Lock()

    def on_fetch(self, spatial, sensor):
        with self.lock:
            self.started += 1
            self.lead.append(self.started - self.embedded)


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_prefetch_runs_ahead_by_at_most_two_chunks(layout, tmp_path, monkeypatch):
    tr = _Tracker()
    orig = fakes.StatsEmbedder.embed_batch
    orig_one = fakes.StatsEmbedder.embed

    def embed_batch(self, inputs, **kw):
        time.sleep(0.02)
        r = orig(self, inputs, **kw)
        with tr.lock:
            tr.embedded += len(inputs)
        return r

    def embed(self, x, **kw):
        r = orig_one(self, x, **kw)
        with tr.lock:
            tr.embedded += 1
        return r

    monkeypatch.setattr(fakes.StatsEmbedder, "embed_batch", embed_batch)
    monkeypatch.setattr(fakes.StatsEmbedder, "embed", embed)
    prov = fakes.FakeProvider(latency=0.002, on_fetch=tr.on_fetch)
    cs = 6
    ex(dict(spatials=fakes.points(60), temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
       out=str(tmp_path / "x"), layout=layout, num_workers=8, chunk_size=cs)
    assert max(tr.lead) <= 2 * cs  # input memory bounded by two chunks whatever the number of points
    assert max(tr.lead) > cs  # and the next chunk is really fetched while this one is embedded


def test_batched_inference_in_combined_mode_and_per_item_on_cpu(tmp_path, monkeypatch):
    kw = dict(spatials=fakes.points(20), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
              show_progress=False, chunk_size=8)
    fakes.StatsEmbedder.batch_calls = 0
    ex(kw, out=str(tmp_path / "c"), layout="combined")
    assert fakes.StatsEmbedder.batch_calls == 3  # 8 + 8 + 4
    fakes.StatsEmbedder.batch_calls = 0
    ex(kw, out=str(tmp_path / "i"), layout="per_item", device="cpu")
    assert fakes.StatsEmbedder.batch_calls == 0  # CPU: one point at a time, as the reference says
    from rs_embed.export.job import ExportJob

    monkeypatch.setattr(ExportJob, "per_item_batch", property(lambda self: True))  # as on an accelerator
    ex(kw, out=str(tmp_path / "g"), layout="per_item")
    assert fakes.StatsEmbedder.batch_calls == 3
    a, b = load_export(tmp_path / "c.npz"), load_export(tmp_path / "i")
    np.testing.assert_allclose(a.embedding("fake_stats"), b.embedding("fake_stats"), rtol=1e-6)


def test_failed_batch_falls_back_to_one_at_a_time(tmp_path, monkeypatch):
    def broken(self, inputs, **kw):
        raise RuntimeError("out of memory (fake)")

    monkeypatch.setattr(fakes.StatsEmbedder, "embed_batch", broken)
    m = ex(dict(spatials=fakes.points(10), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
                show_progress=False), out=str(tmp_path / "c"), layout="combined")
    assert m["status"] == "ok"


def test_models_run_one_at_a_time_per_chunk(tmp_path, monkeypatch):
    seq = []
    orig = fakes.StatsEmbedder.embed_batch

    def embed_batch(self, inputs, **kw):
        seq.append((type(self).name, threading.current_thread().name))
        return orig(self, inputs, **kw)

    monkeypatch.setattr(fakes.StatsEmbedder, "embed_batch", embed_batch)
    ex(dict(spatials=fakes.points(12), temporal=T, models=["fake_stats", "fake_red"], backend=fakes.FakeProvider(),
            show_progress=False), out=str(tmp_path / "c"), layout="combined", chunk_size=4)
    assert [s[0] for s in seq] == ["fake_stats", "fake_red"] * 3
    assert {s[1] for s in seq} == {threading.main_thread().name}


@pytest.mark.parametrize("async_write,workers", [(True, 3), (False, 2)])
def test_writer_threads(async_write, workers, tmp_path, monkeypatch):
    from rs_embed.export import per_item

    threads = set()
    real = per_item.write_npz

    def spy(path, arrays, *a, **k):
        threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return real(path, arrays, *a, **k)

    monkeypatch.setattr(per_item, "write_npz", spy)
    ex(dict(spatials=fakes.points(18), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
            show_progress=False), out=str(tmp_path / "x"), layout="per_item", async_write=async_write,
       writer_workers=workers, chunk_size=6)
    if async_write:
        assert all(t.startswith("rs_embed-write") for t in threads) and len(threads) == workers
    else:
        assert threads == {threading.main_thread().name}


def test_writer_queue_is_bounded(tmp_path, monkeypatch):
    from rs_embed.export import per_item, writer

    pending = {"now": 0, "max": 0}
    lock = threading.Lock()
    real_submit = writer.Writer.submit
    real = per_item.write_npz

    def submit(self, fn, on_done):
        with lock:
            pending["now"] += 1
            pending["max"] = max(pending["max"], pending["now"])

        def done(err):
            with lock:
                pending["now"] -= 1
            on_done(err)

        return real_submit(self, fn, done)

    def slow(path, arrays, *a, **k):
        time.sleep(0.02)
        return real(path, arrays, *a, **k)

    monkeypatch.setattr(writer.Writer, "submit", submit)
    monkeypatch.setattr(per_item, "write_npz", slow)
    ex(dict(spatials=fakes.points(40), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
            show_progress=False), out=str(tmp_path / "x"), layout="per_item", chunk_size=4, writer_workers=2)
    # the producer waits for a slot: at most one chunk queued plus one per writer
    assert pending["max"] <= 4 + 2 + 1


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_every_file_is_renamed_into_place_arrays_before_manifests(layout, tmp_path, monkeypatch):
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ex(dict(spatials=fakes.points(5), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
            show_progress=False), out=str(tmp_path / "x"), layout=layout)
    finals = {d for _, d in renames}
    for root, _, files in os.walk(tmp_path):
        for f in files:
            assert os.path.join(root, f) in finals, f"{f} was not renamed into place"
    for src, dst in renames:
        assert os.path.dirname(src) == os.path.dirname(dst)
        assert os.path.basename(src).startswith("." + os.path.basename(dst) + ".")
    order = [d for _, d in renames]
    if layout == "per_item":
        for i in range(5):
            assert order.index(str(tmp_path / "x" / f"p{i:05d}.npz")) < order.index(str(tmp_path / "x" / f"p{i:05d}.json"))
        assert order[-1] == str(tmp_path / "x" / "rs_embed_export.json")
    else:
        assert order[-2:] == [str(tmp_path / "x.npz"), str(tmp_path / "x.json")]


class _Bar:
    made = []

    def __init__(self, *a, **kw):
        self.kw, self.n, self.closed = kw, 0, False
        _Bar.made.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, *a, **k):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    import tqdm.auto

    _Bar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    return _Bar.made


class _Terminal:
    """stderr as a terminal (pytest's capture is not one)."""

    def __init__(self, real):
        self.real = real

    def isatty(self):
        return True

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_progress_bars_overall_and_per_model(layout, bars, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr))
    ex(dict(spatials=fakes.points(9), temporal=T, models=["fake_stats", "fake_red"], backend=fakes.FakeProvider()),
       out=str(tmp_path / "x"), layout=layout, show_progress=True, chunk_size=4)
    descs = [b.kw["desc"] for b in bars]
    assert descs[0].startswith("export") and descs[1:] == ["infer fake_stats", "infer fake_red"]
    assert all(b.closed and b.n == 9 and b.kw["total"] == 9 for b in bars)


def test_progress_bars_close_on_errors(bars, tmp_path):
    pts = fakes.points(9)
    with pytest.raises(Exception):
        ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(permanent=[pts[5].lon])),
           out=str(tmp_path / "x"), layout="combined", show_progress=True)
    assert bars and all(b.closed for b in bars)


def test_no_bars_without_show_progress(bars, tmp_path):
    ex(dict(spatials=fakes.points(3), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider()),
       out=str(tmp_path / "x"), layout="per_item", show_progress=False)
    assert bars == []


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_progress_callback_and_cancel(layout, tmp_path):
    cancel = threading.Event()
    seen = []

    def progress(done, total, desc):
        seen.append((done, total))
        if done >= 8:
            cancel.set()

    pts = fakes.points(40)
    kw = dict(spatials=pts, temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(latency=0.002),
              show_progress=False, chunk_size=4, async_write=False)
    res = ex(kw, out=str(tmp_path / "x"), layout=layout, progress=progress, cancel=cancel)
    assert seen[0][1] == 40 and 8 <= seen[-1][0] < 40
    if layout == "per_item":
        done = [m for m in res if m is not None]
        assert 8 <= len(done) < 40
        run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
        assert run["stage"] == "stopped" and run["resume_incomplete"] is True and run["status"] == "partial"
        assert run["stop_error"]["type"] == "Cancelled" and run["stop_error"]["stage"] == "cancelled"
    else:
        assert res["stage"] == "stopped" and res["resume_incomplete"] is True and res["status"] == "partial"
        assert res["stop_error"]["type"] == "Cancelled" and res["stop_error"]["stage"] == "cancelled"
        cp = json.loads((tmp_path / "x.parts" / "checkpoint.json").read_text())
        assert cp["stage"] == "stopped" and cp["errors"][0]["type"] == "Cancelled"
        r = load_export(tmp_path / "x.npz")
        ok = ~np.isnan(r.embedding("fake_stats")).any(axis=1)
        assert 8 <= ok.sum() < 40
    res = ex(kw, out=str(tmp_path / "x"), layout=layout, resume=True)  # finishes the rest
    assert (all(m["status"] == "ok" for m in res) if layout == "per_item" else res["status"] == "ok")


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    out = tmp_path / "x"
    out.mkdir()
    stale = out / f".p00000.npz.rs_embed-{atomic.host_tag()}-{dead}-0.tmp"
    stale.write_bytes(b"half a file")
    mine = out / f".other.npz.rs_embed-{atomic.host_tag()}-{os.getpid()}-99.tmp"  # a live writer's file is left alone
    mine.write_bytes(b"x")
    unrelated = out / ".notes.1-2.tmp"
    unrelated.write_bytes(b"x")
    ex(dict(spatials=fakes.points(2), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
            show_progress=False), out=str(out), layout="per_item")
    assert not stale.exists() and mine.exists() and unrelated.exists()


def test_a_log_file_gets_one_overall_bar_without_cursor_moves(bars, tmp_path):
    ex(dict(spatials=fakes.points(5), temporal=T, models=["fake_stats", "fake_red"], backend=fakes.FakeProvider()),
       out=str(tmp_path / "x"), layout="per_item", show_progress=True, chunk_size=4)
    assert len(bars) == 1 and bars[0].kw["desc"].startswith("export")
    assert "position" not in bars[0].kw and bars[0].closed and bars[0].n == 5
