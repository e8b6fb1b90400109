"""The remaining parameters, one test each: temporal=None, sensor overrides, input_prep, modality,
retry_backoff_s, fetch_many sharing, ragged ROIs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rs_embed import BBox, InputPrepSpec, ModelError, OutputSpec, SensorSpec, load_export

import fakes
from fakes import T, ex


def _kw(prov=None, n=4, **extra):
    return dict(spatials=fakes.points(n), temporal=T, models=["fake_stats"], backend=prov or fakes.FakeProvider(),
                show_progress=False, **extra)


def test_temporal_none_is_allowed(tmp_path):
    m = ex(_kw(), temporal=None, out=str(tmp_path / "x"), layout="combined")
    assert m["temporal"] is None and m["status"] == "ok"
    assert load_export(tmp_path / "x.npz").temporal is None


def test_per_model_sensors_override_one_model(tmp_path):
    two = SensorSpec(fakes.COLLECTION, ("B8", "B2"), scale_m=20)
    prov = fakes.FakeProvider()
    res = ex(_kw(prov, n=3), models=["fake_stats", "fake_other"], per_model_sensors={"fake_other": two},
             out=str(tmp_path / "x"), layout="per_item")
    by = {e["model"]: e for e in res[0]["models"]}
    assert by["fake_other"]["sensor"]["bands"] == ["B8", "B2"] and by["fake_other"]["input"]["shape"] == [2, 4, 4]
    assert by["fake_stats"]["input"]["shape"] == [4, 8, 8]
    assert "dedup_reused" not in by["fake_other"]["input"]  # a different patch now
    assert prov.calls == 6


def test_shared_sensor_for_all_models(tmp_path):
    s = SensorSpec(fakes.COLLECTION, ("B4", "B8"))
    prov = fakes.FakeProvider()
    res = ex(_kw(prov, n=3), models=["fake_stats", "fake_red"], sensor=s, out=str(tmp_path / "x"), layout="per_item")
    assert prov.calls == 3  # one patch serves both models
    assert all(e["sensor"]["bands"] == ["B4", "B8"] for e in res[0]["models"])
    assert res[0]["models"][1]["input"]["dedup_reused"] is True


def test_input_prep_reaches_the_model(tmp_path):
    m = ex(_kw(n=2), spatials=fakes.points(2, buffer_m=80), output=OutputSpec.grid(),
           input_prep=InputPrepSpec.tile(tile_size=8), out=str(tmp_path / "x"), layout="combined")
    meta = m["models"][0]["metas"][0]
    assert meta["input_prep"]["mode"] == "tile" and meta["tiles"] == 4 and meta["tile_size"] == 8
    with np.load(tmp_path / "x.npz") as z:
        assert z["embeddings__fake_stats"].shape == (2, 4, 4, 4)


def test_modality_is_checked(tmp_path):
    with pytest.raises(ModelError, match="modality='s1'"):
        ex(_kw(), modality="s1", out=str(tmp_path / "x"), layout="combined")
    m = ex(_kw(), modality="sentinel-2", out=str(tmp_path / "y"), layout="combined")
    assert m["status"] == "ok"


def test_retry_backoff_waits_between_attempts(tmp_path):
    prov = fakes.FakeProvider(schedule=lambda lon, attempt: attempt == 1)  # every first try fails
    t0 = time.perf_counter()
    res = ex(_kw(prov, n=2), out=str(tmp_path / "x"), layout="per_item", max_retries=1, retry_backoff_s=0.3,
             num_workers=2)
    assert time.perf_counter() - t0 >= 0.3
    assert all(m["status"] == "ok" for m in res) and prov.calls == 4


class ManyProvider(fakes.FakeProvider):
    """A provider that serves several sensors of one ROI in one call (like Earth Engine)."""

    def __init__(self):
        super().__init__()
        self.many_calls = 0

    def fetch_many(self, spatial, temporal, sensors):
        self.many_calls += 1
        return [self.fetch(spatial, temporal, s) for s in sensors]


def test_fetch_many_gets_all_sensors_of_a_point_in_one_call(tmp_path):
    prov = ManyProvider()
    ex(_kw(prov, n=5), models=["fake_stats", "fake_red", "fake_other"], out=str(tmp_path / "x"), layout="combined")
    assert prov.many_calls == 5 and prov.calls == 10


@pytest.mark.parametrize("fmt", ["npz", "netcdf"])
def test_rois_of_different_sizes_are_stored_per_point(fmt, tmp_path):
    rois = [BBox(11.0, 46.0, 11.001, 46.001), BBox(11.1, 46.0, 11.102, 46.001), fakes.points(1)[0]]
    m = ex(_kw(), spatials=rois, output=OutputSpec.grid(), out=str(tmp_path / "x"), layout="combined", format=fmt)
    e = m["models"][0]
    assert e["inputs"]["indices"] == [0, 1, 2] and len(e["inputs"]["npz_keys"]) == 3
    assert e["embeddings"]["npz_keys"][1] == "embedding__fake_stats__00001"
    r = load_export(tmp_path / f"x.{'npz' if fmt == 'npz' else 'nc'}", inputs=True)
    emb = r.embedding("fake_stats")
    assert isinstance(emb, list) and emb[0].shape != emb[1].shape
    assert r.inputs("fake_stats")[2].shape == (4, 8, 8)


def test_device_cpu_and_auto(tmp_path):
    res = ex(_kw(n=2), device="cpu", out=str(tmp_path / "x"), layout="per_item")
    assert res[0]["device"] == "cpu" and res[0]["models"][0]["meta"]["device"] == "cpu"
