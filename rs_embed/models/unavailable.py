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
#: A copy of the official code that is on PyPI only inside another project's wheel.
_VENDORED = ("the only copy on PyPI is the trimmed one vendored inside the public rs-embed 0.3.1 "
             "wheel (Python >= 3.12 only; its import name rs_embed is this package's own)")
_NOT_DONE = "an integration with parity tests against it is not done in this release"

REASONS: Dict[str, Dict[str, str]] = {
    "anysat": {
        "model": "AnySat (resolution-, scale- and modality-agnostic JEPA)",
        "reason": (f"the official code is published on GitHub / torch hub (gastruc/AnySat), not on PyPI; "
                   f"{_VENDORED}; {_NOT_DONE}"),
        "reference": "https://github.com/gastruc/AnySat",
    },
    "terrafm": {
        "model": "TerraFM (unified multisensor foundation model)",
        "reason": (f"the official code is published on GitHub and the Hugging Face model repo "
                   f"(MBZUAI/TerraFM terrafm.py), not on PyPI; {_VENDORED}; {_NOT_DONE}"),
        "reference": "https://github.com/mbzuai-oryx/TerraFM",
    },
    "thor": {
        "model": "THOR (flexible-GSD multi-sensor foundation model)",
        "reason": (f"the official code (FM4CS/THOR, thor_terratorch_ext) is on GitHub only; the 'thor-*' "
                   f"packages on PyPI are unrelated; {_VENDORED}; {_NOT_DONE}"),
        "reference": "https://github.com/FM4CS/THOR",
    },
    "agrifm": {
        "model": "AgriFM (multi-source temporal crop-mapping model)",
        "reason": (f"the official code (a Video Swin backbone registered in mmsegmentation / mmengine) is on "
                   f"GitHub only; {_VENDORED}, and it still imports mmseg; {_NOT_DONE}"),
        "reference": "https://github.com/flyakon/AgriFM",
    },
    "fomo": {
        "model": "FoMo-Net (forest monitoring multi-sensor model)",
        "reason": (f"the official code (FoMo-Bench model_zoo/multimodal_mae.py) is on GitHub only; 'fomo' on "
                   f"PyPI is an unrelated SDK; {_VENDORED}; {_NOT_DONE}"),
        "reference": "https://github.com/RolnickLab/FoMo-Bench",
    },
    "wildsat": {
        "model": "WildSAT (wildlife-informed satellite representations)",
        "reason": ("its backbones are torchvision's ViT-B/16, ResNet-50 and Swin-T, but the checkpoint layout "
                   "(satellite_state_dict, Google Drive files) and the training preprocessing are defined only "
                   f"in the official GitHub code; {_VENDORED}; {_NOT_DONE}"),
        "reference": "https://github.com/cvl-umass/wildsat",
    },
    "satvision": {
        "model": "SatVision-TOA (NASA, top-of-atmosphere MODIS SwinV2)",
        "reason": ("it reads MODIS top-of-atmosphere bands, which no provider here serves yet; its SwinV2 is in "
                   "NASA's pytorch-caney (PyPI 0.1.0 predates SatVision-TOA; 'satvision' 0.0.3 on PyPI is an "
                   f"unrelated framework); {_NOT_DONE}"),
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
