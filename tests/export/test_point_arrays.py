"""ROIs given as arrays (``PointBuffers``): the same export as the same points in a list,
checked as arrays before any work, and no per-point copies of the request in the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rs_embed import PointBuffer, PointBuffers, SpecError, load_export
from rs_embed.io.manifest import request_fingerprint

import fakes
from fakes import T, ex


def _arrays(n):
    pts = fakes.points(n)
    return PointBuffers([p.lon for p in pts], [p.lat for p in pts], pts[0].buffer_m), pts


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_arrays_export_the_same_as_a_list(tmp_path, layout):
    arrays, pts = _arrays(7)
    kw = dict(temporal=T, models=["fake_stats"], show_progress=False, layout=layout)
    a = ex(kw, spatials=pts, backend=fakes.FakeProvider(), out=str(tmp_path / "list"))
    b = ex(kw, spatials=arrays, backend=fakes.FakeProvider(), out=str(tmp_path / "arrays"))
    ra, rb = load_export(tmp_path / ("list" if layout == "per_item" else "list.npz")), \
        load_export(tmp_path / ("arrays" if layout == "per_item" else "arrays.npz"))
    np.testing.assert_array_equal(ra.embedding("fake_stats"), rb.embedding("fake_stats"))
    assert list(rb.spatials) == [p.to_dict() for p in pts]
    if layout == "combined":
        assert a["request_fingerprint"] == b["request_fingerprint"]
    else:
        assert [m["request_fingerprint"] for m in a] == [m["request_fingerprint"] for m in b]
        run = json.loads((tmp_path / "arrays" / "rs_embed_export.json").read_text())
        assert run["names"] == [f"p{i:05d}" for i in range(7)]


@pytest.mark.parametrize("n", [0, 1, 4097, 9000])
def test_the_run_fingerprint_is_the_request_fingerprint_of_every_roi(n):
    """Hashed as the ROIs stream by (blocks of 4096), it equals the fingerprint of the
    request serialised as one JSON document."""
    from rs_embed.io.manifest import spatials_fingerprint

    common = {"models": [{"name": "m", "sensor": None}], "format": "npz", "temporal": None}
    dicts = [p.to_dict() for p in fakes.points(n)]
    assert spatials_fingerprint(common, dicts) == request_fingerprint({**common, "spatials": dicts})
    assert spatials_fingerprint(common, dicts) != spatials_fingerprint({**common, "format": "netcdf"}, dicts)


def test_a_resumed_export_finds_an_arrays_export_finished(tmp_path):
    arrays, _ = _arrays(5)
    kw = dict(spatials=arrays, temporal=T, models=["fake_stats"], show_progress=False,
              out=str(tmp_path / "x"), layout="combined")
    ex(kw, backend=fakes.FakeProvider())
    prov = fakes.FakeProvider()
    ex(kw, backend=prov, resume=True)
    assert prov.calls == 0


def test_bad_values_are_named_by_index_before_anything_is_written(tmp_path):
    with pytest.raises(SpecError, match=r"PointBuffers\.lat\[2\] must be within \[-90, 90\] degrees, got 91\.0"):
        PointBuffers([1, 2, 3], [4, 5, 91], 80)
    with pytest.raises(SpecError, match=r"PointBuffers\.lon\[1\] must be finite"):
        PointBuffers([1, np.nan], [4, 5], 80)
    with pytest.raises(SpecError, match=r"PointBuffers\.buffer_m\[0\] must be > 0 metres"):
        PointBuffers([1, 2], [4, 5], [0, 3])
    with pytest.raises(SpecError, match=r"PointBuffers\.lat has 1 values for 2 points"):
        PointBuffers([1, 2], [4], 80)
    with pytest.raises(SpecError, match=r"PointBuffers\.crs must be 'EPSG:4326'"):
        PointBuffers([1], [4], 80, crs="EPSG:3857")
    with pytest.raises(SpecError, match="spatials must not be empty"):
        ex(dict(spatials=PointBuffers([], [], 80), temporal=T, models=["fake_stats"], show_progress=False),
           backend=fakes.FakeProvider(), out=str(tmp_path / "e"), layout="combined")
    assert not (tmp_path / "e.npz").exists()


def test_indexing_gives_point_buffers():
    arrays = PointBuffers(np.array([10.0, 11.0, 12.0]), np.array([45.0, 46.0, 47.0]), 80)
    assert arrays[1] == PointBuffer(11.0, 46.0, 80.0) and arrays[-1] == PointBuffer(12.0, 47.0, 80.0)
    assert len(arrays[1:]) == 2 and arrays[1:][0] == arrays[1]
    with pytest.raises(IndexError):
        arrays[3]
