"""Crash safety: SIGKILL an export mid-way, resume it, get the same files as an uninterrupted run.

While the export runs, a watcher checks that every file visible under a final name is
complete (temporary files are hidden and renamed into place only when whole).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from rs_embed import load_export

HERE = os.path.dirname(os.path.abspath(__file__))
N = 240


def _complete(path: str) -> bool:
    """Whether the file under its final name is whole (it may be replaced meanwhile: that is fine)."""
    try:
        if path.endswith(".npz"):
            with zipfile.ZipFile(path) as z:
                return z.testzip() is None
        if path.endswith(".json"):
            with open(path, "rb") as fh:
                json.loads(fh.read())
            return True
        if path.endswith(".bin"):
            meta = path[:-4] + ".json"
            if not os.path.exists(meta):
                return True  # its index is written after it; checked once the index exists
            size = json.loads(Path(meta).read_bytes())["bin_size"]
            return os.path.getsize(path) == size
    except FileNotFoundError:
        return True  # replaced or removed between listing and opening
    return True


class Watcher(threading.Thread):
    def __init__(self, root: str):
        super().__init__(daemon=True)
        self.root, self.bad, self.seen = root, [], set()
        self.stop = threading.Event()

    def scan(self):
        for d, _, files in os.walk(self.root):
            for f in files:
                if f.startswith("."):
                    continue  # temporary names are hidden
                p = os.path.join(d, f)
                self.seen.add(p)
                if not _complete(p):
                    self.bad.append(p)

    def run(self):
        while not self.stop.is_set():
            self.scan()
            time.sleep(0.003)


def _run(out, layout, *extra, latency="0.01"):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "crash_job.py"), out, layout, str(N), latency, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _progress(root: str, layout: str) -> int:
    if layout == "per_item":
        return sum(f.endswith(".npz") for f in os.listdir(root)) if os.path.isdir(root) else 0
    parts = root + ".parts"
    return sum(f.startswith("s") and f.endswith(".json") for f in os.listdir(parts)) * 16 if os.path.isdir(parts) else 0


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(layout, tmp_path):
    out = str(tmp_path / "killed" / "run")
    os.makedirs(os.path.dirname(out))
    watcher = Watcher(str(tmp_path / "killed"))
    watcher.start()
    proc = _run(out, layout)
    deadline = time.monotonic() + 120
    while _progress(out, layout) < N // 3:
        assert proc.poll() is None, f"the export ended before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done_at_kill = _progress(out, layout)
    assert N // 3 <= done_at_kill < N
    watcher.scan()
    if layout == "combined":
        assert not os.path.exists(out + ".npz")  # the final file only appears when complete
    resumed = _run(out, layout, "--resume")
    assert resumed.wait(120) == 0, resumed.stderr.read()
    calls = json.loads(resumed.stdout.read().strip().splitlines()[-1])["calls"]
    assert calls <= 2 * (N - done_at_kill + 16)  # finished points were not fetched again
    watcher.stop.set()
    watcher.join()
    assert watcher.bad == [], f"partial files seen under final names: {watcher.bad[:5]}"
    assert len(watcher.seen) > 20

    ref = str(tmp_path / "ref" / "run")
    os.makedirs(os.path.dirname(ref))
    assert _run(ref, layout, latency="0").wait(120) == 0
    if layout == "combined":
        assert Path(out + ".npz").read_bytes() == Path(ref + ".npz").read_bytes()
        a, b = load_export(out + ".npz"), load_export(ref + ".npz")
        assert not os.path.exists(out + ".parts")
    else:
        for i in range(N):
            name = f"p{i:05d}.npz"
            assert Path(out, name).read_bytes() == Path(ref, name).read_bytes(), name
        a, b = load_export(out), load_export(ref)
    for m in ("fake_stats", "fake_red"):
        assert np.array_equal(a.embedding(m), b.embedding(m))  # bit-equal
    assert a.status == "ok" and a.n_items == N
