"""Honest status: a non-finite embedding is never ok; mostly-nodata patches are exported with a
warning (or failed with fail_on_bad_input); inspect, get_embedding and export agree."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest

from rs_embed import ModelError, PointBuffer, ProviderError, export_batch, get_embedding, inspect_provider_patch, load_export, sample
from rs_embed import input_checks
from rs_embed.cli import main as cli

import fakes
from fakes import T, ex


def _kw(prov, n=5, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats"], backend=prov, show_progress=False,
                **extra)


def _target(tmp_path, layout):
    return tmp_path / "x" if layout == "per_item" else tmp_path / "x.npz"


@pytest.mark.parametrize("layout", ["per_item", "combined"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_embedding_fails_its_point(layout, bad, tmp_path):
    pts = fakes.points(5)
    prov = fakes.FakeProvider(bad_pixel_lons={pts[3].lon: bad})
    res = ex(_kw(prov), out=str(tmp_path / "x"), layout=layout, continue_on_error=True)
    if layout == "per_item":
        assert [m["status"] for m in res] == ["ok", "ok", "ok", "failed", "ok"]
        err = res[3]["models"][0]["error_info"]
        assert res[3]["models"][0]["embedding"] is None
    else:
        assert res["status"] == "partial" and res["models"][0]["failed_indices"] == [3]
        err = res["errors"][0]
    assert err["type"] == "NonFiniteEmbedding" and err["stage"] == "infer" and "non-finite" in err["message"]
    r = load_export(_target(tmp_path, layout))
    assert r.status == "partial" and r.models["fake_stats"].failed_indices == [3]
    with pytest.raises(ModelError, match="non-finite"):  # and it stops an export that must not go on
        ex(_kw(fakes.FakeProvider(bad_pixel_lons={pts[3].lon: bad})), out=str(tmp_path / "y"), layout=layout)


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_load_export_never_reports_a_stored_nan_embedding_as_ok(layout, tmp_path):
    """Files written by other tools (or older versions) whose manifests say ok."""
    ex(_kw(fakes.FakeProvider(), n=4), out=str(tmp_path / "x"), layout=layout)
    if layout == "per_item":
        p = tmp_path / "x" / "p00002.npz"
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["embedding__fake_stats"][1] = np.nan
        np.savez(p, **arrays)
    else:
        with np.load(tmp_path / "x.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays["embeddings__fake_stats"][2, 0] = np.inf
        np.savez(tmp_path / "x.npz", **arrays)
    r = load_export(_target(tmp_path, layout))
    m = r.models["fake_stats"]
    assert not np.isfinite(r.embedding("fake_stats")[2]).all()  # per item: read lazily, checked when read
    assert r.status == "partial" and m.status == "partial" and m.failed_indices == [2]
    assert "NaN or infinite" in m.error and m.meta[2] == {}
    if layout == "per_item":  # without its run index (older versions): checked at once
        os.remove(tmp_path / "x" / "rs_embed_index.parquet")
        r = load_export(_target(tmp_path, layout))
        assert r.status == "partial" and r.models["fake_stats"].failed_indices == [2]


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_mostly_nodata_patches_are_exported_with_a_warning(layout, tmp_path):
    pts = fakes.points(5)
    prov = fakes.FakeProvider(nodata={pts[1].lon: 0.75, pts[2].lon: 0.5})  # 0.5 is not "more than half"
    with pytest.warns(UserWarning, match=r"1 of 5 point\(s\) have mostly-nodata patches.*#1 'p00001' \(75%\)") as rec:
        res = export_batch(**_kw(prov), out=str(tmp_path / "x"), layout=layout)
    assert rec[0].filename == __file__  # pointed at the caller's line, as get_embedding warns
    if layout == "per_item":
        assert all(m["status"] == "ok" for m in res)
        assert [m["nodata_fraction"] for m in res] == [0.0, 0.75, 0.5, 0.0, 0.0]
        assert res[1]["models"][0]["input"]["nodata_fraction"] == 0.75
        [w] = res[1]["warnings"]
        assert res[2]["warnings"] == [] and res[0]["warnings"] == []
        run = json.loads((tmp_path / "x" / "rs_embed_export.json").read_text())
        assert run["warnings"] == [w]
    else:
        assert res["status"] == "ok"
        assert res["models"][0]["nodata_fractions"] == [0.0, 0.75, 0.5, 0.0, 0.0]
        [w] = res["warnings"]
    assert w["type"] == "mostly_nodata" and w["point_index"] == 1 and w["nodata_fraction"] == 0.75
    assert w["limit"] == input_checks.MAX_NODATA and w["models"] == ["fake_stats"]
    with pytest.raises(ProviderError, match=r"point 1 .*75\.0% of pixels are nodata \(limit 50%\).*fail_on_bad_input"):
        ex(_kw(fakes.FakeProvider(nodata={pts[1].lon: 0.75})), out=str(tmp_path / "y"), layout=layout,
           fail_on_bad_input=True)


def test_the_threshold_is_the_one_of_input_checks(tmp_path, monkeypatch):
    pts = fakes.points(3)
    monkeypatch.setattr(input_checks, "MAX_NODATA", 0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 75 % is under the limit now: no warning at all
        res = ex(_kw(fakes.FakeProvider(nodata={pts[1].lon: 0.75}), n=3), out=str(tmp_path / "x"), layout="per_item")
    assert res[1]["warnings"] == []


# --------------------------------------------- one verdict on the real sample


CORNER = PointBuffer(sample.BOUNDS[0] + 0.001, sample.BOUNDS[1] + 0.001, 400)  # ~3/4 outside the scene
INSIDE = sample.points(400)[0].spatial


def test_inspect_get_embedding_and_export_agree_on_the_embedded_scene(tmp_path, capsys):
    from rs_embed.providers.local import LocalProvider

    sensor = get_embedder_sensor()
    verdicts = {}
    for name, roi in (("corner", CORNER), ("inside", INSIDE)):
        rep = inspect_provider_patch(spatial=roi, temporal=sample.TEMPORAL, sensor=sensor, backend="local")
        mostly = any("nodata" in i for i in rep["report"]["issues"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            get_embedding("spectral", spatial=roi, temporal=sample.TEMPORAL, backend="local")
        warned = any("mostly nodata" in str(w.message) for w in caught)
        code = cli(["inspect", "--lon", str(roi.lon), "--lat", str(roi.lat), "--buffer-m", str(roi.buffer_m),
                    "--model", "spectral", "--backend", "local", "--json"])
        cli_mostly = any("nodata" in i for i in json.loads(capsys.readouterr().out)["report"]["issues"])
        verdicts[name] = (mostly, warned, cli_mostly, code != 0)
    assert verdicts["corner"] == (True, True, True, True)
    assert verdicts["inside"][:3] == (False, False, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ex(dict(spatials=[INSIDE, CORNER], temporal=sample.TEMPORAL, models=["spectral"],
                      backend=LocalProvider(), show_progress=False), out=str(tmp_path / "x"), layout="per_item")
    assert any("1 of 2 point(s) have mostly-nodata patches" in str(w.message) for w in caught)
    assert res[0]["warnings"] == [] and res[1]["warnings"][0]["type"] == "mostly_nodata"
    assert res[1]["nodata_fraction"] > input_checks.MAX_NODATA >= res[0]["nodata_fraction"]
    with pytest.raises(ProviderError, match="nodata"):
        ex(dict(spatials=[INSIDE, CORNER], temporal=sample.TEMPORAL, models=["spectral"], backend=LocalProvider(),
                show_progress=False), out=str(tmp_path / "y"), layout="per_item", fail_on_bad_input=True)
    shutil.rmtree(tmp_path / "y", ignore_errors=True)


def test_worker_threads_leave_the_callers_warning_settings_alone(tmp_path):
    """rasterio's own catch_warnings, overlapping in fetch threads, once left "ignore
    everything" behind after a local export, and every later warning vanished."""
    from rs_embed.providers.local import LocalProvider

    pts = [p.spatial for p in sample.points(400)[:12]]
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        mine = warnings.filters
        for k in range(2):
            ex(dict(spatials=pts, temporal=sample.TEMPORAL, models=["spectral"], backend=LocalProvider(),
                    show_progress=False, num_workers=8), out=str(tmp_path / f"x{k}"), layout="per_item")
            assert warnings.filters is mine  # (the local provider adds one narrow filter to it)
            assert not [f for f in warnings.filters if f[0] == "ignore" and f[1] is None and f[2] is Warning]
        with pytest.warns(UserWarning, match="still heard"):
            warnings.warn("still heard")


def get_embedder_sensor():
    from rs_embed.models import get_embedder

    return get_embedder("spectral", device="cpu").default_sensor()
