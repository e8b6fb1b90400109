"""A provider that stops answering never stalls an export: timeouts, cancel and Ctrl-C.

The hanging provider ignores every deadline and cancel (the worst case: a request stuck
in a socket); the engine must walk away from it. Hung threads are released when each
test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rs_embed import load_export
from rs_embed.export.workers import Task, WorkerPool
from rs_embed.providers.base import FetchCancelled, FetchContext, current_fetch, fetch_scope

import fakes
from fakes import T, ex

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def hanging():
    made = []

    def make(**kw):
        p = fakes.HangingProvider(**kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.release.set()


def _kw(prov, n=6, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats"], backend=prov,
                show_progress=False, **extra)


def _target(tmp_path, layout):
    return tmp_path / "x" if layout == "per_item" else tmp_path / "x.npz"


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_a_fetch_that_never_answers_times_out_and_only_its_point_fails(layout, tmp_path, hanging):
    pts = fakes.points(6)
    prov = hanging(hang=[pts[2].lon])
    t0 = time.monotonic()
    res = ex(_kw(prov), out=str(tmp_path / "x"), layout=layout, fetch_timeout_s=0.3, continue_on_error=True)
    assert time.monotonic() - t0 < 5.0  # 0.3 s budget + grace, not for ever
    if layout == "per_item":
        bad = res[2]
        assert [m["status"] for m in res] == ["ok", "ok", "failed", "ok", "ok", "ok"]
        err = bad["models"][0]["error_info"]
    else:
        entry = res["models"][0]
        assert entry["failed_indices"] == [2] and res["status"] == "partial"
        err = next(e for e in res["errors"] if e["point_index"] == 2)
    assert err["type"] == "FetchTimeout" and err["stage"] == "fetch"
    assert "fetch_timeout_s=0.3" in err["message"] and "abandoned" in err["message"]
    # the export is resumable: once the backend answers, only that point is fetched again
    again = hanging()
    ex(_kw(again), out=str(tmp_path / "x"), layout=layout, resume=True)
    assert [lon for lon, _ in again.fetched] == [round(pts[2].lon, 6)]
    assert load_export(_target(tmp_path, layout)).status == "ok"


def test_a_timed_out_attempt_is_retried_in_a_fresh_worker(tmp_path, hanging):
    pts = fakes.points(4)
    prov = hanging(hang=[pts[1].lon], hang_attempts=1)  # stuck once, then answers
    res = ex(_kw(prov, n=4), out=str(tmp_path / "x"), layout="per_item", fetch_timeout_s=0.2, max_retries=1)
    assert all(m["status"] == "ok" for m in res)
    assert res[1]["models"][0]["fetch_attempts"] == 2 and res[0]["models"][0]["fetch_attempts"] == 1
    assert prov.hung == 1


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_cancel_stops_within_a_second_while_the_provider_hangs(layout, tmp_path, hanging):
    prov = hanging(hang_after=5)
    cancel = threading.Event()
    timer = threading.Timer(0.6, cancel.set)
    timer.start()
    t0 = time.monotonic()
    res = ex(_kw(prov, n=24), out=str(tmp_path / "x"), layout=layout, cancel=cancel, chunk_size=4,
             num_workers=4)  # fetch_timeout_s stays 300 s: only the cancel can end this
    stopped_after = time.monotonic() - t0 - 0.6
    timer.join()
    assert stopped_after < 1.5, f"the export took {stopped_after:.1f} s to stop after cancel"
    if layout == "per_item":
        done = [m for m in res if m is not None]
        assert 1 <= len(done) <= 5 and all(m["status"] == "ok" for m in done)
        run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
    else:
        assert res["stage"] == "stopped" and res["status"] == "partial"
        run = json.loads((tmp_path / "x.parts" / "checkpoint.json").read_text())
        run["stop_error"] = run["errors"][0]
    assert run["stage"] == "stopped" and run["stop_error"]["type"] == "Cancelled"
    assert not os.path.exists(tmp_path / ("x/.rs_embed.lock" if layout == "per_item" else ".x.rs_embed.lock"))
    again = hanging()
    ex(_kw(again, n=24), out=str(tmp_path / "x"), layout=layout, resume=True, chunk_size=4)
    assert load_export(_target(tmp_path, layout)).status == "ok"
    assert 19 <= again.calls < 24  # what finished before the cancel is kept


def test_a_backend_that_never_answers_stops_the_export(tmp_path, hanging):
    prov = hanging(hang_after=0)
    t0 = time.monotonic()
    with pytest.raises(fakes.ProviderError, match="stuck past fetch_timeout_s") as info:
        ex(_kw(prov, n=200), out=str(tmp_path / "x"), layout="per_item", fetch_timeout_s=0.05,
           continue_on_error=True, num_workers=4, chunk_size=8)
    assert time.monotonic() - t0 < 15 and type(info.value).__name__ == "ProviderStuck"
    run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
    assert run["stage"] == "stopped" and run["stop_error"]["type"] == "ProviderStuck"


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_ctrl_c_ends_the_process_promptly_and_the_export_resumes(layout, tmp_path):
    out = tmp_path / "x"
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "hang_job.py"), str(out), layout, "16", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _progress(out, layout):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # the export now waits on fetches that never return
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
    out_text, err_text = proc.stdout.read(), proc.stderr.read()
    assert rc == 130, err_text
    assert json.loads(out_text.strip().splitlines()[-1])["interrupted_at"] - sent < 3.0
    assert time.time() - sent < 10  # the process exited: no stuck thread held it
    if layout == "per_item":
        run = json.loads((out / "rs_embed_export.json").read_text())
        cause = run["stop_error"]
        assert not (out / ".rs_embed.lock").exists()
    else:
        run = json.loads((tmp_path / "x.parts" / "checkpoint.json").read_text())
        cause = run["errors"][0]
        assert not (tmp_path / ".x.rs_embed.lock").exists() and not (tmp_path / "x.npz").exists()
    assert run["stage"] == "stopped" and cause["type"] == "KeyboardInterrupt"
    assert "resume" in cause["message"]
    prov = fakes.HangingProvider()  # the same provider class, answering again
    ex(_kw(prov, n=16), out=str(out), layout=layout, resume=True, chunk_size=4)
    assert prov.calls <= 16 - 4 and load_export(_target(tmp_path, layout)).status == "ok"


def _progress(out, layout) -> bool:
    if layout == "per_item":
        return out.is_dir() and sum(f.endswith(".npz") for f in os.listdir(out)) >= 4
    parts = str(out) + ".parts"
    return os.path.isdir(parts) and sum(f.startswith("s") and f.endswith(".json") for f in os.listdir(parts)) >= 1


# ------------------------------------------------------------------ the machinery


def test_closing_the_pool_never_waits_for_a_stuck_thread():
    gate = threading.Event()
    pool = WorkerPool(1)
    stuck = pool.submit(Task(lambda ctx: gate.wait(), attempts=1, timeout_s=0.05, backoff_s=0,
                             retry=lambda e, n: False, cancel=None, what="stuck"))
    queued = pool.submit(Task(lambda ctx: "done", attempts=1, timeout_s=5, backoff_s=0,
                              retry=lambda e, n: False, cancel=None, what="queued"))
    try:
        deadline = time.monotonic() + 5
        while not stuck.done.is_set():  # the watchdog abandons it and a fresh worker carries on
            pool.reap()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert type(stuck.error).__name__ == "FetchTimeout" and pool.stuck == 1
        assert queued.wait(5) and queued.value == "done"
        t0 = time.monotonic()
        pool.close()
        assert time.monotonic() - t0 < 0.1
    finally:
        gate.set()


def test_providers_see_the_deadline_and_cancel_of_their_fetch(tmp_path):
    seen = []

    class Recording(fakes.FakeProvider):
        def fetch(self, spatial, temporal, sensor):
            ctx = current_fetch()
            seen.append((ctx.timeout_s, ctx.remaining()))
            return super().fetch(spatial, temporal, sensor)

    ex(_kw(Recording(), n=3), out=str(tmp_path / "x"), layout="per_item", fetch_timeout_s=7.5)
    assert len(seen) == 3 and all(t == 7.5 and 0 < left <= 7.5 for t, left in seen)
    assert current_fetch().deadline is None  # outside an export: no deadline


def test_the_local_provider_stops_between_reads_when_cancelled():
    from rs_embed import sample
    from rs_embed.providers.local import LocalProvider
    from rs_embed.specs import SensorSpec

    cancel = threading.Event()
    cancel.set()
    prov = LocalProvider()
    sensor = SensorSpec(sample.COLLECTION, ("B4", "B3", "B2"))
    with fetch_scope(FetchContext(timeout_s=10, deadline=time.monotonic() + 10, cancel=cancel)):
        with pytest.raises(FetchCancelled):
            prov.fetch(sample.points()[0].spatial, sample.TEMPORAL, sensor)
    assert prov.fetch(sample.points()[0].spatial, sample.TEMPORAL, sensor).data.shape[0] == 3
