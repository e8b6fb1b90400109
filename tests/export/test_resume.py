"""Resume: skip what is finished and unchanged, redo failed, partial, truncated and changed work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rs_embed import OutputSpec, ProviderError, TemporalSpec, load_export
from rs_embed.io.manifest import PointFingerprints, request_fingerprint

import fakes
from fakes import T, ex

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["fake_stats", "fake_red"]


def _kw(prov, n=8, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=MODELS, backend=prov, show_progress=False, **extra)


def test_per_item_resume_skips_finished_points(tmp_path):
    first = ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="per_item")
    prov = fakes.FakeProvider()
    t0 = time.perf_counter()
    again = ex(_kw(prov), out=str(tmp_path / "x"), layout="per_item", resume=True)
    assert prov.calls == 0 and again == first
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("change", [
    dict(output=OutputSpec.grid()),
    dict(models=["fake_stats", "fake_red", "fake_other"]),
    dict(save_inputs=False),
    dict(temporal=TemporalSpec.year(2021)),
])
def test_per_item_changed_request_is_exported_again(change, tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="per_item")
    old = json.loads((tmp_path / "x" / "p00000.json").read_text())["request_fingerprint"]
    prov = fakes.FakeProvider()
    res = ex({**_kw(prov), **change}, out=str(tmp_path / "x"), layout="per_item", resume=True)
    assert prov.calls > 0 and all(m["request_fingerprint"] != old for m in res)
    assert json.loads((tmp_path / "x" / "p00000.json").read_text())["request_fingerprint"] == res[0]["request_fingerprint"]


def test_workers_chunks_retries_do_not_change_the_fingerprint(tmp_path):
    ex(_kw(fakes.FakeProvider()), out=str(tmp_path / "x"), layout="per_item")
    prov = fakes.FakeProvider()
    ex(_kw(prov), out=str(tmp_path / "x"), layout="per_item", resume=True, num_workers=2, chunk_size=3,
       max_retries=4, retry_backoff_s=1.0, writer_workers=1, async_write=False)
    assert prov.calls == 0


def test_per_item_resume_retries_failed_partial_and_truncated_points(tmp_path, monkeypatch):
    pts = fakes.points(8)
    real = fakes.RedStatsEmbedder.embed

    def red_fails_on_point_5(self, x, **kw):
        if abs(float(x[0, 0, 0]) - float(first_pixel[5])) < 1e-6:
            raise RuntimeError("model crashed (fake)")
        return real(self, x, **kw)

    first_pixel = {}
    for i, p in enumerate(pts):
        first_pixel[i] = fakes.FakeProvider().fetch(p, T, _red()).data[0, 0, 0]
    monkeypatch.setattr(fakes.RedStatsEmbedder, "embed", red_fails_on_point_5)
    res = ex(_kw(fakes.FakeProvider(permanent=[pts[2].lon])), out=str(tmp_path / "x"), layout="per_item",
             continue_on_error=True)
    assert [m["status"] for m in res] == ["ok", "ok", "failed", "ok", "ok", "partial", "ok", "ok"]
    monkeypatch.setattr(fakes.RedStatsEmbedder, "embed", real)
    with open(tmp_path / "x" / "p00006.npz", "r+b") as fh:  # as after a power cut
        fh.truncate(100)
    prov = fakes.FakeProvider()
    res = ex(_kw(prov), out=str(tmp_path / "x"), layout="per_item", resume=True)
    assert sorted(prov.attempts) == sorted(round(pts[i].lon, 6) for i in (2, 5, 6))
    assert all(m["status"] == "ok" for m in res)
    assert load_export(tmp_path / "x").status == "ok"


def _red():
    from rs_embed.specs import SensorSpec

    return SensorSpec(fakes.COLLECTION, ("B4", "B8"))


def test_fingerprint_is_the_sha1_of_the_sorted_json_and_per_point_shortcut_agrees():
    common = {"models": [{"name": "rcf", "backend": "local", "sensor": {"bands": ["B2"]}, "model_config": {"dim": 8}}],
              "temporal": T.to_dict(), "output": OutputSpec.pooled().to_dict(), "format": "npz",
              "save_inputs": True, "save_embeddings": True, "input_prep": {"mode": "resize"}}
    spatial = fakes.points(1)[0].to_dict()
    import hashlib

    text = json.dumps({**common, "spatial": spatial}, sort_keys=True, separators=(",", ":"))
    assert request_fingerprint({**common, "spatial": spatial}) == hashlib.sha1(text.encode()).hexdigest()
    assert PointFingerprints(common)(spatial) == request_fingerprint({**common, "spatial": spatial})


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_fingerprint_is_stable_across_processes(layout, tmp_path):
    out = str(tmp_path / "x")
    res = ex(_kw(fakes.FakeProvider(), n=5), out=out, layout=layout)
    mine = [m["request_fingerprint"] for m in res] if layout == "per_item" else [res["request_fingerprint"]]
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "crash_job.py"), out, layout, "5", "0", "--resume"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert theirs["fingerprints"] == mine
    assert theirs["calls"] == 0  # a new process resumes instead of exporting everything again


def test_combined_resume_continues_from_the_checkpoint(tmp_path):
    pts = fakes.points(40)
    with pytest.raises(ProviderError):
        ex(_kw(fakes.FakeProvider(permanent=[pts[27].lon]), n=40), out=str(tmp_path / "x"), layout="combined",
           chunk_size=8)
    assert not (tmp_path / "x.npz").exists() and os.path.isdir(tmp_path / "x.parts")
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=40), out=str(tmp_path / "x"), layout="combined", chunk_size=5, resume=True)
    fetched = sorted({lon for lon, _ in prov.fetched})
    # points 0..31 were checkpointed except 27: only 27 and 32..39 are fetched again
    assert fetched == sorted(round(pts[i].lon, 6) for i in [27] + list(range(32, 40)))
    assert m["status"] == "ok" and m["summary"]["resumed_points"] == 31
    assert not os.path.exists(tmp_path / "x.parts")
    ex(_kw(fakes.FakeProvider(), n=40), out=str(tmp_path / "ref"), layout="combined")
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "ref.npz").read_bytes()


def test_combined_resume_of_a_finished_export_fetches_nothing(tmp_path):
    first = ex(_kw(fakes.FakeProvider(), n=20), out=str(tmp_path / "x"), layout="combined")
    prov = fakes.FakeProvider()
    again = ex(_kw(prov, n=20), out=str(tmp_path / "x"), layout="combined", resume=True)
    assert prov.calls == 0 and again == first


def test_combined_changed_request_discards_the_checkpoint(tmp_path):
    pts = fakes.points(20)
    with pytest.raises(ProviderError):
        ex(_kw(fakes.FakeProvider(permanent=[pts[15].lon]), n=20), out=str(tmp_path / "x"), layout="combined",
           chunk_size=4)
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=20), out=str(tmp_path / "x"), layout="combined", resume=True, output=OutputSpec.grid())
    assert len({lon for lon, _ in prov.fetched}) == 20 and m["summary"]["resumed_points"] == 0


def test_combined_partial_export_resumes_only_failed_points(tmp_path):
    pts = fakes.points(12)
    m = ex(_kw(fakes.FakeProvider(permanent=[pts[4].lon, pts[9].lon]), n=12), out=str(tmp_path / "x"),
           layout="combined", continue_on_error=True)
    assert m["status"] == "partial"
    prov = fakes.FakeProvider()
    m = ex(_kw(prov, n=12), out=str(tmp_path / "x"), layout="combined", resume=True, continue_on_error=True)
    assert sorted({lon for lon, _ in prov.fetched}) == sorted(round(pts[i].lon, 6) for i in (4, 9))
    assert m["status"] == "ok"
    ex(_kw(fakes.FakeProvider(), n=12), out=str(tmp_path / "ref"), layout="combined")
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "ref.npz").read_bytes()
