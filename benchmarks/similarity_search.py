"""Similarity search speed: 100k x 512 on one CPU core, exact (numpy) and approximate (faiss HNSW).

The exact path must answer a query in under 100 ms on one core; the approximate index
is for much larger sets, and its answers are compared with the exact ones (recall@k).
BLAS and faiss are held to one thread. Run: ``python benchmarks/similarity_search.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--no-ann", action="store_true", help="skip the faiss HNSW index")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from rs_embed.analysis import SimilarityIndex

    rng = np.random.default_rng(0)
    # clustered vectors, like embeddings of places: 200 centres plus noise
    centres = rng.normal(size=(200, args.dim)).astype(np.float32)
    x = centres[rng.integers(0, 200, args.n)] + 0.5 * rng.normal(size=(args.n, args.dim)).astype(np.float32)
    x[rng.choice(args.n, 100, replace=False)] = np.nan  # failed points are never returned
    queries = rng.choice(np.flatnonzero(np.isfinite(x).all(axis=1)), args.queries, replace=False)

    with threadpool_limits(limits=1):
        t0 = time.perf_counter()
        exact = SimilarityIndex(x)
        build_exact = time.perf_counter() - t0
        times, answers = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = exact.search(int(q), args.k)
            times.append(time.perf_counter() - t0)
            answers.append(set(hits.indices.tolist()))
        print(f"{args.n} x {args.dim} float32, k={args.k}, one core")
        print(f"exact (numpy):  build {build_exact * 1000:7.1f} ms, query median "
              f"{statistics.median(times) * 1000:6.1f} ms, p95 {np.percentile(times, 95) * 1000:6.1f} ms")
        pos = list(queries[:3])
        t0 = time.perf_counter()
        exact.search(positives=pos, negatives=[int(queries[3])], k=args.k)
        print(f"exact, 3 positives - 1 negative: {(time.perf_counter() - t0) * 1000:6.1f} ms")

        if not args.no_ann:
            import faiss

            faiss.omp_set_num_threads(1)
            t0 = time.perf_counter()
            ann = SimilarityIndex(x, method="hnsw")
            build_ann = time.perf_counter() - t0
            times, recall = [], []
            for q, truth in zip(queries, answers):
                t0 = time.perf_counter()
                hits = ann.search(int(q), args.k)
                times.append(time.perf_counter() - t0)
                recall.append(len(truth & set(hits.indices.tolist())) / args.k)
            print(f"hnsw (faiss):   build {build_ann:7.1f} s,  query median "
                  f"{statistics.median(times) * 1000:6.2f} ms, p95 {np.percentile(times, 95) * 1000:6.2f} ms, "
                  f"recall@{args.k} {np.mean(recall):.3f}")


if __name__ == "__main__":
    main()
