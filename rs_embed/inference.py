"""Turning fetched patches into embeddings: the one path every API goes through.

``get_embedding``, ``get_embeddings_batch`` and ``export_batch`` all call these
functions, so the same point gives the same embedding whichever way it is asked for
(the public rs-embed shipped bugs where those paths disagreed).
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import numpy as np

from . import input_prep as prep
from .errors import ModelError
from .sensors import canonical_modality
from .models.base import EmbedResult, Embedder
from .providers.base import Patch
from .specs import (Embedding, FetchSpec, InputPrepSpec, OutputSpec, SensorSpec,
                    TemporalSpec)

log = logging.getLogger(__name__)

def normalize_modality(modality: Optional[str]) -> Optional[str]:
    """``"Sentinel-2"`` -> ``"s2"`` (aliases from the sensor vocabulary)."""
    if modality is None:
        return None
    if not isinstance(modality, str):
        raise ModelError(f"modality must be a string such as 's2' or 's1', got {modality!r}")
    return canonical_modality(modality)


def check_backend(embedder: Embedder, backend: str) -> None:
    """Refuse up front a built-in backend the model cannot read from (e.g. ``gse`` on local).

    Custom provider instances are trusted: the model cannot know what they serve.
    """
    allowed = embedder.capabilities().get("backend")
    if not allowed or backend not in ("local", "gee") or backend in allowed:
        return
    needed = [b for b in allowed if b != "auto"]
    raise ModelError(
        f"model {embedder.name!r} cannot read from backend {backend!r}: it needs "
        f"backend={needed[0]!r}" + (f" (supported: {needed})" if len(needed) > 1 else "")
        + (" (backend='auto' resolved to 'local' here)" if backend == "local" else ""))


def resolve_sensor(embedder: Embedder, *, sensor: Optional[SensorSpec] = None,
                   fetch: Optional[FetchSpec] = None,
                   modality: Optional[str] = None) -> Optional[SensorSpec]:
    """The sensor a model will read: its default, replaced by ``sensor`` or adjusted by ``fetch``."""
    if sensor is not None and fetch is not None:
        raise ModelError(
            "pass either sensor= (replace the model's input source) or fetch= (adjust its "
            "default sensor), not both")
    if sensor is not None and not isinstance(sensor, SensorSpec):
        raise ModelError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
    if fetch is not None and not isinstance(fetch, FetchSpec):
        raise ModelError(f"fetch must be a FetchSpec, got {type(fetch).__name__}: {fetch!r}")
    mod = normalize_modality(modality)
    if mod is not None:
        supported = [normalize_modality(m) for m in (embedder.capabilities().get("modalities") or [])]
        if supported and mod not in supported:
            raise ModelError(
                f"model {embedder.name!r} does not support modality={modality!r}; supported: {supported}")
    if sensor is not None:
        return sensor
    base = embedder.default_sensor()
    if mod is not None and hasattr(embedder, "sensor_for_modality"):
        base = embedder.sensor_for_modality(mod)
    if base is None:
        if fetch is not None:
            raise ModelError(f"model {embedder.name!r} has no default sensor for fetch= to adjust")
        return None
    return fetch.apply(base) if fetch is not None else base


def patch_context(patch: Optional[Patch], temporal: Optional[TemporalSpec]) -> dict:
    """What some models condition on besides pixels: where and when.

    ``center`` is the patch grid's centre (lon, lat); ``dates`` holds one ISO date per
    frame: the middle of the window for a composite, the honest single date it stands for.
    """
    ctx: dict = {}
    if patch is not None:
        minlon, minlat, maxlon, maxlat = patch.grid.lonlat_bounds()
        ctx["center"] = ((minlon + maxlon) / 2.0, (minlat + maxlat) / 2.0)
    if temporal is not None:
        start, end = temporal.start_date, temporal.end_date
        ctx["dates"] = [(start + (end - start) / 2).isoformat()]
    return ctx


def _embed_whole(embedder: Embedder, inputs: Sequence[np.ndarray], sensor: SensorSpec,
                 output: OutputSpec, batch: bool,
                 contexts: Optional[Sequence[dict]] = None) -> List[EmbedResult]:
    ctx_kw = {}
    if embedder.accepts_context and contexts is not None:
        ctx_kw = {"contexts": list(contexts)}
    if batch and embedder.has_batch and len(inputs) > 1:
        try:
            return embedder.embed_batch(list(inputs), sensor=sensor, output=output, **ctx_kw)
        except ModelError:
            raise
        except Exception as exc:  # fall back to one at a time, e.g. ragged shapes or OOM
            log.warning("batched inference of %s failed (%s: %s); falling back to per-item",
                        embedder.name, type(exc).__name__, exc)
    if ctx_kw:
        return [embedder.embed(x, sensor=sensor, output=output, context=c)
                for x, c in zip(inputs, ctx_kw["contexts"])]
    return [embedder.embed(x, sensor=sensor, output=output) for x in inputs]


def _embed_tiled(embedder: Embedder, x: np.ndarray, sensor: SensorSpec, output: OutputSpec,
                 tile: int, max_tiles: int, batch: bool, context: Optional[dict]) -> EmbedResult:
    _, h, w = x.shape
    origins = prep.plan_tiles(h, w, tile, max_tiles)
    tiles = [prep.cut_tile(x, y0, x0, tile, fill_value=sensor.fill_value) for (y0, x0) in origins]
    res = _embed_whole(embedder, tiles, sensor, output, batch,
                       None if context is None else [context] * len(tiles))
    if output.mode == "grid":
        data = prep.stitch_grids([r.data for r in res], origins, tile, h, w)
    else:
        data = prep.pool_tiles([r.data for r in res], prep.owned_areas(origins, tile, h, w),
                               pooling=output.pooling)
    meta = dict(res[0].meta)
    meta.update(grid_hw=list(data.shape[1:]) if data.ndim == 3 else None,
                tiles=len(origins), tile_size=tile)
    return EmbedResult(np.asarray(data, dtype=np.float32), meta)


def embed_inputs(embedder: Embedder, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                 output: OutputSpec, input_prep: Optional[InputPrepSpec],
                 batch: bool = True, contexts: Optional[Sequence[dict]] = None) -> List[EmbedResult]:
    """Embed prefetched CHW inputs under an input-preparation policy.

    ``batch`` allows the embedder's batch path; it falls back to one at a time if the
    batch fails. Tiling applies per input, so one large ROI may become several tiles.
    ``contexts`` (one :func:`patch_context` per input) reach models that use them.
    """
    spec = InputPrepSpec.coerce(input_prep) or InputPrepSpec.resize()
    arrays = [embedder.check_input(x, sensor) for x in inputs]
    out: List[Optional[EmbedResult]] = [None] * len(arrays)
    whole_idx = []
    for i, x in enumerate(arrays):
        mode = prep.choose_mode(spec, x.shape[1], x.shape[2], embedder.image_size, output)
        if mode == "tile":
            tile = spec.tile_size or embedder.image_size
            out[i] = _embed_tiled(embedder, x, sensor, output, tile, spec.max_tiles, batch,
                                  contexts[i] if contexts is not None else None)
        else:
            whole_idx.append(i)
    if whole_idx:
        res = _embed_whole(embedder, [arrays[i] for i in whole_idx], sensor, output, batch,
                           None if contexts is None else [contexts[i] for i in whole_idx])
        for i, r in zip(whole_idx, res):
            out[i] = r
    for r in out:
        r.data = np.asarray(r.data, dtype=np.float32)
        if output.mode == "pooled" and r.data.ndim != 1:
            raise ModelError(f"model {embedder.name!r} returned shape {r.data.shape} for pooled output")
        if output.mode == "grid" and r.data.ndim != 3:
            raise ModelError(f"model {embedder.name!r} returned shape {r.data.shape} for grid output")
    return out  # type: ignore[return-value]


def embedding_meta(*, model: str, embedder: Embedder, result: EmbedResult, backend: str,
                   sensor: Optional[SensorSpec], temporal: Optional[TemporalSpec],
                   output: OutputSpec, input_prep: Optional[InputPrepSpec],
                   patch: Optional[Patch] = None) -> dict:
    """The stable ``Embedding.meta`` fields, then whatever the model added."""
    desc = embedder.capabilities()
    spec = InputPrepSpec.coerce(input_prep) or InputPrepSpec.resize()
    data = result.data
    meta: dict = {
        "model": model,
        "type": desc.get("type", "on_the_fly"),
        "backend": backend,
        "source": sensor.collection if sensor is not None else desc.get("source"),
        "sensor": sensor.to_dict() if sensor is not None else None,
        "temporal": temporal.to_dict() if temporal is not None else None,
        "image_size": result.meta.get("image_size", embedder.image_size),
        "pooling": output.pooling if output.mode == "pooled" else None,
        "output": output.to_dict(),
        "grid_hw": list(data.shape[1:]) if data.ndim == 3 else None,
        "cls_removed": bool(result.meta.get("cls_removed", False)),
        "input_prep": spec.to_dict(),
        "device": embedder.device,
        "model_config": dict(embedder.config),
    }
    if patch is not None:
        meta["input"] = patch.describe()
    for k, v in result.meta.items():
        if k not in ("grid_hw",):
            meta.setdefault(k, v)
    return meta


def to_embedding(**kwargs: Any) -> Embedding:
    result: EmbedResult = kwargs["result"]
    return Embedding(data=result.data, meta=embedding_meta(**kwargs))


__all__ = ["check_backend", "resolve_sensor", "embed_inputs", "patch_context", "embedding_meta", "to_embedding",
           "normalize_modality"]
