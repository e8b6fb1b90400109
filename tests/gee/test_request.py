"""The exact computePixels requests: expression graph (golden files), grid, band ids."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rs_embed.geometry import roi_grid

from .request_cases import CASES, record

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
UPDATE = os.environ.get("RS_EMBED_UPDATE_GOLDEN") == "1"


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, indent=1) + "\n"


@pytest.fixture
def sent(transport):
    from rs_embed.providers.gee import GEEProvider

    return record(transport, lambda **kw: GEEProvider(**kw))


def _pinned_client_version() -> str:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    m = re.search(r'gee = \["earthengine-api==([^"]+)"\]', text)
    assert m, "the gee extra must pin earthengine-api to one version"
    return m.group(1)


def test_golden_files_come_from_the_pinned_client():
    import ee

    assert ee.__version__ == _pinned_client_version(), (
        f"golden files were recorded with earthengine-api {_pinned_client_version()} (the 'gee' "
        f"extra); installed is {ee.__version__}")


def test_bodies_match_golden_files(sent):
    assert set(sent) == set(CASES)
    for name, bodies in sent.items():
        path = GOLDEN / f"{name}.json"
        if UPDATE:
            path.write_text(_canonical(bodies))
        assert path.exists(), f"missing golden file {path}; run with RS_EMBED_UPDATE_GOLDEN=1"
        assert _canonical(bodies) == path.read_text(), f"request for {name!r} changed"


def test_bodies_are_identical_in_a_fresh_process(sent):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, str(Path(__file__).parent / "request_cases.py")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == json.loads(json.dumps(sent))


def test_one_request_per_patch_with_explicit_utm_grid_and_band_ids(sent):
    for name, (spatial, temporal, sensors, _) in CASES.items():
        bodies = sent[name]
        assert len(bodies) == 1, name
        body = bodies[0]
        assert body["fileFormat"] == "NPY"
        grid = roi_grid(spatial, sensors[0].scale_m)
        a, b, c, d, e, f = grid.transform
        assert body["grid"] == {
            "crsCode": grid.crs,
            "dimensions": {"width": grid.width, "height": grid.height},
            "affineTransform": {"scaleX": a, "shearX": b, "translateX": c,
                                "shearY": d, "scaleY": e, "translateY": f},
        }, name
        union = []
        for s in sensors:
            union += [band for band in s.bands if band not in union]
        assert body["bandIds"][:len(union)] == union, name
        extra = body["bandIds"][len(union):]
        assert extra[0].startswith("_rs_valid_") and "_rs_scenes" in extra, name


def _functions(node, acc):
    if isinstance(node, dict):
        if "functionName" in node:
            acc.append(node["functionName"])
        for v in node.values():
            _functions(v, acc)
    elif isinstance(node, list):
        for v in node:
            _functions(v, acc)
    return acc


def _constants(node, acc):
    if isinstance(node, dict):
        if "constantValue" in node:
            acc.append(node["constantValue"])
        for v in node.values():
            _constants(v, acc)
    elif isinstance(node, list):
        for v in node:
            _constants(v, acc)
    return acc


def test_graph_filters_follow_the_sensor(sent):
    def graph(name):
        body = sent[name][0]
        return _functions(body["expression"], []), _constants(body["expression"], [])

    fns, consts = graph("s2_l2a_median")
    assert "reduce.median" in fns and "ImageCollection.mosaic" not in fns
    assert "COPERNICUS/S2_SR_HARMONIZED" in consts and "CLOUDY_PIXEL_PERCENTAGE" in consts
    assert "Image.linkCollection" not in fns

    fns, consts = graph("s2_l1c_mosaic_cloudscoreplus")
    assert "ImageCollection.mosaic" in fns and "Collection.limit" in fns  # sort = limit(key)
    assert "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in consts and 0.65 in consts

    fns, consts = graph("landsat9_median")
    assert "CLOUD_COVER" in consts and "CLOUDY_PIXEL_PERCENTAGE" not in consts

    fns, consts = graph("s1_iw_descending_linear_relaxed")
    assert "COPERNICUS/S1_GRD_FLOAT" in consts and "DESCENDING" in consts and "IW" in consts
    assert "If" in fns and "_rs_iw_scenes" in sent["s1_iw_descending_linear_relaxed"][0]["bandIds"]
    assert "CLOUDY_PIXEL_PERCENTAGE" not in consts and "CLOUD_COVER" not in consts

    fns, consts = graph("s1_db_strict_iw")
    assert "COPERNICUS/S1_GRD" in consts and "COPERNICUS/S1_GRD_FLOAT" not in consts
    assert "If" not in fns and "IW" in consts

    fns, consts = graph("gse_2022")
    assert "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL" in consts
    assert not any(isinstance(c, str) and "CLOUD" in c for c in consts)

    fns, consts = graph("generic_collection_no_cloud_filter")
    assert "Filter.dateRangeContains" not in fns  # temporal=None: no date filter
    assert not any(isinstance(c, str) and "CLOUD" in c for c in consts)


def test_dry_run_shows_what_is_sent(provider, transport):
    spatial, temporal, sensors, _ = CASES["shared_s2_three_sensors"]
    planned = provider.request_params(spatial, temporal, sensors)
    assert transport.compute_pixels_calls() == []
    provider.fetch_many(spatial, temporal, sensors)
    assert planned == [c.body for c in transport.compute_pixels_calls()]


def test_requests_go_to_the_high_volume_endpoint_of_the_project(provider, transport):
    spatial, temporal, sensors, _ = CASES["s2_l2a_median"]
    provider.fetch(spatial, temporal, sensors[0])
    (call,) = transport.compute_pixels_calls()
    assert call.uri.startswith("https://earthengine-highvolume.googleapis.com/")
    assert "/projects/rs-embed-test/image:computePixels" in call.uri
    assert call.body["workloadTag"] == "rs-embed"
