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

#: id -> what the model is, where its official code lives, and why it cannot be
#: installed here from PyPI (what this project's installs are limited to). Copies of
#: official code embedded in other projects' packages are not a reference and are not used.
_NOT_DONE = ("without an installable reference there is nothing to test a port against, so no "
             "unverified port is shipped")

REASONS: Dict[str, Dict[str, str]] = {
    "anysat": {
        "model": "AnySat (resolution-, scale- and modality-agnostic JEPA)",
        "code": "github.com/gastruc/AnySat, loaded by torch.hub from its hubconf.py",
        "pypi": ("not published on PyPI; torch.hub fetches the code from GitHub at run time, which an "
                 "offline, registry-only install cannot do"),
        "reference": "https://github.com/gastruc/AnySat",
    },
    "terrafm": {
        "model": "TerraFM (unified Sentinel-1/2 foundation model, MBZUAI)",
        "code": "github.com/mbzuai-oryx/TerraFM (weights on Hugging Face)",
        "pypi": "not published on PyPI",
        "reference": "https://github.com/mbzuai-oryx/TerraFM",
    },
    "thor": {
        "model": "THOR (flexible-GSD multi-sensor foundation model)",
        "code": "github.com/FM4CS/THOR and its terratorch extension thor_terratorch_ext",
        "pypi": ("neither is published on PyPI; the 'thor' packages there are unrelated (an event-driven "
                 "IO library, another deep-learning framework of that name)"),
        "reference": "https://github.com/FM4CS/THOR",
    },
    "agrifm": {
        "model": "AgriFM (multi-source temporal crop-mapping model)",
        "code": "github.com/flyakon/AgriFM (a Video Swin backbone registered in mmsegmentation / mmengine)",
        "pypi": "not published on PyPI",
        "reference": "https://github.com/flyakon/AgriFM",
    },
    "fomo": {
        "model": "FoMo-Net (forest monitoring multi-sensor model)",
        "code": "github.com/RolnickLab/FoMo-Bench (model_zoo/multimodal_mae.py)",
        "pypi": "not published on PyPI; 'fomo' there is an unrelated API SDK",
        "reference": "https://github.com/RolnickLab/FoMo-Bench",
    },
    "wildsat": {
        "model": "WildSAT (wildlife-informed satellite representations)",
        "code": ("github.com/cvl-umass/wildsat (torchvision ViT-B/16, ResNet-50 and Swin-T backbones; the "
                 "checkpoint layout and the training preprocessing are defined only there)"),
        "pypi": "not published on PyPI",
        "reference": "https://github.com/cvl-umass/wildsat",
    },
    "satvision": {
        "model": "SatVision-TOA (NASA, SwinV2 on MODIS top-of-atmosphere bands)",
        "code": "github.com/nasa-nccs-hpda/pytorch-caney",
        "pypi": ("PyPI's pytorch-caney 0.1.0 (2023) predates SatVision-TOA and ships neither its model "
                 "configuration nor its preprocessing; 'SatVision' 0.0.3 on PyPI is another project (a "
                 "generic inference framework); and no provider here serves MODIS top-of-atmosphere bands yet"),
        "reference": "https://github.com/nasa-nccs-hpda/pytorch-caney",
    },
}
for _info in REASONS.values():
    _info["reason"] = f"official code at {_info['code']}; {_info['pypi']}; {_NOT_DONE}"


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
