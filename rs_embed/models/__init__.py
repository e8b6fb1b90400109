"""The model catalog: names → embedder classes, imported only when first used.

Built-in families are listed by name here; a lab adds its own model with
``register_model("mymodel", "mypkg.mymodule:MyEmbedder")`` or through the
``rs_embed.models`` entry-point group, without touching rs_embed.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from typing import Any, Dict, Tuple, Type, Union

from ..errors import ModelError
from .base import EmbedResult, Embedder, resolve_device

_BUILTIN: Dict[str, str] = {
    "rcf": "rs_embed.models.rcf:RCFEmbedder",
    "spectral": "rs_embed.models.spectral:SpectralEmbedder",
    "gse": "rs_embed.models.gse:GSEEmbedder",
    "remoteclip": "rs_embed.models.remoteclip:RemoteCLIPEmbedder",
    "prithvi": "rs_embed.models.prithvi:PrithviEmbedder",
    "ssl4eo": "rs_embed.models.ssl4eo:SSL4EOEmbedder",
    "dofa": "rs_embed.models.dofa:DOFAEmbedder",
    "scalemae": "rs_embed.models.scalemae:ScaleMAEEmbedder",
    "satmae": "rs_embed.models.satmae:SatMAEEmbedder",
    "tessera": "rs_embed.models.tessera:TesseraEmbedder",
    "copernicus": "rs_embed.models.copernicus:CopernicusEmbedder",
    "majortom": "rs_embed.models.majortom:MajorTOMEmbedder",
    "earthindex": "rs_embed.models.earthindex:EarthIndexEmbedder",
    "olmoearth": "rs_embed.models.olmoearth:OlmoEarthEmbedder",
    "clay": "rs_embed.models.clay:ClayEmbedder",
    "terramind": "rs_embed.models.terramind:TerraMindEmbedder",
    "satmaepp": "rs_embed.models.satmaepp:SatMAEPPEmbedder",
    "galileo": "rs_embed.models.galileo:GalileoEmbedder",
}
# Ids of the public catalog this release cannot run: registered so asking explains why.
_BUILTIN.update({n: f"rs_embed.models.unavailable:{n}" for n in (
    "anysat", "terrafm", "thor", "agrifm",
    "fomo", "wildsat", "satvision")})
_registry: Dict[str, Union[str, Type[Embedder]]] = dict(_BUILTIN)
_instances: Dict[Tuple, Embedder] = {}
_lock = threading.RLock()
_entry_points_loaded = False


def register_model(name: str, target: Union[str, Type[Embedder]]) -> None:
    """Register an embedder class (or its ``"module:Class"`` path) under ``name``."""
    with _lock:
        _registry[name] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if not _entry_points_loaded:
        for ep in entry_points(group="rs_embed.models"):
            _registry.setdefault(ep.name, ep.value)
        _entry_points_loaded = True


def list_models() -> list:
    """Names of every registered model (built-in and plugged-in)."""
    with _lock:
        _load_entry_points()
        return sorted(_registry)


def _unknown(name: Any) -> ModelError:
    names = list_models()
    close = difflib.get_close_matches(str(name).lower(), names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ModelError(f"unknown model {name!r}{hint} Known models: {', '.join(names)}")


def normalize_name(name: Any) -> str:
    """Canonical registry name (case-insensitive, '-' and '_' equivalent)."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model must be a non-empty model name, got {name!r}")
    names = list_models()
    if name in names:
        return name
    key = name.strip().lower().replace("-", "_")
    for n in names:
        if n.lower().replace("-", "_") == key:
            return n
    raise _unknown(name)


def embedder_class(name: str) -> Type[Embedder]:
    """The embedder class for ``name`` (imports its module on first use)."""
    name = normalize_name(name)
    with _lock:
        target = _registry[name]
        if isinstance(target, str):
            mod, _, attr = target.partition(":")
            target = getattr(importlib.import_module(mod), attr)
            _registry[name] = target
        return target


def describe_model(name: str) -> dict:
    """A copy of the model's static capabilities; loads no weights."""
    return embedder_class(name).describe()


def get_embedder(name: str, *, device: str = "auto", **model_config: Any) -> Embedder:
    """A shared embedder instance per (model, config, device); thread-safe."""
    cls = embedder_class(name)
    config = cls.validate_config(model_config)
    dev = resolve_device(device)
    key = (cls.name or name, dev, tuple(sorted((k, repr(v)) for k, v in config.items())))
    with _lock:
        inst = _instances.get(key)
        if inst is None:
            inst = _instances[key] = cls(device=dev, **config)
        return inst


def model_status() -> list:
    """Every registered model and whether it can run here: its libraries are installed and,
    for pretrained models, which checkpoints are already on disk. Loads no weights and
    imports no deep-learning library (it only looks for packages and files)."""
    out = []
    for name in list_models():
        try:
            cls = embedder_class(name)
        except Exception as exc:  # a plug-in whose module does not import
            out.append({"model": name, "ready": False, "error": f"{type(exc).__name__}: {exc}"})
            continue
        status = getattr(cls, "status", None)
        out.append(status() if callable(status) else
                   {"model": name, "ready": True, "extra_installed": True, "variants": {}})
    return out


__all__ = ["Embedder", "EmbedResult", "register_model", "list_models", "describe_model",
           "embedder_class", "get_embedder", "normalize_name", "model_status"]
