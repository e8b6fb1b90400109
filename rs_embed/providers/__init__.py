"""Imagery backends, looked up by name.

Built-in providers are named here and imported only when first used, so
``import rs_embed`` stays light. Third-party packages add their own through the
``rs_embed.providers`` entry-point group (value: ``module:Class``).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

from ..errors import ProviderError, SpecError, warn
from .base import Patch, Provider

_BUILTIN: Dict[str, str] = {
    "local": "rs_embed.providers.local:LocalProvider",
    "gee": "rs_embed.providers.gee:GEEProvider",
    "earth-search": "rs_embed.providers.stac:EarthSearchProvider",
    "planetary-computer": "rs_embed.providers.stac:PlanetaryComputerProvider",
    "stac": "rs_embed.providers.stac:EarthSearchProvider",
    "alphaearth": "rs_embed.providers.stac:AlphaEarthProvider",
    # precomputed products, routed beside the imagery backend (see .routing)
    "tessera": "rs_embed.providers.tessera:TesseraProvider",
    "copernicus_embed": "rs_embed.providers.copernicus_embed:CopernicusEmbedProvider",
    "majortom": "rs_embed.providers.embedding_tables:major_tom",
    "earthindex": "rs_embed.providers.embedding_tables:earth_index",
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


def resolve_backend(backend: Union[str, Provider], *, spatials: Optional[Sequence] = None,
                    temporal=None, sensors: Optional[Sequence] = None) -> str:
    """Turn ``"auto"`` into a concrete provider name: the one rule every entry point uses.

    ``"auto"`` is the backend set with :func:`set_default_backend` when there is one;
    otherwise, for the request (``spatials``, ``temporal``, ``sensors``: whatever the
    caller knows of it), the first of: ``local`` when its catalog covers the request
    (every ROI in the window for every sensor; without ROIs, a catalog holding every
    sensor's collection and bands; with nothing asked, ``local``), ``gee`` when Earth
    Engine is set up, ``earth-search`` (public STAC, no account; needs the ``stac``
    extra), else ``local``. A choice other than a covering local catalog is named once
    per process in a warning saying why.
    """
    if isinstance(backend, Provider):
        return backend.name
    if not isinstance(backend, str) or not backend:
        raise SpecError(f"backend must be a provider name such as 'auto', 'local' or 'gee', got {backend!r}")
    if backend != "auto":
        return backend
    if _default_backend is not None:
        return _default_backend
    choice, why = auto_choice(spatials=spatials, temporal=temporal, sensors=sensors)
    if why:
        _warn_auto_once(f"backend='auto' uses {choice!r}: {why}")
    return choice


def _gee_status():
    try:
        from . import gee
    except ImportError:  # pragma: no cover - the module itself has no hard deps
        return "the gee module cannot be imported"
    return gee.availability()


def _local_covers(spatials, temporal, sensors) -> bool:
    try:
        local = get_provider("local")
        if spatials is None:  # what the catalog holds: collections and bands
            return all(local.check_sensor(s) is None for s in sensors)
        if not sensors:
            fractions = local.coverage_fraction(list(spatials), temporal, None)
            return all(f is not None and f >= 1.0 for f in fractions)
        for sensor in sensors:
            for roi in spatials:
                local.select(roi, temporal, sensor)
    except Exception:
        return False
    return True


def auto_choice(*, spatials: Optional[Sequence] = None, temporal=None,
                sensors: Optional[Sequence] = None) -> Tuple[str, Optional[str]]:
    """``(backend, why)`` that ``"auto"`` picks for this request, without warning; ``why``
    is None when the local catalog covers it (see :func:`resolve_backend`)."""
    sensors = [s for s in (sensors or []) if s is not None]
    if spatials is None and not sensors:
        return "local", None
    if _local_covers(spatials, temporal, sensors):
        return "local", None
    status = _gee_status()
    if status is True:
        return "gee", "the local catalog does not cover the request; Earth Engine is set up"
    import importlib.util

    gee_why = status or "earthengine-api is not installed"
    if importlib.util.find_spec("pystac_client") is not None:
        return "earth-search", (f"the local catalog does not cover the request and Earth Engine is not "
                                f"usable ({gee_why}); reading the public STAC API instead")
    return "local", (f"the local catalog does not cover the request, Earth Engine is not usable "
                     f"({gee_why}) and the STAC backends need pip install 'rs_embed[stac]'")


_warned: set = set()


def _warn_auto_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warn(message)


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


def open_backend(backend: Union[str, Provider] = "auto", embedders: Sequence = (), *,
                 spatials: Optional[Sequence] = None, temporal=None,
                 sensors: Optional[Sequence] = None) -> Tuple[Provider, str]:
    """The provider for ``backend`` and the name manifests and metas record for it.

    Resolves ``"auto"`` once, for this request when it is given (see
    :func:`resolve_backend`). Precomputed products among ``embedders`` are read by their
    own providers, whatever the named backend; ``"auto"`` is then resolved for the
    request's other sensors only (:mod:`rs_embed.providers.routing`).
    """
    if isinstance(backend, Provider):
        return backend, backend.name or type(backend).__name__
    if embedders:
        from .routing import route_products

        return route_products(
            lambda imagery: resolve_backend(backend, spatials=spatials, temporal=temporal,
                                            sensors=imagery),
            embedders, get_provider, sensors=sensors)
    name = resolve_backend(backend, spatials=spatials, temporal=temporal, sensors=sensors)
    return get_provider(name), name


__all__ = ["Patch", "Provider", "ProviderError", "register_provider", "list_providers",
           "backend_availability",
           "get_provider", "open_backend", "resolve_backend", "auto_choice", "set_default_backend"]
