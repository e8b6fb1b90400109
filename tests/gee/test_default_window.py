"""temporal=None: each model's documented default window per backend, said once, recorded."""

from __future__ import annotations

import warnings

import pytest

from rs_embed import describe_model, get_embedding, sample
from rs_embed import inference
from rs_embed.models.base import DEFAULT_WINDOW
from rs_embed.specs import PointBuffer, SensorSpec

ROI = PointBuffer(12.4964, 41.9028, 300)
S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B8"))


@pytest.fixture(autouse=True)
def _fresh():
    inference._warned_windows.clear()
    yield
    inference._warned_windows.clear()


def _dates(body):
    text = str(body["expression"])
    return [d for d in ("2023-01-01", "2024-01-01") if d in text]


def test_earth_engine_reads_the_default_year_with_one_warning(provider, transport):
    with pytest.warns(UserWarning, match=r"temporal=None: model 'spectral' on backend 'gee' reads its "
                                         r"default window .*2023-01-01, 2024-01-01"):
        emb = get_embedding("spectral", spatial=ROI, temporal=None, sensor=S2, backend=provider)
    assert emb.meta["temporal"] == DEFAULT_WINDOW.to_dict()
    assert emb.meta["input"]["temporal"] == {"start": "2023-01-01", "end": "2024-01-01"}
    (call,) = transport.compute_pixels_calls()
    assert _dates(call.body) == ["2023-01-01", "2024-01-01"]  # filtered, not the whole archive
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_embedding("spectral", spatial=ROI, temporal=None, sensor=S2, backend=provider)


def test_an_export_records_the_window_it_used(provider, tmp_path):
    from rs_embed.export import export_batch

    with pytest.warns(UserWarning, match="default window"):
        man = export_batch(spatials=[ROI], temporal=None, models=["rcf", "spectral"], backend=provider,
                           sensor=S2, out=str(tmp_path / "run"), layout="combined", show_progress=False)
    assert man["temporal"] == DEFAULT_WINDOW.to_dict()
    assert all(m["metas"][0]["temporal"] == DEFAULT_WINDOW.to_dict() for m in man["models"])


def test_local_catalogs_are_not_filtered_and_say_what_they_read():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb = get_embedding("spectral", spatial=sample.points()[0].spatial, temporal=None,
                            sensor=SensorSpec(sample.COLLECTION, ("B4", "B8")), backend="local")
    assert emb.meta["temporal"] is None
    assert emb.meta["input"]["window_used"]["start"] == sample.TEMPORAL.start
    d = describe_model("rcf")["defaults"]["temporal"]
    assert d["gee"] == DEFAULT_WINDOW.to_dict() and d["local"] is None
    assert describe_model("gse")["defaults"]["temporal"]["gee"] == {"mode": "year", "year": 2023,
                                                                     "start": "2023-01-01", "end": "2024-01-01"}
