"""CPU throughput of the pretrained models: patches per second at batch 1 and batch 16.

Each model runs at its published size with random weights (the speed does not depend
on the values), through the full ``embed_batch`` path: band selection, the published
preprocessing, the forward pass and pooling. No checkpoint is read or downloaded: the
randomly initialised network is placed in the model cache under an empty placeholder
file.

    .venv-models/bin/python benchmarks/models_cpu.py               # all six, about 4 min on 2 idle cores
    .venv-models/bin/python benchmarks/models_cpu.py --models ssl4eo remoteclip --repeats 5
    .venv/bin/python benchmarks/models_cpu.py --models --products   # precomputed products only

``--products`` times the precomputed products instead, end to end through
``get_embedding`` on files in their published formats, built in a temporary folder:
one full-size TESSERA tile (about 1,100 x 1,100 px x 128, int8) read from geotessera's
local tile folder, a 40 x 40-cell, 768-band Copernicus-Embed map, and a 20,000-row
Major TOM GeoParquet (1,152-d, as SigLIP's).
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


def _products(repeats: int) -> list:
    """Seconds per ROI for the precomputed products (see the module docstring)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "precomputed"))
    import rasterio
    from rasterio.transform import from_origin
    from tessera_files import write_registries, write_tile

    import rs_embed
    from rs_embed import BBox, OutputSpec as O, PointBuffer, TemporalSpec, providers
    from rs_embed.providers import copernicus_embed as cp, embedding_tables as et, tessera as tp

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiles = [write_tile(root / "mirror", "v1", 2024, 0.15, 52.05, res=10.0, seed=0)]
        write_registries(root / "mirror", "v1", tiles)
        local = root / "mirror" / "v1"   # geotessera's tile folder layout, already "downloaded"
        prov = tp.TesseraProvider(base_url="http://127.0.0.1:9", embeddings_dir=str(local),
                                  cache_dir=str(root / "reg"))
        prov._gt = __import__("geotessera").GeoTessera(
            dataset_version="v1", embeddings_dir=str(local), registry_dir=str(local),
            cache_dir=str(root / "reg"))
        rng = np.random.default_rng(0)
        data = rng.normal(size=(768, 40, 40)).astype(np.float32)
        with rasterio.open(root / "cop.tif", "w", driver="GTiff", width=40, height=40, count=768,
                           dtype="float32", crs="EPSG:4326", transform=from_origin(-0.125, 55.125, .25, .25),
                           interleave="pixel", blockysize=1) as dst:
            dst.write(data)
        import geopandas as gpd
        n = 20_000
        lat = np.sort(rng.uniform(50, 55, n))
        lon = rng.uniform(0, 1, n)
        gpd.GeoDataFrame({"unique_id": np.arange(n).astype(str),
                          "embedding": list(rng.normal(size=(n, 1152)).astype(np.float32)),
                          "centre_lat": lat, "centre_lon": lon},
                         geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_parquet(
            root / "mt.parquet", row_group_size=500)
        made = {"tessera": lambda: prov, "copernicus_embed": lambda: cp.CopernicusEmbedProvider(str(root / "cop.tif")),
                "majortom": lambda: et.EmbeddingTableProvider(et.MAJOR_TOM, [str(root / "mt.parquet")])}
        for k, f in made.items():
            providers.register_provider(k, f)
        y = TemporalSpec.year(2024)
        cases = [("tessera", "point 1 km, 100 x 100 px", PointBuffer(0.15, 52.05, 500), y, O.pooled()),
                 ("tessera", "bbox 5 km, grid", BBox(0.12, 52.03, 0.19, 52.07), y, O.grid()),
                 ("copernicus", "point 2 km", PointBuffer(5.0, 50.0, 1000), TemporalSpec.year(2021), O.pooled()),
                 ("majortom", "point 2 km of 20k rows", PointBuffer(0.5, 52.5, 1000), None, O.pooled())]
        for model, what, roi, t, out in cases:
            rs_embed.get_embedding(model, spatial=roi, temporal=t, output=out)  # warm: registry, file handles
            t0 = time.perf_counter()
            for _ in range(repeats):
                e = rs_embed.get_embedding(model, spatial=roi, temporal=t, output=out)
            dt = (time.perf_counter() - t0) / repeats
            rows.append({"model": model, "case": what, "s_per_roi": round(dt, 4), "shape": list(e.data.shape)})
            print(f"{model:<11} {what:<28} {dt * 1000:>8.1f} ms/ROI  {tuple(e.data.shape)}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3, help="timed runs at batch 1 (batch 16 runs once)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--products", action="store_true", help="time the precomputed products")
    args = ap.parse_args(argv)
    if args.products:
        rows = _products(args.repeats)
        if args.json:
            Path(args.json).write_text(json.dumps({"products": rows}, indent=2))
        if not args.models:
            return 0

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
