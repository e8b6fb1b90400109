"""Time series in the export engine: each bin is a fetch of its own, under its own
deadline, so a provider that hangs on one bin fails (or retries) that point's series
instead of stalling the export; the stacked patch carries a per-frame mask and an
honest nodata_fraction."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rs_embed import ExportModelRequest, load_export
from rs_embed.errors import ProviderError
from rs_embed.models import register_model
from rs_embed.models.base import EmbedResult
from rs_embed.specs import SensorSpec, TemporalSpec

import fakes
from fakes import BANDS, COLLECTION, ex

WINDOW = TemporalSpec.range("2022-01-01", "2022-04-01")  # three monthly bins
SERIES = SensorSpec(COLLECTION, BANDS, frames=3)


class SeriesStats(fakes.StatsEmbedder):
    """Per-frame band means, frames side by side: (T, C, H, W) -> (T * C,)."""

    name = "fake_series"

    def check_input(self, input_chw, sensor):
        x = np.asarray(input_chw, dtype=np.float32)
        assert x.ndim == 4 and x.shape[1] == len(sensor.bands), x.shape
        return x

    def _one(self, x, output):
        with np.errstate(invalid="ignore"):
            return (np.nanmean(x, axis=(2, 3)).reshape(-1) / 1000.0).astype(np.float32)

    def embed(self, input_chw, *, sensor, output):
        return EmbedResult(self._one(self.check_input(input_chw, sensor), output), {"cls_removed": False})

    def embed_batch(self, inputs, *, sensor, output):
        return [self.embed(x, sensor=sensor, output=output) for x in inputs]


register_model(SeriesStats.name, SeriesStats)


class BinProvider(fakes.FakeProvider):
    """Answers every bin except: ``hang`` (window starts that block, ignoring deadlines,
    until ``release``; at most ``hang_attempts`` times each) and ``empty`` (window starts
    with no imagery: a definite, non-transient answer)."""

    def __init__(self, *, hang=(), hang_attempts=None, empty=(), **kw):
        super().__init__(**kw)
        self.hang, self.empty, self.hang_attempts = set(hang), set(empty), hang_attempts
        self.release = threading.Event()
        self.windows, self.hung = [], 0
        self._tries = {}

    def fetch(self, spatial, temporal, sensor):
        assert sensor.frames is None, "a bin is fetched as a single composite"
        key = (round(spatial.center[0], 6), temporal.start)
        with self._lock:
            self.windows.append(temporal.start)
            k = self._tries[key] = self._tries.get(key, 0) + 1
            stuck = temporal.start in self.hang and (self.hang_attempts is None or k <= self.hang_attempts)
            self.hung += stuck
        if stuck:
            self.release.wait()
            raise ProviderError("released by the test (fake)", transient=False)
        if temporal.start in self.empty:
            raise ProviderError(f"no scene in [{temporal.start}, {temporal.end})", transient=False)
        return super().fetch(spatial, temporal, sensor)


@pytest.fixture
def bins():
    made = []

    def make(**kw):
        made.append(BinProvider(**kw))
        return made[-1]

    yield make
    for p in made:
        p.release.set()


def _kw(prov, n=3, **extra):
    return dict(spatials=fakes.points(n), temporal=WINDOW, models=[ExportModelRequest("fake_series", sensor=SERIES)],
                backend=prov, show_progress=False, **extra)


def test_each_bin_is_its_own_fetch_and_a_hung_bin_times_out(tmp_path, bins):
    prov = bins(hang={"2022-02-01"})
    t0 = time.monotonic()
    res = ex(_kw(prov), out=str(tmp_path / "x"), layout="combined", fetch_timeout_s=0.3,
             continue_on_error=True)
    assert time.monotonic() - t0 < 6.0  # every point's February hangs: abandoned, not waited on
    assert sorted(set(prov.windows)) == ["2022-01-01", "2022-02-01", "2022-03-01"]
    entry = res["models"][0]
    assert entry["failed_indices"] == [0, 1, 2]
    err = res["errors"][0]
    assert err["type"] == "FetchTimeout" and err["stage"] == "fetch"
    assert "frame 2 of 3 [2022-02-01, 2022-03-01)" in err["message"] and "abandoned" in err["message"]


def test_a_hung_bin_is_retried_in_a_fresh_worker_and_the_series_completes(tmp_path, bins):
    prov = bins(hang={"2022-03-01"}, hang_attempts=1)
    res = ex(_kw(prov, n=2), out=str(tmp_path / "x"), layout="per_item", fetch_timeout_s=0.3,
             max_retries=1)
    assert [m["status"] for m in res] == ["ok", "ok"]
    m = res[0]["models"][0]
    assert m["fetch_attempts"] == 2 and prov.hung == 2
    meta = m["meta"]["input"]
    assert meta["frames"] == 3 and meta["frames_empty"] == [] and meta["nodata_fraction"] == 0.0


def test_an_empty_bin_is_masked_per_frame_and_counted_in_nodata_fraction(tmp_path, bins):
    prov = bins(empty={"2022-01-01"})
    with pytest.warns(UserWarning, match="1 of 3 frames"):
        res = ex(_kw(prov, n=1), out=str(tmp_path / "x"), layout="per_item", save_inputs=True)
    m = res[0]["models"][0]
    meta = m["meta"]["input"]
    assert m["status"] == "ok" and meta["frames_empty"] == [0]
    assert meta["frame_nodata_fraction"] == [1.0, 0.0, 0.0]
    assert meta["nodata_fraction"] == pytest.approx(1 / 3)
    assert m["input"]["nodata_fraction"] == pytest.approx(1 / 3)  # the point's manifest says so too
    assert res[0]["nodata_fraction"] == pytest.approx(1 / 3)
    loaded = load_export(tmp_path / "x")
    emb = loaded.models["fake_series"].embeddings[0].reshape(3, len(BANDS))
    assert np.all(emb[0] == 0.0) and np.all(emb[1:] > 0.2)  # the empty frame held fill_value
