"""CPU throughput of the pretrained models: patches per second at batch 1 and batch 16.

Each model runs at its published size with random weights (the speed does not depend
on the values), through the full ``embed_batch`` path: band selection, the published
preprocessing, the forward pass and pooling. No checkpoint is read or downloaded: the
randomly initialised network is placed in the model cache under an empty placeholder
file.

    .venv-models/bin/python benchmarks/models_cpu.py               # all six, about 4 min on 2 idle cores
    .venv-models/bin/python benchmarks/models_cpu.py --models ssl4eo remoteclip --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rs_embed.models import embedder_class, weights as W  # noqa: E402
from rs_embed.specs import OutputSpec, SensorSpec  # noqa: E402

#: model -> (variant, patch side in pixels fed to the embedder, scale in metres)
CASES = {
    "remoteclip": ("vit_b32", 224, 10),
    "ssl4eo": ("resnet50_moco", 256, 10),
    "dofa": ("base", 224, 10),
    "scalemae": ("vitl16_fmow_rgb", 224, 10),
    "satmae": ("vitl16_rgb", 224, 10),
    "prithvi": ("300m", 224, 30),
}


def _embedder(name: str, variant: str, folder: Path):
    import torch
    cls = embedder_class(name)
    ck = cls.catalog.get(variant)
    placeholder = folder / ck.filename
    placeholder.write_bytes(b"")
    torch.manual_seed(0)
    net = cls._build(None, ck)
    net.eval()
    if name == "remoteclip":
        net = net.visual  # the embedder keeps only the vision tower
    params = sum(p.numel() for p in net.parameters())
    W.cached_model((name, variant, "cpu", str(placeholder)), lambda: (net, {}))
    return cls(variant=variant, device="cpu", weights=str(placeholder)), params


def _rate(emb, sensor, patches, repeats: int) -> float:
    emb.embed_batch(patches, sensor=sensor, output=OutputSpec.pooled())  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        emb.embed_batch(patches, sensor=sensor, output=OutputSpec.pooled())
    return len(patches) * repeats / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3, help="timed runs at batch 1 (batch 16 runs once)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    import torch
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'model':<11} {'variant':<16} {'params':>8} {'b=1 /s':>8} {'b=16 /s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            variant, side, scale = CASES[name]
            emb, params = _embedder(name, variant, Path(tmp))
            bands = emb.describe()["inputs"]["bands"] if name != "satmae" else ["B4", "B3", "B2"]
            sensor = SensorSpec("bench", tuple(bands), scale_m=scale)
            rng = np.random.default_rng(0)
            patches = [(rng.random((len(bands), side, side)) * 4000).astype(np.float32) for _ in range(16)]
            r1 = _rate(emb, sensor, patches[:1], args.repeats)
            r16 = _rate(emb, sensor, patches, 1)
            rows.append({"model": name, "variant": variant, "params_m": round(params / 1e6, 1),
                         "patch_px": side, "batch1_per_s": round(r1, 3), "batch16_per_s": round(r16, 3)})
            print(f"{name:<11} {variant:<16} {params / 1e6:>7.1f}M {r1:>8.2f} {r16:>8.2f}", flush=True)
            W.clear_model_cache()
            del emb
            gc.collect()
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
