"""Failures read well: type, message and stage in every failed point's manifest; a full disk
names the file; a provider that returns the wrong thing is named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rs_embed import load_export
from rs_embed.providers.base import Patch

import fakes
from fakes import T, ex

HERE = os.path.dirname(os.path.abspath(__file__))


def _kw(prov, n=4, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats"], backend=prov, show_progress=False,
                **extra)


class Broken(fakes.FakeProvider):
    """Returns something else than a Patch for the second point."""

    def __init__(self, answer, **kw):
        super().__init__(**kw)
        self.answer = answer

    def fetch(self, spatial, temporal, sensor):
        patch = super().fetch(spatial, temporal, sensor)
        if round(spatial.center[0], 6) == round(fakes.points(4)[1].lon, 6):
            return self.answer(patch)
        return patch


@pytest.mark.parametrize("answer,says", [
    (lambda p: None, r"Broken\.fetch returned NoneType \(None\), not a Patch"),
    (lambda p: p.data, r"Broken\.fetch returned ndarray"),
    (lambda p: Patch(p.data[:2], p.bands[:2], p.grid, p.meta), r"Broken\.fetch returned 2 band\(s\) for the 4 asked"),
    (lambda p: Patch(p.data.tolist(), p.bands, p.grid, p.meta), "data is list; expected a float32"),
])
@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_a_provider_returning_the_wrong_thing_is_named(answer, says, layout, tmp_path):
    prov = Broken(answer)
    res = ex(_kw(prov), out=str(tmp_path / "x"), layout=layout, continue_on_error=True, max_retries=3)
    if layout == "per_item":
        err = res[1]["models"][0]["error_info"]
        on_disk = json.loads((tmp_path / "x" / "p00001.json").read_text())["models"][0]["error_info"]
        assert on_disk == err
    else:
        err = next(e for e in res["errors"] if e["point_index"] == 1)
    assert err["type"] == "ProviderError" and err["stage"] == "fetch" and err["attempts"] == 1  # not retried
    import re

    assert re.search(says, err["message"]), err["message"]
    assert "test_messages.Broken.fetch" in err["message"]  # the provider's class, by its module


def test_every_failed_point_says_type_message_and_stage(tmp_path, monkeypatch):
    def silent(self, x, **kw):
        raise RuntimeError()  # no message at all

    monkeypatch.setattr(fakes.StatsEmbedder, "embed", silent)
    monkeypatch.setattr(fakes.StatsEmbedder, "embed_batch", silent)
    pts = fakes.points(4)
    prov = fakes.FakeProvider(permanent=[pts[0].lon])
    for layout in ("per_item", "combined"):
        res = ex(_kw(prov), out=str(tmp_path / layout), layout=layout, continue_on_error=True)
        if layout == "per_item":
            errors = [m["models"][0]["error_info"] for m in res]
            texts = [m["models"][0]["error"] for m in res]
        else:
            errors = sorted(res["errors"], key=lambda e: e["point_index"])
            texts = list(res["models"][0]["errors_by_index"].values())
        assert [e["stage"] for e in errors] == ["fetch", "infer", "infer", "infer"]
        assert errors[0]["type"] == "ProviderError" and "no imagery covers" in errors[0]["message"]
        assert all(e["type"] == "RuntimeError" and e["message"] == "Unspecified run-time error."
                   for e in errors[1:])
        assert all(t and ": " in t for t in texts)


def _run_in_tmpfs(size: str, *args) -> dict:
    """Run diskfull_job.py on a tmpfs of ``size``: in a private mount namespace (unshare,
    no root needed), else a plain mount when root; skip where neither is allowed."""
    folder = tempfile.mkdtemp(prefix="rs_embed_tmpfs_")
    job = [sys.executable, os.path.join(HERE, "diskfull_job.py")]
    try:
        if shutil.which("unshare"):
            script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
            proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", size, folder, *job, folder, *args],
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode == 0:
                return json.loads(proc.stdout.strip().splitlines()[-1])
            if "mount" not in proc.stderr and "unshare" not in proc.stderr:
                raise AssertionError(proc.stderr)
        if os.geteuid() == 0 and shutil.which("mount"):
            if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder]).returncode == 0:
                try:
                    proc = subprocess.run([*job, folder, *args], capture_output=True, text=True, timeout=300)
                    assert proc.returncode == 0, proc.stderr
                    return json.loads(proc.stdout.strip().splitlines()[-1])
                finally:
                    subprocess.run(["umount", folder])
        pytest.skip("this machine allows neither a private tmpfs (unshare -rm) nor mount")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_full_disk_names_the_file_while_points_are_written():
    out = _run_in_tmpfs("256k", "per_item")
    assert out["type"] == "OSError" and "No space left on device" in out["error"]
    assert "writing point" in out["error"] and "/x/p000" in out["error"]


def test_a_full_disk_during_assembly_names_the_file_and_keeps_the_checkpoint():
    out = _run_in_tmpfs("3m", "combined")
    assert out["type"] == "OSError" and "No space left on device" in out["error"]
    assert out["error"].endswith("x.npz'") and "x.npz" not in out["files"]
    cp = out["checkpoint"]
    assert cp["stage"] == "stopped" and cp["errors"][0]["stage"] == "assemble"
    assert "No space left" in cp["errors"][0]["message"]
    # once there is room again, resume assembles from the checkpoint without fetching anything
    assert out["resumed_status"] == "ok" and out["resume_calls"] == 0 and out["loaded"] == "ok"


def test_manifests_never_say_running_after_a_failure(tmp_path):
    pts = fakes.points(6)
    with pytest.raises(Exception):
        ex(_kw(fakes.FakeProvider(permanent=[pts[2].lon]), n=6), out=str(tmp_path / "x"), layout="per_item")
    run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
    assert run["stage"] == "stopped" and run["stop_error"]["message"]
    assert np.isnan(load_export(tmp_path / "x").embedding("fake_stats")[2]).all()
