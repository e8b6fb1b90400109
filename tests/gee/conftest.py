"""Earth Engine offline: the real client, initialised against a replayed service.

``earthengine-api`` is initialised with ``ReplayTransport``, which serves the API
discovery document and algorithm list shipped in the client's wheel (``ee/tests/``)
and answers ``computePixels`` from scripted replies. Nothing leaves the machine (the
suite-wide guard in ``tests/conftest.py`` fails any test that tries).
"""

from __future__ import annotations

import pytest

ee = pytest.importorskip("ee", reason="the 'gee' extra (earthengine-api) is not installed")

from rs_embed import providers as providers_registry  # noqa: E402
from rs_embed.providers.gee import session as gee_session  # noqa: E402
from rs_embed.providers.gee.replay import ReplayTransport  # noqa: E402

PROJECT = "rs-embed-test"


def _forget_everything():
    gee_session.reset()
    ee.Reset()
    providers_registry._instances.pop("gee", None)


@pytest.fixture
def no_stac(monkeypatch):
    """Earth Engine fetches its catalogue's deprecation list at start-up; not here."""
    monkeypatch.setattr(ee.deprecation, "_FetchDataCatalogStac", lambda: {})


@pytest.fixture
def transport(no_stac):
    """A fresh replayed service and an Earth Engine session bound to it."""
    tr = ReplayTransport()
    gee_session.initialize(PROJECT, credentials=None, http_transport=tr, force=True)
    providers_registry._instances.pop("gee", None)
    yield tr
    _forget_everything()


@pytest.fixture
def provider(transport):
    from rs_embed.providers.gee import GEEProvider

    return GEEProvider(retry_base_s=0.001, retry_cap_s=0.01, seed=0)


@pytest.fixture
def no_credentials(monkeypatch, tmp_path, no_stac):
    """A machine where nobody ran `earthengine authenticate` and no project is set."""
    _forget_everything()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "EE_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gee_session, "_on_gce", lambda: False)
    # ... and not on Google Cloud: google.auth.default() (which the client asks) skips its
    # metadata-server probe, as it would off GCE without a network
    from google.auth.compute_engine import _metadata
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
    monkeypatch.setattr(providers_registry, "_default_backend", None)
    providers_registry._warned.clear()
    yield tmp_path
    providers_registry._warned.clear()
    _forget_everything()
