"""Earth Engine: one retry layer with a budget per fetch, the fetch timeout reaches the client,
pre-flight band checks, settings in the fingerprint, credentials found the client's way."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import ee
from rs_embed import PointBuffer, SensorSpec, SpecError, TemporalSpec, export_batch, load_export
from rs_embed.errors import ProviderError
from rs_embed import models as model_registry
from rs_embed.providers.base import FetchCancelled, FetchContext, fetch_scope
from rs_embed.providers.gee import GEEProvider, session as gee_session
from rs_embed.providers.gee.replay import ReplayTransport, error_reply

ROI = PointBuffer(12.4964, 41.9028, 200)
T = TemporalSpec.range("2022-06-01", "2022-09-01")
S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"))


def rate_limited(body):
    return error_reply(429, "Too many concurrent aggregations.")


# ---------------------------------------------------------------- one retry layer


def test_all_requests_of_a_fetch_share_one_retry_budget(transport):
    """A patch split into tiles under a permanent rate limit costs its tiles plus the
    budget, not tiles x (retries + 1)."""
    transport.handler = rate_limited
    p = GEEProvider(max_retries=3, retry_base_s=0.001, retry_cap_s=0.002, max_request_bytes=64 * 1024)
    big = PointBuffer(12.4964, 41.9028, 1000)  # 200 x 200 px, 3 bands: several 64 KB tiles
    with pytest.raises(ProviderError, match=r"retries are spent") as info:
        p.fetch(big, T, S2)
    assert info.value.transient is True and info.value.attempts >= 2
    n_tiles = len({json.dumps(c.body["grid"]) for c in transport.compute_pixels_calls()})
    assert n_tiles > 1
    assert len(transport.compute_pixels_calls()) <= n_tiles + 3


def test_the_export_engine_does_not_retry_what_earth_engine_retried(transport, tmp_path, monkeypatch):
    transport.handler = rate_limited
    _register(monkeypatch)
    p = GEEProvider(max_retries=2, retry_base_s=0.001, retry_cap_s=0.002)
    rois = [PointBuffer(12.0 + 0.01 * i, 42.0, 100) for i in range(3)]
    res = export_batch(spatials=rois, temporal=T, models=["gee_mean"], out=str(tmp_path / "x"), layout="per_item",
                       backend=p, max_retries=5, retry_backoff_s=0.0, continue_on_error=True, show_progress=False)
    assert all(m["status"] == "failed" for m in res)
    assert len(transport.compute_pixels_calls()) == 3 * (2 + 1)  # not 3 x (5 + 1) x (2 + 1)
    err = res[0]["models"][0]["error_info"]
    assert err["type"] == "ProviderError" and "HTTP 429" in err["message"] and "gave up after 3" in err["message"]
    assert err["attempts"] == 3 and res[0]["models"][0]["fetch_attempts"] == 3  # Earth Engine's requests


def test_retries_stop_at_the_fetch_deadline(transport):
    transport.handler = rate_limited
    p = GEEProvider(max_retries=10, retry_base_s=5.0, retry_cap_s=60.0)
    t0 = time.monotonic()
    with fetch_scope(FetchContext(timeout_s=0.5, deadline=time.monotonic() + 0.5)):
        with pytest.raises(ProviderError, match="no time left within fetch_timeout_s"):
            p.fetch(ROI, T, S2)
    assert time.monotonic() - t0 < 1.0 and len(transport.compute_pixels_calls()) == 1


def test_a_cancelled_fetch_sends_nothing_and_a_backoff_wakes_up(transport):
    cancel = threading.Event()
    cancel.set()
    p = GEEProvider(retry_base_s=30.0, retry_cap_s=60.0)
    with fetch_scope(FetchContext(timeout_s=60, deadline=time.monotonic() + 60, cancel=cancel)):
        with pytest.raises(FetchCancelled):
            p.fetch(ROI, T, S2)
    assert transport.compute_pixels_calls() == []
    cancel.clear()
    transport.handler = rate_limited
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with fetch_scope(FetchContext(timeout_s=60, deadline=time.monotonic() + 60, cancel=cancel)):
        with pytest.raises(FetchCancelled):
            p.fetch(ROI, T, S2)  # sleeping 15-30 s before its retry, woken by the cancel
    assert time.monotonic() - t0 < 2.0


def test_fetch_timeout_reaches_the_client_and_its_own_retries_stay_off(transport, tmp_path, monkeypatch):
    from ee import _state

    _register(monkeypatch)
    export_batch(spatials=[ROI], temporal=T, models=["gee_mean"], out=str(tmp_path / "x"), layout="per_item",
                 backend=GEEProvider(), fetch_timeout_s=7.0, show_progress=False)
    assert _state.get_state().deadline_ms == 7000 and _state.get_state().max_retries == 0


def test_an_adopted_session_keeps_its_credentials_but_not_the_clients_retries(no_stac):
    from ee import _state

    gee_session.reset()
    ee.Reset()
    try:
        ee.Initialize(credentials=None, project="users-own", http_transport=ReplayTransport())
        assert _state.get_state().max_retries == 5  # the client's default: retries on top of ours
        s = gee_session.initialize()
        assert s.adopted and s.project == "users-own"
        assert _state.get_state().max_retries == 0 and _state.get_state().deadline_ms == 300_000
    finally:
        gee_session.reset()
        ee.Reset()


# ------------------------------------------------------------- pre-flight checks


@pytest.mark.parametrize("collection,bands,match", [
    ("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B10"), r"\['B10'\] are not bands of the Earth Engine collection"),
    ("COPERNICUS/S2_HARMONIZED", ("B08", "B4"), r"did you mean 'B08' -> 'B8'"),
    ("COPERNICUS/S1_GRD_FLOAT", ("vv",), r"'vv' -> 'VV'"),
    ("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL", ("A64",), "A64"),
])
def test_bands_a_known_collection_lacks_are_refused_before_any_request(collection, bands, match, transport, tmp_path,
                                                                        monkeypatch):
    _register(monkeypatch)
    with pytest.raises(SpecError, match=match):
        export_batch(spatials=[ROI], temporal=T, models=["gee_mean"], sensor=SensorSpec(collection, bands),
                     out=str(tmp_path / "x"), layout="per_item", backend=GEEProvider(), show_progress=False)
    assert transport.compute_pixels_calls() == [] and not (tmp_path / "x").exists()


def test_collections_rs_embed_does_not_know_are_left_to_the_server(provider):
    assert provider.check_sensor(SensorSpec("MODIS/061/MOD09GA", ("sur_refl_b01",))) is None
    assert provider.check_sensor(SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "AOT", "SCL"))) is None
    assert "orbit" in provider.check_sensor(SensorSpec("COPERNICUS/S1_GRD", ("VV",), orbit="sideways"))
    assert "B99" in provider.check_sensor(SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4", "B99")))


# -------------------------------------------------------------- fingerprint


def test_cloud_masking_and_project_enter_the_fingerprint(transport, tmp_path, monkeypatch):
    _register(monkeypatch)
    kw = dict(spatials=[ROI], temporal=T, models=["gee_mean"], out=str(tmp_path / "x"), layout="per_item",
              show_progress=False)
    first = list(export_batch(**kw, backend=GEEProvider()))  # the lazy result reads the folder
    transport.reset()
    export_batch(**kw, backend=GEEProvider(), resume=True)
    assert transport.compute_pixels_calls() == []
    again = export_batch(**kw, backend=GEEProvider(cloud_score_plus=0.7), resume=True)
    assert len(transport.compute_pixels_calls()) == 1
    assert again[0]["request_fingerprint"] != first[0]["request_fingerprint"]
    ids = GEEProvider().identity(), GEEProvider(cloud_score_plus=True).identity()
    assert ids[0]["class"] == "rs_embed.providers.gee.provider.GEEProvider" and ids[0]["project"]
    assert ids[0]["cloud_score_plus"] is None and ids[1]["cloud_score_plus"]["threshold"] == 0.6
    assert load_export(tmp_path / "x").status == "ok"


# ------------------------------------------------------------------ credentials


def test_credentials_are_found_through_the_clients_own_functions(no_credentials, monkeypatch):
    stored = no_credentials / "elsewhere" / "ee-credentials"
    stored.parent.mkdir()
    stored.write_text(json.dumps({"refresh_token": "t", "project": "from-ee"}))
    monkeypatch.setattr(ee.oauth, "get_credentials_path", lambda: str(stored))  # wherever the client keeps it
    assert gee_session.credentials_source() == "earthengine"
    assert gee_session.configured_project() == "from-ee" and gee_session.availability() is True


def test_application_default_credentials_where_google_auth_looks(no_credentials, monkeypatch):
    adc = no_credentials / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir()
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s",
                               "refresh_token": "r", "quota_project_id": "adc-project"}))
    assert gee_session.credentials_source() == "gcloud"
    assert gee_session.configured_project() == "adc-project"


def test_setups_only_google_auth_knows_are_not_refused(no_credentials, monkeypatch):
    """Nothing on disk that rs_embed could see, yet google.auth.default() finds credentials
    (a workload identity, a metadata server...): initialise through the client anyway."""
    import google.auth
    from google.auth import credentials as ga_credentials

    class Found(ga_credentials.CredentialsWithQuotaProject):
        def refresh(self, request):
            self.token = "token"

        def with_quota_project(self, quota_project_id):
            c = Found()
            c._quota_project_id = quota_project_id
            return c

    found = Found()
    found._quota_project_id = "found-project"
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (found, "found-project"))
    assert gee_session.credentials_source() is None  # the old pre-check refused here
    try:
        s = gee_session.initialize(http_transport=ReplayTransport())
        assert s.project == "found-project" and not s.adopted
    finally:
        gee_session.reset()
        ee.Reset()


# ------------------------------------------------------------------------ helpers


def _register(monkeypatch):
    from rs_embed.models.base import EmbedResult, Embedder

    class GeeMean(Embedder):
        name = "gee_mean"

        @classmethod
        def _describe(cls):
            return {"type": "on_the_fly", "backend": ["gee"],
                    "inputs": {"collection": S2.collection, "bands": list(S2.bands)},
                    "temporal": {"mode": "range"}, "output": ["pooled"],
                    "defaults": {"scale_m": 10, "cloudy_pct": 30, "composite": "median", "image_size": None},
                    "modalities": [], "model_config": {}}

        def embed(self, input_chw, *, sensor, output):
            x = self.check_input(input_chw, sensor)
            return EmbedResult(x.reshape(x.shape[0], -1).mean(axis=1).astype(np.float32))

    monkeypatch.setitem(model_registry._registry, "gee_mean", GeeMean)

