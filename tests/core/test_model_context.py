"""Models that condition on where and when get it, through every API path."""


import numpy as np
import pytest

import rs_embed
import rs_embed.models as catalog
from rs_embed import ModelError, PointBuffer, TemporalSpec, export_batch, get_embedding
from rs_embed.models.base import EmbedResult, Embedder

ROI = PointBuffer(-75.62, 37.67, 300)


class ContextProbe(Embedder):
    """Returns (lon, lat, day-of-year of its date) so a test can read what it was told."""

    name = "ctx_probe"
    accepts_context = True
    seen = []

    @classmethod
    def _describe(cls):
        return {"type": "on_the_fly", "inputs": {"collection": "COPERNICUS/S2_HARMONIZED", "bands": ["B4"]},
                "defaults": {"scale_m": 10, "image_size": None}, "output": ["pooled"], "model_config": {}}

    def embed(self, input_chw, *, sensor, output, context=None):
        self.seen.append(context)
        lon, lat = context["center"]
        doy = np.datetime64(context["dates"][0], "D") - np.datetime64(context["dates"][0][:4] + "-01-01", "D")
        return EmbedResult(np.array([lon, lat, doy.astype(float)], np.float32), {})


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(catalog._registry, "ctx_probe", ContextProbe)
    ContextProbe.seen = []
    return ContextProbe


def test_center_and_mid_window_date_reach_the_model(probe, tmp_path):
    t = TemporalSpec.range("2016-03-01", "2016-03-31")
    e = get_embedding("ctx_probe", spatial=ROI, temporal=t, backend="local", device="cpu")
    assert e.data[0] == pytest.approx(-75.62, abs=1e-3) and e.data[1] == pytest.approx(37.67, abs=1e-3)
    assert probe.seen[-1]["dates"] == ["2016-03-16"]
    export_batch(spatials=[ROI], temporal=t, models=["ctx_probe"], out=str(tmp_path / "x"),
                 layout="combined", backend="local", device="cpu", show_progress=False)
    res = rs_embed.load_export(str(tmp_path / "x.npz"))
    np.testing.assert_allclose(res.embedding("ctx_probe")[0], e.data, atol=1e-6)


def test_annual_product_refuses_an_uncovered_year_before_any_file_is_written(tmp_path):
    with pytest.raises(ModelError, match="2017"):
        export_batch(spatials=[ROI], temporal=TemporalSpec.year(2010), models=["gse"],
                     out=str(tmp_path / "g"), layout="combined", backend="local", show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_precomputed_product_refuses_a_backend_it_cannot_read(tmp_path):
    with pytest.raises(ModelError, match=r"'gse' cannot read from backend 'local'.*backend='gee'"):
        get_embedding("gse", spatial=ROI, temporal=TemporalSpec.year(2020), backend="local")
    with pytest.raises(ModelError, match=r"'gse' cannot read from backend 'local'"):
        export_batch(spatials=[ROI], temporal=TemporalSpec.year(2020), models=["rcf", "gse"],
                     out=str(tmp_path / "g"), layout="combined", backend="local", show_progress=False)
    assert list(tmp_path.iterdir()) == []
