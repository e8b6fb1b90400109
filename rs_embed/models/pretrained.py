"""What every pretrained (torch) model family shares: variants, weights, batching, outputs.

A family module subclasses :class:`PretrainedEmbedder` and supplies four things: how
to build its network from a :class:`~rs_embed.models.weights.Checkpoint`, how the
checkpoint's tensors go into that network, the published preprocessing, and the
forward pass that yields tokens / feature maps. Everything else — checking that the
optional libraries are installed, finding the checkpoint offline-first, verifying its
checksum, loading it once per (model, variant, device, file) under threads, picking
the checkpoint's bands out of the sensor's bands, batching, pooling and the
``meta`` of each result — lives here, once.

Nothing here imports torch at module import time.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec
from . import weights as W
from .base import EmbedResult, Embedder
from ..sensors import S2_DN_SCALE, canonical_band

#: import name -> pip distribution, for the message when something is missing
_DISTRIBUTIONS = {"torch": "torch", "torchvision": "torchvision", "timm": "timm",
                  "open_clip": "open_clip_torch", "torchgeo": "torchgeo",
                  "huggingface_hub": "huggingface_hub", "einops": "einops"}
#: most patches sent through a network in one forward pass (bounds memory)
MAX_FORWARD_BATCH = 16


@dataclass
class Features:
    """What a forward pass produced for a batch.

    ``grid`` is ``(B, D, h, w)``; ``tokens`` (``(B, N, D)`` patch tokens, CLS removed)
    is given when pooling over tokens differs from pooling over the grid (several
    frames or channel groups per grid cell); ``pooled`` ``(B, D)`` when the model has
    its own image-level output (e.g. CLIP's projected embedding, DOFA's normalised mean),
    used for mean pooling, and for any pooling when ``meta["pooled_any_pooling"]``.
    """

    grid: Any
    tokens: Any = None
    pooled: Any = None
    meta: Dict[str, Any] = field(default_factory=dict)


def rgb_uint8(x: np.ndarray, max_reflectance: float) -> np.ndarray:
    """Sentinel-2 DN ``(3, H, W)`` -> 8-bit RGB ``(H, W, 3)``: reflectance in
    ``[0, max_reflectance]`` stretched linearly to ``[0, 255]`` (rounded), the way
    true-colour Sentinel-2 previews are made; non-finite pixels become 0."""
    refl = np.nan_to_num(x.astype(np.float32) / np.float32(S2_DN_SCALE), nan=0.0, posinf=0.0, neginf=0.0)
    v = np.clip(refl / np.float32(max_reflectance), 0.0, 1.0) * np.float32(255.0)
    return np.ascontiguousarray(np.rint(v).astype(np.uint8).transpose(1, 2, 0))


def nodata_mask(x: np.ndarray, fill_value: float) -> np.ndarray:
    """``(..., C, H, W)`` -> ``(..., H, W)``: True where a pixel holds imagery.

    The provider's own mask travels in the context (``"valid"``); this is how a bare
    array says it: a pixel is nodata when any band is not finite or every band equals
    ``fill_value`` (how providers fill masked pixels).
    """
    ok = np.isfinite(x).all(axis=-3)
    if fill_value is not None and not np.isnan(fill_value):
        ok &= ~(x == np.float32(fill_value)).all(axis=-3)
    return ok


def fill_nodata(x: np.ndarray, valid: np.ndarray, values: Sequence[float]) -> np.ndarray:
    """A copy of ``x`` (``(C, H, W)`` or ``(T, C, H, W)``) with pixels outside ``valid``
    set to ``values`` (one per band); ``x`` itself when nothing is masked."""
    if valid.all():
        return x
    out = np.array(x, dtype=np.float32, copy=True)
    vals = np.asarray(values, dtype=np.float32)
    bad = ~valid
    if out.ndim == 3:
        out[:, bad] = vals[:, None]
    else:
        if bad.ndim == 2:
            bad = np.broadcast_to(bad, (out.shape[0],) + bad.shape)
        for t in range(out.shape[0]):
            out[t][:, bad[t]] = vals[:, None]
    return out


def roi_cells(roi: Optional[Sequence[int]], footprint: Sequence[float], grid_hw: Tuple[int, int]):
    """Which cells of an output grid lie on the ROI: ``(row slice, col slice, mask (h, w))``.

    ``roi`` is ``(row, col, height, width)`` in input pixels; ``footprint`` ``(y0, x0, y1,
    x1)`` is the part of the input the grid covers (a centre crop covers less); a cell
    belongs to the ROI when its centre does. A ROI smaller than a cell keeps the cell
    holding the ROI's centre.
    """
    h, w = grid_hw
    y0, x0, y1, x1 = footprint
    ch, cw = (y1 - y0) / h, (x1 - x0) / w
    if roi is None:
        return slice(0, h), slice(0, w), np.ones((h, w), dtype=bool)
    r, c, rh, rw = roi
    cy = y0 + (np.arange(h) + 0.5) * ch
    cx = x0 + (np.arange(w) + 0.5) * cw
    rows = np.nonzero((cy >= r) & (cy < r + rh))[0]
    cols = np.nonzero((cx >= c) & (cx < c + rw))[0]
    if not rows.size:
        rows = np.array([int(np.clip((r + rh / 2 - y0) // ch, 0, h - 1))])
    if not cols.size:
        cols = np.array([int(np.clip((c + rw / 2 - x0) // cw, 0, w - 1))])
    mask = np.zeros((h, w), dtype=bool)
    mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1), mask


def tokens_to_grid(tokens, h: int, w: int):
    """``(B, h*w, D)`` row-major patch tokens -> ``(B, D, h, w)``."""
    b, n, d = tokens.shape
    if n != h * w:
        raise ModelError(f"got {n} patch tokens, expected {h} x {w} = {h * w}")
    return tokens.transpose(1, 2).reshape(b, d, h, w)


class PretrainedEmbedder(Embedder):
    """Base of the torch model families; see the module docstring."""

    accepts_context = True

    has_batch = True
    #: Python modules the family imports (checked before any work starts)
    requires: ClassVar[Tuple[str, ...]] = ("torch",)
    #: extra that installs them
    extra: ClassVar[str] = "models"
    #: a default variant and the family catalog (filled by the family module)
    catalog: ClassVar[W.Catalog]
    #: what the family says about its inputs beyond the checkpoint record
    collection: ClassVar[str] = ""
    default_scale_m: ClassVar[float] = 10
    temporal_mode: ClassVar[str] = "range"
    summary: ClassVar[str] = ""
    input_ndim: ClassVar[Tuple[int, ...]] = (3,)
    #: the family feeds pixels unresampled (frames, size), so only same-shape patches
    #: share a forward pass
    batch_by_shape: ClassVar[bool] = False
    #: the family fills masked pixels itself in ``_prepare`` (its reference package's
    #: normaliser does, or it masks whole frames): they reach it as NaN
    fills_nodata_itself: ClassVar[bool] = False

    # ------------------------------------------------------------------ describe
    @classmethod
    def describe(cls) -> dict:
        """A fresh capability dict (not cached: labs may register new variants)."""
        return copy.deepcopy(cls.with_default_windows(cls._describe()))

    @classmethod
    def _config_schema(cls) -> Dict[str, dict]:
        return {
            "variant": {"type": "str", "default": cls.catalog.default, "choices": cls.catalog.variants(),
                        "help": "which published checkpoint (see describe()['variants'])"},
            "weights": {"type": "path", "default": None,
                        "help": ("checkpoint file (or folder holding it); default: "
                                 "RS_EMBED_WEIGHTS_DIR, then the Hugging Face / torch hub caches, "
                                 "then a download when allowed")},
        }

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        """Family-specific options beside ``variant`` and ``weights``."""
        return {}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        """Family-specific ``describe()`` entries (preprocessing, outputs, ...)."""
        return {}

    @classmethod
    def _describe(cls) -> dict:
        default = cls.catalog.get(cls.catalog.default)
        return {
            "type": "on_the_fly",
            "summary": cls.summary,
            "backend": ["local", "gee", "auto"],
            "inputs": {"collection": cls.collection, "bands": list(default.bands),
                       "units": "Sentinel-2 DN (reflectance x 10000)"},
            "temporal": {"mode": cls.temporal_mode},
            "output": ["pooled", "grid"],
            "defaults": {"scale_m": cls.default_scale_m, "cloudy_pct": 30, "composite": "median",
                         "image_size": default.image_size, "variant": default.variant},
            "model_config": {**cls._config_schema(), **cls._extra_config()},
            "variants": {v: cls.catalog.get(v).to_dict() for v in cls.catalog.variants()},
            "weights": default.to_dict(),
            "extra": cls.extra,
            "install": f"pip install 'rs_embed[{cls.extra}]'",
            "paper": default.paper,
            "licence": default.licence,
            **cls._contract(default),
        }

    @classmethod
    def validate_config(cls, model_config: Dict[str, Any]) -> Dict[str, Any]:
        cfg = super().validate_config(model_config)
        w = cfg.get("weights")
        if w is not None and not isinstance(w, (str, Path)):
            raise ModelError(f"model {cls.name!r} option weights must be a file path, got {w!r}")
        return cfg

    # -------------------------------------------------------------------- status
    @classmethod
    def missing_packages(cls) -> List[str]:
        return [m for m in cls.requires if importlib.util.find_spec(m) is None]

    @classmethod
    def status(cls) -> Dict[str, Any]:
        """Readiness without importing torch: libraries installed? which checkpoints are local?"""
        missing = cls.missing_packages()
        variants = {}
        for v in cls.catalog.variants():
            ck = cls.catalog.get(v)
            try:
                path = W.find_checkpoint(ck)
            except ModelError:
                path = None
            variants[v] = {"weights": str(path) if path else None, "file": ck.filename,
                           "size": ck.size_text, "source": ck.source}
        default_ok = variants[cls.catalog.default]["weights"] is not None
        return {"model": cls.name, "ready": not missing and default_ok,
                "extra_installed": not missing, "missing_packages": missing,
                "install": None if not missing else f"pip install 'rs_embed[{cls.extra}]'",
                "default_variant": cls.catalog.default,
                "ready_variants": [] if missing else [v for v, d in variants.items() if d["weights"]],
                "variants": variants}

    # ---------------------------------------------------------------- lifecycle
    def __init__(self, *, device: str = "auto", **model_config: Any):
        missing = self.missing_packages()
        if missing:
            pkgs = " ".join(_DISTRIBUTIONS.get(m, m) for m in missing)
            raise ModelError(
                f"model {self.name!r} needs {pkgs}, which is not installed; run: "
                f"pip install 'rs_embed[{self.extra}]'")
        super().__init__(device=device, **model_config)
        self.checkpoint = self.catalog.get(self.config["variant"])
        # Found (or downloaded) now, so a missing file fails before any imagery is fetched.
        self.weights_path = W.resolve_checkpoint(self.checkpoint, self.config.get("weights"))
        self._weights_meta: Dict[str, Any] = {}

    @property
    def image_size(self) -> int:
        """Input side of the chosen variant (tiles for ``input_prep="tile"`` use it)."""
        return self.checkpoint.image_size

    def default_sensor(self) -> SensorSpec:
        """The family's collection with the chosen variant's bands, in its order."""
        return SensorSpec(collection=self.collection, bands=tuple(self.checkpoint.bands),
                          scale_m=self.default_scale_m, cloudy_pct=30, composite="median")

    def network(self):
        """The loaded network on ``self.device`` (shared by every embedder of the same file)."""
        key = (self.name, self.checkpoint.variant, self.device, str(self.weights_path))
        net, wmeta = W.cached_model(key, self._load_network)
        self._weights_meta = wmeta
        return net

    def _load_network(self):
        wmeta = W.verify_checkpoint(self.checkpoint, self.weights_path)
        state = W.load_state_dict(self.weights_path, self.checkpoint)
        net = self._build(self.checkpoint)
        try:
            self._load_into(net, state)
        except RuntimeError as exc:  # tensor shapes differ: another variant's file
            raise ModelError(
                f"checkpoint {self.weights_path} does not fit model {self.name!r} variant "
                f"{self.checkpoint.variant!r}: {str(exc).splitlines()[0]} ...") from exc
        net.eval()
        net.to(self.device)
        return net, wmeta

    # ------------------------------------------------------------ family hooks
    def _build(self, ckpt: W.Checkpoint):  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_into(self, net, state: Dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        """Band-selected float32 arrays -> (model input tensor, info for the forward pass)."""
        raise NotImplementedError  # pragma: no cover

    def _forward(self, net, x, info: Dict[str, Any]) -> Features:  # pragma: no cover
        raise NotImplementedError

    def _preprocess_meta(self) -> Dict[str, Any]:
        return {}

    def _nodata_fill(self, sensor: SensorSpec) -> Tuple[Optional[List[float]], str]:
        """What masked pixels become, in input units (one value per checkpoint band), and why.

        Default: the checkpoint's normalisation mean (the family's input is then its
        training mean, 0 after standardisation). Families override this where their
        encoding or their official code says otherwise; a family that
        ``fills_nodata_itself`` returns the values its own code gives (None when they
        depend on the pixel, e.g. a copy of the nearest band) and the rule it follows.
        Recorded in each result's ``meta["nodata_fill"]``.
        """
        ck = self.checkpoint
        return list(ck.mean), f"band mean of the checkpoint's normalisation ({ck.norm_source})"

    def _pool_roi(self, feats: Features, info: Dict[str, Any], i: int, cells, pooling: str):
        """The family's own pooled vector restricted to the grid ``cells`` (``(h, w)`` bool)
        on the ROI, or None to pool the ROI's tokens as :meth:`_pool_tokens` does.
        Families whose pooling weighs tokens the grid does not show (masked frames,
        image-level tokens) override it."""
        return None

    def grid_footprint(self, input_hw: Tuple[int, int]) -> Tuple[float, float, float, float]:
        """``(y0, x0, y1, x1)``: the part of an input of ``input_hw`` pixels the output grid
        covers. The whole input unless the family centre-crops after resizing."""
        return (0.0, 0.0, float(input_hw[0]), float(input_hw[1]))

    def _pool_tokens(self, tokens, pooling: str):
        """Pool ``(N, D)`` patch tokens into ``(D,)`` (families with their own head override)."""
        return tokens.amax(dim=0) if pooling == "max" else tokens.mean(dim=0)

    # ----------------------------------------------------------------- inputs
    def input_bands(self, sensor: SensorSpec) -> List[int]:
        """Positions in ``sensor.bands`` of the checkpoint's bands, in the checkpoint's order."""
        pos = {canonical_band(b): i for i, b in enumerate(sensor.bands)}
        want = [canonical_band(b) for b in self.checkpoint.bands]
        missing = [b for b in want if b not in pos]
        if missing:
            raise ModelError(
                f"model {self.name!r} variant {self.checkpoint.variant!r} reads bands "
                f"{list(self.checkpoint.bands)} but the sensor lacks {missing} (it has {list(sensor.bands)})")
        return [pos[b] for b in want]

    def check_input(self, input_chw: np.ndarray, sensor: SensorSpec) -> np.ndarray:
        arr = np.asarray(input_chw)
        if arr.ndim not in self.input_ndim:
            shapes = " or ".join({3: "(C, H, W)", 4: "(T, C, H, W)"}[n] for n in self.input_ndim)
            raise ModelError(f"model {self.name!r} expects input of shape {shapes}, got {arr.shape}")
        if arr.shape[-3] != len(sensor.bands):
            raise ModelError(
                f"model {self.name!r} got {arr.shape[-3]} channels but the sensor lists "
                f"{len(sensor.bands)} bands {list(sensor.bands)}")
        if arr.shape[-1] < 1 or arr.shape[-2] < 1:
            raise ModelError(f"model {self.name!r} got an empty patch of shape {arr.shape}")
        return arr.astype(np.float32, copy=False)

    # -------------------------------------------------------------- inference
    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec,
              context: Optional[dict] = None) -> EmbedResult:
        return self.embed_batch([input_chw], sensor=sensor, output=output,
                                contexts=None if context is None else [context])[0]

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec, output: OutputSpec,
                    contexts: Optional[Sequence[Optional[dict]]] = None) -> List[EmbedResult]:
        """Embed patches in forward batches of at most :data:`MAX_FORWARD_BATCH`.

        ``contexts`` (optional, one dict per patch) carries what some models condition
        on besides pixels: ``center`` ``(lon, lat)`` and ``dates`` (ISO strings, one per
        frame). Models that do not use them ignore them.
        """
        import torch

        inputs = list(inputs)
        if contexts is None:
            contexts = [{} for _ in inputs]
        contexts = [dict(c or {}) for c in contexts]
        if len(contexts) != len(inputs):
            raise ModelError(f"got {len(inputs)} patches but {len(contexts)} contexts")
        idx = self.input_bands(sensor)
        arrays = [np.ascontiguousarray(self.check_input(x, sensor)[..., idx, :, :]) for x in inputs]
        fill, fill_source = self._nodata_fill(sensor)
        for k, (a, ctx) in enumerate(zip(arrays, contexts)):
            valid = ctx.get("valid")
            valid = nodata_mask(a, sensor.fill_value) if valid is None else \
                (np.asarray(valid, dtype=bool) & np.isfinite(a).all(axis=-3))
            n_bad = int(valid.size - np.count_nonzero(valid))
            ctx["nodata_fill"] = {"pixels": n_bad, "fraction": n_bad / float(valid.size),
                                  "values": None if fill is None else [float(v) for v in fill],
                                  "source": fill_source}
            if n_bad:
                arrays[k] = fill_nodata(a, valid, [np.nan] * a.shape[-3] if self.fills_nodata_itself else fill)
        net = self.network()
        if self.batch_by_shape:
            shapes = [a.shape if a.ndim == 4 else (1,) + a.shape for a in arrays]
            groups = [[i for i, sh in enumerate(shapes) if sh == key] for key in dict.fromkeys(shapes)]
        else:
            groups = [list(range(len(arrays)))]
        out: List[Optional[EmbedResult]] = [None] * len(arrays)
        for members in groups:
            for s in range(0, len(members), MAX_FORWARD_BATCH):
                part = members[s:s + MAX_FORWARD_BATCH]
                chunk, ctx = [arrays[i] for i in part], [contexts[i] for i in part]
                x, info = self._prepare(chunk, sensor, ctx)
                with torch.inference_mode():
                    feats = self._forward(net, x.to(self.device), info)
                    results = self._results(feats, chunk, sensor, output, info, ctx)
                for i, r in zip(part, results):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _results(self, feats: Features, chunk, sensor: SensorSpec, output: OutputSpec,
                 info: Dict[str, Any], contexts: Sequence[dict] = ()) -> List[EmbedResult]:
        """Per-item results: the grid cropped to the ROI, pooled over the ROI's tokens.

        A context's ``roi`` ``(row, col, height, width)`` (input pixels) is the part of
        the input that is the ROI (a rectangle inside its enclosing square); without it
        the whole input is. Each result's meta says where its grid lies on the input
        (``grid_geometry``: origin and cell size in input pixels).
        """
        grid = feats.grid.float()
        cls_removed = feats.meta.get("cls_removed", True)
        h, w = int(grid.shape[-2]), int(grid.shape[-1])
        toks_all = feats.tokens.float() if feats.tokens is not None else grid.flatten(2).transpose(1, 2)
        per_cell = toks_all.shape[1] // (h * w)  # frames or channel groups per grid cell
        own_pooled = feats.pooled is not None and (output.pooling == "mean" or feats.meta.get("pooled_any_pooling"))
        ck = self.checkpoint
        base = {
            "model": self.name, "type": "on_the_fly", "variant": ck.variant,
            "checkpoint": ck.filename, "checkpoint_source": ck.source,
            "weights_path": str(self.weights_path), **self._weights_meta,
            "device": self.device, "image_size": info.get("image_size", ck.image_size),
            "model_bands": list(ck.bands),
            "normalization": {"mean": list(ck.mean) if ck.mean else None,
                              "std": list(ck.std) if ck.std else None, "source": ck.norm_source},
            **{k: v for k, v in feats.meta.items()
               if k not in ("pooled_kind", "grid_reduce", "pooled_uses_cls", "cls_removed",
                            "pooled_any_pooling")},
            **self._preprocess_meta(),
        }
        res = []
        for i in range(len(chunk)):
            ctx = contexts[i] if i < len(contexts) else {}
            input_hw = tuple(int(s) for s in chunk[i].shape[-2:])
            fp = self.grid_footprint(input_hw)
            roi = ctx.get("roi")
            rows, cols, mask = roi_cells(roi, fp, (h, w))
            ch, cw = (fp[2] - fp[0]) / h, (fp[3] - fp[1]) / w
            whole = bool(mask.all())
            meta = dict(base)
            if output.mode == "grid":
                data = grid[i, :, rows, cols].cpu().numpy()
                pooling = feats.meta.get("grid_reduce", "none")
            elif own_pooled and (whole or feats.meta.get("pooled_uses_cls")):
                data = feats.pooled[i].float().cpu().numpy()
                pooling = feats.meta.get("pooled_kind", "model")
                cls_removed = not feats.meta.get("pooled_uses_cls", False)
                if not whole:
                    meta["roi_pooling"] = "the model's image embedding of the enclosing square (CLS)"
            else:
                import torch
                keep = torch.from_numpy(np.tile(mask.reshape(-1), per_cell)).to(toks_all.device)
                toks = toks_all[i][keep]
                roi_vec = self._pool_roi(feats, info, i, mask, output.pooling) if own_pooled else None
                if roi_vec is not None:
                    data = roi_vec.float().cpu().numpy()
                    pooling = feats.meta.get("pooled_kind", "model")
                elif own_pooled:
                    data = self._pool_tokens(toks, output.pooling).cpu().numpy()
                    pooling = feats.meta.get("pooled_kind", "model")
                else:
                    red = toks.amax(dim=0) if output.pooling == "max" else toks.mean(dim=0)
                    data = red.cpu().numpy()
                    pooling = f"patch_{output.pooling}"
                if not whole:
                    meta["roi_pooling"] = f"{int(mask.sum())} of {h * w} grid cells on the ROI"
            meta.update(pooling=pooling, cls_removed=cls_removed,
                        grid_hw=(rows.stop - rows.start, cols.stop - cols.start) if output.mode == "grid" else (h, w),
                        input_hw=input_hw,
                        grid_geometry={"origin_px": [fp[0] + rows.start * ch, fp[1] + cols.start * cw],
                                       "cell_px": [ch, cw]},
                        input_footprint_px=list(fp))
            if ctx.get("nodata_fill") is not None:
                meta["nodata_fill"] = ctx["nodata_fill"]
            for k, v in (info.get("per_item") or [{}] * len(chunk))[i].items():
                meta[k] = v
            res.append(EmbedResult(np.ascontiguousarray(data, dtype=np.float32), meta))
        return res


__all__ = ["PretrainedEmbedder", "Features", "rgb_uint8", "tokens_to_grid", "nodata_mask", "fill_nodata",
           "roi_cells", "MAX_FORWARD_BATCH"]
