"""Every argument check of export_batch runs before any fetch and names the argument."""

from __future__ import annotations

import math

import pytest

from rs_embed import (ExportConfig, ExportModelRequest, ExportTarget, InputPrepSpec, ModelError,
                      OutputSpec, PointBuffer, SensorSpec, SpecError, export_batch, export_npz)

from fakes import T


def _rejects(exc_type, match, provider, tmp_path, **kw):
    args = dict(spatials=[PointBuffer(11.0, 46.0, 40)], temporal=T, models=["fake_stats"],
                backend=provider, show_progress=False)
    if not any(k in kw for k in ("out", "layout", "out_dir", "out_path", "target")):
        args["out_dir"] = str(tmp_path / "o")
    args.update(kw)
    with pytest.raises(exc_type, match=match):
        export_batch(**args)
    assert provider.calls == 0, "nothing may be fetched before the arguments are checked"
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# ----------------------------------------------------------------- what


@pytest.mark.parametrize("spatials,match", [
    ([], "spatials must not be empty"),
    (PointBuffer(11.0, 46.0, 40), "wrap it in a list"),
    ("11,46", "spatials must be a list"),
    ([PointBuffer(11.0, 46.0, 40), (11.0, 46.0)], r"spatials\[1\]"),
])
def test_bad_spatials(spatials, match, provider, tmp_path):
    _rejects(SpecError, match, provider, tmp_path, spatials=spatials)


def test_bad_temporal(provider, tmp_path):
    _rejects(SpecError, "temporal", provider, tmp_path, temporal="2022")


@pytest.mark.parametrize("models,exc,match", [
    ([], SpecError, "models must be a non-empty list"),
    ("fake_stats", SpecError, r"did you mean \['fake_stats'\]"),
    (["fake_stat"], ModelError, "unknown model 'fake_stat'.*did you mean 'fake_stats'"),
    (["fake_stats", "fake_stats"], SpecError, r"same model twice: models\[0\]='fake_stats' and models\[1\]"),
    (["fake_stats", "FAKE-STATS"], SpecError, "same model twice"),
    ([3], ModelError, r"models\[0\]"),
    ([""], ModelError, r"models\[0\]"),
])
def test_bad_models(models, exc, match, provider, tmp_path):
    _rejects(exc, match, provider, tmp_path, models=models)


def test_unknown_model_option(provider, tmp_path):
    _rejects(ModelError, "unknown option", provider, tmp_path,
             models=[ExportModelRequest.configure("fake_stats", colour="red")])


def test_same_model_twice_with_different_options_needs_distinct_names(provider, tmp_path):
    _rejects(SpecError, "same model twice", provider, tmp_path,
             models=[ExportModelRequest.configure("fake_stats"), ExportModelRequest("fake_stats", model_config={"scale": 2.0})])


def test_per_model_sensors_key_not_in_models(provider, tmp_path):
    s = SensorSpec("FAKE/S2", ("B2", "B3"))
    _rejects(SpecError, "per_model_sensors key 'fake_red' is not one of models", provider, tmp_path,
             per_model_sensors={"fake_red": s})


def test_per_model_sensors_value_type(provider, tmp_path):
    _rejects(SpecError, r"per_model_sensors\['fake_stats'\] must be a SensorSpec", provider, tmp_path,
             per_model_sensors={"fake_stats": ("B2",)})


def test_sensor_type(provider, tmp_path):
    _rejects(SpecError, "sensor must be a SensorSpec", provider, tmp_path, sensor="S2")


def test_output_and_input_prep(provider, tmp_path):
    _rejects(SpecError, "output", provider, tmp_path, output="vector")
    _rejects(SpecError, "input_prep", provider, tmp_path, input_prep="crop")


def test_device_and_backend(provider, tmp_path):
    _rejects(ModelError, "device", provider, tmp_path, device="tpu")
    _rejects(SpecError, "backend 'nowhere' is not a known provider", provider, tmp_path, backend="nowhere")
    _rejects(SpecError, "backend must be", provider, tmp_path, backend=None)


# ----------------------------------------------------------------- where


@pytest.mark.parametrize("kw,match", [
    (dict(out="x"), "out='x' needs layout='per_item'"),
    (dict(layout="combined"), "layout='combined' needs out="),
    (dict(out="x", layout="columns"), "layout must be 'per_item' or 'combined', got 'columns'"),
    (dict(out="x", layout="combined", out_dir="y"), "do not mix out/layout with out_dir"),
    (dict(out="x", layout="per_item", out_path="y.npz"), "do not mix out/layout with out_path"),
    (dict(out_dir="x", out_path="y.npz"), "only one of out_dir"),
    (dict(out=""), "out must be a non-empty path|needs layout"),
    (dict(target=ExportTarget.combined("x"), out="y", layout="combined"), "either as target= or as out/layout"),
    (dict(target="x.npz"), "target must be an ExportTarget"),
])
def test_bad_targets(kw, match, provider, tmp_path):
    _rejects(SpecError, match, provider, tmp_path, **kw)


def test_no_target(provider, tmp_path):
    with pytest.raises(SpecError, match="no output given"):
        export_batch(spatials=[PointBuffer(11.0, 46.0, 40)], temporal=T, models=["fake_stats"],
                     backend=provider, show_progress=False)
    assert provider.calls == 0


def test_out_path_extension_must_match_format(provider, tmp_path):
    _rejects(SpecError, "ends with '.nc' but format='npz'", provider, tmp_path, out_path=str(tmp_path / "o.nc"))
    _rejects(SpecError, "ends with '.npz' but format='netcdf'", provider, tmp_path,
             out_path=str(tmp_path / "o.npz"), format="netcdf")


def test_existing_paths_of_the_wrong_kind(provider, tmp_path):
    (tmp_path / "afile").write_text("x")
    _rejects(SpecError, "exists and is not a directory", provider, tmp_path, out_dir=str(tmp_path / "afile"))
    (tmp_path / "adir.npz").mkdir()
    _rejects(SpecError, "is a directory", provider, tmp_path, out_path=str(tmp_path / "adir.npz"))


# ----------------------------------------------------------------- names


@pytest.mark.parametrize("names,match", [
    (["a", "b"], "one entry per spatial: got 2 names for 1 spatials"),
    ("a", "names must be a list"),
    ([""], r"names\[0\] must not be empty"),
    (["a/b"], "not a safe file name: it contains '/'"),
    (["a\\b"], "not a safe file name"),
    ([".."], "must not start with '.'"),
    ([".hidden"], "must not start with '.'"),
    (["a\x00b"], "control characters"),
    (["a\nb"], "control characters"),
    (["x:y"], "not a safe file name"),
    (["name "], "trailing spaces"),
    ([7], r"names\[0\] must be a string"),
    (["rs_embed_export"], "reserved"),
    (["x" * 300], "too long"),
])
def test_bad_names(names, match, provider, tmp_path):
    _rejects(SpecError, match, provider, tmp_path, names=names)


def test_duplicate_names_case_insensitive(provider, tmp_path):
    two = [PointBuffer(11.0, 46.0, 40), PointBuffer(11.1, 46.0, 40)]
    _rejects(SpecError, r"names must be unique: names\[0\]='Site' and names\[1\]='site'", provider, tmp_path,
             spatials=two, names=["Site", "site"])
    _rejects(SpecError, "names must be unique", provider, tmp_path, spatials=two, names=["a", "a"])


@pytest.mark.parametrize("kw", [
    dict(out_path="x.npz"),
    dict(out="x", layout="combined"),
])
def test_names_only_per_item(kw, provider, tmp_path):
    kw = {k: (str(tmp_path / v) if k in ("out", "out_path") else v) for k, v in kw.items()}
    _rejects(SpecError, "names only apply to the per_item layout", provider, tmp_path, names=["a"], **kw)


# ----------------------------------------------------------------- how


@pytest.mark.parametrize("name,value,match", [
    ("format", "csv", "format must be 'npz', 'netcdf', 'parquet' or 'zarr', got 'csv'"),
    ("format", "nc", "spelled 'netcdf'"),
    ("chunk_size", 0, "chunk_size must be an integer >= 1, got 0"),
    ("chunk_size", True, "chunk_size must be an integer"),
    ("chunk_size", 2.0, "chunk_size must be an integer"),
    ("num_workers", 0, "num_workers must be an integer >= 1"),
    ("writer_workers", -1, "writer_workers must be an integer >= 1"),
    ("max_retries", -1, "max_retries must be an integer >= 0"),
    ("retry_backoff_s", -0.5, "retry_backoff_s must be a number of seconds >= 0"),
    ("retry_backoff_s", math.nan, "retry_backoff_s"),
    ("save_inputs", "yes", "save_inputs must be True or False"),
    ("save_embeddings", None, "save_embeddings must be True or False"),
    ("save_manifest", 1, "save_manifest must be True or False"),
    ("fail_on_bad_input", "no", "fail_on_bad_input"),
    ("continue_on_error", 0, "continue_on_error"),
    ("async_write", "true", "async_write"),
    ("resume", 1, "resume must be True or False"),
    ("show_progress", None, "show_progress"),
    ("fetch_timeout_s", 0, "fetch_timeout_s must be a number of seconds > 0, got 0"),
    ("fetch_timeout_s", math.inf, "fetch_timeout_s"),
    ("fetch_timeout_s", "60", "fetch_timeout_s"),
    ("max_patch_mb", -1, "max_patch_mb must be a number of MiB > 0"),
])
def test_bad_run_options(name, value, match, provider, tmp_path):
    _rejects(SpecError, match, provider, tmp_path, **{name: value})


def test_resume_needs_manifests(provider, tmp_path):
    _rejects(SpecError, "resume=True needs save_manifest=True", provider, tmp_path, resume=True, save_manifest=False)


def test_config_object_is_checked_and_not_mixed(provider, tmp_path):
    with pytest.raises(SpecError, match="ExportConfig.chunk_size"):
        ExportConfig(chunk_size=0)
    _rejects(SpecError, "chunk_size given both as keyword and in config", provider, tmp_path,
             config=ExportConfig(chunk_size=4), chunk_size=8)
    _rejects(SpecError, "config must be an ExportConfig", provider, tmp_path, config={"chunk_size": 4})


def test_request_objects_validate():
    with pytest.raises(SpecError, match="layout"):
        ExportTarget("stacked", "x")
    with pytest.raises(SpecError, match="names only apply to the per_item"):
        ExportTarget("combined", "x", names=("a",))
    with pytest.raises(ModelError, match="sensor= or fetch="):
        from rs_embed import FetchSpec

        ExportModelRequest("rcf", sensor=SensorSpec("X", ("B1",)), fetch=FetchSpec(scale_m=20))
    assert ExportModelRequest.configure("rcf", dim=64).model_config == {"dim": 64}
    assert ExportTarget.per_item("d", names=["a"]).out_dir == "d"
    assert ExportTarget.combined("f").out_file == "f"


def test_export_npz_checks_before_creating_anything(provider, tmp_path):
    with pytest.raises(SpecError):
        export_npz(spatial=PointBuffer(11.0, 46.0, 40), temporal=T, models=[], backend=provider,
                   out_path=str(tmp_path / "deep" / "x"))
    assert not (tmp_path / "deep").exists()
    with pytest.raises(SpecError, match="spatial"):
        export_npz(spatial=[PointBuffer(11.0, 46.0, 40)], temporal=T, models=["fake_stats"], backend=provider,
                   out_path=str(tmp_path / "x"))
    assert provider.calls == 0


def test_valid_request_objects_are_accepted(provider, tmp_path):
    res = export_batch(spatials=[PointBuffer(11.0, 46.0, 40)], temporal=T,
                       models=[ExportModelRequest.configure("fake_stats", scale=2.0)],
                       target=ExportTarget.per_item(str(tmp_path / "o"), names=["site"]),
                       config=ExportConfig(chunk_size=4, num_workers=2, input_prep=InputPrepSpec.resize()),
                       backend=provider, show_progress=False, output=OutputSpec.pooled())
    assert res[0]["name"] == "site" and (tmp_path / "o" / "site.npz").exists()


REFERENCE_EXPORT_BATCH = [
    ("spatials", None), ("temporal", None), ("models", None), ("out", None), ("layout", None),
    ("out_dir", None), ("out_path", None), ("names", None), ("backend", "gee"), ("device", "auto"),
    ("output", OutputSpec.pooled()), ("sensor", None), ("per_model_sensors", None), ("format", "npz"),
    ("save_inputs", True), ("save_embeddings", True), ("save_manifest", True), ("fail_on_bad_input", False),
    ("chunk_size", 16), ("num_workers", 8), ("continue_on_error", False), ("max_retries", 0),
    ("retry_backoff_s", 0.0), ("async_write", True), ("writer_workers", 2), ("resume", False),
    ("show_progress", True), ("input_prep", "resize"),
]
REFERENCE_EXPORT_NPZ = [
    ("spatial", None), ("temporal", None), ("models", None), ("out_path", None), ("backend", "gee"),
    ("device", "auto"), ("output", OutputSpec.pooled()), ("sensor", None), ("per_model_sensors", None),
    ("save_inputs", True), ("save_embeddings", True), ("save_manifest", True), ("fail_on_bad_input", False),
    ("continue_on_error", False), ("max_retries", 0), ("retry_backoff_s", 0.0), ("input_prep", "resize"),
]


@pytest.mark.parametrize("fn,ref,required", [
    (export_batch, REFERENCE_EXPORT_BATCH, {"spatials", "temporal", "models"}),
    (export_npz, REFERENCE_EXPORT_NPZ, {"spatial", "temporal", "models", "out_path"}),
])
def test_signatures_follow_the_reference(fn, ref, required):
    import inspect

    params = list(inspect.signature(fn).parameters.values())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    assert [p.name for p in params[:len(ref)]] == [n for n, _ in ref]
    for p, (name, default) in zip(params, ref):
        if name in required:
            assert p.default is inspect.Parameter.empty, name
        else:
            assert p.default == default, name
