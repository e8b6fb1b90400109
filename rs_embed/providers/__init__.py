"""Imagery backends, looked up by name.

Built-in providers are named here and imported only when first used, so
``import rs_embed`` stays light. Third-party packages add their own through the
``rs_embed.providers`` entry-point group (value: ``module:Class``).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Callable, Dict, Optional, Tuple, Union

from ..errors import ProviderError, SpecError, warn
from .base import Patch, Provider

_BUILTIN: Dict[str, str] = {
    "local": "rs_embed.providers.local:LocalProvider",
    "gee": "rs_embed.providers.gee:GEEProvider",
}
_factories: Dict[str, Union[str, Callable[[], Provider]]] = dict(_BUILTIN)
_instances: Dict[str, Provider] = {}
_lock = threading.RLock()
_default_backend: Optional[str] = None
_entry_points_loaded = False


def register_provider(name: str, factory: Union[str, Callable[[], Provider]]) -> None:
    """Register ``factory`` (a zero-argument callable or ``"module:Class"``) as ``name``."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in entry_points(group="rs_embed.providers"):
        _factories.setdefault(ep.name, ep.value)
    _entry_points_loaded = True


def list_providers() -> list:
    with _lock:
        _load_entry_points()
        return sorted(_factories)


def _build(factory) -> Provider:
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(mod), attr)
    return factory()


def backend_availability(name: str) -> Optional[str]:
    """Why backend ``name`` cannot be used here now (its class's ``availability()``), or
    None. The provider is not built: no session is opened, no catalog read."""
    list_providers()
    with _lock:
        factory = _factories.get(name)
    if factory is None:
        raise SpecError(f"backend {name!r} is not a known provider; known: {sorted(_factories)}")
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except Exception as exc:  # a plug-in whose module does not import
            return f"{type(exc).__name__}: {exc}"
    check = getattr(factory, "availability", None)
    return check() if isinstance(factory, type) and callable(check) else None


def set_default_backend(name: Optional[str]) -> None:
    """Make ``backend="auto"`` resolve to ``name`` (None restores the automatic choice)."""
    global _default_backend
    if name is not None and name != "auto":
        list_providers()
        if name not in _factories:
            raise SpecError(f"backend {name!r} is not a known provider; known: {sorted(_factories)}")
    _default_backend = None if name == "auto" else name


def resolve_backend(backend: Union[str, Provider]) -> str:
    """Turn ``"auto"`` into a concrete provider name (see the module docs of ``gee``)."""
    if isinstance(backend, Provider):
        return backend.name
    if not isinstance(backend, str) or not backend:
        raise SpecError(f"backend must be a provider name such as 'auto', 'local' or 'gee', got {backend!r}")
    if backend != "auto":
        return backend
    if _default_backend is not None:
        return _default_backend
    try:
        from . import gee
    except ImportError:  # pragma: no cover - the module itself has no hard deps
        return "local"
    status = gee.availability()
    if status is True:
        return "gee"
    if status:  # installed but not usable: say why, once per process
        _warn_auto_once(status)
    return "local"


_warned: set = set()


def _warn_auto_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warn(f"backend='auto' uses the local provider: {reason}")


def get_provider(backend: Union[str, Provider] = "auto") -> Provider:
    """The shared provider instance for ``backend`` (a name, ``"auto"`` or an instance)."""
    if isinstance(backend, Provider):
        return backend
    name = resolve_backend(backend)
    with _lock:
        inst = _instances.get(name)
        if inst is not None:
            return inst
        list_providers()
        factory = _factories.get(name)
        if factory is None:
            raise SpecError(f"backend {name!r} is not a known provider; known: {sorted(_factories)}")
        inst = _instances[name] = _build(factory)
        return inst


def open_backend(backend: Union[str, Provider] = "auto") -> Tuple[Provider, str]:
    """The provider for ``backend`` and the name manifests and metas record for it.

    Resolves ``"auto"`` once (it may look for Earth Engine credentials).
    """
    if isinstance(backend, Provider):
        return backend, backend.name or type(backend).__name__
    name = resolve_backend(backend)
    return get_provider(name), name


__all__ = ["Patch", "Provider", "ProviderError", "register_provider", "list_providers",
           "backend_availability",
           "get_provider", "open_backend", "resolve_backend", "set_default_backend"]
