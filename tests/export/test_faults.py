"""Faults: transient errors retried, permanent ones recorded (or raised), bad inputs, write errors."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from rs_embed import ProviderError, SensorSpec, load_export

import fakes
from fakes import T, ex

ALL = ["fake_stats", "fake_red"]


def thirty_percent(lon, attempt):
    """A fixed schedule failing 3 of every 10 calls, at most 3 times in a row per point."""
    i = int(round(lon * 100))
    return (i * 7 + attempt) % 10 < 3


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_transient_failures_are_retried_until_every_point_is_exported(layout, tmp_path):
    prov = fakes.FakeProvider(schedule=thirty_percent)
    pts = fakes.points(20)
    res = ex(dict(spatials=pts, temporal=T, models=ALL, backend=prov, show_progress=False),
             out=str(tmp_path / "x"), layout=layout, max_retries=3, retry_backoff_s=0.001, num_workers=4)
    assert 0.2 <= prov.transient_failures / prov.calls <= 0.4
    statuses = [m["status"] for m in res] if layout == "per_item" else [res["status"]]
    assert set(statuses) == {"ok"}
    r = load_export(tmp_path / "x" if layout == "per_item" else tmp_path / "x.npz")
    assert not np.isnan(r.embedding("fake_stats")).any()
    if layout == "per_item":
        attempts = [e["fetch_attempts"] for m in res for e in m["models"]]
        assert max(attempts) == 4 and min(attempts) == 1


def test_too_few_retries_leave_the_unlucky_points_failed(tmp_path):
    prov = fakes.FakeProvider(schedule=thirty_percent)
    pts = fakes.points(20)
    res = ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
             out=str(tmp_path / "x"), layout="per_item", max_retries=2, continue_on_error=True)
    failed = [m["point_index"] for m in res if m["status"] == "failed"]
    expected = [i for i, p in enumerate(pts) if all(thirty_percent(round(p.lon, 6), a) for a in (1, 2, 3))]
    assert failed == expected and failed
    err = res[failed[0]]["models"][0]
    assert err["error_info"]["attempts"] == 3 and err["error_info"]["type"] == "ProviderError"


def test_deterministic_errors_are_not_retried(tmp_path):
    pts = fakes.points(6)
    prov = fakes.FakeProvider(permanent=[pts[2].lon])
    ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
       out=str(tmp_path / "x"), layout="per_item", max_retries=5, continue_on_error=True)
    assert prov.attempts[round(pts[2].lon, 6)] == 1


@pytest.mark.parametrize("layout,fmt", [("per_item", "npz"), ("combined", "npz"), ("combined", "netcdf"),
                                        ("per_item", "netcdf")])
def test_permanent_failures_with_continue_on_error(layout, fmt, tmp_path):
    pts = fakes.points(20)
    bad = [3, 19]  # one in the middle, one trailing
    prov = fakes.FakeProvider(permanent=[pts[i].lon for i in bad])
    res = ex(dict(spatials=pts, temporal=T, models=ALL, backend=prov, show_progress=False),
             out=str(tmp_path / "x"), layout=layout, format=fmt, continue_on_error=True, max_retries=2)
    if layout == "per_item":
        assert [m["status"] for m in res] == ["failed" if i in bad else "ok" for i in range(20)]
        run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
        assert run["status"] == "partial" and run["summary"]["failed_points"] == 2
        errors = run["errors"]
        path = tmp_path / "x"
    else:
        assert res["status"] == "partial" and res["summary"]["partial_models"] == 2
        for e in res["models"]:
            assert e["status"] == "partial" and e["failed_indices"] == bad
            assert set(e["errors_by_index"]) == {"3", "19"}
            assert "no imagery covers" in e["errors_by_index"]["3"]
            assert e["metas"][3] is None and e["metas"][4] is not None
        on_disk = json.loads((tmp_path / "x.json").read_text())
        assert on_disk["models"][0]["errors_by_index"] == res["models"][0]["errors_by_index"]
        errors = res["errors"]
        path = tmp_path / f"x.{'npz' if fmt == 'npz' else 'nc'}"
        assert os.path.isdir(tmp_path / "x.parts")  # kept so resume can retry the failures
    assert sorted((e["point_index"], e["model"]) for e in errors) == sorted(
        (i, m) for i in bad for m in ALL)
    assert all(e["type"] == "ProviderError" and e["stage"] == "fetch" and e["message"] for e in errors)
    r = load_export(path, inputs=True)
    assert r.n_items == 20 and r.status == "partial"
    for m in ALL:
        emb = r.embedding(m)
        assert emb.shape[0] == 20
        assert np.isnan(emb[bad]).all() and not np.isnan(np.delete(emb, bad, axis=0)).any()
        assert r.models[m].status == "partial" and r.models[m].failed_indices == bad
        inp = r.inputs(m)
        assert np.isnan(inp[bad]).all() and not np.isnan(np.delete(inp, bad, axis=0)).any()


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_stop_at_first_failure_names_point_and_model(layout, tmp_path):
    pts = fakes.points(40)
    prov = fakes.FakeProvider(permanent=[pts[21].lon])
    with pytest.raises(ProviderError, match=r"point 21 \('p00021'\), model 'fake_stats'.*no imagery") as info:
        ex(dict(spatials=pts, temporal=T, models=ALL, backend=prov, show_progress=False),
           out=str(tmp_path / "x"), layout=layout, chunk_size=8)
    assert info.value.point_index == 21 and info.value.model == "fake_stats"
    assert info.value.transient is False
    if layout == "per_item":
        # per-point inference stops at the failing point; everything before it was written
        done = sorted(f for f in os.listdir(tmp_path / "x") if f.endswith(".npz"))
        assert done == [f"p{i:05d}.npz" for i in range(21)]
        run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
        assert run["stage"] == "stopped" and run["status"] == "failed"
        assert load_export(tmp_path / "x").embedding("fake_stats")[:21].shape == (21, 8)
    else:
        assert not (tmp_path / "x.npz").exists()  # no partial file under the final name
        shards = [f for f in os.listdir(tmp_path / "x.parts") if f.endswith(".json") and f.startswith("s")]
        pts_done = sorted(p["i"] for f in shards for p in json.loads((tmp_path / "x.parts" / f).read_text())["points"])
        # batched inference finishes the failing chunk (16..23) and keeps its complete points
        assert pts_done == [i for i in range(24) if i != 21]


def test_fail_on_bad_input_raises_on_a_bad_patch(tmp_path):
    pts = fakes.points(10)
    prov = fakes.FakeProvider(nan_lons=[pts[6].lon])
    with pytest.raises(ProviderError, match=r"input check failed at point 6 .*NaN.*fail_on_bad_input") as info:
        ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
           out=str(tmp_path / "x"), layout="per_item", fail_on_bad_input=True, continue_on_error=True, chunk_size=4)
    assert info.value.point_index == 6
    assert sorted(f for f in os.listdir(tmp_path / "x") if f.endswith(".npz")) == [f"p{i:05d}.npz" for i in range(6)]
    m = json.loads((tmp_path / "x" / "p00001.json").read_text())
    assert m["models"][0]["input"]["inspection"]["ok"] is True


def test_bad_patch_without_fail_on_bad_input_is_a_recorded_model_failure(tmp_path):
    pts = fakes.points(5)
    prov = fakes.FakeProvider(nan_lons=[pts[1].lon])
    for layout in ("per_item", "combined"):
        res = ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
                 out=str(tmp_path / layout), layout=layout, continue_on_error=True)
        if layout == "per_item":
            assert [m["status"] for m in res] == ["ok", "failed", "ok", "ok", "ok"]
            e = res[1]["models"][0]
            assert e["error_info"]["stage"] == "infer" and "no finite value" in e["error"]
            assert e["input"]["inspection"] is None  # checks not requested
        else:  # the failing batch falls back to one point at a time: only point 1 fails
            assert res["models"][0]["failed_indices"] == [1]


def test_sensor_checks_are_recorded_in_the_manifest(tmp_path):
    pts = fakes.points(3)
    prov = fakes.FakeProvider(nan_lons=[pts[2].lon])
    s = SensorSpec(fakes.COLLECTION, fakes.BANDS, check_input=True, check_raise=True)
    res = ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=prov, show_progress=False),
             sensor=s, out=str(tmp_path / "x"), layout="per_item", continue_on_error=True)
    assert res[0]["models"][0]["input"]["inspection"]["ok"] is True
    bad = res[2]["models"][0]
    assert bad["status"] == "failed" and bad["error_info"]["stage"] == "input_check"
    assert bad["input"]["inspection"]["ok"] is False


def test_write_errors_are_retried_when_transient(tmp_path, monkeypatch):
    from rs_embed.export import per_item

    real = per_item.write_npz
    calls = {"n": 0}

    def flaky(path, arrays, *a, **k):
        calls["n"] += 1
        if calls["n"] % 2 == 1:
            raise OSError(errno.EIO, "I/O error (fake)")
        return real(path, arrays, *a, **k)

    monkeypatch.setattr(per_item, "write_npz", flaky)
    pts = fakes.points(4)
    res = ex(dict(spatials=pts, temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(), show_progress=False),
             out=str(tmp_path / "x"), layout="per_item", max_retries=1)
    assert [m["status"] for m in res] == ["ok"] * 4 and calls["n"] == 8


def test_permanent_write_errors_are_not_retried(tmp_path, monkeypatch):
    from rs_embed.export import per_item

    calls = {"n": 0}

    def denied(path, arrays, *a, **k):
        calls["n"] += 1
        raise PermissionError(errno.EACCES, "permission denied (fake)")

    monkeypatch.setattr(per_item, "write_npz", denied)
    pts = fakes.points(3)
    kw = dict(spatials=pts, temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(), show_progress=False)
    with pytest.raises(OSError, match=r"writing point 0 .*permission denied"):
        ex(kw, out=str(tmp_path / "x"), layout="per_item", max_retries=3)
    assert 1 <= calls["n"] <= 3  # never retried; the export stops at the failed write
    calls["n"] = 0
    res = ex(kw, out=str(tmp_path / "y"), layout="per_item", max_retries=3, continue_on_error=True)
    assert calls["n"] == 3  # once per point, never retried
    assert all(m["status"] == "failed" and "permission denied" in m["write_error"] for m in res)
