"""``spectral``: per-band statistics and standard spectral indices, no weights.

A transparent baseline every learned embedding should beat, and a quick way to turn a
patch into numbers with names. Each dimension of the output is named in
``meta["dim_names"]``.

Input: Sentinel-2 digital numbers (``DN = reflectance x 10000``), bands named as in
Earth Engine (``B1`` .. ``B12``, ``B8A``; ``B02`` is read as ``B2``). Reflectance is
``DN / 10000``.

Pooled ``(D,)``: for each band, then each index, the statistics
``[mean, std, p10, p50, p90]`` over the patch's valid pixels (``max`` replaces ``mean``
when ``OutputSpec.pooling == "max"``). Grid ``(D, H', W')``: the band reflectances
followed by the index maps, per pixel (``grid_cell=1``) or averaged (or maxed) over
cells of ``grid_cell`` pixels.

Indices are computed from the bands present; one whose bands are missing is skipped
and listed in ``meta["indices_skipped"]``. A pixel without imagery (every band equal to
the sensor's ``fill_value``, how providers mark it, or not finite) is left out of every
statistic and is NaN in the grid; a single non-finite band value is left out of that
band's statistics and of the indices using it. An index is also undefined (NaN) where
its denominator is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from ..sensors import S2_BANDS, S2_DN_SCALE, S2_L1C, S2_L2A, S2_L2A_BANDS, canonical_band
from ..specs import OutputSpec, SensorSpec
from .base import EmbedResult, Embedder

STATS: Tuple[str, ...] = ("mean", "std", "p10", "p50", "p90")
_PERCENTILES = (10.0, 50.0, 90.0)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b)


@dataclass(frozen=True)
class SpectralIndex:
    """A named index: the bands it needs, how it is computed, and where it comes from."""

    name: str
    bands: Tuple[str, ...]
    formula: str
    reference: str
    fn: Callable[..., np.ndarray]
    #: the same index in the Awesome Spectral Indices catalogue (``spyndex``): its name and
    #: what each of its symbols is here (a band, or a constant such as SAVI's L)
    catalogue: Tuple[str, Mapping[str, Any]] = ("", {})


#: The indices computed when their bands are present, in output order.
INDICES: Tuple[SpectralIndex, ...] = (
    SpectralIndex("NDVI", ("B8", "B4"), "(B8 - B4) / (B8 + B4)",
                  "Rouse et al. 1974", lambda nir, red: _nd(nir, red), ("NDVI", {"N": "B8", "R": "B4"})),
    SpectralIndex("NDWI", ("B3", "B8"), "(B3 - B8) / (B3 + B8)",
                  "McFeeters 1996 (green/NIR open water)", lambda g, nir: _nd(g, nir),
                  ("NDWI", {"G": "B3", "N": "B8"})),
    SpectralIndex("MNDWI", ("B3", "B11"), "(B3 - B11) / (B3 + B11)",
                  "Xu 2006", lambda g, swir: _nd(g, swir), ("MNDWI", {"G": "B3", "S1": "B11"})),
    SpectralIndex("NDBI", ("B11", "B8"), "(B11 - B8) / (B11 + B8)",
                  "Zha et al. 2003", lambda swir, nir: _nd(swir, nir), ("NDBI", {"S1": "B11", "N": "B8"})),
    SpectralIndex("NBR", ("B8", "B12"), "(B8 - B12) / (B8 + B12)",
                  "Key & Benson 2006", lambda nir, swir2: _nd(nir, swir2), ("NBR", {"N": "B8", "S2": "B12"})),
    SpectralIndex("NDMI", ("B8A", "B11"), "(B8A - B11) / (B8A + B11)",
                  "Gao 1996, narrow-NIR Sentinel-2 form (not simply -NDBI)",
                  lambda nir, swir: _nd(nir, swir), ("NDMI", {"N": "B8A", "S1": "B11"})),
    SpectralIndex("SAVI", ("B8", "B4"), "1.5 * (B8 - B4) / (B8 + B4 + 0.5)",
                  "Huete 1988, L = 0.5", lambda nir, red: 1.5 * (nir - red) / (nir + red + 0.5),
                  ("SAVI", {"N": "B8", "R": "B4", "L": 0.5})),
    SpectralIndex("BSI", ("B11", "B4", "B8", "B2"),
                  "((B11 + B4) - (B8 + B2)) / ((B11 + B4) + (B8 + B2))",
                  "Rikimaru et al. 2002", lambda swir, red, nir, blue: _nd(swir + red, nir + blue),
                  ("BI", {"S1": "B11", "R": "B4", "N": "B8", "B": "B2"})),
)


def plan_indices(bands: Sequence[str]) -> Tuple[List[Tuple[SpectralIndex, List[int]]], Dict[str, List[str]]]:
    """Which indices ``bands`` allow (with band positions) and which are skipped (missing bands)."""
    pos = {canonical_band(b): i for i, b in enumerate(bands)}
    usable, skipped = [], {}
    for idx in INDICES:
        missing = [b for b in idx.bands if b not in pos]
        if missing:
            skipped[idx.name] = missing
        else:
            usable.append((idx, [pos[b] for b in idx.bands]))
    return usable, skipped


def valid_mask(x: np.ndarray, fill_value: float, *, every_band: bool = True) -> np.ndarray:
    """``(..., C, H, W)`` -> ``(..., H, W)``: where a pixel holds imagery.

    ``every_band=True``: every band is finite and not all bands equal ``fill_value``.
    ``every_band=False``: at least one band is finite and differs from ``fill_value``.
    """
    if every_band:
        return np.isfinite(x).all(axis=-3) & ~(x == fill_value).all(axis=-3)
    return (np.isfinite(x) & (x != fill_value)).any(axis=-3)


def _pool_cells(maps: np.ndarray, valid: np.ndarray, cell: int, pooling: str) -> np.ndarray:
    """``(N, D, H, W)`` -> ``(N, D, ceil(H/cell), ceil(W/cell))`` over valid, finite pixels."""
    n, d, h, w = maps.shape
    hc, wc = -(-h // cell), -(-w // cell)
    ph, pw = hc * cell - h, wc * cell - w
    ok = np.isfinite(maps) & valid[:, None]
    vals = np.where(ok, maps, 0.0 if pooling == "mean" else -np.inf)
    if ph or pw:
        vals = np.pad(vals, ((0, 0), (0, 0), (0, ph), (0, pw)),
                      constant_values=0.0 if pooling == "mean" else -np.inf)
        ok = np.pad(ok, ((0, 0), (0, 0), (0, ph), (0, pw)))
    vals = vals.reshape(n, d, hc, cell, wc, cell)
    count = ok.reshape(n, d, hc, cell, wc, cell).sum(axis=(3, 5))
    with np.errstate(invalid="ignore", divide="ignore"):
        if pooling == "mean":
            out = vals.sum(axis=(3, 5), dtype=np.float64) / count
        else:
            out = vals.max(axis=(3, 5)).astype(np.float64)
    out[count == 0] = np.nan
    return out.astype(np.float32)


def _stats(values: np.ndarray, valid: np.ndarray, pooling: str) -> np.ndarray:
    """``(D, P)`` values, ``(P,)`` validity -> ``(D, 5)`` statistics (NaN where none are valid)."""
    d = values.shape[0]
    centre = np.max if pooling == "max" else np.mean
    out = np.full((d, len(STATS)), np.nan, dtype=np.float64)
    if valid.all() and np.isfinite(values).all():
        v = values.astype(np.float64)
        out[:, 0] = centre(v, axis=-1)
        out[:, 1] = v.std(axis=-1)
        out[:, 2:] = np.percentile(v, _PERCENTILES, axis=-1).T
        return out
    for j in range(d):
        v = values[j][valid & np.isfinite(values[j])].astype(np.float64)
        if v.size:
            out[j, 0] = centre(v)
            out[j, 1] = v.std()
            out[j, 2:] = np.percentile(v, _PERCENTILES)
    return out


#: pixels (items x H x W) computed together in the batch path, to bound memory
_BATCH_PIXELS = 250_000


class SpectralEmbedder(Embedder):
    """Band statistics + spectral indices of a Sentinel-2 patch (weight-free, CPU)."""

    name = "spectral"
    has_batch = True

    @classmethod
    def _describe(cls) -> dict:
        return {
            "type": "on_the_fly",
            "summary": ("Per-band statistics (mean, std, p10/p50/p90) and spectral indices "
                        "(" + ", ".join(i.name for i in INDICES) + ") of a Sentinel-2 patch; "
                        "every dimension is named in meta['dim_names']. Weight-free."),
            "backend": ["local", "gee", "auto"],
            "inputs": {"collection": S2_L1C, "bands": list(S2_BANDS)},
            "temporal": {"mode": "range"},
            "output": ["pooled", "grid"],
            "defaults": {"scale_m": 10, "cloudy_pct": 30, "composite": "median",
                         "image_size": None},
            "modalities": ["s2", "s2_l2a"],
            "preprocessing": "reflectance = DN / 10000; no further normalisation",
            "indices": {i.name: {"formula": i.formula, "bands": list(i.bands),
                                 "reference": i.reference,
                                 "catalogue": {"spyndex": i.catalogue[0], "symbols": dict(i.catalogue[1])}}
                        for i in INDICES},
            "stats": list(STATS),
            "model_config": {
                "grid_cell": {"type": "int", "default": 1, "min": 1,
                              "help": "grid cell size in pixels (1 = per-pixel maps)"},
            },
            "weights": None,
            "paper": None,
            "licence": "Apache-2.0 (rs_embed code; no weights)",
        }

    def sensor_for_modality(self, modality: str) -> SensorSpec:
        """Default sensor for ``s2`` (L1C, 13 bands) or ``s2_l2a`` (L2A, 12 bands)."""
        if modality == "s2_l2a":
            return SensorSpec(collection=S2_L2A, bands=S2_L2A_BANDS, scale_m=10, cloudy_pct=30)
        if modality == "s2":
            return self.default_sensor()
        raise ModelError(f"model 'spectral' does not support modality={modality!r}; supported: ['s2', 's2_l2a']")

    # ------------------------------------------------------------------ layout
    def layout(self, bands: Sequence[str], output: OutputSpec) -> dict:
        """Names of the output dimensions for ``bands`` (what ``meta`` reports)."""
        usable, skipped = plan_indices(bands)
        maps = [str(b) for b in bands] + [i.name for i, _ in usable]
        if output.mode == "grid":
            names = maps
        else:
            stats = ("max",) + STATS[1:] if output.pooling == "max" else STATS
            names = [f"{m}_{s}" for m in maps for s in stats]
        return {"dim_names": names, "indices": [i.name for i, _ in usable],
                "indices_skipped": skipped}

    # --------------------------------------------------------------- inference
    def _maps(self, x: np.ndarray, usable) -> np.ndarray:
        """``(N, C, H, W)`` DN -> ``(N, C + n_indices, H, W)`` reflectance + index maps."""
        refl = x / np.float32(S2_DN_SCALE)
        maps = [refl]
        with np.errstate(divide="ignore", invalid="ignore"):
            for idx, pos in usable:
                m = idx.fn(*(refl[:, p] for p in pos)).astype(np.float32)
                m[~np.isfinite(m)] = np.nan
                maps.append(m[:, None])
        return np.concatenate(maps, axis=1)

    def _run(self, x: np.ndarray, sensor: SensorSpec, output: OutputSpec) -> List[EmbedResult]:
        n, _, h, w = x.shape
        usable, _ = plan_indices(sensor.bands)
        info = self.layout(sensor.bands, output)
        valid = valid_mask(x, sensor.fill_value, every_band=False)
        maps = self._maps(x, usable)
        if output.mode == "grid":
            cell = int(self.config["grid_cell"])
            if cell == 1:
                data = np.where(valid[:, None], maps, np.nan).astype(np.float32)
            else:
                data = _pool_cells(maps, valid, cell, output.pooling)
        else:
            data = np.stack([
                _stats(maps[i].reshape(maps.shape[1], -1), valid[i].reshape(-1), output.pooling).reshape(-1)
                for i in range(n)]).astype(np.float32)
        results = []
        for i in range(n):
            meta = {
                **info,
                "image_size": [h, w],
                "grid_hw": list(data.shape[2:]) if output.mode == "grid" else None,
                "grid_cell_px": int(self.config["grid_cell"]) if output.mode == "grid" else None,
                "cls_removed": False,
                "pooling": output.pooling,
                "valid_fraction": float(valid[i].mean()),
                "reflectance_scale": 1.0 / S2_DN_SCALE,
            }
            results.append(EmbedResult(np.ascontiguousarray(data[i]), meta))
        return results

    def _check_bands(self, sensor: SensorSpec) -> None:
        canon = [canonical_band(b) for b in sensor.bands]
        if len(set(canon)) != len(canon):
            raise ModelError(f"model 'spectral' got the same band twice under different spellings: {list(sensor.bands)}")

    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec) -> EmbedResult:
        self._check_bands(sensor)
        x = self.check_input(input_chw, sensor)
        return self._run(x[None], sensor, output)[0]

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                    output: OutputSpec) -> List[EmbedResult]:
        """Same-size patches are stacked and computed together; results equal ``embed``."""
        self._check_bands(sensor)
        arrays = [self.check_input(x, sensor) for x in inputs]
        out: List[Optional[EmbedResult]] = [None] * len(arrays)
        groups: Dict[tuple, List[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape, []).append(i)
        for shape, idxs in groups.items():
            step = max(1, _BATCH_PIXELS // (shape[1] * shape[2]))
            for k in range(0, len(idxs), step):
                part = idxs[k:k + step]
                for i, r in zip(part, self._run(np.stack([arrays[i] for i in part]), sensor, output)):
                    out[i] = r
        return out  # type: ignore[return-value]


__all__ = ["SpectralEmbedder", "SpectralIndex", "INDICES", "plan_indices", "valid_mask"]
