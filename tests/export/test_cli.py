"""The rs-embed command line: ROI files, options, help, and one-line errors with exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rs_embed import load_export
from rs_embed.cli import main
from rs_embed.providers import register_provider

import fakes

register_provider("clifake", fakes.FakeProvider)

BASE = ["--models", "fake_stats", "--backend", "clifake", "--start", "2022-06-01", "--end", "2022-09-01",
        "--buffer-m", "40", "--no-progress"]


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rs-embed: error: ")
    return err[0]


def test_csv_with_header_and_names(tmp_path, capsys):
    csv = tmp_path / "sites.csv"
    csv.write_text("name,lat,lon\nfarm,46.0,11.0\nlake,46.01,11.02\n")
    rc = main(["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "out"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "ok" and summary["layout"] == "per_item" and summary["n_items"] == 2
    assert sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".npz")) == ["farm.npz", "lake.npz"]
    r = load_export(tmp_path / "out")
    assert r.spatials[1]["lon"] == 11.02 and r.spatials[1]["buffer_m"] == 40


def test_csv_without_header_to_a_combined_file(tmp_path, capsys):
    csv = tmp_path / "pts.csv"
    csv.write_text("11.0,46.0\n11.01,46.0\n11.02,46.0\n")
    rc = main(["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "all.npz")])
    assert rc == 0 and "ok: 3 ROIs x 1 models" in capsys.readouterr().out
    with np.load(tmp_path / "all.npz") as z:
        assert z["embeddings__fake_stats"].shape == (3, 8)


def test_geojson_points_and_polygons_to_netcdf(tmp_path, capsys):
    gj = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "a", "buffer_m": 30},
         "geometry": {"type": "Point", "coordinates": [11.0, 46.0]}},
        {"type": "Feature", "properties": {"name": "b"},
         "geometry": {"type": "Polygon", "coordinates": [[[11.1, 46.0], [11.101, 46.0], [11.101, 46.001],
                                                          [11.1, 46.001], [11.1, 46.0]]]}},
    ]}
    (tmp_path / "r.geojson").write_text(json.dumps(gj))
    rc = main(["export", "--rois", str(tmp_path / "r.geojson"), *BASE, "--year", "2022", "--start", "",
               "--end", "", "--out", str(tmp_path / "o"), "--layout", "combined", "--format", "netcdf"])
    assert rc == 0, capsys.readouterr().err
    r = load_export(tmp_path / "o.nc")
    assert r.spatials[0]["buffer_m"] == 30 and r.spatials[1]["type"] == "BBox"
    assert r.temporal["mode"] == "year" and r.temporal["year"] == 2022


def test_resume_workers_chunk_size_and_retries_are_passed(tmp_path, capsys):
    csv = tmp_path / "pts.csv"
    csv.write_text("lon,lat\n" + "".join(f"{11 + i / 100},46.0\n" for i in range(5)))
    args = ["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "o"), "--workers", "2",
            "--chunk-size", "2", "--max-retries", "2", "--retry-backoff", "0", "--writer-workers", "1"]
    assert main(args) == 0
    before = os.path.getmtime(tmp_path / "o" / "p00000.npz")
    assert main(args + ["--resume"]) == 0
    assert os.path.getmtime(tmp_path / "o" / "p00000.npz") == before


NO_TIME = ["--models", "fake_stats", "--backend", "clifake", "--buffer-m", "40", "--no-progress"]
YEAR = ["--year", "2022"]


@pytest.mark.parametrize("argv,match", [
    (["--rois", "missing.csv", *YEAR], "no such file"),
    (["--rois", "{bad}", *YEAR], "lat must be a number"),
    (["--rois", "{ok}", *YEAR, "--start", "2022-01-01", "--end", "2022-02-01"], "not both"),
    (["--rois", "{ok}", "--start", "2022-01-01"], "go together"),
    (["--rois", "{ok}", *YEAR, "--models", "fake_stat"], "did you mean 'fake_stats'"),
    (["--rois", "{ok}", *YEAR, "--workers", "0"], "num_workers must be an integer >= 1"),
    (["--sample", "--rois", "{ok}"], "--rois FILE"),
    (["--rois", "{geo}", *YEAR], "geometry 'LineString'"),
    (["--rois", "{ok}", "--start", "2022-05-01", "--end", "2022-04-01"], "start must be before end"),
])
def test_bad_input_is_one_line_and_exit_2(argv, match, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("lon,lat\n11.0,north\n")
    (tmp_path / "ok.csv").write_text("11.0,46.0\n")
    (tmp_path / "g.geojson").write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    subst = {"{bad}": str(tmp_path / "bad.csv"), "{ok}": str(tmp_path / "ok.csv"), "{geo}": str(tmp_path / "g.geojson")}
    argv = [subst.get(a, a) for a in argv]
    # a later --models wins in argparse, so the bad name replaces the good one
    rc = main(["export", *NO_TIME, *argv, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert match in _err(capsys)


def test_failed_points_exit_3_with_continue_on_error(tmp_path, capsys, monkeypatch):
    csv = tmp_path / "pts.csv"
    csv.write_text("11.0,46.0\n11.01,46.0\n")
    register_provider("clifail", lambda: fakes.FakeProvider(permanent=[11.01]))
    rc = main(["export", "--rois", str(csv), *BASE[:2], "--backend", "clifail", "--year", "2022", "--buffer-m", "40",
               "--no-progress", "--out", str(tmp_path / "o"), "--continue-on-error"])
    assert rc == 3 and "fake_stats: 1 point(s) failed" in capsys.readouterr().out
    rc = main(["export", "--rois", str(csv), *BASE[:2], "--backend", "clifail", "--year", "2022", "--buffer-m", "40",
               "--no-progress", "--out", str(tmp_path / "p")])
    assert rc == 1
    assert "point 1" in _err(capsys)


def test_sample_export_and_inspect_on_the_embedded_scene(tmp_path, capsys):
    rc = main(["export", "--sample", "--models", "spectral", "--backend", "local", "--out", str(tmp_path / "s"),
               "--no-progress", "--no-inputs"])
    assert rc == 0, capsys.readouterr().err
    import rs_embed

    names = [p.name for p in rs_embed.sample.points()]
    assert sorted(f[:-4] for f in os.listdir(tmp_path / "s") if f.endswith(".npz")) == sorted(names)
    capsys.readouterr()
    p = rs_embed.sample.points()[0]
    rc = main(["inspect", "--lon", str(p.lon), "--lat", str(p.lat), "--buffer-m", "200", "--model", "rcf",
               "--backend", "local", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["ok"] is True and rep["report"]["shape"][0] == 10
    rc = main(["inspect", "--lon", str(p.lon), "--lat", str(p.lat), "--backend", "local", "--model", "rcf",
               "--bands", "B4"])
    assert rc == 2 and "not both" in _err(capsys)


def test_help_is_there_for_a_new_user(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("--rois", "--buffer-m", "--models", "--start", "--year", "--out", "--layout", "--format",
                 "--backend", "--resume", "--workers", "--chunk-size", "examples:"):
        assert word in out
    assert main([]) == 2
    main(["models"])
    assert "rcf" in capsys.readouterr().out


def test_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "rs-embed")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "rs_embed.cli"]
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "export" in proc.stdout and "inspect" in proc.stdout


def test_sample_export_honours_buffer_m(tmp_path):
    import json

    from rs_embed.cli import main

    out = tmp_path / "s.npz"
    assert main(["export", "--sample", "--buffer-m", "250", "--models", "spectral", "--backend", "local",
                 "--out", str(out), "--no-progress"]) == 0
    man = json.loads((tmp_path / "s.json").read_text())
    assert {s["buffer_m"] for s in man["spatials"]} == {250.0}
    assert main(["export", "--sample", "--buffer-m", "1000", "--models", "spectral", "--backend", "local",
                 "--out", str(tmp_path / "t.npz"), "--no-progress"]) == 2


def test_timeouts_patch_limits_and_locks_from_the_command_line(tmp_path, capsys):
    csv = tmp_path / "pts.csv"
    csv.write_text("11.0,46.0\n11.01,46.0\n")
    rc = main(["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "a"), "--fetch-timeout", "0"])
    assert rc == 2 and "fetch_timeout_s must be a number of seconds > 0" in _err(capsys)
    big = [a if a != "40" else "500000" for a in BASE]
    rc = main(["export", "--rois", str(csv), *big, "--out", str(tmp_path / "a")])
    assert rc == 2 and "max_patch_mb=1024" in _err(capsys) and not (tmp_path / "a").exists()
    from rs_embed.io.lock import ExportLock

    (tmp_path / "b").mkdir()
    with ExportLock(str(tmp_path / "b" / ".rs_embed.lock"), "held by this test"):
        rc = main(["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "b"), "--fetch-timeout", "30"])
    assert rc == 1 and f"pid {os.getpid()}" in _err(capsys)
    rc = main(["export", "--rois", str(csv), *BASE, "--out", str(tmp_path / "b"), "--fetch-timeout", "30",
               "--max-patch-mb", "1", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["mostly_nodata_points"] == []
