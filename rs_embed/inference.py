"""Turning fetched patches into embeddings: the one path every API goes through.

``get_embedding``, ``get_embeddings_batch`` and ``export_batch`` all call these
functions, so the same point gives the same embedding whichever way it is asked for
(the public rs-embed shipped bugs where those paths disagreed).
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import input_prep as prep
from .errors import ModelError, SpecError, warn
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


_warned_windows: set = set()


def resolve_window(embedder: Embedder, temporal: Optional[TemporalSpec],
                   backend: str) -> Optional[TemporalSpec]:
    """The window a model reads on ``backend``: ``temporal`` as the model takes it, or, for
    ``temporal=None``, the model's documented default for that backend (``describe()
    ["defaults"]["temporal"]``), said once per model and backend."""
    if temporal is None:
        window = embedder.default_window(backend)
        if window is None:
            return embedder.resolve_temporal(None)  # the local catalog, unfiltered
        key = (embedder.name, backend)
        if key not in _warned_windows:
            _warned_windows.add(key)
            warn(f"temporal=None: model {embedder.name!r} on backend {backend!r} reads its default "
                 f"window {window!r} ([{window.start}, {window.end})); pass temporal= to choose one")
        temporal = window
    return embedder.resolve_temporal(temporal)


def run_window(embedders: Sequence[Embedder], temporal: Optional[TemporalSpec],
               backend: Union[str, Sequence[str]]) -> Optional[TemporalSpec]:
    """One window for an export of several models: ``temporal``, or their shared default.

    ``backend`` is the request's backend, or one name per model: the backend each
    model's input is routed to (a precomputed product read beside the imagery)."""
    if temporal is not None or not embedders:
        return temporal
    backends = [backend] * len(embedders) if isinstance(backend, str) else list(backend)
    windows = {}
    for e, b in zip(embedders, backends):
        windows.setdefault(repr(e.default_window(b)), []).append(e.name)
    if len(windows) > 1:
        where = repr(backends[0]) if len(set(backends)) == 1 else f"{dict(zip([e.name for e in embedders], backends))}"
        raise SpecError(
            f"temporal=None, but these models default to different windows on backend "
            f"{where}: {windows}; pass temporal= explicitly")
    result = None
    for e, b in zip(embedders, backends):
        result = resolve_window(e, None, b)
    return result


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


def patch_context(patch: Optional[Patch], temporal: Optional[TemporalSpec], *, where: bool = True) -> dict:
    """What a model needs besides pixels: the nodata mask, the ROI, and where and when.

    ``valid`` is the provider's nodata mask (True = imagery; ``(T, H, W)`` for a time
    series); ``roi`` the ROI's ``(row, col, height, width)`` inside the patch when the
    patch is larger (the enclosing square of a rectangle). With ``where``: ``center``
    is the patch grid's centre (lon, lat; it costs a reprojection, so only models that
    use it ask). ``dates`` holds one ISO date per frame: the middle of the window for a
    composite, the honest single date it stands for, and the middle of each bin for a
    time series (``frame_dates`` of the patch).
    """
    ctx: dict = {}
    if patch is not None:
        if patch.valid is not None:
            ctx["valid"] = patch.valid
        if patch.grid.roi is not None:
            ctx["roi"] = patch.grid.roi
        if where:
            minlon, minlat, maxlon, maxlat = patch.grid.lonlat_bounds()
            ctx["center"] = ((minlon + maxlon) / 2.0, (minlat + maxlat) / 2.0)
        if patch.meta.get("frame_dates"):
            ctx["dates"] = list(patch.meta["frame_dates"])
            return ctx
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


def _geometry(result: EmbedResult, input_hw) -> Optional[dict]:
    """Where a grid result's cells lie on its input (origin and cell size in pixels)."""
    g = result.meta.get("grid_geometry")
    if g is not None or np.ndim(result.data) != 3:
        return g
    cell = result.meta.get("grid_cell_px")
    if cell:
        return {"origin_px": [0.0, 0.0], "cell_px": [float(cell), float(cell)]}
    gh, gw = np.shape(result.data)[1:]
    return {"origin_px": [0.0, 0.0], "cell_px": [input_hw[0] / gh, input_hw[1] / gw]}


def _embed_tiled(embedder: Embedder, x: np.ndarray, sensor: SensorSpec, output: OutputSpec,
                 tile: int, max_tiles: int, batch: bool, context: Optional[dict]) -> EmbedResult:
    h, w = x.shape[-2:]  # (C, H, W), or (T, C, H, W) for a time series
    origins = prep.plan_tiles(h, w, tile, max_tiles)
    tiles = [prep.cut_tile(x, y0, x0, tile, fill_value=sensor.fill_value) for (y0, x0) in origins]
    ctxs = None
    if context is not None:
        ctxs = []
        for (y0, x0) in origins:
            c = {k: v for k, v in context.items() if k not in ("roi", "valid")}
            v = context.get("valid")
            if v is not None:  # (H, W), or per frame (T, H, W)
                v = np.asarray(v)
                cut = prep.cut_tile(v[None] if v.ndim == 2 else v, y0, x0, tile, fill_value=False)
                c["valid"] = cut[0] if v.ndim == 2 else cut
            ctxs.append(c)
    grid_out = output if output.mode == "grid" else OutputSpec.grid()
    res = _embed_whole(embedder, tiles, sensor, grid_out if context and context.get("roi") else output,
                       batch, ctxs)
    roi = (context or {}).get("roi")
    geo = _geometry(res[0], (tile, tile)) if np.ndim(res[0].data) == 3 else None
    if output.mode == "grid" or roi is not None:
        footprint = None
        if geo is not None:
            gh, gw = np.shape(res[0].data)[1:]
            footprint = (geo["origin_px"][0], geo["cell_px"][0], geo["origin_px"][1], geo["cell_px"][1])
        data = prep.stitch_grids([r.data for r in res], origins, tile, h, w, footprint=footprint)
        oy = geo["origin_px"][0] if geo else 0.0
        ox = geo["origin_px"][1] if geo else 0.0
        cy = geo["cell_px"][0] if geo else tile / np.shape(res[0].data)[1]
        cx = geo["cell_px"][1] if geo else tile / np.shape(res[0].data)[2]
        meta = dict(res[0].meta)
        meta["grid_geometry"] = {"origin_px": [oy, ox], "cell_px": [cy, cx]}
        result = EmbedResult(np.asarray(data, dtype=np.float32), meta)
        if roi is not None:
            result = _crop_to_roi(result, roi, output)
    else:
        data = prep.pool_tiles([r.data for r in res], prep.owned_areas(origins, tile, h, w),
                               pooling=output.pooling)
        result = EmbedResult(np.asarray(data, dtype=np.float32), dict(res[0].meta))
    result.meta.update(grid_hw=list(result.data.shape[1:]) if result.data.ndim == 3 else None,
                       tiles=len(origins), tile_size=tile)
    return result


def _crop_to_roi(result: EmbedResult, roi, output: OutputSpec) -> EmbedResult:
    """A grid result cropped to the cells on the ROI; pooled over them for pooled output."""
    from .models.pretrained import roi_cells

    data = np.asarray(result.data)
    geo = result.meta["grid_geometry"]
    gh, gw = data.shape[1:]
    (oy, ox), (cy, cx) = geo["origin_px"], geo["cell_px"]
    rows, cols, _ = roi_cells(roi, (oy, ox, oy + gh * cy, ox + gw * cx), (gh, gw))
    part = data[:, rows, cols]
    meta = dict(result.meta)
    meta["grid_geometry"] = {"origin_px": [oy + rows.start * cy, ox + cols.start * cx], "cell_px": [cy, cx]}
    if output.mode == "grid":
        return EmbedResult(np.ascontiguousarray(part), meta)
    flat = part.reshape(part.shape[0], -1)
    with np.errstate(all="ignore"):
        vec = np.nanmax(flat, axis=1) if output.pooling == "max" else np.nanmean(flat, axis=1)
    meta["roi_pooling"] = f"{part.shape[1] * part.shape[2]} of {gh * gw} stitched grid cells on the ROI"
    meta["pooling"] = f"grid_{output.pooling}_over_roi"
    return EmbedResult(vec.astype(np.float32), meta)


def embed_inputs(embedder: Embedder, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                 output: OutputSpec, input_prep: Optional[InputPrepSpec],
                 batch: bool = True, contexts: Optional[Sequence[dict]] = None) -> List[EmbedResult]:
    """Embed prefetched CHW inputs under an input-preparation policy.

    ``batch`` allows the embedder's batch path; it falls back to one at a time if the
    batch fails. Tiling applies per input, so one large ROI may become several tiles.
    ``contexts`` (one :func:`patch_context` per input) carry the nodata mask, the ROI
    inside a larger patch and, for models that use them, where and when.

    A ROI smaller than its patch (a rectangle inside its enclosing square): models that
    take any size see just the ROI's pixels; fixed-size models see the whole square
    (real pixels, nothing stretched) and their grid is cropped back to the ROI, their
    pooled vector pooled over the ROI's part. Every grid result's meta says where its
    cells lie on the input (``grid_geometry``, input pixels).
    """
    spec = InputPrepSpec.coerce(input_prep) or InputPrepSpec.resize()
    arrays = [embedder.check_input(x, sensor) for x in inputs]
    ctxs: List[dict] = [dict(c or {}) for c in contexts] if contexts is not None else [{} for _ in arrays]
    offsets = [(0, 0)] * len(arrays)
    for i, (x, c) in enumerate(zip(arrays, ctxs)):
        roi = c.get("roi")
        if roi is not None and embedder.image_size is None:
            r, col, h, w = roi
            arrays[i] = np.ascontiguousarray(x[..., r:r + h, col:col + w])
            if c.get("valid") is not None:  # (H, W), or (T, H, W) for a time series
                c["valid"] = np.asarray(c["valid"])[..., r:r + h, col:col + w]
            c.pop("roi")
            offsets[i] = (r, col)
    out: List[Optional[EmbedResult]] = [None] * len(arrays)
    whole_idx = []
    for i, x in enumerate(arrays):
        mode = prep.choose_mode(spec, x.shape[-2], x.shape[-1], embedder.image_size, output)
        if mode == "tile":
            tile = spec.tile_size or embedder.image_size
            out[i] = _embed_tiled(embedder, x, sensor, output, tile, spec.max_tiles, batch,
                                  ctxs[i] if (embedder.accepts_context or ctxs[i].get("roi")) else None)
        else:
            whole_idx.append(i)
    if whole_idx:
        res = _embed_whole(embedder, [arrays[i] for i in whole_idx], sensor, output, batch,
                           [ctxs[i] for i in whole_idx] if embedder.accepts_context else None)
        for i, r in zip(whole_idx, res):
            out[i] = r
    for i, r in enumerate(out):
        r.data = np.asarray(r.data, dtype=np.float32)
        if output.mode == "pooled" and r.data.ndim != 1:
            raise ModelError(f"model {embedder.name!r} returned shape {r.data.shape} for pooled output")
        if output.mode == "grid" and r.data.ndim != 3:
            raise ModelError(f"model {embedder.name!r} returned shape {r.data.shape} for grid output")
        if output.mode == "grid":
            geo = _geometry(r, arrays[i].shape[-2:])
            dy, dx = offsets[i]
            r.meta["grid_geometry"] = {"origin_px": [geo["origin_px"][0] + dy, geo["origin_px"][1] + dx],
                                       "cell_px": list(geo["cell_px"])}
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
        geo = result.meta.get("grid_geometry")
        if data.ndim == 3 and geo is not None:
            from .geometry import cell_grid

            meta["grid_georef"] = cell_grid(patch.grid, tuple(geo["origin_px"]), tuple(geo["cell_px"]),
                                            tuple(data.shape[1:]))
        if patch.grid.roi is not None:
            meta["roi_window"] = dict(zip(("row", "col", "height", "width"), patch.grid.roi))
    for k, v in result.meta.items():
        if k not in ("grid_hw",):
            meta.setdefault(k, v)
    return meta


def to_embedding(**kwargs: Any) -> Embedding:
    result: EmbedResult = kwargs["result"]
    return Embedding(data=result.data, meta=embedding_meta(**kwargs))


__all__ = ["check_backend", "resolve_sensor", "embed_inputs", "patch_context", "embedding_meta", "to_embedding",
           "normalize_modality"]
