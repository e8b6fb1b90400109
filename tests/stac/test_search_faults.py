"""Searches through a faulty front: 429/5xx and timeouts retried, other 4xx fail at once."""

from __future__ import annotations

import time

import pytest

from rs_embed.errors import ProviderError
from test_provider import ROI, sensor, window


def provider(front, **kw):
    from rs_embed.providers.stac import StacProvider

    front.reset()
    kw = {"max_retries": 3, "retry_base_s": 0.01, "retry_cap_s": 0.05, "fetch_timeout_s": 5, **kw}
    return StacProvider(front.url, preset="earth-search", **kw)


def test_search_retries_503_and_429_then_succeeds(front):
    p = provider(front)
    front.fail_next("/search", 503, 429)
    patch = p.fetch(ROI, window("pre"), sensor(("B4",)))
    assert [r[2] for r in front.requests_to("/search")] == [503, 429, 200]
    assert patch.meta["n_scenes"] == 1


def test_search_4xx_fails_fast_with_the_servers_message(front):
    p = provider(front)
    front.fail_next("/search", 400, 400, 400)
    with pytest.raises(ProviderError, match="HTTP 400.*injected 400 for /search") as err:
        p.fetch(ROI, window("pre"), sensor(("B4",)))
    assert err.value.transient is False
    assert len(front.requests_to("/search")) == 1


def test_a_slow_answer_times_out_and_is_retried(front):
    p = provider(front, fetch_timeout_s=1)
    front.delay_next("/search", 2.5)
    patch = p.fetch(ROI, window("pre"), sensor(("B4",)))
    assert patch.meta["n_scenes"] == 1
    time.sleep(2.0)  # the abandoned slow request is logged when it finally completes
    assert len(front.requests_to("/search")) == 2  # the slow one, and its retry


def test_a_server_that_stays_unavailable_is_a_transient_error(front):
    p = provider(front, max_retries=2)
    front.fail_next("/search", 503, 503, 503, 503)
    with pytest.raises(ProviderError, match="503") as err:
        p.fetch(ROI, window("pre"), sensor(("B4",)))
    assert err.value.transient is True
    assert len(front.requests_to("/search")) == 3
