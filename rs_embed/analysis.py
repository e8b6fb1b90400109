"""Search, label and probe embeddings: what a researcher does once an export exists.

- **Similarity search** (:class:`SimilarityIndex`, :func:`similarity_search`): cosine
  similarity to one item, to a vector, or to a GeoVibes-style query built from examples
  (mean of the positives minus mean of the negatives). The exact path is one vectorised
  matrix-vector product over unit rows (numpy/BLAS), which answers 100k x 512 in a few
  tens of milliseconds on one core; ``method="hnsw"`` builds an approximate faiss index
  for larger sets (the ``ann`` extra).
- **Probes** (:func:`probe`, :func:`compare`): how well an embedding separates labelled
  items, measured the way papers do it: a k-NN (k=5) or logistic-regression classifier
  on standardised features, stratified k-fold cross-validation (scikit-learn), accuracy
  of the out-of-fold predictions with a 95 % bootstrap interval, a confusion matrix,
  and a side-by-side table when several models embedded the same points.

Everything accepts an ``ExportResult``, a path ``load_export`` opens, or an ``(N, D)``
array; grid embeddings ``(N, D, h, w)`` are averaged over their cells. Rows that are
NaN (points whose export failed) are never matched and never used for training.
Nothing here knows about widgets; ``rs_embed.widgets`` draws these answers on a map.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

#: the probes :func:`probe` runs
METHODS = ("knn", "linear")


def _require(module: str, extra: str, feature: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{feature} needs {module!r}, which is not installed; "
                          f"install the extra: pip install 'rs_embed[{extra}]'") from exc


# --------------------------------------------------------------------- inputs


def _as_result(source):
    if hasattr(source, "models") and hasattr(source, "embedding"):
        return source
    if isinstance(source, (str, Path)):
        from .io.load import load_export

        return load_export(source)
    return None


def pick_model(result, model: Optional[str] = None) -> str:
    """``model`` if the export holds it, else its first model with embeddings."""
    if model is not None:
        if model not in result.models:
            raise KeyError(f"model {model!r} is not in this export; it has {sorted(result.models)}")
        return model
    ok = [m for m, r in result.models.items() if r.status == "ok"]
    ok += [m for m, r in result.models.items() if r.status == "partial" and m not in ok]
    if not ok:
        raise ValueError(f"no model of this export produced embeddings (status {result.status!r})")
    return ok[0]


def item_names(result) -> List[str]:
    """A name per exported item: the per-item file names, else ``#i``."""
    names = getattr(result, "names", None)
    if names and len(names) == result.n_items:
        return [str(n) for n in names]
    out = []
    for i, s in enumerate(result.spatials):
        n = s.get("name") if isinstance(s, dict) else None
        out.append(str(n) if n else f"#{i}")
    return out


def pooled(embeddings) -> np.ndarray:
    """``(N, D)`` float32 vectors from pooled ``(N, D)`` or grid ``(N, D, h, w)`` embeddings
    (a grid is averaged over its cells)."""
    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim == 4:
        with np.errstate(invalid="ignore"), _quiet_nan_mean():
            return np.nanmean(e.reshape(e.shape[0], e.shape[1], -1), axis=2).astype(np.float32)
    if e.ndim != 2:
        raise ValueError(f"expected (N, D) or (N, D, h, w) embeddings, got shape {e.shape}")
    return e


class _quiet_nan_mean:
    """nanmean of an all-NaN row (a failed point) is NaN, as meant: no warning for it."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def embedding_matrix(source, model: Optional[str] = None) -> Tuple[np.ndarray, List[str], str]:
    """``(vectors (N, D) float32, item names, model)`` of an export, a path or an array."""
    res = _as_result(source)
    if res is None:
        x = pooled(source)
        return x, [f"#{i}" for i in range(len(x))], model or "embeddings"
    model = pick_model(res, model)
    return pooled(res.embedding(model)), item_names(res), model


# -------------------------------------------------------------------- search


@dataclass
class SearchResult:
    """The ``k`` best matches, best first: item indices, cosine similarities, names."""

    indices: np.ndarray
    scores: np.ndarray
    names: List[str]
    query: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Tuple[int, str, float]]:
        for i, n, s in zip(self.indices, self.names, self.scores):
            yield int(i), n, float(s)

    def to_rows(self) -> List[dict]:
        return [{"rank": r + 1, "index": i, "name": n, "similarity": s}
                for r, (i, n, s) in enumerate(self)]

    def __repr__(self) -> str:
        best = ", ".join(f"{n} {s:.3f}" for _, n, s in list(self)[:5])
        return f"SearchResult({len(self)} hits: {best}{' …' if len(self) > 5 else ''})"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{r['rank']}</td><td>{escape(r['name'])}</td>"
                       f"<td>{r['similarity']:.4f}</td></tr>" for r in self.to_rows())
        return f"<table><tr><th>rank</th><th>item</th><th>cosine</th></tr>{rows}</table>"


class SimilarityIndex:
    """Cosine-similarity search over the rows of an embedding matrix.

    ``method="exact"`` (default): every row is scored with one float32 matrix-vector
    product over the unit rows, so the answer is exact. ``method="hnsw"``: a faiss HNSW
    graph over the same unit rows (inner product), approximate but sub-linear, for
    millions of rows; it needs ``pip install 'rs_embed[ann]'``. Both return the same
    :class:`SearchResult`; NaN or all-zero rows are never returned.
    """

    def __init__(self, vectors, names: Optional[Sequence[str]] = None, *, method: str = "exact",
                 hnsw_m: int = 32, ef_search: int = 128, ef_construction: int = 80):
        if method not in ("exact", "hnsw"):
            raise ValueError(f"method must be 'exact' or 'hnsw', got {method!r}")
        x = np.ascontiguousarray(pooled(vectors), dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))  # NaN/inf for bad rows
        self.valid = np.isfinite(norms) & (norms > 0)
        unit = np.empty_like(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(x, norms[:, None].astype(np.float32), out=unit)
        unit[~self.valid] = 0.0
        self.unit = unit
        self.names = [str(n) for n in names] if names is not None else [f"#{i}" for i in range(len(x))]
        if len(self.names) != len(x):
            raise ValueError(f"names has {len(self.names)} entries for {len(x)} rows")
        self.method = method
        self._faiss = None
        if method == "hnsw":
            faiss = _require("faiss", "ann", "an approximate similarity index")
            index = faiss.IndexHNSWFlat(x.shape[1], int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = int(ef_search)
            self._ids = np.flatnonzero(self.valid)
            index.add(self.unit[self._ids])
            self._faiss = index

    @classmethod
    def from_export(cls, source, model: Optional[str] = None, **kwargs) -> "SimilarityIndex":
        x, names, model = embedding_matrix(source, model)
        index = cls(x, names, **kwargs)
        index.model = model
        return index

    def __len__(self) -> int:
        return len(self.unit)

    def _row(self, item) -> int:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            i = int(item)
            if not -len(self) <= i < len(self):
                raise IndexError(f"item {i} is out of range for {len(self)} items")
            i %= len(self)
        elif isinstance(item, str):
            if item not in self.names:
                raise KeyError(f"no item named {item!r}")
            i = self.names.index(item)
        else:
            raise TypeError(f"an item is an index or a name, got {item!r}")
        if not self.valid[i]:
            raise ValueError(f"item {self.names[i]!r} has no embedding (its export failed)")
        return i

    def query_vector(self, query=None, *, positives: Sequence = (), negatives: Sequence = ()) -> np.ndarray:
        """The unit query: one item's vector, a given vector, or mean(positives) − mean(negatives)."""
        if query is not None and (positives or negatives):
            raise ValueError("give a query item/vector or positives/negatives, not both")
        if query is None:
            if not positives:
                raise ValueError("give a query item or vector, or at least one positive example")
            q = self.unit[[self._row(p) for p in positives]].mean(axis=0)
            if negatives:
                q = q - self.unit[[self._row(n) for n in negatives]].mean(axis=0)
        elif isinstance(query, (int, np.integer, str)):
            q = self.unit[self._row(query)]
        else:
            q = np.asarray(query, dtype=np.float32).ravel()
            if q.shape != (self.unit.shape[1],):
                raise ValueError(f"a query vector needs {self.unit.shape[1]} values, got shape {q.shape}")
        norm = float(np.linalg.norm(q))
        if not math.isfinite(norm) or norm == 0:
            raise ValueError("the query vector is zero (positives and negatives cancel out) or not finite")
        return (q / norm).astype(np.float32)

    def scores(self, query=None, *, positives: Sequence = (), negatives: Sequence = ()) -> np.ndarray:
        """Cosine similarity of every row to the query (exact); NaN for rows without embedding."""
        q = self.query_vector(query, positives=positives, negatives=negatives)
        s = self.unit @ q
        s[~self.valid] = np.nan
        return s

    def search(self, query=None, k: int = 10, *, positives: Sequence = (), negatives: Sequence = (),
               exclude: Optional[Sequence] = None) -> SearchResult:
        """The ``k`` rows most similar to the query, best first.

        ``exclude``: items never returned (default: the query item and the examples).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = self.query_vector(query, positives=positives, negatives=negatives)
        if exclude is None:
            exclude = [x for x in ([query] if isinstance(query, (int, np.integer, str)) else [])
                       + list(positives) + list(negatives)]
        drop = np.array(sorted({self._row_any(x) for x in exclude}), dtype=np.int64)
        if self._faiss is not None:
            idx, sc = self._search_hnsw(q, int(k), drop)
        else:
            idx, sc = self._search_exact(q, int(k), drop)
        return SearchResult(idx, sc, [self.names[i] for i in idx],
                            {"k": int(k), "method": self.method,
                             "positives": [self.names[self._row(p)] for p in positives],
                             "negatives": [self.names[self._row(n)] for n in negatives]})

    def _row_any(self, item) -> int:
        i = self.names.index(item) if isinstance(item, str) else int(item)
        return i % len(self)

    def _search_exact(self, q: np.ndarray, k: int, drop: np.ndarray):
        s = self.unit @ q
        s[~self.valid] = -np.inf
        if drop.size:
            s[drop] = -np.inf
        n_ok = int(np.count_nonzero(np.isfinite(s)))
        k = min(k, n_ok)
        if k == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        part = np.argpartition(-s, k - 1)[:k] if k < len(s) else np.arange(len(s))
        order = np.lexsort((part, -s[part]))  # best first; ties by index, so answers are stable
        idx = part[order]
        return idx.astype(np.int64), s[idx].astype(np.float32)

    def _search_hnsw(self, q: np.ndarray, k: int, drop: np.ndarray):
        want = min(k + drop.size, len(self._ids))
        sc, pos = self._faiss.search(q[None, :], want)
        ids = self._ids[pos[0][pos[0] >= 0]]
        sc = sc[0][pos[0] >= 0]
        keep = ~np.isin(ids, drop)
        return ids[keep][:k].astype(np.int64), sc[keep][:k].astype(np.float32)


def similarity_search(source, query=None, k: int = 10, *, model: Optional[str] = None,
                      positives: Sequence = (), negatives: Sequence = (),
                      method: str = "exact") -> SearchResult:
    """The ``k`` items of an export most similar to ``query`` (an item index or name, or
    a vector), or to ``mean(positives) − mean(negatives)``; cosine, best first."""
    index = SimilarityIndex.from_export(source, model, method=method)
    return index.search(query, k, positives=positives, negatives=negatives)


def cosine_similarity(x) -> np.ndarray:
    """``(N, N)`` cosine similarity of the rows of ``x``; NaN where a row is NaN or zero."""
    index = SimilarityIndex(x)
    s = index.unit.astype(np.float64) @ index.unit.T.astype(np.float64)
    s[~index.valid] = np.nan
    s[:, ~index.valid] = np.nan
    return s


def most_similar(embeddings, query: int, k: Optional[int] = None,
                 names: Optional[Sequence[str]] = None) -> List[Tuple[int, str, float]]:
    """``(index, name, cosine)`` of the items most similar to item ``query``, best first,
    the query left out; items without embedding are skipped."""
    index = SimilarityIndex(embeddings, names)
    n_ok = int(index.valid.sum()) - 1
    return list(index.search(int(query), k or max(1, n_ok)))


# -------------------------------------------------------------------- labels


_TRAILING_NUMBER = re.compile(r"^(.*?)[_\-\s]*\d+$")


def labels_from_names(names: Sequence[str]) -> List[str]:
    """A class per item from its name: a trailing number is dropped
    (``field_3`` → ``field``, ``marsh-12`` → ``marsh``); other names are their own class."""
    out = []
    for n in names:
        m = _TRAILING_NUMBER.match(str(n))
        out.append(m.group(1) if m and m.group(1) else str(n))
    return out


def read_labels(path, column: str = "label", *, key: str = "name") -> Dict[str, str]:
    """``{item name: label}`` from a CSV (columns ``key`` and ``column``) or a GeoJSON
    (feature properties ``key`` and ``column``); rows with an empty label are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no label file at {str(path)!r}")
    rows: List[Mapping[str, Any]]
    if path.suffix.lower() in (".geojson", ".json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        feats = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
        rows = [f.get("properties") or {} for f in feats or []]
    else:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    if rows and (key not in rows[0] or column not in rows[0]):
        raise KeyError(f"{path.name} needs the columns {key!r} and {column!r}; it has {sorted(rows[0])}")
    return {str(r[key]): str(r[column]) for r in rows
            if r.get(key) not in (None, "") and r.get(column) not in (None, "")}


def resolve_labels(labels, names: Sequence[str]) -> List[Optional[str]]:
    """One label (or None: unlabelled) per item, from a sequence aligned with the items,
    a ``{name: label}`` mapping, or ``"names"`` (:func:`labels_from_names`)."""
    n = len(names)
    if isinstance(labels, str):
        if labels != "names":
            raise ValueError(f"labels must be a list, a {{name: label}} dict or 'names', got {labels!r}")
        return list(labels_from_names(names))
    if isinstance(labels, Mapping):
        unknown = [k for k in labels if k not in set(names)]
        if unknown and len(unknown) == len(labels):
            raise KeyError(f"none of the labelled names is an item of this export: {unknown[:5]}")
        return [None if labels.get(nm) in (None, "") else str(labels[nm]) for nm in names]
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries for {n} items")
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)
            for v in labels]


# -------------------------------------------------------------------- probes


@dataclass
class ProbeResult:
    """A probe's verdict: out-of-fold accuracy with its bootstrap interval, and the
    predictions behind it (``y_true``, ``y_pred`` for the ``names`` that took part)."""

    model: str
    method: str
    accuracy: float
    ci_low: float
    ci_high: float
    n: int
    classes: List[str]
    confusion: np.ndarray
    y_true: List[str]
    y_pred: List[str]
    names: List[str]
    folds: int
    k: Optional[int] = None
    majority: float = 0.0
    confidence: float = 0.95
    dropped: Dict[str, int] = field(default_factory=dict)

    @property
    def ci(self) -> Tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def summary(self) -> str:
        what = f"k-NN (k={self.k})" if self.method == "knn" else "logistic regression"
        return (f"{self.model}: {what} accuracy {self.accuracy:.1%} "
                f"({self.confidence:.0%} CI {self.ci_low:.1%}–{self.ci_high:.1%}), "
                f"{self.n} items, {len(self.classes)} classes, {self.folds}-fold stratified CV; "
                f"majority class {self.majority:.1%}")

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return f"<p>{escape(self.summary())}</p>"

    def plot(self, normalize: bool = False):
        """The confusion matrix as a figure."""
        return plot_confusion(self, normalize=normalize)


def _cv_plan(y: np.ndarray, folds: int, k: int) -> Tuple[int, int]:
    counts = np.unique(y, return_counts=True)[1]
    n_splits = int(max(2, min(folds, counts.min())))
    smallest_train = len(y) - int(math.ceil(len(y) / n_splits))
    return n_splits, int(max(1, min(k, smallest_train)))


def _classifier(method: str, k: int, seed: int):
    _require("sklearn", "analysis", "probe()")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))


def probe(source, labels, *, model: Optional[str] = None, method: str = "knn", folds: int = 5,
          k: int = 5, seed: int = 0, n_boot: int = 2000, confidence: float = 0.95) -> ProbeResult:
    """How well ``model``'s embeddings separate the labelled items.

    ``labels``: one per item (None/"" = unlabelled), a ``{name: label}`` mapping, or
    ``"names"`` (classes from the item names). ``method``: ``"knn"`` (k nearest
    neighbours, ``k=5``, Euclidean on standardised features) or ``"linear"`` (logistic
    regression on standardised features). Evaluation: stratified ``folds``-fold
    cross-validation (fewer folds when the smallest class is smaller, at least 2;
    classes with a single item are left out and reported in ``dropped``); the accuracy
    of the out-of-fold predictions, and a percentile bootstrap interval over items.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    for name, v, lo in (("folds", folds, 2), ("k", k, 1), ("n_boot", n_boot, 100)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x, names, model = embedding_matrix(source, model)
    y_all = resolve_labels(labels, names)
    finite = np.isfinite(x).all(axis=1)
    keep = [i for i in range(len(x)) if y_all[i] is not None and finite[i]]
    counts: Dict[str, int] = {}
    for i in keep:
        counts[y_all[i]] = counts.get(y_all[i], 0) + 1
    dropped = {c: n for c, n in counts.items() if n < 2}
    keep = [i for i in keep if y_all[i] not in dropped]
    classes = sorted({y_all[i] for i in keep})
    if len(classes) < 2:
        raise ValueError(f"a probe needs two or more classes with at least two labelled items "
                         f"each; got {counts or 'no labelled items with embeddings'}")
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    xs = x[keep].astype(np.float64)
    y = np.array([y_all[i] for i in keep])
    n_splits, k_used = _cv_plan(y, int(folds), int(k))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = cross_val_predict(_classifier(method, k_used, seed), xs, y, cv=cv)
    correct = (pred == y).astype(np.float64)
    rng = np.random.default_rng(seed)
    boot = correct[rng.integers(0, len(y), size=(int(n_boot), len(y)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    _, class_counts = np.unique(y, return_counts=True)
    return ProbeResult(
        model=model, method=method, accuracy=float(correct.mean()), ci_low=float(lo), ci_high=float(hi),
        n=len(y), classes=classes, confusion=confusion_matrix(y, pred, labels=classes),
        y_true=[str(v) for v in y], y_pred=[str(v) for v in pred], names=[names[i] for i in keep],
        folds=n_splits, k=k_used if method == "knn" else None,
        majority=float(class_counts.max() / len(y)), confidence=confidence, dropped=dropped)


@dataclass
class ProbeTable:
    """Probes of several models (and methods) on the same labelled items, side by side."""

    results: List[ProbeResult]

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def get(self, model: str, method: str = "knn") -> ProbeResult:
        for r in self.results:
            if r.model == model and r.method == method:
                return r
        raise KeyError(f"no probe of {model!r} with {method!r}")

    def to_rows(self) -> List[dict]:
        return [{"model": r.model, "method": r.method, "accuracy": r.accuracy, "ci_low": r.ci_low,
                 "ci_high": r.ci_high, "n": r.n, "classes": len(r.classes), "folds": r.folds}
                for r in self.results]

    def __str__(self) -> str:
        head = f"{'model':14s} {'method':7s} {'accuracy':>8s}  {'95% CI':>13s}  {'n':>4s} classes"
        lines = [head] + [f"{r.model:14s} {r.method:7s} {r.accuracy:8.1%}  "
                          f"{r.ci_low:6.1%}–{r.ci_high:6.1%}  {r.n:4d} {len(r.classes):7d}"
                          for r in self.results]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(r.model)}</td><td>{escape(r.method)}</td><td>{r.accuracy:.1%}</td>"
            f"<td>{r.ci_low:.1%} – {r.ci_high:.1%}</td><td>{r.n}</td><td>{len(r.classes)}</td>"
            f"<td>{r.folds}</td></tr>" for r in self.results)
        return ("<style>.rs-probe-table td, .rs-probe-table th {padding: 2px 12px 2px 0; text-align: left}</style>"
                "<table class='rs-probe-table'><tr><th>model</th><th>method</th><th>accuracy</th>"
                f"<th>95 % CI</th><th>n</th><th>classes</th><th>folds</th></tr>{rows}</table>")

    def plot(self):
        """Accuracy per model and method with the bootstrap intervals as error bars."""
        import matplotlib.pyplot as plt

        models = list(dict.fromkeys(r.model for r in self.results))
        methods = list(dict.fromkeys(r.method for r in self.results))
        fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(models) * len(methods) + 2), 3.8),
                               layout="constrained")
        plt.close(fig)
        width = 0.8 / len(methods)
        for j, meth in enumerate(methods):
            rs = [next((r for r in self.results if r.model == m and r.method == meth), None) for m in models]
            xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(models))]
            acc = [r.accuracy if r else np.nan for r in rs]
            err = [[(r.accuracy - r.ci_low) if r else 0 for r in rs], [(r.ci_high - r.accuracy) if r else 0 for r in rs]]
            ax.bar(xs, acc, width, yerr=err, capsize=4, label=meth)
        chance = max((r.majority for r in self.results), default=0)
        ax.axhline(chance, color="0.4", ls="--", lw=1, label="majority class")
        ax.set_xticks(range(len(models)), models, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("cross-validated accuracy", fontsize=10)
        ax.set_title("Probe accuracy (95 % bootstrap interval)", fontsize=11)
        ax.legend(fontsize=9, loc="lower right")
        return fig


def compare(source, labels, *, models: Optional[Sequence[str]] = None,
            methods: Sequence[str] = ("knn", "linear"), **kwargs) -> ProbeTable:
    """:func:`probe` for every model of an export (or ``models``) and each method."""
    res = _as_result(source)
    if res is None:
        raise TypeError("compare() needs an export (an ExportResult or a path); use probe() for an array")
    if models is None:
        models = [m for m, r in res.models.items() if r.status in ("ok", "partial") and r.embeddings is not None]
    return ProbeTable([probe(res, labels, model=m, method=meth, **kwargs)
                       for m in models for meth in methods])


def plot_confusion(result: ProbeResult, normalize: bool = False, ax=None):
    """The confusion matrix of a probe (true class by row, prediction by column)."""
    import matplotlib.pyplot as plt

    cm = np.asarray(result.confusion, dtype=np.float64)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    n = len(result.classes)
    if ax is None:
        side = max(4.0, 0.65 * n + 2.2)
        fig, ax = plt.subplots(figsize=(side + 0.8, side), layout="constrained")
        plt.close(fig)
    else:
        fig = ax.figure
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, shown.max()))
    for (i, j), v in np.ndenumerate(shown):
        ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=10,
                color="white" if v > (0.5 if normalize else shown.max() / 2) else "black")
    ax.set_xticks(range(n), result.classes, rotation=35, ha="right", fontsize=10)
    ax.set_yticks(range(n), result.classes, fontsize=10)
    ax.set_xlabel("predicted", fontsize=10)
    ax.set_ylabel("true", fontsize=10)
    what = f"k-NN k={result.k}" if result.method == "knn" else "logistic regression"
    ax.set_title(f"{result.model}, {what}: {result.accuracy:.0%} "
                 f"[{result.ci_low:.0%}, {result.ci_high:.0%}]", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


__all__ = ["METHODS", "SimilarityIndex", "SearchResult", "similarity_search", "cosine_similarity",
           "most_similar", "pooled", "embedding_matrix", "pick_model", "item_names",
           "labels_from_names", "read_labels", "resolve_labels", "probe", "compare",
           "ProbeResult", "ProbeTable", "plot_confusion"]
