"""Everything knowable is checked before any state: a rejected request leaves every file as it was.

A finished export sits in the folder; each bad request must fail with a SpecError that
names the argument, before the provider is asked for anything, and the folder must
hash to the same bytes afterwards (and still load as ``ok``).
"""

from __future__ import annotations

import hashlib
import os

import pytest

from rs_embed import BBox, PointBuffer, SensorSpec, SpecError, load_export
from rs_embed.providers.local import LocalProvider
from rs_embed.providers.stac import AlphaEarthProvider, StacProvider

import fakes
from fakes import T, ex


def folder_digest(root) -> str:
    """Names, kinds and bytes of everything under ``root`` (hidden files included)."""
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
        for sub in dirs:
            h.update(b"dir:" + os.path.relpath(os.path.join(d, sub), root).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished per-item export in ``root/items`` and a combined one in ``root/run.npz``."""
    root = tmp_path_factory.mktemp("preflight")
    kw = dict(spatials=fakes.points(3), temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
              show_progress=False)
    ex(kw, out=str(root / "items"), layout="per_item", names=["a", "b", "c"])
    ex(kw, out=str(root / "run"), layout="combined")
    return root


OK = [PointBuffer(11.0, 46.0, 40)]
DEAD_STAC = "http://127.0.0.1:9"  # nothing listens: a request would fail, not refuse
NEAR_POLE = PointBuffer(10.0, 84.5, 100)


CASES = [
    ("polar point", dict(spatials=OK + [NEAR_POLE]), r"spatials\[1\]=PointBuffer.*outside the UTM zones"),
    ("south polar box", dict(spatials=[BBox(10.0, -89.0, 10.1, -85.0)]), r"spatials\[0\]=BBox.*\|lat\| <= 84"),
    ("huge buffer", dict(spatials=[PointBuffer(11.0, 46.0, 500_000)]),
     r"100000 x 100000 px patch of 4 band\(s\).*max_patch_mb=1024 \(1\.0 GiB\).*smaller buffer_m.*scale_m"),
    ("huge box", dict(spatials=[BBox(0.0, 0.0, 20.0, 20.0)]), r"spatials\[0\]=BBox.*smaller the box"),
    ("limit lowered", dict(spatials=[PointBuffer(11.0, 46.0, 2000)], max_patch_mb=1),
     r"400 x 400 px patch.*2\.4 MiB.*max_patch_mb=1 "),
    ("NFC/NFD twins", dict(spatials=OK * 2, names=["Caf\u00e9", "Cafe\u0301"]),
     r"\(code points 'Caf\\xe9' and 'Cafe\\u0301'\) name the same file.*NFC"),
    ("case twins", dict(spatials=OK * 2, names=["SITE", "site"]), "name the same file"),
    ("device name", dict(names=["aux"]), r"names\[0\]='aux' is a device name Windows reserves"),
    ("device name with extension", dict(names=["CON.part"]), "Windows reserves"),
    ("unknown collection", dict(backend=LocalProvider()), "no 'FAKE/S2' scenes"),
    ("unknown band", dict(backend=LocalProvider(), sensor=SensorSpec("COPERNICUS/S2_HARMONIZED",
                                                                     ("B2", "B3", "B4", "B99"))),
     r"band\(s\) 'B99' not in the local catalog"),
    # the STAC backends decide from the sensor vocabulary: no server is needed (none answers here)
    ("STAC unknown band", dict(backend=StacProvider(DEAD_STAC, preset="earth-search"),
                               sensor=SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B2", "B3", "B4", "B99"))),
     r"collection 'sentinel-2-l2a' has no asset for band\(s\) \['B99'\]"),
    ("STAC collection not on the API", dict(backend=StacProvider(DEAD_STAC, preset="earth-search"),
                                            sensor=SensorSpec("COPERNICUS/S1_GRD", ("VV", "VH"))),
     "has no collection serving 'COPERNICUS/S1_GRD'"),
    ("AlphaEarth other collection", dict(backend=AlphaEarthProvider(DEAD_STAC + "/aef_index.parquet")),
     r"backend 'alphaearth' serves only 'GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL'"),
]
LAYOUT_CASES = [(layout,) + c for c in CASES for layout in ("per_item", "combined")
                if layout == "per_item" or "names" not in c[1]]


@pytest.mark.parametrize("layout,case,kw,match", LAYOUT_CASES, ids=[f"{c[0]}-{c[1]}" for c in LAYOUT_CASES])
def test_a_rejected_request_leaves_every_file_byte_identical(layout, case, kw, match, finished):
    before = folder_digest(finished)
    prov = fakes.FakeProvider()
    out = finished / ("items" if layout == "per_item" else "run")
    args = dict(spatials=OK, temporal=T, models=["fake_stats"], backend=prov, show_progress=False,
                out=str(out), layout=layout)
    args.update(kw)
    with pytest.raises(SpecError, match=match):
        ex(args)
    assert prov.calls == 0
    assert folder_digest(finished) == before, f"{case}: files changed"
    assert load_export(finished / "items").status == "ok" and load_export(finished / "run.npz").status == "ok"


@pytest.mark.parametrize("bad", ["x\x00y", b"bytes/path"])
def test_paths_with_nul_bytes_are_spec_errors(bad, tmp_path):
    prov = fakes.FakeProvider()
    for kw in (dict(out=bad, layout="per_item"), dict(out_dir=bad), dict(out_path=bad)):
        with pytest.raises(SpecError, match="NUL byte|str path"):
            ex(dict(spatials=OK, temporal=T, models=["fake_stats"], backend=prov, show_progress=False), **kw)
    from rs_embed import export_npz

    with pytest.raises(SpecError, match="NUL byte|str path"):
        export_npz(spatial=OK[0], temporal=T, models=["fake_stats"], out_path=bad, backend=prov)
    assert prov.calls == 0
    with pytest.raises(ValueError, match="NUL byte"):
        load_export("x\x00y")


def test_names_are_written_in_nfc_form(tmp_path):
    res = ex(dict(spatials=OK, temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
                  show_progress=False), out=str(tmp_path / "x"), layout="per_item", names=["Cafe\u0301"])
    assert res[0]["name"] == "Caf\u00e9" and (tmp_path / "x" / "Caf\u00e9.npz").exists()
    assert load_export(tmp_path / "x").names == ["Caf\u00e9"]


def test_a_raised_limit_lets_the_large_patch_through(tmp_path):
    prov = fakes.FakeProvider()
    res = ex(dict(spatials=[PointBuffer(11.0, 46.0, 2000)], temporal=T, models=["fake_stats"], backend=prov,
                  show_progress=False), out=str(tmp_path / "x"), layout="per_item", max_patch_mb=3)
    assert res[0]["status"] == "ok" and res[0]["models"][0]["input"]["shape"] == [4, 400, 400]


def test_files_the_export_did_not_write_are_never_overwritten(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "p00001.npz").write_bytes(b"my own file")
    before = folder_digest(d)
    prov = fakes.FakeProvider()
    with pytest.raises(SpecError, match=r"p00001\.npz' exists and was not written by an export"):
        ex(dict(spatials=fakes.points(3), temporal=T, models=["fake_stats"], backend=prov,
                show_progress=False), out=str(d), layout="per_item")
    assert prov.calls == 0 and folder_digest(d) == before
    (tmp_path / "run.json").write_text('{"my": "notes"}')
    with pytest.raises(SpecError, match=r"run\.json' exists and is not an export manifest"):
        ex(dict(spatials=fakes.points(3), temporal=T, models=["fake_stats"], backend=prov,
                show_progress=False), out=str(tmp_path / "run"), layout="combined")
    assert (tmp_path / "run.json").read_text() == '{"my": "notes"}' and not (tmp_path / "run.npz").exists()


def test_a_rejected_request_into_a_new_folder_leaves_nothing_behind(tmp_path):
    with pytest.raises(SpecError):
        ex(dict(spatials=[NEAR_POLE], temporal=T, models=["fake_stats"], backend=fakes.FakeProvider(),
                show_progress=False), out=str(tmp_path / "new"), layout="per_item")
    assert not (tmp_path / "new").exists()
