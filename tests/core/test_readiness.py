"""Readiness before a run: what the model catalog, the provider registry and the
providers themselves say, collected by the public API and shown by the CLI."""

import json

import pytest

import rs_embed
from rs_embed import PointBuffer, SensorSpec, sample
from rs_embed.cli import main
from rs_embed.providers import Provider, backend_availability, register_provider


def checks(report):
    return {c.name: c.ok for c in report.checks}


def test_weight_free_model_on_the_sample_is_ready():
    (r,) = rs_embed.check_models(["rcf"], backend="local")
    assert r.ready and r.backend == "local" and r.problems == []
    assert checks(r) == {"installed": True, "weights": True, "credentials": True, "backend": True, "sensor": True}


def test_each_reason_a_model_cannot_run_is_named():
    by = {r.model: r for r in rs_embed.check_models(["gse", "prithvi"], backend="local")}
    assert checks(by["gse"])["backend"] is False and "needs backend='gee'" in by["gse"].problems[0]
    pr = by["prithvi"]
    assert not pr.ready and checks(pr)["sensor"] is False  # the sample is L1C, Prithvi reads L2A
    assert any("COPERNICUS/S2_SR_HARMONIZED" in p for p in pr.problems)
    status = {s["model"]: s for s in rs_embed.model_status()}["prithvi"]
    if not status["ready_variants"]:  # no checkpoint on this machine
        assert checks(pr)["weights"] is False and any("not on disk" in p for p in pr.problems)
        (dl,) = rs_embed.check_models(["prithvi"], backend="local", allow_download=True)
        assert checks(dl)["weights"] is None and "downloaded at first use" in dl.warnings[0]


class Unavailable(Provider):
    name = "nocreds"

    @classmethod
    def availability(cls):
        return "no credentials for this archive (run `nocreds login`)"

    def fetch(self, spatial, temporal, sensor):  # pragma: no cover - never reached
        raise AssertionError("a backend without credentials must not be opened")


def test_a_backend_without_credentials_blocks_every_model_and_is_never_opened():
    register_provider("nocreds", Unavailable)
    assert "nocreds" in rs_embed.list_backends() and rs_embed.list_backends()[0] == "auto"
    assert backend_availability("nocreds").startswith("no credentials")
    (r,) = rs_embed.check_models(["rcf"], backend="nocreds")
    assert checks(r)["credentials"] is False and "nocreds login" in r.problems[0]
    assert rs_embed.check_coverage([PointBuffer(0, 0, 100)], backend="nocreds") == [None]


def test_gee_without_credentials_says_why():
    reason = backend_availability("gee")
    assert reason is None or "Earth Engine" in reason or "earthengine-api" in reason


def test_coverage_of_the_sample_from_footprints():
    inside = sample.points()[0].spatial
    edge = PointBuffer(-75.575, 37.65, 500)  # the scene ends about 200 m east of its centre
    far = PointBuffer(10.0, 50.0, 300)
    got = rs_embed.check_coverage([inside, edge, far], backend="local", model="rcf")
    assert got[0] == 1.0 and got[2] == 0.0
    assert 0.1 < got[1] < 0.3  # what the fetch measures: 80 % of the patch is nodata
    patch = rs_embed.LocalProvider().fetch(edge, sample.TEMPORAL, rs_embed.default_sensor("rcf"))
    assert got[1] == pytest.approx(1 - patch.meta["nodata_fraction"], abs=0.08)
    # outside the scene's window, or for a collection it does not hold, nothing is covered
    assert rs_embed.check_coverage([inside], backend="local",
                                   temporal=rs_embed.TemporalSpec.year(2020)) == [0.0]
    assert rs_embed.check_coverage([inside], backend="local",
                                   sensor=SensorSpec("COPERNICUS/S1_GRD", ("VV",))) == [0.0]


def test_local_provider_checks_a_sensor_without_fetching():
    p = rs_embed.LocalProvider()
    assert p.check_sensor(rs_embed.default_sensor("spectral")) is None
    assert "band(s) 'B99'" in p.check_sensor(SensorSpec(sample.COLLECTION, ("B4", "B99")))


def test_cli_version_and_model_readiness(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["--version"])
    assert ex.value.code == 0 and capsys.readouterr().out.strip() == f"rs-embed {rs_embed.__version__}"
    assert main(["models", "--backend", "local"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("rcf "))
    assert "READY" in line
    gse = out[out.index("\ngse "):].splitlines()
    assert "not ready" in gse[1] and "needs backend='gee'" in gse[2]
    assert main(["models", "--backend", "local", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["rcf"]["ready"] and not rows["gse"]["ready"]
    assert main(["models", "--backend", "nowhere"]) == 2
    assert "not a known backend" in capsys.readouterr().err
