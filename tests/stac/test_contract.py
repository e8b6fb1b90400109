"""The STAC and AlphaEarth providers keep the export engine's provider contract.

Against the real servers on 127.0.0.1: a fetch stops at its deadline and at a cancel
(servers that accept requests and never answer), a point costs one retry budget
whatever the engine's ``max_retries`` (requests counted at the servers under a 503
storm), the settings that decide the pixels enter the resume fingerprint, and a
sensor the API cannot serve is refused before any file is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import scenes
from rs_embed import PointBuffer, SensorSpec, SpecError, TemporalSpec, export_batch, load_export
from rs_embed.errors import ProviderError
from rs_embed.providers.base import FetchCancelled, FetchContext, FetchTimeout, fetch_scope
from rs_embed.providers.stac import AlphaEarthProvider, StacProvider
from servers import FAST
from test_provider import L2A, ROI, window

HERE = os.path.dirname(os.path.abspath(__file__))
BANDS = ("B2", "B3", "B4", "B8")
S2 = SensorSpec(L2A, BANDS, cloudy_pct=100)
#: three ROIs of the test scenes, far enough apart to need a search each
POINTS = [PointBuffer(ROI.lon + 0.004 * i, ROI.lat, 300) for i in range(3)]


def item(scene: str) -> str:
    return scenes.item_id("earth-search", scenes.SCENES[scene])


@pytest.fixture
def fresh_front(front):
    front.reset()
    yield front
    front.reset()


def _export(prov, out, **kw):
    args = dict(spatials=POINTS, temporal=window("pre"), models=["rcf"], sensor=S2, backend=prov,
                out=str(out), layout="per_item", show_progress=False, device="cpu")
    args.update(kw)
    return export_batch(**args)


# ------------------------------------------------------------- deadline and cancel


def test_a_read_from_a_hung_cog_server_stops_at_the_fetch_deadline(es, cog_server):
    cog_server.hang(item("post"))
    t0 = time.monotonic()
    with fetch_scope(FetchContext(timeout_s=1.0, deadline=time.monotonic() + 1.0)):
        with pytest.raises(FetchTimeout, match=r"fetch_timeout_s=1 ") as err:
            es.fetch(ROI, window("post"), S2)
    took = time.monotonic() - t0
    assert took < 2.0, f"the fetch took {took:.1f} s for a 1 s budget"
    assert cog_server.hung and item("post") in str(err.value)  # names the file it waited for
    assert err.value.attempts >= 1


def test_a_search_on_a_hung_api_stops_at_the_fetch_deadline(fresh_front):
    prov = StacProvider(fresh_front.url, preset="earth-search", **FAST)
    prov.search.client()  # the root answered; now the server stops answering searches
    fresh_front.hang("/search")
    t0 = time.monotonic()
    with fetch_scope(FetchContext(timeout_s=1.0, deadline=time.monotonic() + 1.0)):
        with pytest.raises(FetchTimeout, match="searching 'sentinel-2-l2a'"):
            prov.fetch(ROI, window("pre"), S2)
    assert time.monotonic() - t0 < 2.0
    assert len(fresh_front.requests_to("/search")) == 1  # no retry started past the deadline


def test_a_cancelled_fetch_sends_nothing_and_a_hung_read_is_left_at_once(es, cog_server):
    cancel = threading.Event()
    cancel.set()
    with fetch_scope(FetchContext(timeout_s=60, deadline=time.monotonic() + 60, cancel=cancel)):
        with pytest.raises(FetchCancelled):
            es.fetch(ROI, window("pre"), S2)
    assert es.search.requests == 0 and cog_server.log == []
    cancel.clear()
    cog_server.hang(item("post"))
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    with fetch_scope(FetchContext(timeout_s=60, deadline=time.monotonic() + 60, cancel=cancel)):
        with pytest.raises(FetchCancelled):
            es.fetch(ROI, window("post"), S2)  # reads stuck for up to 60 s; the cancel ends it
    assert time.monotonic() - t0 < 1.5 and cog_server.hung


def test_after_a_timed_out_read_the_file_is_asked_for_again(es, cog_server):
    """GDAL remembers a failed open as a missing file; the next read must not trust that."""
    cog_server.hang(item("post"))
    with fetch_scope(FetchContext(timeout_s=0.5, deadline=time.monotonic() + 0.5)):
        with pytest.raises(FetchTimeout):
            es.fetch(ROI, window("post"), SensorSpec(L2A, ("B4",), cloudy_pct=100))
    cog_server.release()
    patch = es.fetch(ROI, window("post"), SensorSpec(L2A, ("B4",), cloudy_pct=100))
    assert np.isfinite(patch.data).all()


def _child(spec: dict, **kw):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "stac_hang_job.py"), json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_export_over_hung_servers_fails_those_points_on_time_and_resumes(es_api, cog_server, fresh_front,
                                                                         tmp_path):
    """``fetch_timeout_s=2`` with a COG server and then a STAC API that never answer: every
    point fails with the engine's timeout error within seconds (in a child process, so a
    hang cannot stall the suite), and a resume fetches exactly those points again."""
    cog_server.hang(item("post"))
    fresh_front.hang("/search")
    pts = [[p.lon, p.lat, p.buffer_m] for p in POINTS]
    runs = [dict(api=es_api.url, out=str(tmp_path / "cog"), start=window("post").start,
                 end=window("post").end, fetch_timeout_s=2),
            dict(api=fresh_front.url, out=str(tmp_path / "api"), start=window("pre").start,
                 end=window("pre").end, fetch_timeout_s=2)]
    proc = _child({"runs": runs, "points": pts})
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    results = [json.loads(line) for line in out.splitlines() if '"seconds"' in line]
    assert len(results) == 2
    for res, what in zip(results, ("COG server", "STAC API")):
        assert res["seconds"] < 12, f"{what}: {res['seconds']:.1f} s for fetch_timeout_s=2"
        assert [p["status"] for p in res["points"]] == ["failed"] * 3, (what, res)
        for p in res["points"]:
            assert p["error"]["type"] == "FetchTimeout" and p["error"]["stage"] == "fetch", (what, p)
            assert "fetch_timeout_s=2" in p["error"]["message"]
    print(f"hung servers, fetch_timeout_s=2: export of 3 points failed in "
          f"{results[0]['seconds']:.2f} s (COG server) and {results[1]['seconds']:.2f} s (STAC API)")
    cog_server.release()
    fresh_front.release()
    for name, api, t in (("cog", es_api.url, window("post")), ("api", fresh_front.url, window("pre"))):
        prov = StacProvider(api, preset="earth-search", **FAST)
        res = _export(prov, tmp_path / name, temporal=t, resume=True)
        assert [m["status"] for m in res] == ["ok"] * 3
        assert prov.search.requests == 3  # each failed point fetched once more
        assert load_export(tmp_path / name).status == "ok"


def test_ctrl_c_ends_an_export_stuck_on_a_hung_cog_server(es_api, cog_server, tmp_path):
    """With the default fetch_timeout_s (5 minutes) only the interrupt can end it: the
    process must exit at once, not wait for GDAL's stuck reads."""
    cog_server.hang(item("post"))
    spec = {"runs": [dict(api=es_api.url, out=str(tmp_path / "x"), start=window("post").start,
                          end=window("post").end)],
            "points": [[p.lon, p.lat, p.buffer_m] for p in POINTS]}
    proc = _child(spec)
    try:
        deadline = time.monotonic() + 60
        while len(cog_server.hung) < 3:  # every point's reads are waiting on the server
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the child never reached the COG server"
            time.sleep(0.05)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, proc.stderr.read()
    assert took < 5, f"the process took {took:.1f} s to exit after Ctrl-C"
    print(f"Ctrl-C with every read stuck on a hung COG server: the process exited in {took:.2f} s")
    run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
    assert run["stage"] == "stopped" and run["stop_error"]["type"] == "KeyboardInterrupt"


# ------------------------------------------------------------------ one retry layer


def test_a_search_storm_costs_one_retry_budget_per_point(fresh_front, tmp_path):
    fresh_front.storm("/search", 503)
    prov = StacProvider(fresh_front.url, preset="earth-search", max_retries=2, retry_base_s=0.01,
                        retry_cap_s=0.02, fetch_timeout_s=10)
    res = _export(prov, tmp_path / "x", max_retries=5, retry_backoff_s=0.0, continue_on_error=True)
    assert [m["status"] for m in res] == ["failed"] * 3
    searches = fresh_front.requests_to("/search")
    assert len(searches) == 3 * (2 + 1)  # not 3 x (5 + 1) x (2 + 1)
    assert all(r[2] == 503 for r in searches)
    err = res[0]["models"][0]["error_info"]
    assert "HTTP 503" in err["message"] and "retries are spent" in err["message"]
    assert err["attempts"] >= 3 and res[0]["models"][0]["fetch_attempts"] == err["attempts"]
    print(f"503 storm on /search, engine max_retries=5, provider max_retries=2: "
          f"{len(searches)} searches for 3 points")


def test_a_cog_storm_costs_one_retry_budget_per_point(es_api, cog_server, tmp_path):
    cog_server.storm(item("pre"), 503)
    prov = StacProvider(es_api.url, preset="earth-search", max_retries=3, retry_base_s=0.01,
                        retry_cap_s=0.02, fetch_timeout_s=10)
    res = _export(prov, tmp_path / "x", spatials=POINTS[:2], max_retries=5, retry_backoff_s=0.0,
                  continue_on_error=True, num_workers=1)
    assert [m["status"] for m in res] == ["failed"] * 2
    time.sleep(0.5)  # reads of a point still running when its first read gave up end meanwhile
    refused = [s for s in cog_server.log if s.status == 503]
    reads = len(BANDS) + 1  # the bands and the SCL of the one item
    errors = [m["models"][0]["error_info"] for m in res]
    assert all("503" in e["message"] for e in errors)
    # each point: the API's root and the search's pages (up to 3 requests), every read
    # tried once, plus the point's 3 retries in all; not (engine 5 + 1) x (provider 3 + 1)
    # x 5 reads = 120 attempts
    assert len(errors) == 2 and all(e["attempts"] <= 3 + reads + 3 for e in errors), \
        [e["attempts"] for e in errors]
    # GDAL sends one to three requests per attempt (a failed merged range is asked for
    # again range by range), so at most 3 x 8 per point, against 3 x 120
    assert len(refused) <= 2 * 3 * (reads + 3), len(refused)  # the API's requests are not refused
    print(f"503 storm on the COGs, engine max_retries=5, provider max_retries=3: "
          f"{len(refused)} refused requests for 2 points of {reads} reads each "
          f"(attempts per point: {[e['attempts'] for e in errors]})")
    cog_server.reset()  # the storm is over: the files read again (GDAL's memory of it is not trusted)
    assert np.isfinite(prov.fetch(POINTS[0], window("pre"), S2).data).all()


def test_the_engine_does_not_retry_what_the_provider_retried():
    assert StacProvider.retries_itself and AlphaEarthProvider.retries_itself


# -------------------------------------------------------------- resume fingerprint


@pytest.fixture(scope="module")
def finished_export(es_api, tmp_path_factory):
    out = tmp_path_factory.mktemp("fingerprint") / "x"
    res = _export(StacProvider(es_api.url, preset="earth-search", **FAST), out, spatials=POINTS[:1])
    assert res[0]["status"] == "ok"
    return out


CHANGES = [
    ("resampling", {"resampling": "nearest"}),
    ("cloud masking off", {"mask_clouds": False}),
    ("SCL classes", {"scl_invalid": [0, 1, 3, 8, 9, 10, 11]}),
    ("overviews", {"use_overviews": False}),
    ("collection mapping", {"collections": {"s2_l2a": "sentinel-2-l2a"}}),
    ("signing", {"sign": lambda href: href}),
]


@pytest.mark.parametrize("what,change", CHANGES, ids=[c[0] for c in CHANGES])
def test_resume_after_a_setting_that_decides_the_pixels_exports_again(what, change, es_api,
                                                                       finished_export, tmp_path):
    out = tmp_path / "x"
    shutil.copytree(finished_export, out)
    first = json.loads((out / "p00000.json").read_text())
    prov = StacProvider(es_api.url, preset="earth-search", **{**FAST, **change})
    again = _export(prov, out, spatials=POINTS[:1], resume=True)
    assert prov.search.requests == 1, f"{what}: the point was kept"
    assert again[0]["request_fingerprint"] != first["request_fingerprint"]


def test_resume_after_an_unrelated_change_keeps_the_files(es_api, finished_export, tmp_path, cog_server):
    out = tmp_path / "x"
    shutil.copytree(finished_export, out)
    before = (out / "p00000.npz").read_bytes()
    # timeouts, retries, read concurrency, headers and GDAL options change no pixel
    prov = StacProvider(es_api.url, preset="earth-search", max_retries=7, retry_base_s=0.2,
                        fetch_timeout_s=17, max_concurrent_reads=3, headers={"X-Trace": "1"},
                        gdal_options={"GDAL_HTTP_USERAGENT": "test"})
    res = _export(prov, out, spatials=POINTS[:1], resume=True, num_workers=4, chunk_size=3)
    assert res[0]["status"] == "ok" and prov.search.requests == 0 and cog_server.log == []
    assert (out / "p00000.npz").read_bytes() == before


def test_settings_hold_no_credentials():
    prov = StacProvider("http://127.0.0.1:9", preset="planetary-computer",
                        headers={"Authorization": "Bearer s3cret"}, subscription_key="s3cret",
                        gdal_options={"AWS_SECRET_ACCESS_KEY": "s3cret"})
    text = json.dumps(prov.identity())
    assert "s3cret" not in text and '"signing": "planetary-computer"' in text
    assert StacProvider("http://127.0.0.1:9", preset="earth-search").settings()["signing"] is None


def test_alphaearth_settings_name_the_index_by_content(tmp_path):
    a, b = tmp_path / "a" / "aef_index.csv", tmp_path / "b" / "aef_index.csv"
    for p, text in ((a, "year,path\n2022,x\n"), (b, "year,path\n2022,x\n")):
        p.parent.mkdir()
        p.write_text(text)
    sa, sb = AlphaEarthProvider(str(a)).settings(), AlphaEarthProvider(str(b)).settings()
    assert sa == sb and "sha1:" in sa["index"]  # the same index wherever it lies
    b.write_text("year,path\n2023,y\n")
    assert AlphaEarthProvider(str(b)).settings() != sa
    assert StacProvider("http://127.0.0.1:9", preset="earth-search").settings()["alphaearth"]["index"] \
        .startswith("https://")


# ------------------------------------------------------------------------ pre-flight


def _digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@pytest.mark.parametrize("sensor,match", [
    (SensorSpec("no-such-collection", ("B4",)), r"has no collection 'no-such-collection'; it has \['sentinel-2-l2a'"),
    (SensorSpec(L2A, ("B4", "B99")), r"no asset for band\(s\) \['B99'\]"),
], ids=["unknown collection", "unknown band"])
def test_a_sensor_the_api_cannot_serve_is_refused_before_any_file_changes(sensor, match, es, finished_export,
                                                                        cog_server):
    before = _digest(finished_export)
    with pytest.raises(SpecError, match=match):
        _export(es, finished_export, spatials=POINTS[:1], sensor=sensor, resume=True)
    assert _digest(finished_export) == before and load_export(finished_export).status == "ok"
    assert es.search.requests == 0 and cog_server.log == []  # no search, no pixel read
