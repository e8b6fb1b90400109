"""Will this run work here? The checks a person wants before an export starts.

An export that cannot succeed should say so before it fetches anything: a model whose
library or checkpoint is missing, a backend it cannot read from, a backend that has no
credentials or does not hold the model's sensor, ROIs outside the imagery. Each answer
comes from the layer that owns the fact (the model catalog, the provider registry, the
provider itself); this module only asks and collects. Nothing here loads weights,
imports a deep-learning library or reads pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence

from . import models as _models
from . import providers as _providers
from .errors import RsEmbedError
from .specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal


@dataclass(frozen=True)
class Check:
    """One readiness check: ``ok`` True (passed), False (blocks the run), None (a warning
    or not applicable); ``detail`` says what was found, in a sentence."""

    name: str
    ok: Optional[bool]
    detail: str


@dataclass
class ModelReadiness:
    """Whether ``model`` can run on ``backend`` here, and every check behind the answer."""

    model: str
    backend: str
    checks: List[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def problems(self) -> List[str]:
        """The details of the checks that block the run."""
        return [c.detail for c in self.checks if c.ok is False]

    @property
    def warnings(self) -> List[str]:
        return [c.detail for c in self.checks if c.ok is None and c.detail]

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "ready": self.ready,
                "checks": [c.__dict__.copy() for c in self.checks]}


def list_backends() -> List[str]:
    """Names of every imagery backend (built-in and plugged-in), ``"auto"`` first."""
    names = _providers.list_providers()
    return ["auto"] + [n for n in names if n != "auto"]


def model_status() -> List[dict]:
    """Every registered model and whether its libraries and default weights are here."""
    return _models.model_status()


def default_sensor(model: str) -> Optional[SensorSpec]:
    """The sensor ``model`` reads by default, from ``describe()`` (no weights loaded);
    None for precomputed products that declare no bands."""
    d = _models.describe_model(model)
    inputs = d.get("inputs") or {}
    if not inputs.get("collection") or not inputs.get("bands"):
        return None
    defaults = d.get("defaults") or {}
    extra = {k: defaults[k] for k in ("cloudy_pct", "composite", "fill_value") if defaults.get(k) is not None}
    return SensorSpec(collection=inputs["collection"], bands=tuple(inputs["bands"]),
                      scale_m=defaults.get("scale_m") or 10, **extra)


def _library_and_weights(status: dict, allow_download: bool) -> List[Check]:
    checks = []
    if status.get("error"):
        return [Check("installed", False, f"the model's module does not import: {status['error']}")]
    if status.get("available") is False:  # a catalog id this release cannot run, with its reason
        return [Check("available", False, status.get("note") or "not available in this release")]
    if status.get("extra_installed") is False:
        missing = ", ".join(status.get("missing_packages") or []) or "its libraries"
        checks.append(Check("installed", False, f"{missing} not installed: {status.get('install')}"))
        return checks
    checks.append(Check("installed", True, "libraries installed"))
    variants = status.get("variants") or {}
    default = status.get("default_variant")
    if default in variants:
        v = variants[default]
        if v.get("weights"):
            checks.append(Check("weights", True, f"weights on disk: {v['weights']}"))
        else:
            what = f"checkpoint {v.get('file')} ({v.get('size')}) from {v.get('source')}"
            if allow_download:
                checks.append(Check("weights", None, f"{what} is not on disk; it is downloaded at first use"))
            else:
                checks.append(Check("weights", False,
                                    f"{what} is not on disk: put it in $RS_EMBED_WEIGHTS_DIR or pass "
                                    f"weights='/path/to/{v.get('file')}'"))
    else:
        checks.append(Check("weights", True, "no weights needed"))
    return checks


def _backend_checks(model: str, backend: str, provider) -> List[Check]:
    from .inference import check_backend

    d = _models.describe_model(model)
    try:  # the engine's own rule, asked with the model's static capabilities
        check_backend(SimpleNamespace(name=model, capabilities=lambda: d), backend)
    except RsEmbedError as exc:
        return [Check("backend", False, str(exc))]
    checks = [Check("backend", True, f"reads from backend {backend!r}")]
    sensor = default_sensor(model)
    if sensor is None:
        checks.append(Check("sensor", None, "precomputed product: the backend serves it by name"))
    elif provider is None:
        checks.append(Check("sensor", None, "not checked: the backend is not available"))
    else:
        why = provider.check_sensor(sensor)
        checks.append(Check("sensor", why is None,
                            f"backend {backend!r} serves {sensor.collection} [{', '.join(sensor.bands)}]"
                            if why is None else why))
    return checks


def _open(backend, embedders=(), **request) -> tuple:
    """(resolved name, provider or None, availability check); ``"auto"`` resolved for the
    request (``spatials``, ``temporal``, ``sensors``) as the export would, precomputed
    products among ``embedders`` routed to their own providers as the export routes them."""
    from .providers.routing import product_of, product_providers

    products = product_providers(embedders)
    names = list(products)
    if not embedders or not all(product_of(e) for e in embedders):  # an imagery backend too
        sensors = request.get("sensors")
        if sensors is not None and embedders:
            request = {**request, "sensors": [s for s, e in zip(sensors, embedders) if not product_of(e)]}
        base = _providers.resolve_backend(backend, **request)
        names = [base] + [n for n in products if n != base]
    name = "+".join(names)
    if isinstance(backend, str):
        for n in names:
            reason = _providers.backend_availability(n)
            if reason:
                return name, None, Check("credentials", False, f"backend {n!r}: {reason}")
    try:
        if isinstance(backend, str):
            provider, name = _providers.open_backend(names[0] if len(names) == 1 else backend,
                                                     list(embedders), **request)
        else:
            provider, name = _providers.open_backend(backend)
    except RsEmbedError as exc:
        return name, None, Check("credentials", False, f"backend {name!r} cannot be opened: {exc}")
    return name, provider, Check("credentials", True, f"backend {name!r} is available")


def check_models(models: Sequence[str], *, backend: Any = "auto",
                 allow_download: bool = False, spatials: Optional[Sequence[SpatialSpec]] = None,
                 temporal: Optional[TemporalSpec] = None) -> List[ModelReadiness]:
    """For each model: can it run on ``backend`` here, and if not, why.

    Checks, in order: its libraries are installed; its default checkpoint is on disk
    (``allow_download=True`` turns a missing one into a warning); the backend is
    available (client installed, credentials found) and the model can read from it; the
    backend holds the model's default sensor (collection and bands). ``backend="auto"``
    is resolved as ``export_batch`` resolves it for these models (their default sensors)
    and, when given, the ``spatials`` and ``temporal`` of the request.
    """
    if isinstance(models, str):
        models = [models]
    rois = None if spatials is None else [check_spatial(s, f"spatials[{i}]") for i, s in enumerate(spatials)]
    temporal = check_temporal(temporal)
    from .providers.routing import backend_name_for

    status = {s["model"]: s for s in _models.model_status()}
    sensors, described = [], []
    for m in models:
        try:
            name = _models.normalize_name(m)
            d = _models.describe_model(name)
        except RsEmbedError:  # reported per model below
            continue
        sensors.append(default_sensor(name))
        described.append(SimpleNamespace(name=name, capabilities=lambda d=d: d))
    name, provider, avail = _open(backend, described, spatials=rois, temporal=temporal, sensors=sensors)
    out = []
    for m in models:
        m = _models.normalize_name(m)
        r = ModelReadiness(m, name)
        r.checks.extend(_library_and_weights(status.get(m, {}), allow_download))
        r.checks.append(avail)
        if not any(c.ok is False and c.name == "installed" for c in r.checks):
            # each model against the backend its input is routed to
            routed = backend_name_for(provider, name, default_sensor(m)) if provider is not None else name
            r.checks.extend(_backend_checks(m, routed, provider))
        out.append(r)
    return out


def check_coverage(spatials: Sequence[SpatialSpec], *, backend: Any = "auto",
                   temporal: Optional[TemporalSpec] = None, model: Optional[str] = None,
                   sensor: Optional[SensorSpec] = None) -> List[Optional[float]]:
    """Share (0..1) of each ROI that lies inside the imagery ``backend`` can serve,
    from footprints (no pixels read); None where the backend cannot tell.

    ``model`` (its default sensor) or ``sensor`` narrow the imagery to one collection
    and its bands and set the grid's scale; ``temporal`` to the scenes in the window.
    """
    rois = [check_spatial(s, f"spatials[{i}]") for i, s in enumerate(spatials)]
    temporal = check_temporal(temporal)
    if sensor is None and model is not None:
        sensor = default_sensor(model)
    name = _providers.resolve_backend(backend, spatials=rois, temporal=temporal,
                                      sensors=[sensor] if sensor is not None else None)
    if isinstance(backend, str) and _providers.backend_availability(name):
        return [None] * len(rois)
    provider, _ = _providers.open_backend(name if isinstance(backend, str) else backend)
    return list(provider.coverage_fraction(rois, temporal, sensor))


__all__ = ["Check", "ModelReadiness", "list_backends", "model_status", "default_sensor",
           "check_models", "check_coverage"]
