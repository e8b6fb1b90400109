"""Shared fixtures for the pretrained-model tests.

Every test runs offline with isolated weight locations (an empty RS_EMBED_WEIGHTS_DIR,
torch hub and Hugging Face caches under tmp_path), so a checkpoint a developer has
cached never leaks in. Tiny variants are registered per test and removed afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rs_embed.models import weights as W


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv("RS_EMBED_WEIGHTS_DIR", str(d))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield d
    W.clear_model_cache()


@pytest.fixture
def tiny_variant():
    """Register a small copy of a published record (same layout, small dims, no download)."""
    added = []

    def make(module, base: str, variant: str = "tiny", **changes):
        ck = dataclasses.replace(module.CATALOG.get(base), variant=variant, url=None, hf_repo=None,
                                 hf_filename=None, hf_revision=None, sha256=None, sha256_prefix=None,
                                 **changes)
        module.CATALOG.add(ck)
        added.append((module.CATALOG, variant))
        return ck

    yield make
    for cat, v in added:
        cat.remove(v)
    W.clear_model_cache()


def dn_patches(n: int, bands: int, h: int = 40, w: int = 40, seed: int = 0):
    """Plausible Sentinel-2 DN patches (reflectance 0–0.45, float32 CHW)."""
    rng = np.random.default_rng(seed)
    return [(rng.random((bands, h, w)) * 4500).astype(np.float32) for _ in range(n)]


def load_file_module(name: str, dist_module: str, relpath: str):
    """Import one source file of an installed distribution without running its package
    ``__init__`` (used for reference implementations whose package imports are heavy)."""
    spec = importlib.util.find_spec(dist_module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"reference implementation {dist_module} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    mspec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def import_skipping_package_inits(dotted: str, dist_module: str):
    """Import ``dotted`` (a module inside an installed distribution) with every parent
    package stubbed, so no package ``__init__`` runs (terratorch's pulls torchgeo >= 0.9 and
    a training framework). Relative and absolute imports inside the package still work."""
    import importlib
    import sys
    import types

    spec = importlib.util.find_spec(dist_module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"reference implementation {dist_module} is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    saved = {k: v for k, v in sys.modules.items() if k == dist_module or k.startswith(dist_module + ".")}
    for k in saved:
        del sys.modules[k]
    parts = dotted.split(".")
    try:
        for i in range(1, len(parts)):
            name = ".".join(parts[:i])
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root.joinpath(*parts[1:i]))]
            sys.modules[name] = pkg
        return importlib.import_module(dotted)
    finally:
        for k in [k for k in sys.modules if k == dist_module or k.startswith(dist_module + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)
