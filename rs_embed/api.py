"""The embedding API: one ROI or many, one model, an embedding each.

Thin on purpose: fetch with the provider, then hand the patch to
:mod:`rs_embed.inference`, which the export engine uses too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional, Sequence

from . import models as _models
from .errors import ModelError, SpecError, keep_warning_settings, warn
from .inference import (check_backend, embed_inputs, patch_context, resolve_sensor, resolve_window,
                        to_embedding)
from . import input_checks
from .input_checks import check_input_patch
from .providers import open_backend
from .providers.base import fetch_input
from .specs import (Embedding, FetchSpec, InputPrepSpec, OutputSpec, SensorSpec, SpatialSpec,
                    TemporalSpec, check_output, check_spatial, check_temporal)

_FETCH_WORKERS = 8


def list_models() -> List[str]:
    """Names of every model rs_embed can run (built-in and plugged-in)."""
    return _models.list_models()


def describe_model(model: str) -> dict:
    """What ``model`` can do (inputs, outputs, defaults, options), without loading weights."""
    return _models.describe_model(model)


class Model:
    """A model bound to a backend and device, reused across calls (weights load once)."""

    def __init__(self, model: str, *, backend: Any = "auto", device: str = "auto", **model_kwargs: Any):
        self.name = _models.normalize_name(model)
        self.backend = backend
        self.embedder = _models.get_embedder(self.name, device=device, **model_kwargs)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, backend={self.backend!r}, device={self.embedder.device!r})"

    def describe(self) -> dict:
        return self.embedder.describe()

    def get_embedding(self, *, spatial: SpatialSpec, temporal: Optional[TemporalSpec] = None,
                      sensor: Optional[SensorSpec] = None, fetch: Optional[FetchSpec] = None,
                      modality: Optional[str] = None, output: OutputSpec = OutputSpec.pooled(),
                      input_prep: Any = None) -> Embedding:
        return self.get_embeddings_batch(
            spatials=[check_spatial(spatial)], temporal=temporal, sensor=sensor, fetch=fetch,
            modality=modality, output=output, input_prep=input_prep)[0]

    def get_embeddings_batch(self, *, spatials: Sequence[SpatialSpec],
                             temporal: Optional[TemporalSpec] = None,
                             sensor: Optional[SensorSpec] = None, fetch: Optional[FetchSpec] = None,
                             modality: Optional[str] = None, output: OutputSpec = OutputSpec.pooled(),
                             input_prep: Any = None) -> List[Embedding]:
        if isinstance(spatials, (str, bytes)) or not hasattr(spatials, "__len__"):
            raise SpecError(f"spatials must be a list of PointBuffer/BBox, got {spatials!r}")
        if len(spatials) == 0:
            raise SpecError("spatials must not be empty")
        rois = [check_spatial(s, f"spatials[{i}]") for i, s in enumerate(spatials)]
        temporal = check_temporal(temporal)
        output = check_output(output)
        prep = InputPrepSpec.coerce(input_prep)
        emb = self.embedder
        if temporal is not None:
            emb.resolve_temporal(temporal)  # a window the model refuses fails before any work
        sensor_used = resolve_sensor(emb, sensor=sensor, fetch=fetch, modality=modality)
        if sensor_used is None:
            raise ModelError(f"model {self.name!r} declares no input sensor; pass sensor=SensorSpec(...)")
        provider, backend_name = open_backend(self.backend, [emb], spatials=rois, temporal=temporal,
                                              sensors=[sensor_used])
        check_backend(emb, backend_name)
        temporal = resolve_window(emb, temporal, backend_name)

        def fetch_one(roi):
            patch = fetch_input(provider, roi, temporal, sensor_used)
            check_input_patch(patch, sensor_used)
            return patch

        if len(rois) == 1:
            patches = [fetch_one(rois[0])]
        else:
            from tqdm.auto import tqdm

            with keep_warning_settings(), ThreadPoolExecutor(min(_FETCH_WORKERS, len(rois))) as pool:
                patches = list(tqdm(pool.map(fetch_one, rois), total=len(rois),
                                    desc=f"fetch {self.name}", leave=False, disable=len(rois) < 8))
        _warn_mostly_empty(patches, rois)
        results = embed_inputs(emb, [p.data for p in patches], sensor=sensor_used, output=output,
                               input_prep=prep, batch=True,
                               contexts=[patch_context(p, temporal, where=emb.accepts_context)
                                         for p in patches])
        return [to_embedding(model=self.name, embedder=emb, result=r, backend=backend_name,
                             sensor=sensor_used, temporal=temporal, output=output,
                             input_prep=prep, patch=p)
                for r, p in zip(results, patches)]


def _warn_mostly_empty(patches, rois) -> None:
    """Say so when ROIs fall mostly outside the imagery: their embeddings describe fill.

    The rule (more than ``input_checks.MAX_NODATA`` filled) is the one exports and
    ``rs-embed inspect`` apply, so the three agree."""
    bad = [i for i, p in enumerate(patches) if input_checks.mostly_nodata(p.meta.get("nodata_fraction"))]
    if bad:
        shown = ", ".join(f"#{i} ({patches[i].meta['nodata_fraction']:.0%})" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        warn(f"{len(bad)} of {len(rois)} patch(es) are mostly nodata (more than {input_checks.MAX_NODATA:.0%} "
             f"filled with fill_value): {shown}{more}; the ROI lies partly outside the imagery or "
             "under masked pixels")


def get_embedding(model: str, *, spatial: SpatialSpec, temporal: Optional[TemporalSpec] = None,
                  sensor: Optional[SensorSpec] = None, fetch: Optional[FetchSpec] = None,
                  modality: Optional[str] = None, output: OutputSpec = OutputSpec.pooled(),
                  backend: Any = "auto", device: str = "auto", input_prep: Any = None,
                  **model_kwargs: Any) -> Embedding:
    """Embed one ROI with ``model``: returns ``Embedding(data (D,) or (D, H, W), meta)``."""
    return Model(model, backend=backend, device=device, **model_kwargs).get_embedding(
        spatial=spatial, temporal=temporal, sensor=sensor, fetch=fetch, modality=modality,
        output=output, input_prep=input_prep)


def get_embeddings_batch(model: str, *, spatials: Sequence[SpatialSpec],
                         temporal: Optional[TemporalSpec] = None,
                         sensor: Optional[SensorSpec] = None, fetch: Optional[FetchSpec] = None,
                         modality: Optional[str] = None, output: OutputSpec = OutputSpec.pooled(),
                         backend: Any = "auto", device: str = "auto", input_prep: Any = None,
                         **model_kwargs: Any) -> List[Embedding]:
    """Embed many ROIs with one model instance; equals a loop of :func:`get_embedding`."""
    return Model(model, backend=backend, device=device, **model_kwargs).get_embeddings_batch(
        spatials=spatials, temporal=temporal, sensor=sensor, fetch=fetch, modality=modality,
        output=output, input_prep=input_prep)


__all__ = ["get_embedding", "get_embeddings_batch", "Model", "list_models", "describe_model"]
