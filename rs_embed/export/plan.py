"""The plan of an export: which models, which sensor each reads, which patches to fetch.

Models whose input is the same patch (same sensor identity; spatial and temporal are
shared by the whole export) form one *input group*: its patch is fetched once per
point and shared by those models and by ``save_inputs`` (stored once, under the key
of the group's first model; the others point at it with ``dedup_reused``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import models as _models
from ..errors import ModelError, SpecError
from ..inference import resolve_sensor
from ..io.keys import sanitize_key
from ..models.base import Embedder
from ..specs import SensorSpec
from .requests import ExportModelRequest


@dataclass(eq=False)
class ModelPlan:
    index: int
    name: str  # as the user spelled it (keys and manifests use this)
    canonical: str  # registry name
    key: str  # sanitised name used in array keys
    embedder: Embedder
    sensor: SensorSpec
    config: Dict[str, Any]
    describe: dict
    modality: Optional[str] = None
    group: "InputGroup" = None  # type: ignore[assignment]
    sensor_dict: dict = field(default_factory=dict)

    def fingerprint_entry(self, backend: str) -> dict:
        return {"name": self.name, "backend": backend, "sensor": self.sensor_dict,
                "model_config": self.config}


@dataclass(eq=False)
class InputGroup:
    gid: int
    sensor: SensorSpec
    models: List[ModelPlan]

    @property
    def owner(self) -> ModelPlan:
        """The model whose key names the stored patch."""
        return self.models[0]

    @property
    def check_requested(self) -> bool:
        return any(m.sensor.check_input for m in self.models)


def _as_request(item: Any, i: int) -> ExportModelRequest:
    if isinstance(item, ExportModelRequest):
        return item
    if isinstance(item, str):
        if not item.strip():
            raise ModelError(f"models[{i}] must be a model name, got {item!r}")
        return ExportModelRequest(item)
    raise ModelError(f"models[{i}] must be a model name or an ExportModelRequest, got "
                     f"{type(item).__name__}: {item!r}")


def plan_models(models: Any, *, sensor: Optional[SensorSpec],
                per_model_sensors: Optional[Mapping[str, SensorSpec]],
                modality: Optional[str], device: str, temporal=None) -> List[ModelPlan]:
    """Check the model list and resolve every model's sensor (no imagery is touched).

    Each model also checks the time window (``resolve_temporal``): a product with fixed
    periods warns or refuses here, before the first fetch.
    """
    if isinstance(models, (str, ExportModelRequest)):
        raise SpecError(f"models must be a list of model names, got {models!r}; did you mean [{models!r}]?")
    if not isinstance(models, Sequence) or len(models) == 0:
        raise SpecError(f"models must be a non-empty list of model names, got {models!r}")
    if sensor is not None and not isinstance(sensor, SensorSpec):
        raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
    requests = [_as_request(m, i) for i, m in enumerate(models)]
    canon = [_models.normalize_name(r.name) for r in requests]  # ModelError with a suggestion

    seen_keys: Dict[str, int] = {}
    seen_models: Dict[str, int] = {}
    for i, r in enumerate(requests):
        key = sanitize_key(r.name)
        ident = json.dumps([canon[i], r.model_config or {}], sort_keys=True, default=repr)
        for table, value in ((seen_keys, key), (seen_models, ident)):
            if value in table:
                j = table[value]
                raise SpecError(f"models lists the same model twice: models[{j}]={requests[j].name!r} "
                                f"and models[{i}]={r.name!r}")
            table[value] = i

    overrides: Dict[int, SensorSpec] = {}
    if per_model_sensors is not None:
        if not isinstance(per_model_sensors, Mapping):
            raise SpecError(f"per_model_sensors must be a dict of model name -> SensorSpec, got {per_model_sensors!r}")
        for k, v in per_model_sensors.items():
            matches = [i for i, r in enumerate(requests) if k == r.name]
            if not matches:
                try:
                    kc = _models.normalize_name(k)
                except ModelError:
                    kc = None
                matches = [i for i, c in enumerate(canon) if c == kc]
            if not matches:
                raise SpecError(f"per_model_sensors key {k!r} is not one of models "
                                f"{[r.name for r in requests]}")
            if not isinstance(v, SensorSpec):
                raise SpecError(f"per_model_sensors[{k!r}] must be a SensorSpec, got {v!r}")
            for i in matches:
                overrides[i] = v

    plans: List[ModelPlan] = []
    for i, r in enumerate(requests):
        embedder = _models.get_embedder(canon[i], device=device, **(r.model_config or {}))
        if temporal is not None:  # temporal=None: the backend's default, once it is known
            embedder.resolve_temporal(temporal)
        chosen = r.sensor or overrides.get(i) or (None if r.fetch is not None else sensor)
        used = resolve_sensor(embedder, sensor=chosen, fetch=r.fetch, modality=r.modality or modality)
        if used is None:
            raise ModelError(f"model {r.name!r} declares no input sensor; pass sensor=SensorSpec(...) "
                             f"or per_model_sensors={{{r.name!r}: SensorSpec(...)}}")
        plans.append(ModelPlan(index=i, name=r.name, canonical=canon[i], key=sanitize_key(r.name),
                               embedder=embedder, sensor=used, config=dict(embedder.config),
                               describe=embedder.describe(), modality=r.modality or modality,
                               sensor_dict=used.to_dict()))
    return plans


def group_inputs(plans: List[ModelPlan]) -> List[InputGroup]:
    """One group per distinct patch (sensor identity), in the order models were given."""
    groups: Dict[str, InputGroup] = {}
    for p in plans:
        ident = json.dumps(p.sensor.identity(), sort_keys=True)
        g = groups.get(ident)
        if g is None:
            g = groups[ident] = InputGroup(gid=len(groups), sensor=p.sensor, models=[])
        g.models.append(p)
        p.group = g
    return list(groups.values())


__all__ = ["ModelPlan", "InputGroup", "plan_models", "group_inputs"]
