"""Ids of the public rs-embed catalog that this release cannot run, and why.

Each id stays registered so a user who asks for it gets the reason, not "unknown
model": ``describe()`` and ``model_status()`` carry it, and making the embedder raises
:class:`ModelError` naming what is missing. An id leaves this list only with an
implementation tested against its official code; an unverified port is worse than none
(it would produce embeddings nobody can trust).
"""

from __future__ import annotations

from typing import Any, Dict

from ..errors import ModelError
from .base import Embedder

#: id -> (what the model is, why it cannot run here, where its official code lives)
REASONS: Dict[str, Dict[str, str]] = {
    "anysat": {
        "model": "AnySat (resolution-, scale- and modality-agnostic JEPA)",
        "reason": "no installable reference: the official code is published on GitHub / torch hub only",
        "reference": "https://github.com/gastruc/AnySat",
    },
    "terrafm": {
        "model": "TerraFM (unified multisensor foundation model)",
        "reason": "no installable reference: the official code is published on GitHub only",
        "reference": "https://github.com/mbzuai-oryx/TerraFM",
    },
    "thor": {
        "model": "THOR (flexible-GSD multi-sensor foundation model)",
        "reason": ("no installable reference: the 'thor-*' packages on PyPI are unrelated (a C++/CUDA "
                   "framework, a blockchain SDK, ...)"),
        "reference": "https://github.com/FM4CS/THOR",
    },
    "agrifm": {
        "model": "AgriFM (multi-source temporal crop-mapping model)",
        "reason": "no installable reference: the official code is published on GitHub only",
        "reference": "https://github.com/flyakon/AgriFM",
    },
    "fomo": {
        "model": "FoMo-Net (forest monitoring multi-sensor model)",
        "reason": "no installable reference: 'fomo' on PyPI is an unrelated SDK (the Fomo API service)",
        "reference": "https://github.com/RolnickLab/FoMo-Bench",
    },
    "wildsat": {
        "model": "WildSAT (wildlife-informed satellite representations)",
        "reason": "no installable reference: the official code is published on GitHub only",
        "reference": "https://github.com/cvl-umass/wildsat",
    },
    "satvision": {
        "model": "SatVision-TOA (NASA, top-of-atmosphere MODIS SwinV2)",
        "reason": ("no installable reference: 'satvision' 0.0.3 on PyPI is an unrelated inference "
                   "framework (module 'satvis'), not NASA's SatVision-TOA"),
        "reference": "https://github.com/nasa-nccs-hpda/pytorch-caney",
    },
}


class UnavailableEmbedder(Embedder):
    """A catalog id this release cannot run; every use explains why."""

    info: Dict[str, str] = {}

    @classmethod
    def _describe(cls) -> dict:
        return {"type": "unavailable", "available": False, "summary": cls.info["model"],
                "reason": cls.info["reason"], "reference": cls.info["reference"],
                "backend": [], "inputs": {}, "temporal": {}, "output": [], "defaults": {},
                "modalities": [], "model_config": {}, "weights": None}

    @classmethod
    def status(cls) -> dict:
        return {"model": cls.name, "ready": False, "extra_installed": False, "available": False,
                "missing_packages": [], "install": None, "variants": {},
                "note": f"not available in this release: {cls.info['reason']}"}

    def __init__(self, *, device: str = "auto", **model_config: Any):
        raise ModelError(f"model {self.name!r} ({self.info['model']}) is not available in this release: "
                         f"{self.info['reason']}. Official code: {self.info['reference']}")

    def embed(self, input_chw, *, sensor, output):  # pragma: no cover - never constructed
        raise ModelError(f"model {self.name!r} is not available in this release")


def _make(name: str) -> type:
    return type(f"Unavailable_{name}", (UnavailableEmbedder,), {"name": name, "info": REASONS[name],
                                                                "__doc__": REASONS[name]["model"]})


for _name in REASONS:
    globals()[_name] = _make(_name)

__all__ = ["REASONS", "UnavailableEmbedder", *REASONS]
