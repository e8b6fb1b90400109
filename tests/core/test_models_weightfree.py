"""The weight-free embedders ``rcf`` and ``spectral``: contract, determinism, values."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.models import describe_model, get_embedder, list_models
from rs_embed.models.rcf import RCF_BANDS, RCFEmbedder
from rs_embed.models.spectral import INDICES, SpectralEmbedder
from rs_embed.sensors import S2_BANDS
from rs_embed.specs import OutputSpec, SensorSpec

POOLED, GRID = OutputSpec.pooled(), OutputSpec.grid()
S2 = "COPERNICUS/S2_HARMONIZED"


def _patch(bands, h=64, w=64, seed=0):
    """Plausible Sentinel-2 DNs: smooth fields plus noise, per band offsets."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 1500 + 800 * np.sin(yy / 9.0 + seed) * np.cos(xx / 13.0)
    return np.stack([base * (0.6 + 0.1 * i) + rng.normal(0, 120, (h, w))
                     for i in range(len(bands))]).clip(1, 12000).astype(np.float32)


@pytest.fixture(scope="module")
def rcf():
    return RCFEmbedder(device="cpu", dim=64)


@pytest.fixture(scope="module")
def spectral():
    return SpectralEmbedder(device="cpu")


RCF_SENSOR = SensorSpec(S2, RCF_BANDS)
SPEC_SENSOR = SensorSpec(S2, S2_BANDS)


# ---------------------------------------------------------------------- catalog
def test_both_models_are_listed():
    names = list_models()
    assert "rcf" in names and "spectral" in names


@pytest.mark.parametrize("name", ["rcf", "spectral"])
def test_describe_contract(name):
    d = describe_model(name)
    assert d["type"] == "on_the_fly"
    assert d["backend"] == ["local", "gee", "auto"]
    assert d["inputs"]["collection"] == S2 and d["inputs"]["bands"]
    assert d["temporal"] == {"mode": "range"}
    assert d["output"] == ["pooled", "grid"]
    assert {"scale_m", "cloudy_pct", "composite", "image_size"} <= set(d["defaults"])
    assert d["defaults"]["image_size"] is None and d["defaults"]["scale_m"] == 10
    assert d["modalities"] and isinstance(d["summary"], str) and "licence" in d and "paper" in d
    for key, spec in d["model_config"].items():
        assert "type" in spec and "default" in spec, key
    # a copy: callers cannot corrupt the cached description
    d["inputs"]["bands"].append("X")
    assert "X" not in describe_model(name)["inputs"]["bands"]


def test_describe_loads_no_torch():
    code = ("import sys; from rs_embed.models import describe_model, list_models; "
            "list_models(); describe_model('rcf'); describe_model('spectral'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_default_sensors():
    assert get_embedder("rcf").default_sensor() == SensorSpec(S2, RCF_BANDS, scale_m=10)
    s = get_embedder("spectral").default_sensor()
    assert s.collection == S2 and s.bands == S2_BANDS and len(s.bands) == 13


# ------------------------------------------------------------------ config errors
@pytest.mark.parametrize("kwargs, option", [
    ({"dim": 3}, "dim"), ({"dim": 0}, "dim"), ({"dim": 2.5}, "dim"),
    ({"seed": -1}, "seed"), ({"kernel_size": 4}, "kernel_size"), ({"kernel_size": 0}, "kernel_size"),
    ({"grid_cell": 0}, "grid_cell"), ({"normalize": "zscore"}, "normalize"),
    ({"bias": "high"}, "bias"), ({"bias": float("nan")}, "bias"), ({"dims": 64}, "dims"),
])
def test_rcf_config_errors_name_the_option(kwargs, option):
    with pytest.raises(ModelError, match=option):
        get_embedder("rcf", **kwargs)


def test_spectral_config_errors_name_the_option():
    with pytest.raises(ModelError, match="grid_cell"):
        get_embedder("spectral", grid_cell=0)
    with pytest.raises(ModelError, match="percentile"):
        get_embedder("spectral", percentile=5)


def test_wrong_channel_count_is_refused(rcf, spectral):
    with pytest.raises(ModelError, match="channels"):
        rcf.embed(np.zeros((3, 8, 8), np.float32), sensor=RCF_SENSOR, output=POOLED)
    with pytest.raises(ModelError, match=r"\(C, H, W\)"):
        spectral.embed(np.zeros((8, 8), np.float32), sensor=SPEC_SENSOR, output=POOLED)


# --------------------------------------------------------------------------- rcf
def test_rcf_shapes_and_meta(rcf):
    x = _patch(RCF_BANDS, 70, 50)
    p = rcf.embed(x, sensor=RCF_SENSOR, output=POOLED)
    assert p.data.shape == (64,) and p.data.dtype == np.float32
    assert np.isfinite(p.data).all() and (p.data >= 0).all()
    assert p.meta["image_size"] == [70, 50] and p.meta["cls_removed"] is False
    assert p.meta["pooling"] == "mean" and p.meta["dim"] == 64 and p.meta["seed"] == 0
    assert p.meta["grid_hw"] is None
    g = rcf.embed(x, sensor=RCF_SENSOR, output=GRID)
    assert g.data.shape == (64, 5, 4)  # ceil(70/16), ceil(50/16)
    assert g.meta["grid_hw"] == [5, 4] and g.meta["grid_cell_px"] == 16


def test_rcf_default_dim_and_grid_cell():
    e = get_embedder("rcf", device="cpu", grid_cell=50)
    x = _patch(RCF_BANDS, 100, 100)
    assert e.embed(x, sensor=RCF_SENSOR, output=POOLED).data.shape == (512,)
    assert e.embed(x, sensor=RCF_SENSOR, output=GRID).data.shape == (512, 2, 2)


def test_rcf_pooled_is_the_mean_and_max_of_its_grid(rcf):
    x = _patch(RCF_BANDS, 64, 48)  # cells of 16 px divide the patch evenly
    for pooling in ("mean", "max"):
        p = rcf.embed(x, sensor=RCF_SENSOR, output=OutputSpec.pooled(pooling)).data
        g = rcf.embed(x, sensor=RCF_SENSOR, output=OutputSpec.grid(pooling)).data
        agg = g.mean(axis=(1, 2)) if pooling == "mean" else g.max(axis=(1, 2))
        np.testing.assert_allclose(p, agg, rtol=1e-5, atol=1e-6)


def test_rcf_matches_a_direct_convolution(rcf):
    """Features are relu(+-(w * x)) on standardised reflectance with replicate padding."""
    import torch
    import torch.nn.functional as F

    x = _patch(RCF_BANDS, 24, 20)
    from rs_embed.models.rcf import S2_L1C_STATS
    mean = np.array([S2_L1C_STATS[b][0] for b in RCF_BANDS])[:, None, None]
    std = np.array([S2_L1C_STATS[b][1] for b in RCF_BANDS])[:, None, None]
    z = torch.from_numpy((x - mean) / std)[None]
    z = F.conv2d(F.pad(z, (1, 1, 1, 1), mode="replicate"), torch.from_numpy(rcf.kernels(10)).double())[0]
    expected = torch.cat([torch.relu(z), torch.relu(-z)]).mean(dim=(1, 2)).numpy()
    got = rcf.embed(x, sensor=RCF_SENSOR, output=POOLED).data
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_rcf_kernels_are_pinned_numpy_draws():
    """Same seed -> same kernels on every machine: numpy's PCG64 stream, not torch's RNG."""
    w = RCFEmbedder(device="cpu", dim=4, kernel_size=3).kernels(2)
    raw = np.random.default_rng(0).standard_normal((2, 2, 3, 3))
    np.testing.assert_allclose(w, raw / np.sqrt((raw ** 2).sum(axis=(1, 2, 3), keepdims=True)), rtol=1e-6)
    # the first draws of default_rng(0) are part of numpy's stability promise
    np.testing.assert_allclose(raw.ravel()[:3], [0.12573022, -0.13210486, 0.64042265], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(w.reshape(2, -1), axis=1), 1.0, rtol=1e-6)


def test_rcf_same_call_twice_gives_identical_bytes(rcf):
    x = _patch(RCF_BANDS, 50, 50)
    a = rcf.embed(x, sensor=RCF_SENSOR, output=POOLED).data.tobytes()
    b = RCFEmbedder(device="cpu", dim=64).embed(x, sensor=RCF_SENSOR, output=POOLED).data.tobytes()
    assert a == b == rcf.embed(x, sensor=RCF_SENSOR, output=POOLED).data.tobytes()
    other = RCFEmbedder(device="cpu", dim=64, seed=1).embed(x, sensor=RCF_SENSOR, output=POOLED).data
    assert not np.allclose(np.frombuffer(a, np.float32), other)


_SUBPROCESS = """
import hashlib, json, sys
import numpy as np
sys.path.insert(0, {testdir!r})
from test_models_weightfree import _patch, RCF_SENSOR, SPEC_SENSOR
from rs_embed.models import get_embedder
from rs_embed.specs import OutputSpec
out = {{}}
for name, sensor in (("rcf", RCF_SENSOR), ("spectral", SPEC_SENSOR)):
    e = get_embedder(name, device="cpu")
    x = _patch(sensor.bands, 40, 40)
    for mode in ("pooled", "grid"):
        out[name + mode] = hashlib.sha256(e.embed(x, sensor=sensor, output=OutputSpec(mode)).data.tobytes()).hexdigest()
print(json.dumps(out))
"""


def test_identical_bytes_across_processes():
    import os

    code = _SUBPROCESS.format(testdir=os.path.dirname(__file__))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    for name, sensor in (("rcf", RCF_SENSOR), ("spectral", SPEC_SENSOR)):
        e = get_embedder(name, device="cpu")
        x = _patch(sensor.bands, 40, 40)
        for mode in ("pooled", "grid"):
            ours = hashlib.sha256(e.embed(x, sensor=sensor, output=OutputSpec(mode)).data.tobytes()).hexdigest()
            assert ours == theirs[name + mode], (name, mode)


@pytest.mark.parametrize("output", [POOLED, GRID, OutputSpec.pooled("max")])
def test_rcf_batch_equals_loop(rcf, output):
    xs = [_patch(RCF_BANDS, 48, 48, seed=s) for s in range(3)] + [_patch(RCF_BANDS, 33, 40, seed=9)]
    xs[1][:, :10, :10] = 0  # a nodata corner in one item only
    batch = rcf.embed_batch(xs, sensor=RCF_SENSOR, output=output)
    for x, b in zip(xs, batch):
        single = rcf.embed(x, sensor=RCF_SENSOR, output=output)
        np.testing.assert_allclose(b.data, single.data, rtol=1e-6, atol=1e-6)
        assert b.meta == single.meta
    assert RCFEmbedder.has_batch


def test_rcf_nodata_is_left_out(rcf):
    x = _patch(RCF_BANDS, 64, 64)
    x[:, :, :32] = 0  # left half: no imagery (fill_value 0 in every band)
    g = rcf.embed(x, sensor=RCF_SENSOR, output=GRID)
    assert np.isnan(g.data[:, :, :2]).all() and np.isfinite(g.data[:, :, 2:]).all()
    p = rcf.embed(x, sensor=RCF_SENSOR, output=POOLED)
    assert p.meta["valid_fraction"] == 0.5
    np.testing.assert_allclose(p.data, g.data[:, :, 2:].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    empty = rcf.embed(np.zeros_like(x), sensor=RCF_SENSOR, output=POOLED)
    assert np.isnan(empty.data).all() and empty.meta["valid_fraction"] == 0.0


def test_rcf_band_names_and_normalisation(rcf):
    x = _patch(RCF_BANDS, 32, 32)
    ref = rcf.embed(x, sensor=RCF_SENSOR, output=POOLED).data
    zero_padded = SensorSpec(S2, tuple(b if len(b) == 3 else "B0" + b[1:] for b in RCF_BANDS))
    np.testing.assert_array_equal(rcf.embed(x, sensor=zero_padded, output=POOLED).data, ref)
    landsat = SensorSpec("LANDSAT/LC09/C02/T1_L2", ("SR_B2", "SR_B3", "SR_B4"))
    with pytest.raises(ModelError, match="SR_B2.*normalize"):
        rcf.embed(x[:3], sensor=landsat, output=POOLED)
    e = get_embedder("rcf", device="cpu", dim=64, normalize="patch")
    got = e.embed(x[:3], sensor=landsat, output=POOLED)
    assert got.data.shape == (64,) and np.isfinite(got.data).all()
    # per-patch standardisation ignores a global brightness change; the default does not
    np.testing.assert_allclose(e.embed(x[:3] * 1.5, sensor=landsat, output=POOLED).data, got.data,
                               rtol=1e-4, atol=1e-5)
    assert not np.allclose(rcf.embed(x * 1.5, sensor=RCF_SENSOR, output=POOLED).data, ref, atol=1e-3)
    refl = get_embedder("rcf", device="cpu", dim=64, normalize="reflectance")
    assert np.isfinite(refl.embed(x[:3], sensor=landsat, output=POOLED).data).all()
    assert refl.embed(x[:3], sensor=landsat, output=POOLED).meta["normalize"] == "reflectance"


# ----------------------------------------------------------------------- spectral
def test_spectral_dims_and_names(spectral):
    x = _patch(S2_BANDS, 40, 30)
    p = spectral.embed(x, sensor=SPEC_SENSOR, output=POOLED)
    n_maps = 13 + len(INDICES)
    assert p.data.shape == (n_maps * 5,) and p.data.dtype == np.float32
    names = p.meta["dim_names"]
    assert len(names) == len(set(names)) == p.data.shape[0]
    assert names[:5] == ["B1_mean", "B1_std", "B1_p10", "B1_p50", "B1_p90"]
    assert "NDVI_p50" in names and p.meta["indices_skipped"] == {}
    g = spectral.embed(x, sensor=SPEC_SENSOR, output=GRID)
    assert g.data.shape == (n_maps, 40, 30)
    assert g.meta["dim_names"] == list(S2_BANDS) + [i.name for i in INDICES]
    assert g.meta["grid_hw"] == [40, 30] and g.meta["cls_removed"] is False


def test_spectral_values(spectral):
    bands = ("B2", "B3", "B4", "B8", "B11")
    sensor = SensorSpec(S2, bands)
    x = np.empty((5, 10, 10), np.float32)
    x[0], x[1], x[2], x[3], x[4] = 500, 800, 1000, 3000, 2000
    p = spectral.embed(x, sensor=sensor, output=POOLED)
    v = dict(zip(p.meta["dim_names"], p.data.tolist()))
    assert v["B4_mean"] == pytest.approx(0.1) and v["B8_p90"] == pytest.approx(0.3)
    assert v["B4_std"] == 0.0
    assert v["NDVI_mean"] == pytest.approx(0.5)                     # (0.3-0.1)/(0.3+0.1)
    assert v["NDWI_mean"] == pytest.approx((0.08 - 0.3) / 0.38)     # McFeeters: green vs NIR
    assert v["MNDWI_mean"] == pytest.approx((0.08 - 0.2) / 0.28)
    assert v["NDBI_mean"] == pytest.approx((0.2 - 0.3) / 0.5)
    assert v["SAVI_mean"] == pytest.approx(1.5 * 0.2 / 0.9)
    assert v["BSI_mean"] == pytest.approx((0.3 - 0.35) / 0.65)
    # indices whose bands are missing are skipped, and that is recorded
    assert p.meta["indices_skipped"] == {"NBR": ["B12"], "NDMI": ["B8A"]}
    assert "NBR_mean" not in v and p.meta["indices"] == ["NDVI", "NDWI", "MNDWI", "NDBI", "SAVI", "BSI"]


def test_spectral_statistics_match_numpy(spectral):
    x = _patch(S2_BANDS, 50, 50, seed=4)
    p = spectral.embed(x, sensor=SPEC_SENSOR, output=POOLED)
    v = dict(zip(p.meta["dim_names"], p.data))
    b4 = x[3] / 10000
    np.testing.assert_allclose([v["B4_mean"], v["B4_std"], v["B4_p10"], v["B4_p50"], v["B4_p90"]],
                               [b4.mean(), b4.std(), *np.percentile(b4, [10, 50, 90])], rtol=1e-5)
    ndvi = (x[7] - x[3]) / (x[7] + x[3])
    np.testing.assert_allclose(v["NDVI_p90"], np.percentile(ndvi, 90), rtol=1e-5)
    mx = spectral.embed(x, sensor=SPEC_SENSOR, output=OutputSpec.pooled("max"))
    assert mx.meta["dim_names"][0] == "B1_max"
    assert mx.data[0] == pytest.approx(x[0].max() / 10000)


def test_spectral_nodata_is_left_out(spectral):
    x = _patch(S2_BANDS, 40, 40)
    half = x[:, :, 20:].copy()
    x[:, :, :20] = 0
    a = spectral.embed(x, sensor=SPEC_SENSOR, output=POOLED)
    b = spectral.embed(half, sensor=SPEC_SENSOR, output=POOLED)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6)
    assert a.meta["valid_fraction"] == 0.5
    g = spectral.embed(x, sensor=SPEC_SENSOR, output=GRID)
    assert np.isnan(g.data[:, :, :20]).all() and np.isfinite(g.data[:, :, 20:]).all()


def test_spectral_grid_cells():
    e = get_embedder("spectral", device="cpu", grid_cell=8)
    x = _patch(S2_BANDS, 32, 20)
    g = e.embed(x, sensor=SPEC_SENSOR, output=GRID)
    assert g.data.shape == (13 + len(INDICES), 4, 3)
    np.testing.assert_allclose(g.data[3, 1, 2], (x[3, 8:16, 16:20] / 10000).mean(), rtol=1e-6)


@pytest.mark.parametrize("output", [POOLED, GRID])
def test_spectral_batch_equals_loop(spectral, output):
    xs = [_patch(S2_BANDS, 30, 30, seed=s) for s in range(3)] + [_patch(S2_BANDS, 20, 25, seed=7)]
    xs[2][:, :5] = 0
    batch = spectral.embed_batch(xs, sensor=SPEC_SENSOR, output=output)
    for x, b in zip(xs, batch):
        single = spectral.embed(x, sensor=SPEC_SENSOR, output=output)
        np.testing.assert_allclose(b.data, single.data, rtol=1e-6, atol=1e-7, equal_nan=True)
        assert b.meta == single.meta


# ------------------------------------------------------------------ docs example
def test_the_add_your_own_model_example_in_the_docs_works():
    import re
    from pathlib import Path

    from rs_embed.models import _registry

    page = Path(__file__).resolve().parents[2] / "docs" / "pages" / "models.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    example = next(b for b in blocks if "register_model(" in b)
    try:
        exec(compile(example, str(page), "exec"), {})
        assert "band_means" in list_models()
        e = get_embedder("band_means", device="cpu")
        x = _patch(("B2", "B3", "B4", "B8"), 16, 16)
        out = e.embed(x, sensor=e.default_sensor(), output=POOLED)
        np.testing.assert_allclose(out.data, x.mean(axis=(1, 2)) / 10000, rtol=1e-5)
        assert e.embed(x, sensor=e.default_sensor(), output=GRID).data.shape == (4, 16, 16)
    finally:
        _registry.pop("band_means", None)


def test_spectral_one_missing_band_only_affects_its_own_statistics(spectral):
    x = _patch(S2_BANDS, 20, 20)
    ref = spectral.embed(x, sensor=SPEC_SENSOR, output=POOLED)
    x[3, :5] = np.nan  # B4 missing on a quarter of the rows
    got = spectral.embed(x, sensor=SPEC_SENSOR, output=POOLED)
    names = got.meta["dim_names"]
    affected = [i for i, n in enumerate(names) if n.split("_")[0] in ("B4", "NDVI", "SAVI", "BSI")]
    others = [i for i in range(len(names)) if i not in affected]
    np.testing.assert_array_equal(got.data[others], ref.data[others])
    assert np.isfinite(got.data).all() and got.meta["valid_fraction"] == 1.0
    b4 = x[3, 5:] / 10000
    assert got.data[names.index("B4_mean")] == pytest.approx(b4.mean(), rel=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"bias": float("nan")}, "option bias must be a finite number"),
    ({"bias": True}, "option bias must be a finite number"),
    ({"dim": 3.0}, "option dim must be an integer"),
    ({"dim": 0}, "option dim must be >= 2"),
])
def test_numeric_options_are_checked_by_the_shared_schema(options, message):
    from rs_embed.errors import ModelError
    from rs_embed.models import embedder_class

    with pytest.raises(ModelError, match=message):
        embedder_class("rcf").validate_config(options)


def test_float_options_are_coerced_and_bounded_from_the_schema():
    from rs_embed.errors import ModelError
    from rs_embed.models import embedder_class

    assert embedder_class("rcf").validate_config({"bias": 1})["bias"] == 1.0
    cls = embedder_class("remoteclip")
    assert cls.validate_config({"rgb_max": 0.5})["rgb_max"] == 0.5
    for bad in (0, 2.0, "0.3"):
        with pytest.raises(ModelError, match="option rgb_max"):
            cls.validate_config({"rgb_max": bad})
    sm = embedder_class("scalemae")
    assert sm.validate_config({})["base_resolution"] == 1.0
    with pytest.raises(ModelError, match=r"option base_resolution must be > 0"):
        sm.validate_config({"base_resolution": -1.0})
