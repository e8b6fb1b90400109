"""``gse``: Google Satellite Embedding V1 (AlphaEarth Foundations), annual, precomputed.

Google publishes one 64-dimensional embedding per 10 m pixel per calendar year
(``GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL``, bands ``A00`` .. ``A63``; each valid
pixel is a unit vector). Nothing runs locally: the provider fetches the 64 bands on
the ROI's UTM grid and this module pools them.

- Time is a calendar year: ``TemporalSpec.year(2022)``. A range warns and uses the
  year it starts in; a year outside the product's coverage is an error naming it.
- Grid ``(64, H, W)``: the pixels as fetched (masked pixels hold the fill value).
- Pooled ``(64,)``: the mean (or element-wise max) of the valid pixels, scaled back
  to unit length, so pooled vectors compare with dot products like the pixels do.
- A pixel is valid when its bands are finite and not all equal to the fill value
  (a real embedding is a unit vector, never all zeros).

Licence of the data: CC-BY 4.0, "The AlphaEarth Foundations Satellite Embedding
dataset is produced by Google and Google DeepMind."
"""

from __future__ import annotations

import warnings
from typing import ClassVar, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ModelError
from ..sensors import GSE_ANNUAL, GSE_ANNUAL_PRODUCT
from ..specs import OutputSpec, SensorSpec, TemporalSpec
from .base import EmbedResult, Embedder

COLLECTION = GSE_ANNUAL
BANDS: Tuple[str, ...] = GSE_ANNUAL_PRODUCT.bands


def valid_pixels(x: np.ndarray, fill_value: float) -> np.ndarray:
    """``(..., H, W)`` True where every band is finite and not every band is the fill value."""
    finite = np.isfinite(x).all(axis=-3)
    if np.isnan(fill_value):
        return finite
    return finite & ~(x == fill_value).all(axis=-3)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, v / norm, np.nan)


class GSEEmbedder(Embedder):
    """Google Satellite Embedding V1 annual product, read through a provider."""

    name = "gse"
    has_batch = True
    #: first and last year the product covers (inclusive); Google adds one year annually
    coverage: ClassVar[Tuple[int, int]] = (2017, 2025)

    @classmethod
    def _describe(cls) -> dict:
        first, last = cls.coverage
        return {
            "type": "precomputed",
            "summary": ("Google Satellite Embedding V1 (AlphaEarth Foundations): a 64-d unit "
                        "vector per 10 m pixel per year, read from Earth Engine or from "
                        "Google's public COGs (no account)."),
            "backend": ["gee", "alphaearth", "earth-search", "planetary-computer", "stac"],
            "source": COLLECTION,
            "inputs": {"collection": COLLECTION, "bands": list(BANDS)},
            "temporal": {"mode": "year", "coverage": [first, last]},
            "output": ["pooled", "grid"],
            "defaults": {"scale_m": 10, "cloudy_pct": 100, "composite": "mosaic",
                         "fill_value": 0.0, "image_size": None},
            "embedding_dim": 64,
            "modalities": [],
            "model_config": {},
            "weights": None,
            "paper": "Brown et al. 2025, AlphaEarth Foundations (arXiv:2507.22291)",
            "licence": "CC-BY-4.0 (data); attribution: The AlphaEarth Foundations Satellite "
                       "Embedding dataset is produced by Google and Google DeepMind.",
        }

    # -- time ------------------------------------------------------------------------
    @classmethod
    def status(cls) -> dict:
        """Ready when earthengine-api (backend 'gee') or the stac extra (public COGs) is installed."""
        import importlib.util

        ee = importlib.util.find_spec("ee") is not None
        cogs = importlib.util.find_spec("pyarrow") is not None
        installed = ee or cogs
        return {"model": cls.name, "ready": installed, "extra_installed": installed,
                "missing_packages": [] if installed else ["earthengine-api or pyarrow"],
                "install": None if installed else "pip install 'rs_embed[stac]' (or 'rs_embed[gee]')",
                "backend": "gee" if ee and not cogs else "alphaearth", "variants": {},
                "note": ("precomputed product: backend='alphaearth' (or any STAC backend) reads Google's "
                         "public COGs without an account; backend='gee' reads Earth Engine")}

    @classmethod
    def default_window(cls, backend: str) -> Optional[TemporalSpec]:
        """``temporal=None``: the calendar year 2023 (every backend: the product is annual)."""
        return TemporalSpec.year(2023)

    @classmethod
    def resolve_temporal(cls, temporal: Optional[TemporalSpec]) -> TemporalSpec:
        """The calendar year to read: a year as given, a range's start year (with a warning)."""
        first, last = cls.coverage
        if temporal is None:
            raise ModelError(
                f"model 'gse' is an annual product: pass temporal=TemporalSpec.year(Y) "
                f"with Y in {first}..{last}")
        if not isinstance(temporal, TemporalSpec):
            raise ModelError(f"temporal must be a TemporalSpec, got {type(temporal).__name__}: {temporal!r}")
        if temporal.mode == "year":
            year = temporal.year
        else:
            year = temporal.start_date.year
            warnings.warn(
                f"model 'gse' is annual: TemporalSpec.range({temporal.start!r}, {temporal.end!r}) "
                f"reads the year it starts in, {year}; pass TemporalSpec.year({year}) to silence this",
                UserWarning, stacklevel=3)
        if not first <= year <= last:
            raise ModelError(
                f"model 'gse' covers the years {first}..{last} (Google Satellite Embedding V1 "
                f"annual); got year {year}")
        return TemporalSpec.year(year)

    # -- inference ---------------------------------------------------------------------
    def embed(self, input_chw: np.ndarray, *, sensor: SensorSpec, output: OutputSpec) -> EmbedResult:
        return self.embed_batch([input_chw], sensor=sensor, output=output)[0]

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec,
                    output: OutputSpec) -> List[EmbedResult]:
        if tuple(sensor.bands) != BANDS:
            raise ModelError(
                f"model 'gse' needs the 64 bands A00..A63 in order; the sensor lists "
                f"{list(sensor.bands)[:6]}{'...' if len(sensor.bands) > 6 else ''}")
        results = []
        for x in inputs:
            x = self.check_input(x, sensor)
            valid = valid_pixels(x, sensor.fill_value)
            n_valid = int(valid.sum())
            frac = n_valid / valid.size if valid.size else 0.0
            meta = {"valid_fraction": frac, "cls_removed": False, "image_size": None,
                    "embedding_dim": 64, "source": COLLECTION}
            if output.mode == "grid":
                meta["grid_hw"] = list(x.shape[1:])
                results.append(EmbedResult(np.ascontiguousarray(x, dtype=np.float32), meta))
                continue
            if n_valid == 0:
                raise ModelError(
                    "model 'gse': no valid pixel in the patch (Google Satellite Embedding has no "
                    "data here for this year, e.g. open ocean or outside the coverage)")
            pix = x[:, valid].astype(np.float64)  # (64, N)
            pooled = pix.max(axis=1) if output.pooling == "max" else pix.mean(axis=1)
            vec = _unit(pooled)
            if not np.isfinite(vec).all():
                raise ModelError("model 'gse': the pooled vector has zero length "
                                 "(valid pixels cancel out); use OutputSpec.grid()")
            meta["pooling"] = output.pooling
            results.append(EmbedResult(vec.astype(np.float32), meta))
        return results


__all__ = ["GSEEmbedder", "COLLECTION", "BANDS", "valid_pixels"]
