"""Cosine similarity search: exact answers checked against scikit-learn, examples-based
queries, failed points never matched, and the approximate index agreeing with the exact one."""

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

from rs_embed import analysis as A


def clustered(n=2000, d=64, k=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, d))).astype(np.float32), labels


def test_exact_search_matches_scikit_learn():
    x, _ = clustered()
    index = A.SimilarityIndex(x)
    ref = sk_cosine(x.astype(np.float64))
    for q in (0, 17, 1999):
        hits = index.search(q, 15)
        order = [i for i in np.argsort(-ref[q], kind="stable") if i != q][:15]
        assert hits.indices.tolist() == order
        assert hits.scores == pytest.approx(ref[q, order], abs=1e-5)
        assert list(hits.scores) == sorted(hits.scores, reverse=True)
    assert index.scores(5) == pytest.approx(ref[5], abs=1e-5)


def test_failed_rows_are_never_returned_and_bad_queries_say_why():
    x, _ = clustered(200)
    x[[3, 50]] = np.nan
    x[60] = 0.0
    index = A.SimilarityIndex(x, names=[f"p{i}" for i in range(200)])
    hits = index.search("p1", 199)
    assert len(hits) == 196 and not {3, 50, 60, 1} & set(hits.indices.tolist())
    assert np.isnan(index.scores(1)[[3, 50, 60]]).all()
    with pytest.raises(ValueError, match="no embedding"):
        index.search(3)
    with pytest.raises(KeyError, match="no item named"):
        index.search("nope")
    with pytest.raises(ValueError, match="k must be"):
        index.search(1, 0)
    with pytest.raises(ValueError, match="not both"):
        index.search(1, positives=[2])


def test_examples_query_is_mean_of_positives_minus_negatives():
    x, labels = clustered(600, k=6)
    index = A.SimilarityIndex(x)
    pos = np.flatnonzero(labels == 2)[:3].tolist()
    neg = np.flatnonzero(labels == 4)[:2].tolist()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = unit[pos].mean(0) - unit[neg].mean(0)
    assert index.query_vector(positives=pos, negatives=neg) == pytest.approx(q / np.linalg.norm(q), abs=1e-6)
    hits = index.search(positives=pos, negatives=neg, k=20)
    assert not set(pos + neg) & set(hits.indices.tolist())  # the examples are not answers
    assert (labels[hits.indices] == 2).mean() == 1.0
    with pytest.raises(ValueError, match="zero"):
        index.search(positives=[pos[0]], negatives=[pos[0]])


def test_hnsw_index_agrees_with_the_exact_search():
    x, _ = clustered(3000)
    exact = A.SimilarityIndex(x)
    ann = A.SimilarityIndex(x, method="hnsw")
    recall = np.mean([len(set(exact.search(q, 10).indices) & set(ann.search(q, 10).indices)) / 10
                      for q in range(0, 3000, 150)])
    assert recall >= 0.95
    hits = ann.search(7, 10)
    assert 7 not in hits.indices and hits.scores == pytest.approx(exact.scores(7)[hits.indices], abs=1e-5)


def test_search_on_an_export(sample_export):
    hits = A.similarity_search(sample_export, "field_1", 5, model="rcf")
    assert hits.names[0].startswith("field") and "field_1" not in hits.names
    assert [r["rank"] for r in hits.to_rows()] == [1, 2, 3, 4, 5]
    grid = np.random.default_rng(0).normal(size=(4, 8, 3, 3))
    assert A.pooled(grid) == pytest.approx(grid.mean(axis=(2, 3)))
    assert [h[0] for h in A.most_similar(grid, 0, k=2)] == A.SimilarityIndex(grid).search(0, 2).indices.tolist()
