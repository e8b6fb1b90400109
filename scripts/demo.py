#!/usr/bin/env python
"""Export embeddings of the embedded Sentinel-2 sample with the two weight-free models.

    python scripts/demo.py --out demo_out

No network, no account: ``backend="local"`` reads the scene that ships with rs_embed.
Writes ``<out>/sample_embeddings.npz`` (+ ``.json`` manifest, one row per sample point,
models ``rcf`` and ``spectral``), reads it back with ``load_export`` and prints a short
summary, including how often a point's nearest neighbour in embedding space has the
same land-cover label (a quick sign that the embeddings mean something).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def nearest_neighbour_agreement(emb: np.ndarray, labels) -> float:
    """Leave-one-out 1-NN label agreement with cosine similarity on standardised features."""
    x = (emb - emb.mean(axis=0)) / (emb.std(axis=0) + 1e-6)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(axis=1)
    return float(np.mean([labels[i] == labels[j] for i, j in enumerate(nn)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Export the embedded sample with rcf and spectral (offline).")
    ap.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    ap.add_argument("--buffer-m", type=float, default=500.0, help="half side of each square, metres (default 500)")
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    args = ap.parse_args(argv)

    import rs_embed
    from rs_embed import export_batch, load_export

    points = rs_embed.sample.points(buffer_m=args.buffer_m)
    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, "sample_embeddings")
    t0 = time.perf_counter()
    manifest = export_batch(
        spatials=[p.spatial for p in points],
        temporal=rs_embed.sample.TEMPORAL,
        models=["rcf", "spectral"],
        out=target,
        layout="combined",
        backend="local",
        show_progress=args.progress,
    )
    dt = time.perf_counter() - t0
    result = load_export(manifest["npz_path"], inputs=True)
    labels = [p.label for p in points]
    print(f"exported {result.n_items} sample points x {len(result.models)} models in {dt:.1f}s "
          f"(status: {result.status})")
    print(f"  arrays:   {os.path.abspath(manifest['npz_path'])}")
    print(f"  manifest: {os.path.abspath(manifest['manifest_path'])}")
    for name, model in result.models.items():
        emb = result.embedding(name)
        agree = nearest_neighbour_agreement(emb, labels)
        print(f"  {name:9s} embeddings {tuple(emb.shape)}, inputs {tuple(model.inputs.shape)}, "
              f"nearest neighbour has the same label for {agree:.0%} of points")
    counts = {lab: labels.count(lab) for lab in sorted(set(labels))}
    print("  labels:   " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("read it back with:  rs_embed.load_export(%r)" % manifest["npz_path"])
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
