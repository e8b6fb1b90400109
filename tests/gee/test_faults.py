"""Replayed computePixels answers: retries, fail-fast errors, masks, empty windows, splits."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rs_embed.errors import ProviderError
from rs_embed.providers.gee import GEEProvider
from rs_embed.providers.gee.replay import SyntheticPixels, error_reply, npy_reply
from rs_embed.specs import BBox, PointBuffer, SensorSpec, TemporalSpec

ROI = PointBuffer(12.4964, 41.9028, 500)  # 100 x 100 px at 10 m
T = TemporalSpec.range("2022-06-01", "2022-09-01")
S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"), fill_value=-9999.0)


def expected_ramp(body, band_index):
    return SyntheticPixels().array(body)[body["bandIds"][band_index]]


def test_429_then_success_is_retried_and_returns_the_pixels(provider, transport):
    transport.queue(error_reply(429, "Too many concurrent aggregations."))
    patch = provider.fetch(ROI, T, S2)
    calls = transport.compute_pixels_calls()
    assert len(calls) == 2 and calls[0].body == calls[1].body
    assert patch.meta["requests"] == 2 and patch.meta["retries"] == 1
    np.testing.assert_array_equal(patch.data[1], expected_ramp(calls[1].body, 1))


def test_503_and_timeouts_are_retried_then_reported_as_transient(transport):
    p = GEEProvider(max_retries=2, retry_base_s=0.001, retry_cap_s=0.002)
    transport.queue(TimeoutError("read timed out"), error_reply(503, "Service unavailable"),
                    error_reply(503, "Service unavailable"))
    with pytest.raises(ProviderError) as info:
        p.fetch(ROI, T, S2)
    assert info.value.transient is True
    assert "HTTP 503" in str(info.value) and "3 attempts" in str(info.value)
    assert len(transport.compute_pixels_calls()) == 3


def test_backoff_grows_with_jitter_and_honours_retry_after(transport):
    waits = []
    p = GEEProvider(max_retries=3, retry_base_s=0.5, retry_cap_s=30, sleep=waits.append, seed=1)
    transport.queue(error_reply(500, "Internal error"), error_reply(500, "Internal error"),
                    error_reply(429, "Quota exceeded", headers={"retry-after": "7"}))
    p.fetch(ROI, T, S2)
    assert len(waits) == 3
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0  # base * 2**k, half of it jittered
    assert waits[2] >= 7.0


def test_400_fails_at_once_with_the_server_message(provider, transport):
    msg = "Image.select: Pattern 'B99' did not match any bands."
    transport.queue(error_reply(400, msg))
    with pytest.raises(ProviderError) as info:
        provider.fetch(ROI, T, SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B99",)))
    assert info.value.transient is False
    assert msg in str(info.value) and "HTTP 400" in str(info.value)
    assert "COPERNICUS/S2_SR_HARMONIZED" in str(info.value)
    assert len(transport.compute_pixels_calls()) == 1


def test_404_asset_and_403_permission_are_not_retried(provider, transport):
    transport.queue(error_reply(404, "ImageCollection asset 'NOPE/NOPE' not found."))
    with pytest.raises(ProviderError, match="not found") as info:
        provider.fetch(ROI, T, SensorSpec("NOPE/NOPE", ("b1",)))
    assert info.value.transient is False
    transport.queue(error_reply(403, "Caller does not have required permission to use project x."))
    with pytest.raises(ProviderError, match="registered for Earth Engine") as info:
        provider.fetch(ROI, T, S2)
    assert info.value.transient is False
    assert len(transport.compute_pixels_calls()) == 2


def test_fully_masked_patch_is_filled_and_counted(provider, transport):
    transport.handler = SyntheticPixels(scenes=4, masked=True)
    patch = provider.fetch(ROI, T, S2)
    assert patch.data.dtype == np.float32 and patch.data.shape == (3, 100, 100)
    assert (patch.data == -9999.0).all()
    assert patch.meta["nodata_fraction"] == 1.0 and patch.meta["nodata_pixels"] == 100 * 100
    assert patch.meta["n_scenes"] == 4


def test_partly_masked_pixels_become_fill_value(provider, transport):
    def half_masked(body):
        arr = SyntheticPixels().array(body)
        arr["_rs_valid_0"][:, :25] = 0
        return npy_reply(arr)

    transport.handler = half_masked
    patch = provider.fetch(ROI, T, S2)
    assert (patch.data[:, :, :25] == -9999.0).all()
    assert (patch.data[:, :, 25:] != -9999.0).all()
    assert patch.meta["nodata_fraction"] == pytest.approx(0.25)


def test_empty_window_is_detected_from_the_answer(provider, transport):
    transport.handler = SyntheticPixels(scenes=0, masked=True)
    with pytest.raises(ProviderError) as info:
        provider.fetch(ROI, T, S2)
    text = str(info.value)
    assert info.value.transient is False
    assert "no COPERNICUS/S2_SR_HARMONIZED scenes" in text
    assert "[2022-06-01, 2022-09-01)" in text and "PointBuffer(lon=12.4964, lat=41.9028" in text
    assert "CLOUDY_PIXEL_PERCENTAGE <= 30" in text
    assert len(transport.compute_pixels_calls()) == 1  # no extra round trip to find out


def test_answer_over_the_size_limit_is_split_on_the_same_grid(transport):
    sensor = SensorSpec("COPERNICUS/S2_HARMONIZED", tuple(f"B{i}" for i in range(1, 13)) + ("B8A",))
    limit = 2 * 1024 * 1024
    split = GEEProvider(max_request_bytes=limit)
    whole = GEEProvider()
    box = BBox(12.40, 41.85, 12.45, 41.89)  # ~420 x 450 px, 13 bands: ~10 MB
    a = split.fetch(box, T, sensor)
    tiles = transport.compute_pixels_calls()
    assert len(tiles) > 1 and a.meta["requests"] == len(tiles)
    per_pixel = 13 * 4 + 1 + 2
    for c in tiles:
        d = c.body["grid"]["dimensions"]
        assert d["width"] * d["height"] * per_pixel < limit
        assert c.body["expression"] == tiles[0].body["expression"]  # one composite, cut in tiles
    covered = sum(c.body["grid"]["dimensions"]["width"] * c.body["grid"]["dimensions"]["height"]
                  for c in tiles)
    assert covered == a.grid.width * a.grid.height
    transport.reset()
    b = whole.fetch(box, T, sensor)
    assert len(transport.compute_pixels_calls()) == 1
    np.testing.assert_array_equal(a.data, b.data)


def test_requests_in_flight_never_exceed_the_project_limit(provider, transport):
    lim = provider.limiter()
    old = lim.limit
    lim.limit = 3
    lim.reset_peak()
    transport.latency_s = 0.15  # long enough for the 12 threads to queue at the gate, even on a loaded machine
    try:
        rois = [PointBuffer(12.0 + 0.01 * i, 42.0, 100) for i in range(12)]
        errors = []

        def run(roi):
            try:
                provider.fetch(roi, T, S2)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(r,)) for r in rois]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert len(transport.compute_pixels_calls()) == 12
        assert transport.peak_in_flight == 3 and lim.peak == 3
    finally:
        lim.limit = old


def test_default_limit_splits_only_answers_over_48_mb():
    from rs_embed.providers.gee.pixels import MAX_REQUEST_BYTES, tile_windows

    assert tile_windows(200, 200, 55) == [(0, 0, 200, 200)]  # a 2 km, 13-band patch: 2.2 MB
    big = tile_windows(1000, 1000, 55)  # 10 km at 10 m, 13 bands: 55 MB
    assert len(big) > 1
    assert all(w * h * 55 < MAX_REQUEST_BYTES for _, _, w, h in big)
    assert sum(w * h for _, _, w, h in big) == 1000 * 1000
    wide = tile_windows(40000, 10, 4)  # wider than Earth Engine's 32768 px
    assert len(wide) == 2 and max(w for _, _, w, _ in wide) <= 32768


def test_a_request_backing_off_does_not_hold_a_slot(transport):
    sleeping, release = threading.Event(), threading.Event()

    def sleep(_seconds):
        sleeping.set()
        release.wait(10)

    backing_off = GEEProvider(sleep=sleep)
    other = GEEProvider()
    lim = other.limiter()
    old, lim.limit = lim.limit, 1
    try:
        transport.queue(error_reply(429, "Too many concurrent aggregations."))
        t = threading.Thread(target=backing_off.fetch, args=(ROI, T, S2))
        t.start()
        assert sleeping.wait(10)
        done = []
        u = threading.Thread(target=lambda: done.append(other.fetch(ROI, T, S2)))
        u.start()
        u.join(10)
        assert done, "a request waited for a slot held by a retry that was sleeping"
        release.set()
        t.join(10)
        assert len(transport.compute_pixels_calls()) == 3
    finally:
        release.set()
        lim.limit = old
