"""Shared fixtures of the export tests: fake provider/models (registered on import)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import fakes  # noqa: E402  (registers the fake models)

from rs_embed.specs import TemporalSpec  # noqa: E402

T = TemporalSpec.range("2022-06-01", "2022-09-01")


@pytest.fixture
def provider():
    return fakes.FakeProvider()


@pytest.fixture
def pts():
    return fakes.points(6)


@pytest.fixture
def base_kwargs(provider, pts):
    """A valid export request minus the target; tests override what they check."""
    return dict(spatials=pts, temporal=T, models=["fake_stats"], backend=provider, show_progress=False)


def ex(base: dict, **kw):
    """``export_batch`` with ``base`` overridden by ``kw``."""
    from rs_embed import export_batch

    return export_batch(**{**base, **kw})
