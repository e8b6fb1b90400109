"""What a user runs: export_batch over the STAC backends, and backend="auto"."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import scenes
from servers import FAST
from rs_embed import ExportModelRequest, export_batch, load_export, sample
from rs_embed import providers as registry
from rs_embed.providers import resolve_backend
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec
from test_provider import window

KENYA = PointBuffer(36.82, -1.29, 500)


@pytest.fixture
def earth_search_here(es_api, monkeypatch):
    """``backend="earth-search"`` by name, pointed at the local API (restored afterwards)."""
    from rs_embed.providers.stac import StacProvider

    monkeypatch.setitem(registry._factories, "earth-search",
                        lambda: StacProvider(es_api.url, preset="earth-search", **FAST))
    registry._instances.pop("earth-search", None)
    yield
    registry._instances.pop("earth-search", None)


@pytest.fixture
def no_earth_engine(monkeypatch, tmp_path):
    from rs_embed.providers.gee import session as gee_session

    gee_session.reset()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "EE_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gee_session, "_on_gce", lambda: False)
    monkeypatch.setattr(registry, "_default_backend", None)
    registry._warned.clear()
    yield
    registry._warned.clear()


def test_export_batch_with_backend_earth_search(earth_search_here, tmp_path):
    pts = sample.points(labels=["forest", "cropland"])[:3]
    out = export_batch(spatials=[p.spatial for p in pts], temporal=TemporalSpec.range("2020-06-01", "2020-08-01"),
                       models=[ExportModelRequest("rcf", modality="s2_l2a")], backend="earth-search",
                       out=str(tmp_path / "run"), layout="combined", device="cpu", show_progress=False,
                       num_workers=2)
    assert out["status"] == "ok" and out["backend"] == "earth-search"
    res = load_export(str(tmp_path / "run.npz"))
    emb = res.embedding("rcf")
    assert emb.shape[0] == 3 and np.isfinite(emb).all()
    meta = res.models["rcf"].meta[0]
    text = json.dumps(meta)
    assert "sentinel-2-l2a" in text and scenes.item_id("earth-search", scenes.SCENES["pre"]) in text


def test_export_same_pixels_as_local_give_the_same_embeddings(es, archive, tmp_path):
    from test_provider import local_for

    pts = [p.spatial for p in sample.points(labels=["forest"])[:2]]
    kw = dict(spatials=pts, temporal=window("pre"), models=["rcf"], device="cpu", show_progress=False,
              sensor=SensorSpec("COPERNICUS/S2_SR_HARMONIZED", scenes.BANDS, cloudy_pct=100))
    a = export_batch(backend=es, out=str(tmp_path / "stac"), layout="combined", **kw)
    b = export_batch(backend=local_for(archive, tmp_path, "pre"), out=str(tmp_path / "local"),
                     layout="combined", **kw)
    assert a["status"] == b["status"] == "ok"
    ea = load_export(str(tmp_path / "stac.npz")).embedding("rcf")
    eb = load_export(str(tmp_path / "local.npz")).embedding("rcf")
    np.testing.assert_allclose(ea, eb, rtol=1e-4, atol=1e-5)


def test_auto_prefers_a_local_catalog_that_covers_the_request(no_earth_engine):
    s = SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4",))
    roi = sample.points()[0].spatial
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend("auto", spatials=[roi], temporal=sample.TEMPORAL, sensors=[s]) == "local"


def test_auto_falls_back_to_stac_once_named(no_earth_engine):
    s = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",))
    t = TemporalSpec.range("2023-06-01", "2023-07-01")
    with pytest.warns(UserWarning, match="backend='auto' uses 'earth-search'.*not cover") as rec:
        assert resolve_backend("auto", spatials=[KENYA], temporal=t, sensors=[s]) == "earth-search"
        assert resolve_backend("auto", spatials=[KENYA], temporal=t, sensors=[s]) == "earth-search"
    assert len([w for w in rec if "backend='auto'" in str(w.message)]) == 1


def test_auto_export_records_the_choice_in_the_manifest(no_earth_engine, earth_search_here, tmp_path):
    from test_provider import ROI

    with pytest.warns(UserWarning, match="backend='auto' uses 'earth-search'"):
        out = export_batch(spatials=[ROI], temporal=window("post"), backend="auto",
                           models=[ExportModelRequest("rcf", modality="s2_l2a")], device="cpu",
                           out=str(tmp_path / "auto"), layout="per_item", show_progress=False)
    assert out[0]["backend"] == "earth-search" and out[0]["status"] == "ok"
    manifest = json.loads((tmp_path / "auto" / "p00000.json").read_text())
    assert manifest["backend"] == "earth-search"


def test_auto_uses_earth_engine_when_it_is_set_up(no_earth_engine, monkeypatch):
    from rs_embed.providers import gee

    monkeypatch.setattr(gee, "availability", lambda: True)
    s = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",))
    with pytest.warns(UserWarning, match="uses 'gee'"):
        assert resolve_backend("auto", spatials=[KENYA], temporal=None, sensors=[s]) == "gee"


def test_readiness_knows_the_stac_backends_without_a_request():
    from rs_embed.providers import backend_availability, get_provider

    for name in ("earth-search", "planetary-computer", "stac", "alphaearth"):
        assert backend_availability(name) is None
    es = get_provider("earth-search")
    assert es.check_sensor(SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B8"))) is None
    assert "requester-pays" in es.check_sensor(SensorSpec("COPERNICUS/S2_HARMONIZED", ("B4",)))
    assert es.search.requests == 0


@pytest.mark.parametrize("where", ["inside the local catalog", "outside it"])
def test_every_entry_point_resolves_auto_alike(where, no_earth_engine, earth_search_here, tmp_path):
    """export_batch, get_embedding, get_embeddings_batch, inspect and check_models pick the
    same backend for the same request, and the choice is named in one warning at most."""
    import rs_embed
    from test_provider import ROI

    inside = where.startswith("inside")
    t, modality = (sample.TEMPORAL, None) if inside else (window("post"), "s2_l2a")
    expect = "local" if inside else "earth-search"
    roi2 = PointBuffer(ROI.lon + 0.003, ROI.lat, ROI.buffer_m)
    kw = dict(temporal=t, modality=modality, backend="auto", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exported = export_batch(spatials=[ROI, roi2], models=[ExportModelRequest("rcf", modality=modality)],
                                out=str(tmp_path / "x"), layout="per_item", show_progress=False,
                                temporal=t, backend="auto", device="cpu")
        one = rs_embed.get_embedding("rcf", spatial=ROI, **kw)
        many = rs_embed.get_embeddings_batch("rcf", spatials=[ROI, roi2], **kw)
        sensor = rs_embed.describe_model("rcf")["inputs"]
        s = SensorSpec(sensor["collection"] if inside else "COPERNICUS/S2_SR_HARMONIZED", ("B4", "B8"),
                       cloudy_pct=100)
        inspected = rs_embed.inspect_provider_patch(spatial=ROI, temporal=t, sensor=s, backend="auto")
        ready = rs_embed.check_models(["rcf"], backend="auto", spatials=[ROI, roi2], temporal=t)
    names = {exported[0]["backend"], exported[1]["backend"], one.meta["backend"],
             *(e.meta["backend"] for e in many), inspected["backend"], ready[0].backend}
    assert names == {expect}
    assert json.loads((tmp_path / "x" / "p00000.json").read_text())["backend"] == expect
    auto = [str(w.message) for w in caught if "backend='auto'" in str(w.message)]
    assert auto == ([] if inside else [auto[0]]) and (inside or "'earth-search'" in auto[0])


def test_check_models_without_rois_asks_what_the_catalog_holds(no_earth_engine, earth_search_here):
    import rs_embed

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the local catalog holds rcf's sensor: no warning
        assert rs_embed.check_models(["rcf"], backend="auto")[0].backend == "local"
    with pytest.warns(UserWarning, match="backend='auto' uses 'earth-search'"):
        assert rs_embed.check_models(["gse"], backend="auto")[0].backend == "earth-search"
