"""The infer stage: one model over one chunk of fetched patches.

Goes through :func:`rs_embed.inference.embed_inputs`, the path ``get_embedding`` uses,
so an exported embedding equals the one the embedding API returns. A batch that fails
is retried point by point, so one bad patch costs only its own row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ModelError, ProviderError
from ..inference import embed_inputs, embedding_meta, patch_context
from ..io.manifest import error_record
from .fetch import FetchResult
from .plan import ModelPlan


@dataclass
class ModelOutcome:
    status: str  # "ok" | "failed"
    data: Optional[np.ndarray] = None
    meta: Optional[dict] = None
    exc: Optional[BaseException] = None
    stage: str = "infer"
    attempts: Optional[int] = None

    def error(self) -> Optional[dict]:
        if self.exc is None:
            return None
        return error_record(self.exc, stage=self.stage, attempts=self.attempts)


class NonFiniteEmbedding(ModelError):
    """A model returned NaN or infinite values: the point fails, it is never ``ok``."""


def check_finite(name: str, data: np.ndarray) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        n_nan = int(np.isnan(data).sum())
        raise NonFiniteEmbedding(
            f"model {name!r} returned a non-finite embedding: {n_nan} NaN and {int(bad.sum()) - n_nan} "
            f"infinite value(s) of {data.size} (shape {list(data.shape)})")


def _failed(exc: BaseException, stage: str, attempts: Optional[int] = None) -> ModelOutcome:
    return ModelOutcome("failed", exc=exc, stage=stage, attempts=attempts)


class Inference:
    """Runs models on fetched patches; holds what every meta shares."""

    def __init__(self, *, backend: str, temporal, output, input_prep, device_batch: bool):
        self.backend = backend
        self.temporal = temporal
        self.output = output
        self.input_prep = input_prep
        self.batch = device_batch
        self._last: Dict[tuple, Any] = {}  # (model, key path) -> the last value seen there

    def _share(self, path: tuple, value: Any) -> Any:
        """Reuse the previous point's object wherever this point's value equals it.

        Most of a meta (sensor, window, band names, dimension names, scene ids...) is
        the same at every point; sharing it keeps the manifests of a 100k-point run,
        which the caller gets back, from holding 100k copies.
        """
        if isinstance(value, (dict, list, str)):
            prev = self._last.get(path)
            if prev is not None and type(prev) is type(value) and prev == value:
                return prev
            if isinstance(value, dict) and len(path) < 4:
                value = {k: self._share(path + (k,), v) for k, v in value.items()}
            self._last[path] = value
        return value

    def _meta(self, plan: ModelPlan, result, patch) -> dict:
        meta = embedding_meta(model=plan.canonical, embedder=plan.embedder, result=result,
                              backend=self.backend, sensor=plan.sensor, temporal=self.temporal,
                              output=self.output, input_prep=self.input_prep, patch=patch)
        return self._share((plan.key,), meta)

    def run(self, plan: ModelPlan, fetched: Dict[int, Dict[int, FetchResult]],
            batch: bool) -> Dict[int, ModelOutcome]:
        """Embed every point of ``fetched`` with ``plan``; failures become outcomes."""
        gid = plan.group.gid
        out: Dict[int, ModelOutcome] = {}
        todo: List[int] = []
        for i, groups in fetched.items():
            res = groups[gid]
            if not res.ok:
                out[i] = _failed(res.exc, "fetch", res.attempts)
                continue
            rep = res.report
            if rep is not None and not rep["ok"] and plan.sensor.check_input and plan.sensor.check_raise:
                out[i] = _failed(ProviderError(f"input check failed: {'; '.join(rep['issues'])}"),
                                 "input_check")
                continue
            todo.append(i)
        if not todo:
            return out
        patches = [fetched[i][gid].patch for i in todo]
        results: List[Any]
        if batch and len(todo) > 1:
            try:
                results = embed_inputs(plan.embedder, [p.data for p in patches], sensor=plan.sensor,
                                       output=self.output, input_prep=self.input_prep, batch=True,
                                       contexts=self._contexts(plan, patches))
            except Exception:
                results = [self._one(plan, p) for p in patches]
        else:
            results = [self._one(plan, p) for p in patches]
        for i, p, r in zip(todo, patches, results):
            if isinstance(r, BaseException):
                out[i] = _failed(r, "infer")
                continue
            try:
                data = np.ascontiguousarray(r.data, dtype=np.float32)
                check_finite(plan.name, data)
                out[i] = ModelOutcome("ok", data=data, meta=self._meta(plan, r, p))
            except Exception as exc:  # a bad embedding or meta is the model's failure
                out[i] = _failed(exc, "infer")
        return out

    def _contexts(self, plan: ModelPlan, patches) -> Optional[List[dict]]:
        """Nodata mask and ROI for every model; where and when only for models that use
        it (it costs a reprojection)."""
        where = plan.embedder.accepts_context
        return [patch_context(p, self.temporal, where=where) for p in patches]

    def _one(self, plan: ModelPlan, patch):
        try:
            return embed_inputs(plan.embedder, [patch.data], sensor=plan.sensor, output=self.output,
                                input_prep=self.input_prep, batch=False,
                                contexts=self._contexts(plan, [patch]))[0]
        except Exception as exc:
            return exc


__all__ = ["Inference", "ModelOutcome", "NonFiniteEmbedding", "check_finite"]
