"""Figures of an export: the saved inputs and the embeddings, read from its files.

Every function takes a path or an ``ExportResult`` and returns a matplotlib
``Figure`` (closed in pyplot, so a notebook shows it once, as the cell's value).
Both layouts (one file / a file per ROI) and both formats (npz / NetCDF) work,
because everything goes through ``load_export``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from . import export_view as ev
from .analysis import cosine_similarity, most_similar, pca_project, pca_rgb
from .quicklook import rgb_image, rgb_limits, robust_stretch


def _figure(nrows: int, ncols: int, cell=(3.0, 3.0), **kw):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows),
                             squeeze=False, layout="constrained", **kw)
    plt.close(fig)  # returned, not auto-shown: avoids a second copy in notebooks
    return fig, axes


def _shared_limits(patches, bands):
    """One stretch for every picture in a figure, so ROIs can be compared by eye."""
    present = [p for p in patches if p is not None]
    return rgb_limits(present, bands) if present else None


def _blank(ax, text: str = "") -> None:
    ax.set_axis_off()
    if text:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


#: the smallest type in a figure: titles and labels stay readable in a notebook
TITLE_PT = 10
LABEL_PT = 8
#: above this many items, point names are not written on the scatter (they would overlap)
MAX_ANNOTATED = 20


def _image_axes(ax, title: str) -> None:
    ax.set_title(title, fontsize=TITLE_PT)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_inputs(source, model: Optional[str] = None, *, kind: str = "rgb",
                items: Optional[Sequence[int]] = None, index: int = 0, max_items: int = 24,
                ncols: int = 6, names: Optional[Sequence[str]] = None):
    """The input patches a model received.

    ``kind="rgb"``: a true-colour quicklook per ROI (each band stretched between its
    2nd and 98th percentile). ``kind="bands"``: every band of item ``index``, one panel
    each, titled with the band name from the manifest. ``names`` relabels the items
    (the one-file layout stores no names).
    """
    res = ev.as_result(source)
    model = ev.pick_model(res, model)
    patches = ev.inputs(res, model)
    if all(p is None for p in patches):
        raise ValueError(f"this export saved no inputs for {model!r} (export with save_inputs=True)")
    bands = ev.input_bands(res, model)
    names = ev.item_names(res, names)
    if kind == "rgb":
        idx = ev.select(res.n_items, items, max_items)
        cols = min(ncols, len(idx))
        fig, axes = _figure(math.ceil(len(idx) / cols), cols)
        limits = _shared_limits([patches[i] for i in idx], bands)
        for ax in axes.flat:
            _blank(ax)
        for ax, i in zip(axes.flat, idx):
            if patches[i] is None:
                _blank(ax, f"{names[i]}\n(no input)")
                continue
            ax.set_axis_on()
            ax.imshow(rgb_image(patches[i], bands, limits=limits), interpolation="nearest")
            h, w = patches[i].shape[-2:]
            _image_axes(ax, f"{names[i]}  ({w}×{h})")
        fig.suptitle(f"{model}: inputs (true colour)", fontsize=TITLE_PT + 2)
    elif kind == "bands":
        i = ev.select(res.n_items, [index], 1)[0]
        patch = patches[i]
        if patch is None:
            raise ValueError(f"item {names[i]!r} has no saved input for {model!r}")
        if patch.ndim == 4:
            patch = patch[0]
        c = patch.shape[0]
        cols = min(ncols, c)
        fig, axes = _figure(math.ceil(c / cols), cols, cell=(2.4, 2.4))
        for ax in axes.flat:
            _blank(ax)
        stretched = robust_stretch(patch)
        for b, ax in enumerate(axes.flat[:c]):
            ax.set_axis_on()
            ax.imshow(stretched[b], cmap="gray", interpolation="nearest", vmin=0, vmax=1)
            label = bands[b] if bands and b < len(bands) else f"band {b}"
            valid = patch[b][np.isfinite(patch[b])]
            rng = f"{valid.min():.3g}–{valid.max():.3g}" if valid.size else "empty"
            _image_axes(ax, f"{label}\n{rng}")
        fig.suptitle(f"{model}: bands of {names[i]}", fontsize=TITLE_PT + 2)
    else:
        raise ValueError(f"kind must be 'rgb' or 'bands', got {kind!r}")
    return fig


def plot_embeddings(source, model: Optional[str] = None, *,
                    items: Optional[Sequence[int]] = None, max_items: int = 12,
                    names: Optional[Sequence[str]] = None, groups: Optional[Sequence[str]] = None):
    """Pooled embeddings: a 2-D PCA scatter labelled by ROI name and a cosine-similarity
    heatmap. Grid embeddings: each ROI's RGB input beside its PCA-to-RGB map (one PCA
    for all ROIs, so colours are comparable).

    ``names`` relabels the items; ``groups`` (a class per item, e.g. land cover) colours
    the scatter and orders the heatmap by class.
    """
    res = ev.as_result(source)
    model = ev.pick_model(res, model)
    emb = ev.embeddings(res, model)
    names = ev.item_names(res, names)
    if groups is not None and len(groups) != res.n_items:
        raise ValueError(f"groups has {len(groups)} entries for {res.n_items} items")
    if emb.ndim == 2:
        return _plot_pooled(emb, names, model, groups)
    if emb.ndim == 4:
        return _plot_grid(res, model, emb, names, ev.select(res.n_items, items, max_items))
    raise ValueError(f"unexpected embedding shape {emb.shape} for {model!r}")


def _plot_pooled(emb: np.ndarray, names, model: str, groups=None):
    fig, axes = _figure(1, 2, cell=(5.2, 4.6))
    ax1, ax2 = axes[0]
    if groups is not None:  # heatmap blocks by class
        order = sorted(range(len(emb)), key=lambda i: (str(groups[i]), i))
        emb, names, groups = emb[order], [names[i] for i in order], [groups[i] for i in order]
    ok = np.isfinite(emb).all(axis=1)
    if ok.sum() >= 2:
        scores, ratio = pca_project(emb, 2)
        if groups is None:
            ax1.scatter(scores[ok, 0], scores[ok, 1], c=np.arange(len(emb))[ok], cmap="viridis",
                        s=36, edgecolor="k", linewidth=0.4)
        else:
            for g in dict.fromkeys(groups):
                sel = ok & np.array([x == g for x in groups])
                ax1.scatter(scores[sel, 0], scores[sel, 1], s=36, edgecolor="k", linewidth=0.4,
                            label=str(g))
            ax1.legend(fontsize=9, loc="best")
        if ok.sum() <= MAX_ANNOTATED:
            for i in np.flatnonzero(ok):
                ax1.annotate(names[i], (scores[i, 0], scores[i, 1]), fontsize=LABEL_PT,
                             xytext=(3, 3), textcoords="offset points")
        ax1.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
        ax1.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    else:
        _blank(ax1, "need two or more embeddings for a PCA")
    ax1.set_title(f"{model}: PCA of {int(ok.sum())} embeddings (D={emb.shape[1]})", fontsize=TITLE_PT + 1)
    sim = cosine_similarity(emb)
    im = ax2.imshow(sim, cmap="magma", vmin=np.nanmin(sim) if np.isfinite(sim).any() else 0, vmax=1)
    n = len(names)
    if groups is not None:  # one tick per class block
        starts = [i for i in range(n) if i == 0 or groups[i] != groups[i - 1]] + [n]
        centres = [(a + b - 1) / 2 for a, b in zip(starts, starts[1:])]
        labels = [str(groups[a]) for a in starts[:-1]]
        ax2.set_xticks(centres, labels, rotation=90, fontsize=LABEL_PT + 1)
        ax2.set_yticks(centres, labels, fontsize=LABEL_PT + 1)
        for edge in starts[1:-1]:
            ax2.axhline(edge - 0.5, color="w", lw=0.6)
            ax2.axvline(edge - 0.5, color="w", lw=0.6)
    elif n <= MAX_ANNOTATED:
        ax2.set_xticks(range(n), names, rotation=90, fontsize=LABEL_PT)
        ax2.set_yticks(range(n), names, fontsize=LABEL_PT)
    ax2.set_title("cosine similarity", fontsize=TITLE_PT + 1)
    fig.colorbar(im, ax=ax2, shrink=0.8)
    return fig


def _plot_grid(res, model: str, emb: np.ndarray, names, idx):
    ok = [i for i in idx if np.isfinite(emb[i]).any()]
    if not ok:
        raise ValueError(f"no grid embedding of {model!r} to show")
    maps = dict(zip(ok, pca_rgb([emb[i] for i in ok])))
    patches = ev.inputs(res, model)
    bands = ev.input_bands(res, model)
    fig, axes = _figure(len(ok), 2, cell=(3.2, 3.0))
    limits = _shared_limits([patches[i] for i in ok], bands)
    for row, i in zip(axes, ok):
        if patches[i] is not None:
            row[0].imshow(rgb_image(patches[i], bands, limits=limits), interpolation="nearest")
            _image_axes(row[0], f"{names[i]}: input")
        else:
            _blank(row[0], f"{names[i]}\n(no input saved)")
        row[1].imshow(maps[i], interpolation="nearest")
        d, h, w = emb[i].shape
        _image_axes(row[1], f"PCA→RGB of {d}×{h}×{w}")
    fig.suptitle(f"{model}: grid embeddings", fontsize=TITLE_PT + 2)
    return fig


def plot_similarity_search(source, model: Optional[str] = None, query=0, k: int = 5,
                           names: Optional[Sequence[str]] = None):
    """The ``k`` ROIs most similar to ``query`` (an index or a name), best first.

    Shows their true-colour inputs when the export saved them, with the cosine
    similarity of each to the query.
    """
    res = ev.as_result(source)
    model = ev.pick_model(res, model)
    names = ev.item_names(res, names)
    q = names.index(query) if isinstance(query, str) else ev.select(res.n_items, [query], 1)[0]
    hits = most_similar(ev.embeddings(res, model), q, k, names)
    patches = ev.inputs(res, model)
    bands = ev.input_bands(res, model)
    shown = [(q, names[q], 1.0)] + hits
    fig, axes = _figure(1, len(shown), cell=(2.6, 2.9))
    limits = _shared_limits([patches[i] for i, _, _ in shown], bands)
    for ax, (i, name, score) in zip(axes[0], shown):
        if patches[i] is not None:
            ax.imshow(rgb_image(patches[i], bands, limits=limits), interpolation="nearest")
            title = f"query: {name}" if i == q else f"{name}\ncos = {score:.3f}"
            _image_axes(ax, title)
        else:
            _blank(ax, f"{name}\ncos = {score:.3f}")
    fig.suptitle(f"{model}: most similar to {names[q]}", fontsize=TITLE_PT + 2)
    return fig


__all__ = ["plot_inputs", "plot_embeddings", "plot_similarity_search"]
