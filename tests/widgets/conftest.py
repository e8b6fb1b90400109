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


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory):
    """The 33 labelled sample points exported with rcf and spectral (pooled), once."""
    from rs_embed import export_batch, load_export, sample

    out = tmp_path_factory.mktemp("widgets") / "sample"
    export_batch(spatials=sample.spatials(), names=sample.names(), temporal=sample.TEMPORAL,
                 models=["rcf", "spectral"], out=str(out), layout="per_item", backend="local",
                 show_progress=False)
    return load_export(out)
