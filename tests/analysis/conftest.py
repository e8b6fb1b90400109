"""Labels of the embedded sample's points (the export itself is the suite's ``sample_export``)."""

import pytest

from rs_embed import sample


@pytest.fixture(scope="session")
def sample_labels():
    return dict(zip(sample.names(), sample.labels()))
