"""Fixtures of the notebook-layer tests."""

import pytest

import gated_model


@pytest.fixture
def gated():
    """The gated rcf model, registered, gate closed; opened again at teardown."""
    cls = gated_model.register()
    cls.reset(open_gate=False)
    yield cls
    cls.gate.set()

