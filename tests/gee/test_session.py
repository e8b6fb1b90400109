"""Initialisation: once per process, the project, and clear messages without credentials."""

from __future__ import annotations

import json
import threading
import warnings

import pytest

import ee
from rs_embed.errors import ProviderError
from rs_embed.providers import get_provider, resolve_backend
from rs_embed.providers.gee import availability, session as gee_session
from rs_embed.providers.gee.replay import ReplayTransport


def test_auto_names_why_earth_engine_is_skipped_once(no_credentials):
    from rs_embed.specs import PointBuffer, SensorSpec

    outside_local = dict(spatials=[PointBuffer(36.82, -1.29, 500)],
                         sensors=[SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_backend("auto", **outside_local) == "earth-search"
        assert resolve_backend("auto", **outside_local) == "earth-search"
        assert resolve_backend("auto") == "local"  # nothing asked: the local provider, silently
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "earthengine authenticate" in messages[0] and "'earth-search'" in messages[0]


def test_gee_without_credentials_says_what_to_run(no_credentials):
    with pytest.raises(ProviderError) as info:
        get_provider("gee")
    text = str(info.value)
    assert "earthengine authenticate" in text
    assert "EE_PROJECT" in text and "initialize(project=" in text and "set_project" in text
    assert info.value.transient is False
    assert gee_session.current_session() is None


def test_credentials_without_project_are_reported(no_credentials):
    creds = no_credentials / ".config" / "earthengine" / "credentials"
    creds.parent.mkdir(parents=True)
    creds.write_text(json.dumps({"refresh_token": "x"}))
    reason = availability()
    assert isinstance(reason, str) and "no project" in reason and "EE_PROJECT" in reason


def test_credentials_and_project_make_earth_engine_available(no_credentials, monkeypatch):
    creds = no_credentials / ".config" / "earthengine" / "credentials"
    creds.parent.mkdir(parents=True)
    creds.write_text(json.dumps({"refresh_token": "x", "project": "from-earthengine-set-project"}))
    assert availability() is True
    assert gee_session.configured_project() == "from-earthengine-set-project"


def test_project_comes_from_argument_then_environment(monkeypatch):
    monkeypatch.setenv("EE_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "gcp-project")
    assert gee_session.resolve_project("arg-project") == "arg-project"
    assert gee_session.resolve_project() == "env-project"
    monkeypatch.delenv("EE_PROJECT")
    assert gee_session.resolve_project() == "gcp-project"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert gee_session.resolve_project() is None


def test_initialised_once_per_process_even_from_many_threads(no_stac, monkeypatch):
    gee_session.reset()
    ee.Reset()
    calls = []
    real = ee.Initialize

    def counting(*args, **kwargs):
        calls.append(kwargs.get("project"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ee, "Initialize", counting)
    tr = ReplayTransport()
    sessions = []

    def start():
        sessions.append(gee_session.initialize("p-once", credentials=None, http_transport=tr))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert calls == ["p-once"]
        assert len({id(s) for s in sessions}) == 1 and sessions[0].project == "p-once"
        assert sessions[0].endpoint == "high-volume"
        # the client's own retries are off: rs_embed retries outside the in-flight limit
        from ee import _state
        assert _state.get_state().max_retries == 0
        assert _state.get_state().deadline_ms == 300_000  # a hung request times out and is retried
    finally:
        gee_session.reset()
        ee.Reset()


def test_a_session_the_user_opened_is_adopted(no_stac):
    gee_session.reset()
    ee.Reset()
    try:
        ee.Initialize(credentials=None, project="users-own", http_transport=ReplayTransport())
        s = gee_session.initialize()
        assert s.adopted and s.project == "users-own"
        assert availability() is True
        gee_session.reset()
        assert gee_session.initialize("users-own").adopted  # same project: still theirs
    finally:
        gee_session.reset()
        ee.Reset()
