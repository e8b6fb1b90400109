"""rs_embed: places x times x models -> remote-sensing embeddings, exported as datasets.

Public names are resolved lazily (PEP 562) so ``import rs_embed`` costs only the
specs; torch, rasterio and the model families load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    # specs & errors
    "BBox": "rs_embed.specs", "PointBuffer": "rs_embed.specs", "PointBuffers": "rs_embed.specs", "TemporalSpec": "rs_embed.specs",
    "SensorSpec": "rs_embed.specs", "FetchSpec": "rs_embed.specs", "OutputSpec": "rs_embed.specs",
    "InputPrepSpec": "rs_embed.specs", "Embedding": "rs_embed.specs",
    "RsEmbedError": "rs_embed.errors", "SpecError": "rs_embed.errors",
    "ModelError": "rs_embed.errors", "ProviderError": "rs_embed.errors",
    # embedding API
    "get_embedding": "rs_embed.api", "get_embeddings_batch": "rs_embed.api", "Model": "rs_embed.api",
    "list_models": "rs_embed.api", "describe_model": "rs_embed.api",
    # inspect API
    "inspect_provider_patch": "rs_embed.inspect", "inspect_gee_patch": "rs_embed.inspect",
    # export API
    "export_batch": "rs_embed.export", "export_npz": "rs_embed.export",
    "ExportTarget": "rs_embed.export", "ExportConfig": "rs_embed.export",
    "ExportModelRequest": "rs_embed.export",
    "load_export": "rs_embed.io.load", "ExportResult": "rs_embed.io.load",
    "spatial_from_dict": "rs_embed.specs",
    # backends
    "set_default_backend": "rs_embed.providers",
    "Provider": "rs_embed.providers", "LocalProvider": "rs_embed.providers.local",
    # the grid every backend samples, and its outline on a map
    "Grid": "rs_embed.geometry", "roi_grid": "rs_embed.geometry",
    "roi_footprint": "rs_embed.geometry",
    # readiness: what can run here, before anything runs
    "list_backends": "rs_embed.readiness", "model_status": "rs_embed.readiness",
    "check_models": "rs_embed.readiness", "check_coverage": "rs_embed.readiness",
    "default_sensor": "rs_embed.readiness", "ModelReadiness": "rs_embed.readiness",
}
_SUBMODULES = {"sample", "specs", "errors", "providers", "models", "geometry", "api", "inspect",
               "export", "io", "analysis", "readiness", "sensors"}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is not None:
        value = getattr(importlib.import_module(mod), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"rs_embed.{name}")
    raise AttributeError(f"module 'rs_embed' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


if TYPE_CHECKING:  # pragma: no cover
    from .api import Model, describe_model, get_embedding, get_embeddings_batch, list_models
    from .specs import (BBox, Embedding, FetchSpec, InputPrepSpec, OutputSpec, PointBuffer,
                        PointBuffers,
                        SensorSpec, TemporalSpec)
