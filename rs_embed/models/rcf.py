"""``rcf``: random convolutional features (MOSAIKS), no training, no download.

Rolf et al., "A generalizable and accessible approach to machine learning with global
satellite imagery", Nature Communications 12, 4392 (2021). A bank of fixed random
kernels is convolved with the image; the responses pass a ReLU with both signs and
are averaged over space. With a linear model on top this is a strong, cheap baseline,
and it runs anywhere on CPU.

What this implementation does, step by step:

1. **Input**: Sentinel-2 digital numbers (``DN = reflectance x 10000``), any band set.
   Default: the ten land-surface bands of Sentinel-2 L1C (``B2 B3 B4 B5 B6 B7 B8 B8A
   B11 B12``) at 10 m; the 60 m atmospheric bands (B1, B9, B10) are left out.
2. **Normalisation** (``normalize``): ``s2_l1c`` (default) standardises each band with
   the Sentinel-2 L1C means and standard deviations of SSL4EO-S12 (Wang et al. 2022,
   50k-patch statistics, table below); ``patch`` uses each patch's own per-band mean
   and std (drops absolute brightness, keeps texture); ``reflectance`` only divides by
   10000 (for bands without published statistics).
3. **Kernels**: ``dim / 2`` kernels of ``C x k x k`` drawn i.i.d. standard normal by
   ``numpy.random.default_rng(seed)`` (identical bytes on every machine and numpy
   version that keeps the PCG64 stream), each scaled to unit L2 norm so every feature
   has the same scale. They depend only on ``(seed, dim, kernel_size, C)``.
4. **Features**: ``z = conv2d(x, w)`` with edge-replicated ``k // 2`` padding (one
   response per pixel), then ``relu(z - bias)`` for the first ``dim / 2`` features and
   ``relu(-z - bias)`` for the second half, as in MOSAIKS.
5. **Pooled** ``(dim,)``: mean (or max, per ``OutputSpec.pooling``) over valid pixels.
   **Grid** ``(dim, ceil(H / grid_cell), ceil(W / grid_cell))``: the same pooling over
   square cells of ``grid_cell`` pixels (16 px = 160 m at 10 m by default; the last
   row/column of cells may be narrower). A full-resolution grid would be 512 x 200 x 200
   floats (80 MB) for a 2 km patch, hence the cells.

Invalid pixels (any band not finite, or every band equal to the sensor's
``fill_value``) are set to the band mean before the convolution and left out of the
pooling; a cell with none is NaN. Large patches are convolved in row strips so memory
stays bounded whatever the patch size.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec
from .base import EmbedResult, Embedder
from ..sensors import S2_DN_SCALE, S2_L1C, S2_L2A, canonical_band
from .spectral import valid_mask
from .ssl4eo import SSL4EO_S12_L1C_STATS

#: Sentinel-2 L1C per-band mean and std in DN from SSL4EO-S12 (owned by the ssl4eo family)
S2_L1C_STATS: Dict[str, Tuple[float, float]] = SSL4EO_S12_L1C_STATS
RCF_BANDS: Tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
_NORMALIZE = ("s2_l1c", "patch", "reflectance")
#: bytes of feature maps held at once; bounds memory for any patch size
_FEATURE_BUDGET = 256 * 2**20


class RCFEmbedder(Embedder):
    """Random convolutional features (MOSAIKS) over any band set, CPU-fast, deterministic."""

    name = "rcf"
    has_batch = True

    def __init__(self, *, device: str = "auto", **model_config: Any):
        super().__init__(device=device, **model_config)
        self._kernels: Dict[int, np.ndarray] = {}
        self._kernel_lock = threading.Lock()

    @classmethod
    def _describe(cls) -> dict:
        return {
            "type": "on_the_fly",
            "summary": ("Random convolutional features (MOSAIKS): seeded random kernels, "
                        "ReLU of both signs, spatial mean. Weight-free, deterministic, CPU."),
            "backend": ["local", "gee", "auto"],
            "inputs": {"collection": S2_L1C, "bands": list(RCF_BANDS)},
            "temporal": {"mode": "range"},
            "output": ["pooled", "grid"],
            "defaults": {"scale_m": 10, "cloudy_pct": 30, "composite": "median",
                         "image_size": None},
            "modalities": ["s2", "s2_l2a"],
            "preprocessing": ("reflectance = DN / 10000, then per-band standardisation "
                              "(normalize='s2_l1c': SSL4EO-S12 L1C mean/std)"),
            "normalization": {b: {"mean_dn": m, "std_dn": s} for b, (m, s) in S2_L1C_STATS.items()},
            "model_config": {
                "dim": {"type": "int", "default": 512, "min": 2,
                        "help": "number of features (even: half relu(z), half relu(-z))"},
                "seed": {"type": "int", "default": 0, "min": 0,
                         "help": "seed of numpy.random.default_rng drawing the kernels"},
                "kernel_size": {"type": "int", "default": 3, "min": 1,
                                "help": "odd kernel side k (kernels are C x k x k)"},
                "bias": {"type": "float", "default": 0.0,
                         "help": "features are relu(z - bias) and relu(-z - bias)"},
                "grid_cell": {"type": "int", "default": 16, "min": 1,
                              "help": "grid output cell size in pixels"},
                "normalize": {"type": "str", "default": "s2_l1c", "choices": list(_NORMALIZE),
                              "help": "per-band standardisation before the convolution"},
            },
            "weights": None,
            "paper": ("Rolf et al., A generalizable and accessible approach to machine learning "
                      "with global satellite imagery, Nature Communications 12, 4392 (2021)"),
            "licence": "Apache-2.0 (rs_embed code; no weights)",
        }

    @classmethod
    def validate_config(cls, model_config: Dict[str, Any]) -> Dict[str, Any]:
        cfg = super().validate_config(model_config)
        if cfg["dim"] % 2:
            raise ModelError(f"model 'rcf' option dim must be even (half relu(z), half relu(-z)), got {cfg['dim']!r}")
        if cfg["kernel_size"] % 2 == 0:
            raise ModelError(f"model 'rcf' option kernel_size must be odd, got {cfg['kernel_size']!r}")
        return cfg

    def sensor_for_modality(self, modality: str) -> SensorSpec:
        """``s2`` reads L1C (default); ``s2_l2a`` the same bands of L2A (L1C statistics
        are then an approximation: L2A is darker in the visible bands)."""
        if modality == "s2_l2a":
            return SensorSpec(collection=S2_L2A, bands=RCF_BANDS, scale_m=10, cloudy_pct=30)
        if modality == "s2":
            return self.default_sensor()
        raise ModelError(f"model 'rcf' does not support modality={modality!r}; supported: ['s2', 's2_l2a']")

    # ------------------------------------------------------------------ kernels
    def kernels(self, channels: int) -> np.ndarray:
        """The ``(dim / 2, channels, k, k)`` float32 kernel bank for ``channels`` input bands."""
        with self._kernel_lock:
            w = self._kernels.get(channels)
            if w is None:
                k, half = self.config["kernel_size"], self.config["dim"] // 2
                rng = np.random.default_rng(self.config["seed"])
                w = rng.standard_normal((half, channels, k, k))
                w /= np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True))
                w = self._kernels[channels] = w.astype(np.float32)
            return w

    # ---------------------------------------------------------------- preprocess
    def _standardise(self, x: np.ndarray, sensor: SensorSpec) -> Tuple[np.ndarray, np.ndarray]:
        """``(N, C, H, W)`` DN -> standardised float32, plus the ``(N, H, W)`` valid mask."""
        valid = valid_mask(x, sensor.fill_value)
        refl = x / np.float32(S2_DN_SCALE)
        mode = self.config["normalize"]
        # invalid pixels take the band mean (0 once standardised), so they add no edges
        fill = np.zeros((x.shape[0], x.shape[1], 1, 1), dtype=np.float32)
        if mode == "s2_l1c":
            mean, std = self._band_stats(sensor.bands)
            refl = (refl - mean[None, :, None, None]) / std[None, :, None, None]
        else:
            mu = np.zeros(fill.shape, dtype=np.float32)
            sd = np.ones(fill.shape, dtype=np.float32)
            for i in range(refl.shape[0]):
                v = refl[i][:, valid[i]]
                if v.size:
                    mu[i, :, 0, 0] = v.mean(axis=1, dtype=np.float64)
                    s = v.std(axis=1, dtype=np.float64)
                    sd[i, :, 0, 0] = np.where(s > 0, s, 1.0)
            if mode == "patch":
                refl = (refl - mu) / sd
            else:
                fill = mu
        refl = np.where(valid[:, None], refl, fill)
        return np.ascontiguousarray(refl, dtype=np.float32), valid

    @staticmethod
    def _band_stats(bands: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        canon = [canonical_band(b) for b in bands]
        missing = [b for b, c in zip(bands, canon) if c not in S2_L1C_STATS]
        if missing:
            raise ModelError(
                f"model 'rcf' has no Sentinel-2 statistics for band(s) {missing}; pass "
                f"normalize='patch' or normalize='reflectance' to embed other bands")
        mean = np.array([S2_L1C_STATS[c][0] for c in canon], dtype=np.float32) / np.float32(S2_DN_SCALE)
        std = np.array([S2_L1C_STATS[c][1] for c in canon], dtype=np.float32) / np.float32(S2_DN_SCALE)
        return mean, std

    # ------------------------------------------------------------------ features
    def _strip_rows(self, h: int, w: int) -> int:
        """Output rows per convolution strip: depends on the patch size only, so a patch
        gives the same bytes alone or in a batch."""
        half, cell = self.config["dim"] // 2, self.config["grid_cell"]
        rows = max(1, _FEATURE_BUDGET // (3 * half * w * 4))
        if rows >= h:
            return h
        return max(cell, rows // cell * cell)

    def _features(self, x: np.ndarray, valid: np.ndarray, pooling: str, grid: bool) -> np.ndarray:
        """Standardised ``(N, C, H, W)`` -> pooled ``(N, D)`` or grid ``(N, D, Hc, Wc)``.

        The convolution is an explicit im2col product: each pixel's ``C x k x k``
        neighbourhood is projected on the ``dim / 2`` random directions. Per-strip
        reductions come back to the host in float64 and are combined there.
        """
        import torch
        import torch.nn.functional as F

        n, c, h, w = x.shape
        k, cell, bias = self.config["kernel_size"], self.config["grid_cell"], self.config["bias"]
        half = self.config["dim"] // 2
        dev = self.device
        proj = torch.from_numpy(self.kernels(c).reshape(half, -1)).to(dev)
        p = k // 2
        xt = torch.from_numpy(x).to(dev)
        if p:
            xt = F.pad(xt, (p, p, p, p), mode="replicate")
        all_valid = bool(valid.all())
        mask = torch.from_numpy(valid[:, None].astype(np.float32)).to(dev)

        def reduce(t, how: str):
            """Strip ``(N, half, r, W)`` -> cell means/extrema (grid) or sums/extrema (pooled)."""
            if grid:
                if how == "min":
                    t = -F.max_pool2d(-t, cell, cell, ceil_mode=True)
                else:
                    pool = F.max_pool2d if how == "max" else F.avg_pool2d
                    t = pool(t, cell, cell, ceil_mode=True)
            elif how == "sum":
                t = t.sum(dim=(2, 3))
            else:
                t = t.amax(dim=(2, 3)) if how == "max" else t.amin(dim=(2, 3))
            return t.to("cpu", torch.float64)

        pos_parts, neg_parts = [], []
        rows = self._strip_rows(h, w)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            cols = F.unfold(xt[:, :, r0:r1 + 2 * p], k)              # (N, C*k*k, r*W)
            z = torch.matmul(proj, cols).view(n, half, r1 - r0, w)
            del cols
            m = None if all_valid else mask[:, :, r0:r1]
            if pooling == "max":
                # max of relu(+-z - bias) = relu(max(+-z) - bias): reduce z itself
                if m is not None:
                    off = m <= 0
                    hi = reduce(z.masked_fill(off, -math.inf), "max")
                    lo = reduce(z.masked_fill(off, math.inf), "min")
                else:
                    hi, lo = reduce(z, "max"), reduce(z, "min")
                pos_parts.append(torch.relu(hi - bias))
                neg_parts.append(torch.relu(-lo - bias))
            elif bias == 0.0:
                # relu(-z) = relu(z) - z: one ReLU pass serves both halves
                zs = reduce(z if m is None else z * m, "sum")
                z.clamp_(min=0)
                if m is not None:
                    z.mul_(m)
                ps = reduce(z, "sum")
                pos_parts.append(ps)
                neg_parts.append(ps - zs)
            else:
                f = (z - bias).clamp_(min=0)
                pos_parts.append(reduce(f if m is None else f.mul_(m), "sum"))
                del f
                z.neg_().sub_(bias).clamp_(min=0)
                neg_parts.append(reduce(z if m is None else z.mul_(m), "sum"))
            del z
        if grid:
            out = torch.cat([torch.cat(pos_parts, dim=2), torch.cat(neg_parts, dim=2)], dim=1)
            frac = F.avg_pool2d(mask, cell, cell, ceil_mode=True).to("cpu", torch.float64)
            if pooling == "mean" and not all_valid:
                out = out / frac  # cell means over valid pixels only
            out = torch.where(frac > 0, out, torch.full_like(out, math.nan))
        else:
            combine = (lambda parts: torch.stack(parts).amax(dim=0)) if pooling == "max" else sum
            out = torch.cat([combine(pos_parts), combine(neg_parts)], dim=1)
            count = torch.from_numpy(valid.reshape(n, -1).sum(axis=1).astype(np.float64))[:, None]
            if pooling == "mean":
                out = out / count
            out = torch.where(count > 0, out, torch.full_like(out, math.nan))
        return out.float().numpy()

    def _run(self, x: np.ndarray, sensor: SensorSpec, output: OutputSpec) -> List[EmbedResult]:
        n, _, h, w = x.shape
        std, valid = self._standardise(x, sensor)
        grid = output.mode == "grid"
        import torch

        with torch.no_grad():
            data = self._features(std, valid, output.pooling, grid)
        results = []
        for i in range(n):
            meta = {
                "image_size": [h, w],
                "grid_hw": list(data.shape[2:]) if grid else None,
                "grid_cell_px": self.config["grid_cell"] if grid else None,
                "cls_removed": False,
                "pooling": output.pooling,
                "dim": self.config["dim"],
                "seed": self.config["seed"],
                "kernel_size": self.config["kernel_size"],
                "bias": self.config["bias"],
                "normalize": self.config["normalize"],
                "bands": list(sensor.bands),
                "valid_fraction": float(valid[i].mean()),
                "feature_layout": "relu(z - bias) for kernels 0..dim/2-1, then relu(-z - bias)",
            }
            results.append(EmbedResult(np.ascontiguousarray(data[i]), meta))
        return results

    def _batch_size(self, h: int, w: int) -> int:
        rows = self._strip_rows(h, w)
        per_item = 3 * (self.config["dim"] // 2) * rows * w * 4
        return max(1, _FEATURE_BUDGET // per_item)

    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec) -> EmbedResult:
        x = self.check_input(input_chw, sensor)
        return self._run(x[None], sensor, output)[0]

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                    output: OutputSpec) -> List[EmbedResult]:
        """Same-size patches are stacked into one convolution (within a memory budget)."""
        arrays = [self.check_input(x, sensor) for x in inputs]
        out: List[Optional[EmbedResult]] = [None] * len(arrays)
        groups: Dict[tuple, List[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape, []).append(i)
        for shape, idxs in groups.items():
            step = self._batch_size(shape[1], shape[2])
            for k in range(0, len(idxs), step):
                part = idxs[k:k + step]
                for i, r in zip(part, self._run(np.stack([arrays[i] for i in part]), sensor, output)):
                    out[i] = r
        return out  # type: ignore[return-value]


__all__ = ["RCFEmbedder", "S2_L1C_STATS", "RCF_BANDS"]
