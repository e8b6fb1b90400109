"""Runs that stop early, fail to write or skip everything: what the folder and manifests say."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from rs_embed import ProviderError, TemporalSpec, load_export

import fakes
from fakes import T, ex

T2 = TemporalSpec.range("2022-03-01", "2022-05-01")


def _kw(prov, n=5, models=("fake_stats",), **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=list(models), backend=prov,
                show_progress=False, **extra)


def _run_manifest(d) -> dict:
    return json.loads((d / "rs_embed_export.json").read_text())


# ------------------------------------------------------------------ stale points


def _stopped_rerun_with_another_window(tmp_path):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider()), out=str(d), layout="per_item")
    pts = fakes.points(5)
    kw = dict(_kw(fakes.FakeProvider(permanent=[pts[1].lon])), temporal=T2)
    with pytest.raises(ProviderError, match=r"point 1"):
        ex(kw, out=str(d), layout="per_item")
    return d


def test_stopped_rerun_with_another_request_never_reports_the_old_points(tmp_path):
    d = _stopped_rerun_with_another_window(tmp_path)
    # the files of the first run are kept on disk ...
    assert all((d / f"p{i:05d}.npz").exists() for i in range(5))
    assert json.loads((d / "p00003.json").read_text())["temporal"] == T.to_dict()
    # ... but they are not part of this export
    e = load_export(d)
    assert e.temporal == T2.to_dict()
    assert e.models["fake_stats"].failed_indices == [1, 2, 3, 4]
    assert e.stale_indices == [1, 2, 3, 4]  # point 1 failed before its file was replaced
    emb = e.embedding("fake_stats")
    assert not np.isnan(emb[0]).any() and np.isnan(emb[1:]).all()
    assert e.models["fake_stats"].status == "partial"
    run = _run_manifest(d)
    assert run["status"] == "failed" and run["stage"] == "stopped"
    assert run["summary"]["ok_points"] == 1 and run["summary"]["missing_points"] == 4
    assert run["point_fingerprints"][0] == json.loads((d / "p00000.json").read_text())["request_fingerprint"]


def test_stale_points_are_detected_without_point_fingerprints(tmp_path):
    """Run manifests of older versions lack ``point_fingerprints``: the window decides."""
    d = _stopped_rerun_with_another_window(tmp_path)
    run = _run_manifest(d)
    del run["point_fingerprints"]
    (d / "rs_embed_export.json").write_text(json.dumps(run))
    assert load_export(d).models["fake_stats"].failed_indices == [1, 2, 3, 4]


def test_resume_after_the_stopped_rerun_exports_the_stale_points_again(tmp_path):
    d = _stopped_rerun_with_another_window(tmp_path)
    prov = fakes.FakeProvider()
    ex(dict(_kw(prov), temporal=T2), out=str(d), layout="per_item", resume=True)
    assert sorted({lon for lon, _ in prov.fetched}) == sorted(p.lon for p in fakes.points(5)[1:])
    e = load_export(d)
    assert e.status == "ok" and e.stale_indices == [] and e.temporal == T2.to_dict()


# ------------------------------------------------------------- stop records


def test_per_item_stopped_run_records_its_cause(tmp_path):
    pts = fakes.points(6)
    prov = fakes.FakeProvider(permanent=[pts[4].lon])
    with pytest.raises(ProviderError):
        ex(_kw(prov, n=6), out=str(tmp_path / "x"), layout="per_item")
    run = _run_manifest(tmp_path / "x")
    assert run["stage"] == "stopped" and run["resume_incomplete"] is True and run["status"] == "failed"
    [err] = run["errors"]
    assert err["point_index"] == 4 and err["model"] == "fake_stats"
    assert err["type"] == "ProviderError" and "no imagery" in err["message"] and err["stage"] == "fetch"
    assert run["stop_error"] == err


def test_combined_stopped_run_records_its_cause_in_the_checkpoint(tmp_path):
    pts = fakes.points(6)
    prov = fakes.FakeProvider(permanent=[pts[4].lon])
    with pytest.raises(ProviderError):
        ex(_kw(prov, n=6), out=str(tmp_path / "x"), layout="combined", chunk_size=2)
    cp = json.loads((tmp_path / "x.parts" / "checkpoint.json").read_text())
    assert cp["stage"] == "stopped" and cp["resume_incomplete"] is True
    [err] = cp["errors"]
    assert err["point_index"] == 4 and err["model"] == "fake_stats" and err["type"] == "ProviderError"
    # the checkpoint still resumes
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=6), out=str(tmp_path / "x"), layout="combined", chunk_size=2, resume=True)
    assert m["status"] == "ok" and sorted({lon for lon, _ in prov.fetched}) == [pts[4].lon]


def test_a_finished_run_is_done_and_complete(tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="per_item")
    run = _run_manifest(tmp_path / "x")
    assert run["stage"] == "done" and run["resume_incomplete"] is False
    assert run["errors"] == [] and run["stop_error"] is None


# ------------------------------------------------------------- write failures


def _fail_writes_of(monkeypatch, bad_name: str, calls: list):
    from rs_embed.export import per_item

    real = per_item.write_npz

    def write(path, arrays, *a, **k):
        calls.append(os.path.basename(path))
        if os.path.basename(path) == bad_name:
            raise OSError(errno.EIO, "injected disk error")
        return real(path, arrays, *a, **k)

    monkeypatch.setattr(per_item, "write_npz", write)


def test_failed_write_marks_the_point_failed_everywhere(tmp_path, monkeypatch):
    _fail_writes_of(monkeypatch, "p00001.npz", [])
    d = tmp_path / "x"
    res = ex(_kw(fakes.FakeProvider(), n=4, models=("fake_stats", "fake_red")), out=str(d),
             layout="per_item", continue_on_error=True, max_retries=0)
    bad = res[1]
    assert bad["status"] == "failed" and "injected disk error" in bad["write_error"]
    assert "npz_path" not in bad and bad["summary"]["ok_models"] == 0
    for entry in bad["models"]:
        assert entry["status"] == "failed" and entry["embedding"] is None
        assert entry["error_info"]["stage"] == "write" and "injected" in entry["error"]
        assert entry["input"]["sha1"] is None and entry["input"]["npz_key"] is None
    assert {(e["model"], e["stage"]) for e in bad["errors"]} == {("fake_stats", "write"), ("fake_red", "write")}
    # the point manifest on disk and the run manifest say the same
    assert json.loads((d / "p00001.json").read_text())["models"][0]["status"] == "failed"
    run = _run_manifest(d)
    assert all(m["failed_indices"] == [1] and m["status"] == "partial" for m in run["models"])
    assert {(e["point_index"], e["stage"]) for e in run["errors"]} == {(1, "write")}
    assert run["summary"]["failed_points"] == 1 and run["stage"] == "done"
    e = load_export(d)
    assert e.models["fake_stats"].failed_indices == [1] and e.models["fake_red"].failed_indices == [1]


def test_failed_write_without_continue_on_error_stops_promptly(tmp_path, monkeypatch):
    calls: list = []
    _fail_writes_of(monkeypatch, "p00002.npz", calls)
    d = tmp_path / "x"
    with pytest.raises(OSError, match=r"writing point 2 \('p00002'\).*injected disk error") as info:
        ex(_kw(fakes.FakeProvider(), n=40), out=str(d), layout="per_item", max_retries=0,
           chunk_size=4, writer_workers=1)
    # what was queued when the failure was seen may finish; the rest is never written
    assert len(calls) <= 2 + 1 + 4 + 1
    assert info.value.point_index == 2
    run = _run_manifest(d)
    assert run["stage"] == "stopped" and run["status"] == "failed" and run["resume_incomplete"] is True
    assert run["stop_error"]["point_index"] == 2 and run["stop_error"]["stage"] == "write"
    assert any(e["point_index"] == 2 and e["stage"] == "write" and "injected" in e["message"]
               for e in run["errors"])
    e = load_export(d)
    assert e.models["fake_stats"].failed_indices[:1] == [2] or 2 in e.models["fake_stats"].failed_indices
    assert not np.isnan(e.embedding("fake_stats")[:2]).any()


# --------------------------------------------------------- resume skips all


def test_resume_that_skips_every_point_rewrites_the_run_manifest(tmp_path):
    d = tmp_path / "x"
    ex(_kw(fakes.FakeProvider()), out=str(d), layout="per_item")
    run = _run_manifest(d)
    run.update(stage="running", status="failed", completed_at=None)  # as a crash would leave it
    (d / "rs_embed_export.json").write_text(json.dumps(run))
    prov = fakes.FakeProvider()
    ex(_kw(prov), out=str(d), layout="per_item", resume=True)
    assert prov.calls == 0
    run = _run_manifest(d)
    assert run["stage"] == "done" and run["status"] == "ok" and run["completed_at"]
    assert run["summary"]["resumed_points"] == 5 and run["summary"]["ok_points"] == 5


# ----------------------------------------------------- combined alignment


def test_combined_inputs_without_indices_are_realigned_with_failed_indices(tmp_path):
    pts = fakes.points(4)
    prov = fakes.FakeProvider(permanent=[pts[1].lon, pts[2].lon])
    ex(_kw(prov, n=4), out=str(tmp_path / "x"), layout="combined", continue_on_error=True)
    full = load_export(tmp_path / "x.npz", inputs=True)
    man = json.loads((tmp_path / "x.json").read_text())
    entry = man["models"][0]
    assert entry["failed_indices"] == [1, 2] and entry["inputs"]["indices"] == [0, 3]
    del entry["inputs"]["indices"]  # as files of the public rs-embed may be
    (tmp_path / "x.json").write_text(json.dumps(man))
    e = load_export(tmp_path / "x.npz", inputs=True)
    inp = e.inputs("fake_stats")
    assert inp.shape[0] == 4
    assert np.isnan(inp[[1, 2]]).all()
    np.testing.assert_array_equal(inp[[0, 3]], full.inputs("fake_stats")[[0, 3]])


def test_combined_rows_that_cannot_be_aligned_are_an_error(tmp_path):
    pts = fakes.points(4)
    prov = fakes.FakeProvider(permanent=[pts[1].lon])
    ex(_kw(prov, n=4), out=str(tmp_path / "x"), layout="combined", continue_on_error=True)
    man = json.loads((tmp_path / "x.json").read_text())
    del man["models"][0]["inputs"]["indices"]
    man["models"][0]["failed_indices"] = [1, 2]  # 2 rows claimed, 3 stored
    (tmp_path / "x.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match=r"3 rows for 4 points"):
        load_export(tmp_path / "x.npz", inputs=True)
