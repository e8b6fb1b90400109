"""Colours for looking at embeddings: PCA scores and PCA-to-RGB images.

Plain numpy (an eigen-decomposition), so plots need no scikit-learn. Rows that are NaN
(a point whose export failed) are ignored when fitting and stay NaN in the output.
Similarity search lives in the core (:mod:`rs_embed.analysis`); its names are
re-exported here for the plots.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from rs_embed.analysis import cosine_similarity, most_similar, pooled  # noqa: F401 (re-exported)


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).all(axis=1)


#: rows a PCA is fitted on at most (a fixed random subset beyond that): many grid cells
#: add little to three components and would make the SVD slow
MAX_FIT_ROWS = 10_000


def pca_fit(x: np.ndarray, k: int = 2) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components (k, D), explained variance ratio (k,)) of the finite rows of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an (N, D) array, got shape {x.shape}")
    rows = x[_finite_rows(x)]
    if len(rows) == 0:
        raise ValueError("no finite rows to fit a PCA on")
    if len(rows) > MAX_FIT_ROWS:
        pick = np.random.default_rng(0).choice(len(rows), MAX_FIT_ROWS, replace=False)
        rows = rows[np.sort(pick)]
    mean = rows.mean(axis=0)
    centred = rows - mean
    if len(centred) >= centred.shape[1]:  # many rows: eigenvectors of the D x D scatter matrix
        var, vecs = np.linalg.eigh(centred.T @ centred)
        order = np.argsort(var)[::-1]
        var, vt = np.clip(var[order], 0, None), vecs[:, order].T
    else:  # few rows: a thin SVD is cheaper
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        var = s ** 2
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    comps = np.zeros((k, x.shape[1]))
    kk = min(k, vt.shape[0])
    comps[:kk] = vt[:kk]
    # Fix the sign so the same data always gives the same picture.
    for c in comps:
        j = np.argmax(np.abs(c))
        if c[j] < 0:
            c *= -1
    out_ratio = np.zeros(k)
    out_ratio[:kk] = ratio[:kk]
    return mean, comps, out_ratio


def pca_project(x: np.ndarray, k: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Project the rows of ``x`` (N, D) on their first ``k`` principal components.

    Returns ``(scores (N, k), explained_variance_ratio (k,))``; NaN rows stay NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    mean, comps, ratio = pca_fit(x, k)
    scores = (x - mean) @ comps.T
    scores[~_finite_rows(x)] = np.nan
    return scores, ratio


def _percentile_range(v: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> Tuple[float, float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    p0, p1 = np.percentile(v, [lo, hi])
    return float(p0), float(p1 if p1 > p0 else p0 + 1e-9)


def pca_rgb(grids: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Map ``(D, h, w)`` embedding grids to ``(h, w, 3)`` colour images in [0, 1].

    One PCA is fitted on the pixels of all grids together, so a colour means the same
    thing in every image; each component is stretched between its 2nd and 98th
    percentile over all grids. A single array is accepted too.
    """
    single = isinstance(grids, np.ndarray) and grids.ndim == 3
    grids = [grids] if single else list(grids)
    pixels = [np.asarray(g, dtype=np.float32).reshape(g.shape[0], -1).T for g in grids]
    counts = [len(p) for p in pixels]
    total = sum(counts)
    if total > MAX_FIT_ROWS:  # fit on a fixed random subset of all cells
        pick = np.sort(np.random.default_rng(0).choice(total, MAX_FIT_ROWS, replace=False))
        starts = np.cumsum([0] + counts[:-1])
        which = np.searchsorted(starts, pick, side="right") - 1
        fit = np.stack([pixels[w][i - starts[w]] for w, i in zip(which, pick)])
    else:
        fit = np.concatenate(pixels, axis=0)
    mean, comps, _ = pca_fit(fit, 3)
    mean32, comps32 = mean.astype(np.float32), comps.T.astype(np.float32)
    scores = [(p - mean32) @ comps32 for p in pixels]
    allv = np.concatenate(scores, axis=0)
    ranges = [_percentile_range(allv[:, c]) for c in range(3)]
    out = []
    for g, sc in zip(grids, scores):
        img = np.stack([np.clip((sc[:, c] - p0) / (p1 - p0), 0.0, 1.0)
                        for c, (p0, p1) in enumerate(ranges)], axis=1)
        img[~np.isfinite(sc).all(axis=1)] = 0.0
        out.append(img.reshape(g.shape[1], g.shape[2], 3).astype(np.float32))
    return out[0] if single else out
