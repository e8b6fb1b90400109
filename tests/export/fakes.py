"""Fake providers and models for export tests: fast, deterministic, with injectable faults."""

from __future__ import annotations

import threading
import time
from typing import Iterable, Sequence

import numpy as np

from rs_embed.errors import ModelError, ProviderError
from rs_embed.geometry import roi_grid
from rs_embed.models import register_model
from rs_embed.models.base import EmbedResult, Embedder
from rs_embed.providers.base import Patch, Provider
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

BANDS = ("B2", "B3", "B4", "B8")
COLLECTION = "FAKE/S2"


def point_seed(spatial, bands) -> int:
    lon, lat = spatial.center
    return (int(round(lon * 1e5)) * 1_000_003 + int(round(lat * 1e5)) * 7919
            + sum(ord(c) for b in bands for c in b)) % (2**32)


class FakeProvider(Provider):
    """Deterministic S2-like patches on the ROI grid; latency and faults on request.

    ``transient_every``: every k-th call (counted over all calls) raises a transient
    ProviderError; ``transient_rate``: each call fails transiently with this probability;
    ``permanent``: lon values that always fail with a non-transient error.
    """

    name = "fake"

    def __init__(self, *, latency: float = 0.0, transient_rate: float = 0.0,
                 permanent: Iterable[float] = (), seed: int = 0, nan_lons: Iterable[float] = (),
                 schedule=None, on_fetch=None, nodata=None, bad_pixel_lons=None):
        self.latency = latency
        self.schedule = schedule  # schedule(lon, attempt) -> True to fail transiently
        self.on_fetch = on_fetch  # called at the start of every fetch (tests observe timing)
        self.attempts = {}
        self.active = 0
        self.max_active = 0
        self.transient_rate = transient_rate
        self.permanent = {round(v, 6) for v in permanent}
        self.nan_lons = {round(v, 6) for v in nan_lons}
        #: lon -> share of pixels the patch's meta reports as nodata (filled)
        self.nodata = {round(k, 6): v for k, v in (nodata or {}).items()}
        #: lon -> a value (NaN or inf) put into one pixel: the model's embedding turns non-finite
        self.bad_pixel = {round(k, 6): v for k, v in (bad_pixel_lons or {}).items()}
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.transient_failures = 0
        self.fetched = []

    def fetch(self, spatial, temporal, sensor: SensorSpec) -> Patch:
        lon = round(spatial.center[0], 6)
        if self.on_fetch is not None:
            self.on_fetch(spatial, sensor)
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            n = self.attempts[lon] = self.attempts.get(lon, 0) + 1
            fail = self.transient_rate > 0 and self._rng.random() < self.transient_rate
            if self.schedule is not None:
                fail = bool(self.schedule(lon, n))
            if fail:
                self.transient_failures += 1
        try:
            if self.latency:
                time.sleep(self.latency)
        finally:
            with self._lock:
                self.active -= 1
        if lon in self.permanent:
            raise ProviderError(f"no imagery covers lon={lon}", transient=False)
        if fail:
            raise ProviderError("rate limited (fake)", transient=True)
        grid = roi_grid(spatial, sensor.scale_m)
        rng = np.random.default_rng(point_seed(spatial, sensor.bands))
        data = np.round(rng.uniform(200, 3000, size=(len(sensor.bands), grid.height, grid.width))).astype(np.float32)
        if lon in self.nan_lons:
            data[:] = np.nan
        if lon in self.bad_pixel:
            data[0, 0, 0] = self.bad_pixel[lon]
        with self._lock:
            self.fetched.append((lon, tuple(sensor.bands)))
        return Patch(data=data, bands=tuple(sensor.bands), grid=grid,
                     meta={"scenes": ["FAKE_SCENE"], "nodata_fraction": self.nodata.get(lon, 0.0)})


class HangingProvider(FakeProvider):
    """A FakeProvider whose fetches of ``hang`` lons (or all fetches after the first
    ``hang_after``) never answer: they block, ignoring every deadline and cancel, until
    ``release`` is set (tests set it when they end, so no thread outlives them).
    ``hang_attempts``: hang only on that many attempts per lon, then answer."""

    def __init__(self, *, hang: Iterable[float] = (), hang_after=None, hang_attempts=None, **kw):
        super().__init__(**kw)
        self.hang = {round(v, 6) for v in hang}
        self.hang_after = hang_after
        self.hang_attempts = hang_attempts
        self.release = threading.Event()
        self.started = 0
        self.hung = 0
        self._tries = {}

    def fetch(self, spatial, temporal, sensor):
        lon = round(spatial.center[0], 6)
        with self._lock:
            self.started += 1
            k = self._tries[lon] = self._tries.get(lon, 0) + 1
            stuck = lon in self.hang or (self.hang_after is not None and self.started > self.hang_after)
            if stuck and self.hang_attempts is not None and k > self.hang_attempts:
                stuck = False
            if stuck:
                self.hung += 1
        if stuck:
            self.release.wait()
            raise ProviderError("released by the test (fake)", transient=False)
        return super().fetch(spatial, temporal, sensor)


class StatsEmbedder(Embedder):
    """Per-band mean and std (pooled) or 4x4-cell means (grid); optional CPU cost."""

    name = "fake_stats"
    has_batch = True
    cost_s = 0.0
    fail_lons: set = set()
    batch_calls = 0

    @classmethod
    def _describe(cls) -> dict:
        return {"type": "on_the_fly", "inputs": {"collection": COLLECTION, "bands": list(BANDS)},
                "temporal": {"mode": "range"}, "output": ["pooled", "grid"],
                "defaults": {"scale_m": 10, "cloudy_pct": 30, "composite": "median", "image_size": None},
                "modalities": ["s2"], "model_config": {"scale": {"type": "float", "default": 1.0}}}

    def _one(self, x: np.ndarray, output) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):  # a bad pixel gives a NaN/inf embedding
            return self._stats(x, output)

    def _stats(self, x: np.ndarray, output) -> np.ndarray:
        if output.mode == "grid":
            c, h, w = x.shape
            hh, ww = h // 4, w // 4
            return (x[:, :hh * 4, :ww * 4].reshape(c, hh, 4, ww, 4).mean(axis=(2, 4)) / 1000.0
                    * self.config["scale"]).astype(np.float32)
        return (np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))]) / 1000.0
                * self.config["scale"]).astype(np.float32)

    def _burn(self, n: int) -> None:
        if self.cost_s:
            end = time.perf_counter() + self.cost_s * n
            while time.perf_counter() < end:
                np.dot(np.ones((64, 64)), np.ones((64, 64)))

    def embed(self, input_chw, *, sensor, output) -> EmbedResult:
        x = self.check_input(input_chw, sensor)
        if not np.isfinite(x).any():
            raise ModelError("fake_stats: patch holds no finite value")
        self._burn(1)
        return EmbedResult(self._one(x, output), {"cls_removed": False})

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor, output):
        type(self).batch_calls += 1
        arrays = [self.check_input(x, sensor) for x in inputs]
        if any(not np.isfinite(x).any() for x in arrays):
            raise ModelError("fake_stats: a patch holds no finite value")
        self._burn(len(arrays))
        return [EmbedResult(self._one(x, output), {"cls_removed": False}) for x in arrays]


class OtherStatsEmbedder(StatsEmbedder):
    """Same family, another name: shares the input patch with fake_stats."""

    name = "fake_other"


class RedStatsEmbedder(StatsEmbedder):
    """Reads only two bands: a second input group."""

    name = "fake_red"

    @classmethod
    def _describe(cls) -> dict:
        d = StatsEmbedder._describe()
        d["inputs"] = {"collection": COLLECTION, "bands": ["B4", "B8"]}
        return d


for _cls in (StatsEmbedder, OtherStatsEmbedder, RedStatsEmbedder):
    register_model(_cls.name, _cls)


def points(n: int, buffer_m: float = 40.0, lon0: float = 11.0, lat0: float = 46.0):
    """``n`` distinct PointBuffers (small: 8x8 px at 10 m by default)."""
    return [PointBuffer(lon0 + 0.01 * i, lat0 + 0.005 * (i % 7), buffer_m) for i in range(n)]


T = TemporalSpec.range("2022-06-01", "2022-09-01")


def ex(base: dict, **kw):
    """``export_batch`` with ``base`` overridden by ``kw``."""
    from rs_embed import export_batch

    return export_batch(**{**base, **kw})
