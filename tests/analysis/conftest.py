"""A real export of the embedded sample's 33 labelled points (rcf and spectral), made once."""

import pytest

from rs_embed import export_batch, load_export, sample


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "sample"
    export_batch(spatials=sample.spatials(), names=sample.names(), temporal=sample.TEMPORAL,
                 models=["rcf", "spectral"], out=str(out), layout="per_item", backend="local",
                 show_progress=False)
    return load_export(out)


@pytest.fixture(scope="session")
def sample_labels():
    return dict(zip(sample.names(), sample.labels()))
