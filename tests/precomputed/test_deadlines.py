"""Product providers keep the engine's time contract: against a server on 127.0.0.1 that
accepts connections and never answers, each read gives up within the fetch context's
request timeout (a ProviderError, never a hang), and a cancelled context stops them
before they send anything."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from rs_embed import PointBuffer, SensorSpec, TemporalSpec
from rs_embed.errors import ProviderError
from rs_embed.providers import copernicus_embed as cp, embedding_tables as et
from rs_embed.providers.base import FetchCancelled, FetchContext, fetch_scope


@pytest.fixture
def silent_server():
    """Accepts TCP connections, reads nothing, answers nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    srv.close()


ROI = PointBuffer(2.0, 45.5, 500)


def _timed(provider, sensor, timeout_s):
    ctx = FetchContext(timeout_s=timeout_s, deadline=time.monotonic() + timeout_s)
    t0 = time.monotonic()
    with fetch_scope(ctx), pytest.raises(ProviderError) as info:
        provider.fetch(ROI, TemporalSpec.year(2021), sensor)
    return time.monotonic() - t0, info.value


def test_copernicus_reads_give_up_within_the_request_timeout(silent_server):
    provider = cp.CopernicusEmbedProvider(url=f"{silent_server}/embed_map_310k.tif")
    took, err = _timed(provider, SensorSpec(cp.COLLECTION, cp.BANDS), 1.0)
    assert took < 6.0, f"the read hung for {took:.1f} s past a 1 s request timeout"
    assert "cannot read" in str(err)


def test_table_reads_give_up_within_the_request_timeout(silent_server):
    pytest.importorskip("aiohttp")
    provider = et.EmbeddingTableProvider(et.MAJOR_TOM, [f"{silent_server}/part-0.parquet"])
    took, err = _timed(provider, SensorSpec(et.MAJOR_TOM.collection, (et.EMBEDDING_BAND,)), 1.0)
    assert took < 6.0, f"the read hung for {took:.1f} s past a 1 s request timeout"
    assert "cannot read" in str(err) and err.transient


def test_a_cancelled_fetch_stops_before_any_request(silent_server):
    cancel = threading.Event()
    cancel.set()
    ctx = FetchContext(timeout_s=30.0, cancel=cancel)
    for provider, sensor in ((cp.CopernicusEmbedProvider(url=f"{silent_server}/x.tif"),
                              SensorSpec(cp.COLLECTION, cp.BANDS)),
                             (et.EmbeddingTableProvider(et.MAJOR_TOM, [f"{silent_server}/x.parquet"]),
                              SensorSpec(et.MAJOR_TOM.collection, (et.EMBEDDING_BAND,)))):
        t0 = time.monotonic()
        with fetch_scope(ctx), pytest.raises(FetchCancelled):
            provider.fetch(ROI, TemporalSpec.year(2021), sensor)
        assert time.monotonic() - t0 < 1.0


def test_check_sensor_refuses_wrong_products_without_a_request():
    assert "serves only" in cp.CopernicusEmbedProvider(url="/nonexistent.tif").check_sensor(
        SensorSpec("COPERNICUS/S2", ("B4",)))
    tables = et.EmbeddingTableProvider(et.EARTH_INDEX, ["/nonexistent.parquet"])
    assert "whole vector" in tables.check_sensor(SensorSpec(et.EARTH_INDEX.collection, ("E0001",)))
    assert tables.check_sensor(SensorSpec(et.EARTH_INDEX.collection, (et.EMBEDDING_BAND,))) is None
    assert cp.CopernicusEmbedProvider(url="/x.tif").check_sensor(SensorSpec(cp.COLLECTION, cp.BANDS)) is None
