"""A request mixing precomputed products with imagery models: the router keeps the whole
provider contract (each part answered by the provider a sensor is routed to, never by
an inherited default), the engine applies each routed provider's own retry layer, the
identity covers every provider, "auto" is resolved for the imagery alone, and a model
its routed backend cannot serve is refused before any file is touched."""

from __future__ import annotations

import os

import pytest

from rs_embed import ExportModelRequest, ModelError, PointBuffer, SensorSpec, SpecError, TemporalSpec, sample
from rs_embed.export.job import RUN_DEFAULTS  # noqa: F401  (the engine is importable)
from rs_embed.providers import Provider, open_backend, routing
from rs_embed.providers.base import Patch
from rs_embed.providers.routing import ProductRouter

import fakes
from fakes import BANDS, COLLECTION, T, ex

PRODUCT = "FAKE/PRODUCT"


class ImageryProvider(fakes.FakeProvider):
    """Imagery that retries by itself (as Earth Engine does) and says what it cannot serve."""

    name = "fake_imagery"
    retries_itself = True

    def __init__(self, **kw):
        super().__init__(**kw)
        self.many_calls = 0

    def check_sensor(self, sensor):
        return "no such band here" if "B99" in sensor.bands else None

    def settings(self):
        return {"catalog": "imagery-v1"}

    def coverage_fraction(self, spatials, temporal=None, sensor=None):
        return [0.25] * len(spatials)

    def fetch_many(self, spatial, temporal, sensors, *, return_exceptions=False):
        self.many_calls += 1
        return super().fetch_many(spatial, temporal, sensors, return_exceptions=return_exceptions)


class ProductProvider(fakes.FakeProvider):
    """A product provider: serves one collection, no retries of its own."""

    name = "fake_product"

    def __init__(self, version="v1", **kw):
        super().__init__(**kw)
        self.version = version

    def serves(self, sensor):
        return sensor.collection == PRODUCT

    def check_sensor(self, sensor):
        return None if self.serves(sensor) and sensor.bands == ("P0", "P1") else "product bands are P0, P1"

    def settings(self):
        return {"version": self.version}

    def coverage_fraction(self, spatials, temporal=None, sensor=None):
        return [1.0] * len(spatials)


def _router(**kw):
    return ProductRouter(ImageryProvider(**kw.pop("imagery", {})), "fake_imagery",
                         {"fake_product": ProductProvider(**kw)})


IMG = SensorSpec(COLLECTION, BANDS)
PROD = SensorSpec(PRODUCT, ("P0", "P1"))


def test_the_router_defines_every_part_of_the_provider_contract_itself():
    contract = [n for n, v in vars(Provider).items()
                if not n.startswith("_") and (callable(v) or isinstance(v, (classmethod, property)) or n == "retries_itself")]
    assert {"fetch", "fetch_many", "fetch_frames", "check_sensor", "settings", "identity", "availability",
            "coverage_fraction", "coverage", "close", "route", "retries_itself"} <= set(contract)
    inherited = [n for n in contract if n not in vars(ProductRouter) and n != "identity"]
    assert inherited == [], f"answered by Provider's defaults, not the routed provider: {inherited}"


def test_each_part_goes_to_the_provider_the_sensor_is_routed_to():
    r = _router()
    assert r.route(PROD) is r.products["fake_product"] and r.route(IMG) is r.base
    assert r.backend_name_for(PROD) == "fake_product" and r.backend_name_for(IMG) == "fake_imagery"
    assert r.check_sensor(SensorSpec(PRODUCT, ("X",))) == "product bands are P0, P1"
    assert r.check_sensor(SensorSpec(COLLECTION, ("B99",))) == "no such band here"
    assert r.check_sensor(IMG) is None and r.check_sensor(PROD) is None
    assert r.coverage_fraction([OK], None, PROD) == [1.0] and r.coverage_fraction([OK], None, IMG) == [0.25]
    assert r.retries_itself is False  # not every routed provider retries by itself
    out = r.fetch_many(OK, T, [PROD, IMG, PROD])
    assert [p.bands for p in out] == [("P0", "P1"), BANDS, ("P0", "P1")]
    assert r.base.many_calls == 1 and r.products["fake_product"].calls == 2


def test_identity_covers_the_imagery_and_every_product_provider():
    a, b = _router().identity(), _router(version="v2").identity()
    assert a != b and a["products"]["fake_product"]["version"] == "v1"
    assert a["imagery"]["catalog"] == "imagery-v1" and a["imagery"]["class"].endswith("ImageryProvider")
    assert a["class"] == "rs_embed.providers.routing.ProductRouter"


OK = PointBuffer(11.0, 46.0, 40)


class ProductStats(fakes.StatsEmbedder):
    name = "fake_product_stats"

    @classmethod
    def _describe(cls):
        d = fakes.StatsEmbedder._describe()
        d["inputs"] = {"collection": PRODUCT, "bands": ["P0", "P1"]}
        return d


fakes.register_model(ProductStats.name, ProductStats)


def test_the_engine_applies_each_routed_providers_own_retry_layer(tmp_path):
    # every first attempt fails transiently, for both providers
    def first_fails(lon, attempt):
        return attempt == 1

    r = _router(schedule=first_fails, imagery={"schedule": first_fails})
    man = ex(dict(spatials=[OK], temporal=T, models=["fake_stats", "fake_product_stats"], backend=r,
                  show_progress=False), out=str(tmp_path / "x"), layout="per_item", max_retries=2,
             continue_on_error=True)
    by = {m["model"]: m for m in man[0]["models"]}
    # imagery retries by itself: called once by the engine, its failure kept; the product is retried
    assert by["fake_stats"]["status"] == "failed" and by["fake_stats"]["fetch_attempts"] == 1
    assert by["fake_product_stats"]["status"] == "ok" and by["fake_product_stats"]["fetch_attempts"] == 2
    assert r.base.calls == 1 and r.products["fake_product"].calls == 2
    assert man[0]["backend"] == "fake_imagery+fake_product"


def test_a_product_setting_changes_the_resume_fingerprint(tmp_path):
    kw = dict(spatials=[OK], temporal=T, models=["fake_stats", "fake_product_stats"], show_progress=False)
    ex(kw, backend=_router(), out=str(tmp_path / "x"), layout="per_item")
    again = _router(version="v2")
    ex(kw, backend=again, out=str(tmp_path / "x"), layout="per_item", resume=True)
    assert again.products["fake_product"].calls == 1  # other product settings: not kept, fetched again


def test_auto_is_resolved_for_the_imagery_sensors_only():
    """A product's collection is not in the local catalog; ``auto`` still picks ``local``
    for the imagery it covers (the embedded sample) instead of looking elsewhere."""
    from rs_embed.models import get_embedder

    rcf, tess = get_embedder("rcf"), get_embedder("tessera")
    roi = sample.points(500)[0].spatial
    sensors = [rcf.default_sensor(), tess.default_sensor()]
    provider, name = open_backend("auto", [rcf, tess], spatials=[roi], temporal=sample.TEMPORAL,
                                  sensors=[SensorSpec(sample.COLLECTION, sample.BANDS), sensors[1]])
    assert name == "local+tessera" and isinstance(provider, ProductRouter)
    assert routing.backend_name_for(provider, name, sensors[1]) == "tessera"


def test_a_model_its_routed_backend_cannot_serve_is_refused_before_any_file(tmp_path):
    """gse reads Earth Engine or the AlphaEarth COGs, never the local catalog: beside a
    product on backend='local' it is refused up front, not at fetch time."""
    out = tmp_path / "mix"
    with pytest.raises(ModelError, match="'gse' cannot read from backend 'local'"):
        ex(dict(spatials=[PointBuffer(6.07, 45.06, 300)], temporal=TemporalSpec.year(2023),
                models=["gse", "tessera"], backend="local", show_progress=False),
           out=str(out), layout="combined")
    assert not os.path.exists(tmp_path / "mix.npz") and os.listdir(tmp_path) == []


def test_the_routed_provider_refuses_an_unknown_product_sensor_before_any_file(tmp_path):
    bad = ExportModelRequest("tessera", sensor=SensorSpec("TESSERA/v1", ("T000",)))
    with pytest.raises(SpecError, match="cannot serve the input of \\['tessera'\\].*T000..T127"):
        ex(dict(spatials=[PointBuffer(6.07, 45.06, 300)], temporal=TemporalSpec.year(2023),
                models=[bad, "rcf"], backend="local", show_progress=False), out=str(tmp_path / "m"),
           layout="combined")
    assert os.listdir(tmp_path) == []


def test_patches_fetched_through_the_router_are_the_routed_providers(tmp_path):
    r = _router()
    p = r.fetch(OK, T, PROD)
    assert isinstance(p, Patch) and p.bands == ("P0", "P1") and r.base.calls == 0
