"""What every precomputed embedding product shares: a provider reads, the model pools.

Nothing runs locally for a precomputed product: its provider (``tessera``,
``copernicus_embed``, ...) returns the published vectors as a ``(D, H, W)`` patch with
NaN where the product has no data, and the embedder here pools it:

- **grid**: the patch as read (NaN marks nodata);
- **pooled**: the mean (or element-wise max) of the valid pixels.

A product says which provider serves it (``provider``): ``backend="auto"`` routes its
patches there whatever backend serves the other models of a request.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec, TemporalSpec
from .base import EmbedResult, Embedder


def pool_valid(x: np.ndarray, pooling: str, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, int]:
    """``(D, H, W)`` -> ``(D,)`` over pixels whose every band is finite; also their count."""
    valid = np.isfinite(x).all(axis=0)
    n = int(valid.sum())
    if n == 0:
        return np.full(x.shape[0], np.nan, np.float32), 0
    pix = x[:, valid].astype(np.float64)
    if pooling == "max":
        return pix.max(axis=1).astype(np.float32), n
    if weights is not None:
        w = np.asarray(weights, np.float64)[valid]
        if w.sum() > 0:
            return (pix @ w / w.sum()).astype(np.float32), n
    return pix.mean(axis=1).astype(np.float32), n


class PrecomputedEmbedder(Embedder):
    """Base of precomputed products (see the module docstring)."""

    has_batch = True
    #: provider registry name that serves the product
    provider: ClassVar[str] = ""
    #: Python modules the provider needs, and the extra that installs them
    requires: ClassVar[Tuple[str, ...]] = ()
    extra: ClassVar[str] = ""
    bands: ClassVar[Tuple[str, ...]] = ()
    #: (first, last) year the product covers, for annual products; None when not annual
    coverage: ClassVar[Optional[Tuple[int, int]]] = None
    output_modes: ClassVar[Tuple[str, ...]] = ("pooled", "grid")

    @classmethod
    def _product(cls) -> Dict[str, Any]:
        """Product-specific describe() entries (summary, source, paper, licence, ...)."""
        return {}

    @classmethod
    def _describe(cls) -> dict:
        prod = cls._product()
        temporal: Dict[str, Any] = {"mode": "year" if cls.coverage else "range"}
        if cls.coverage:
            temporal["coverage"] = list(cls.coverage)
        return {
            "type": "precomputed",
            "backend": [cls.provider, "auto"],
            "provider": cls.provider,
            "inputs": {"collection": prod.get("collection"), "bands": list(cls.bands)},
            "temporal": temporal,
            "output": list(cls.output_modes),
            "defaults": {"scale_m": prod.get("scale_m", 10), "cloudy_pct": 100, "composite": "mosaic",
                         "fill_value": 0.0, "image_size": None},
            "nodata": "NaN in the patch and in grid output",
            "embedding_dim": prod.pop("embedding_dim", len(cls.bands)),
            "modalities": [],
            "model_config": {},
            "weights": None,
            "extra": cls.extra,
            "install": f"pip install 'rs_embed[{cls.extra}]'" if cls.extra else None,
            **{k: v for k, v in prod.items() if k not in ("collection", "scale_m")},
        }

    @classmethod
    def status(cls) -> dict:
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        return {"model": cls.name, "ready": not missing, "extra_installed": not missing,
                "missing_packages": missing,
                "install": f"pip install 'rs_embed[{cls.extra}]'" if missing else None,
                "backend": cls.provider, "variants": {},
                "note": f"precomputed product read by the {cls.provider!r} provider "
                        f"({cls.describe().get('source', '')})"}

    def __init__(self, *, device: str = "auto", **model_config: Any):
        super().__init__(device="cpu", **model_config)

    @classmethod
    def resolve_temporal(cls, temporal: Optional[TemporalSpec]) -> Optional[TemporalSpec]:
        """Annual products read a calendar year: a range reads the year it starts in (warned)."""
        if cls.coverage is None:
            return temporal
        first, last = cls.coverage
        if temporal is None:
            if first == last:
                warnings.warn(f"model {cls.name!r} has one edition ({first}); temporal=None reads it",
                              UserWarning, stacklevel=3)
                return TemporalSpec.year(first)
            raise ModelError(f"model {cls.name!r} is an annual product: pass temporal=TemporalSpec.year(Y) "
                             f"with Y in {first}..{last}")
        if not isinstance(temporal, TemporalSpec):
            raise ModelError(f"temporal must be a TemporalSpec, got {type(temporal).__name__}: {temporal!r}")
        year = temporal.year if temporal.mode == "year" else temporal.start_date.year
        if temporal.mode != "year":
            warnings.warn(f"model {cls.name!r} is annual: TemporalSpec.range({temporal.start!r}, "
                          f"{temporal.end!r}) reads the year it starts in, {year}; pass "
                          f"TemporalSpec.year({year}) to silence this", UserWarning, stacklevel=3)
        if not first <= year <= last:
            raise ModelError(f"model {cls.name!r} covers the years {first}..{last}; got year {year}")
        return TemporalSpec.year(year)

    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec) -> EmbedResult:
        return self.embed_batch([input_chw], sensor=sensor, output=output)[0]

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                    output: OutputSpec) -> List[EmbedResult]:
        if tuple(sensor.bands) != self.bands:
            raise ModelError(f"model {self.name!r} needs its {len(self.bands)} bands "
                             f"{self.bands[0]}..{self.bands[-1]} in order; the sensor lists "
                             f"{list(sensor.bands)[:4]}...")
        if output.mode not in self.output_modes:
            raise ModelError(f"model {self.name!r} gives {list(self.output_modes)} output, not {output.mode!r}")
        out = []
        for x in inputs:
            x = self.check_input(x, sensor)
            valid = np.isfinite(x).all(axis=0)
            meta = {"valid_fraction": float(valid.mean()) if valid.size else 0.0, "cls_removed": False,
                    "image_size": None, "embedding_dim": len(self.bands), "nodata": "NaN"}
            if output.mode == "grid":
                out.append(EmbedResult(np.ascontiguousarray(x, dtype=np.float32), meta))
                continue
            vec, n = pool_valid(x, output.pooling)
            if n == 0:
                raise ModelError(f"model {self.name!r}: no valid pixel in the patch (the product has "
                                 f"no data here for this period)")
            meta.update(pooling=output.pooling, valid_pixels=n)
            out.append(EmbedResult(vec, meta))
        return out


__all__ = ["PrecomputedEmbedder", "pool_valid"]
