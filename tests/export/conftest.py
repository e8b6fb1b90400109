"""Shared fixtures of the export tests: fake provider/models (registered on import)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import fakes  # noqa: E402  (registers the fake models)
from fakes import T  # noqa: E402


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

