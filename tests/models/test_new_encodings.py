"""The input encodings of olmoearth, clay, terramind, satmaepp and galileo: constants read
from the installed reference code where it ships them, and normalised inputs on the
embedded real scene that look like each training distribution (|mean| < 3 and
0.2 < std < 5 per band, as for the other families).

Not every constant can be read from a reference: Clay's ``metadata.yaml`` (band
statistics and wavelengths) is in neither the ``claymodel`` 1.5.0 wheel nor terratorch's
copy of its code; Galileo's ``config/normalization.json`` is referenced by the PyPI copy of
its code (olmoearth-pretrain) but not shipped with it. OlmoEarth's statistics are never
copied here: the package's own ``Normalizer`` normalises.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest

from rs_embed import sample
from rs_embed.providers.local import LocalProvider
from rs_embed.specs import SensorSpec

from .conftest import load_file_module

torch = pytest.importorskip("torch", reason="needs the model extras (torch)")
pytest.importorskip("timm", reason="needs the 'models' extra (timm)")
from rs_embed.models import clay, galileo, olmoearth, satmae, satmaepp, terramind  # noqa: E402


# ------------------------------------------------------------ constants from the references


def test_satmaepp_statistics_crop_and_shape_are_rshfs():
    pytest.importorskip("transformers", reason="rshf's configs need transformers")
    ref = load_file_module("rshf_satmaepp_cfg", "rshf", "satmaepp/model.py")
    rgb = load_file_module("rshf_satmae_cfg", "rshf", "satmae/model.py")
    params = inspect.signature(rgb.SatMAEConfig.__init__).parameters
    ck = satmaepp.CATALOG.get("vitl16_rgb")
    assert ck.mean == tuple(params["img_mean"].default) and ck.std == tuple(params["img_std"].default)
    defaults = {k: v.default for k, v in inspect.signature(ref.SatMAEPPConfig.__init__).parameters.items()}
    for ours, theirs in (("img_size", "img_size"), ("patch_size", "patch_size"), ("embed_dim", "embed_dim"),
                         ("depth", "depth"), ("num_heads", "num_heads")):
        assert ck.arch[ours] == defaults[theirs], ours
    assert ck.extra["crop_pct"] == satmae.CATALOG.get("vitl16_rgb").extra["crop_pct"] == 224 / 256


def test_galileo_normaliser_rule_is_the_official_one():
    pytest.importorskip("olmoearth_pretrain", reason="the Galileo reference ships in olmoearth-pretrain")
    root = Path(list(importlib.util.find_spec("olmoearth_pretrain").submodule_search_locations)[0])
    src = (root / "evals/models/galileo/single_file_galileo.py").read_text()
    # Normalizer(std=True, std_multiplier=2): (x - (mean - 2 std)) / (4 std)
    assert "std_multiplier: float = 2" in src and f"std_multiplier: float = {galileo.STD_MULTIPLIER:g}" in src
    assert "min_value = mean - (std_multiplier * std)" in src
    assert "max_value = mean + (std_multiplier * std)" in src


# ---------------------------------------------------- inputs on the embedded real scene


@pytest.fixture(scope="module")
def points_dn():
    """All 13 bands of the 33 labelled places of the sample (the variety of the real scene)."""
    sensor = SensorSpec(sample.COLLECTION, sample.BANDS)
    provider = LocalProvider()
    return [provider.fetch(p.spatial, sample.TEMPORAL, sensor).data for p in sample.points(500)]


def _bare(cls, **config):
    """An embedder with its published record and options, no weights (only the encoding runs)."""
    emb = cls.__new__(cls)
    emb.device = "cpu"
    emb.config = cls.validate_config(config)
    emb.checkpoint = cls.catalog.get(emb.config["variant"])
    emb._weights_meta = {}
    return emb


def _normalised(family, emb, arrays, sensor):
    """Per band, the model input in its training distribution's standard units ``(C, N)``."""
    if family == "olmoearth":  # the package Normalizer: mean -/+ 2 std -> [0, 1]
        norm, _, _ = emb.normalise(arrays, sensor)
        return ((norm[:, :, :, 0, :] - 0.5) * 4.0).reshape(-1, norm.shape[-1]).T
    x, _ = emb._prepare(arrays, sensor, [{} for _ in arrays])
    x = x.numpy().astype(np.float64)
    if family == "galileo":  # Normalizer(std=True): mean -/+ 2 std -> [0, 1], bands in SPACE_TIME order
        idx = [galileo.SPACE_TIME_BANDS.index(b) for b in sensor.bands]
        return ((x[:, 0, idx] - 0.5) * 4.0).transpose(1, 0, 2, 3).reshape(len(idx), -1)
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)  # standardised already


#: bands where no correct encoding can reach std 0.2 on this clear winter scene: its own
#: spread is under a fifth of the published training spread (which spans clouds and snow)
SCENE_TOO_QUIET = {
    ("clay", "B2"): "Clay's metadata.yaml std 1809 DN", ("clay", "B3"): "std 1757 DN",
    ("clay", "B4"): "std 1888 DN",
    ("terramind", "B1"): "TerraMind v1 L1C std 1625 DN", ("terramind", "B2"): "std 1676 DN",
    ("terramind", "B3"): "std 1558 DN", ("terramind", "B4"): "std 1834 DN",
    ("terramind", "B10"): "no cirrus signal on the scene (B10 DN 0-28 against std 442)",
    ("olmoearth", "B1"): "the package's computed.json std", ("olmoearth", "B2"): "computed.json std",
    ("olmoearth", "B3"): "computed.json std", ("olmoearth", "B9"): "computed.json std",
}

CASES = [("olmoearth", olmoearth.OlmoEarthEmbedder), ("clay", clay.ClayEmbedder),
         ("terramind", terramind.TerraMindEmbedder), ("satmaepp", satmaepp.SatMAEPPEmbedder),
         ("galileo", galileo.GalileoEmbedder)]


def _inputs(emb, points_dn, scale=1.0):
    everything = SensorSpec(sample.COLLECTION, sample.BANDS)
    idx = emb.input_bands(everything)  # what the family reads of the L1C scene, in its order
    sensor = SensorSpec(sample.COLLECTION, tuple(sample.BANDS[i] for i in idx))
    return [np.ascontiguousarray(a[idx]) * np.float32(scale) for a in points_dn], sensor


def _looks_like_training(family, bands, z) -> list:
    bad = []
    for j, band in enumerate(bands):
        m, s = float(z[j].mean()), float(z[j].std())
        low = 0.2 if (family, band) not in SCENE_TOO_QUIET else (0.01 if band == "B10" else 0.05)
        if not (abs(m) < 3 and low < s < 5):
            bad.append(f"{family} {band}: normalised mean {m:.2f}, std {s:.2f}")
    return bad


@pytest.mark.parametrize("family, cls", CASES, ids=[c[0] for c in CASES])
def test_normalised_inputs_on_the_real_scene_look_like_training_data(points_dn, family, cls):
    emb = _bare(cls)
    arrays, sensor = _inputs(emb, points_dn)
    z = np.concatenate([_normalised(family, emb, [a], sensor) for a in arrays], axis=1)
    assert _looks_like_training(family, sensor.bands, z) == []


@pytest.mark.parametrize("family, cls", CASES, ids=[c[0] for c in CASES])
def test_a_unit_error_would_be_caught(points_dn, family, cls):
    """Reflectance (DN / 10000) fed where DN are expected fails the check: it can fail."""
    emb = _bare(cls)
    arrays, sensor = _inputs(emb, points_dn[:6], scale=1e-4)
    z = np.concatenate([_normalised(family, emb, [a], sensor) for a in arrays], axis=1)
    assert _looks_like_training(family, sensor.bands, z)
