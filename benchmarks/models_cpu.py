"""CPU throughput of the pretrained models: patches per second at batch 1 and batch 16.

Figures depend on the machine and on what else runs on it: on a shared machine run it
when it is quiet, and say so beside the numbers.

Each model runs at its published size with random weights (the speed does not depend
on the values), through the full ``embed_batch`` path: band selection, the published
preprocessing, the forward pass and pooling. No checkpoint is read or downloaded: the
randomly initialised network is placed in the model cache under an empty placeholder
file.

    .venv/bin/python benchmarks/models_cpu.py                      # every case, 2 threads
    .venv/bin/python benchmarks/models_cpu.py --models olmoearth clay terramind satmaepp
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

#: case -> (model, variant, patch side in pixels fed to the embedder, scale in metres, frames)
CASES = {
    "remoteclip": ("remoteclip", "vit_b32", 224, 10, None),
    "ssl4eo": ("ssl4eo", "resnet50_moco", 256, 10, None),
    "dofa": ("dofa", "base", 224, 10, None),
    "scalemae": ("scalemae", "vitl16_fmow_rgb", 224, 10, None),
    "satmae": ("satmae", "vitl16_rgb", 224, 10, None),
    "prithvi": ("prithvi", "300m", 224, 30, None),
    "olmoearth": ("olmoearth", "base_v1_2", 128, 10, None),
    "olmoearth_t12": ("olmoearth", "base_v1_2", 64, 10, 12),
    "clay": ("clay", "v1.5", 256, 10, None),
    "terramind": ("terramind", "base", 224, 10, None),
    "satmaepp": ("satmaepp", "vitl16_rgb", 224, 10, None),
    "galileo": ("galileo", "base", 64, 10, None),
    "galileo_t12": ("galileo", "base", 32, 10, 12),
}
#: Galileo's encoder is built from the checkpoint's config.json; the ViT-B shape of the
#: paper's Galileo-Base (mlp_ratio 4 assumed) stands in for it here
GALILEO_BASE = {"embedding_size": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4,
                "max_sequence_length": 24, "max_patch_size": 8}


def _embedder(name: str, variant: str, folder: Path):
    import torch
    cls = embedder_class(name)
    ck = cls.catalog.get(variant)
    placeholder = folder / ck.filename
    placeholder.parent.mkdir(parents=True, exist_ok=True)
    placeholder.write_bytes(b"")
    torch.manual_seed(0)
    if name == "olmoearth":  # built by the official package from its model size, as config.json would
        from olmoearth_pretrain_minimal import OlmoEarthPretrain_v1
        (placeholder.parent / "config.json").write_text("{}")
        size, version = variant.split("_v")[0], "v" + variant.split("_v")[1].replace("_", ".")
        net = OlmoEarthPretrain_v1(model_size=size, model_version=version,
                                   supported_modality_names=["sentinel2_l2a", "sentinel1", "landsat"]).model
    elif name == "galileo":
        from rs_embed.models.galileo import _encoder as galileo_encoder
        (placeholder.parent / "config.json").write_text(json.dumps({"model": {"encoder": GALILEO_BASE}}))
        net = galileo_encoder(GALILEO_BASE)
    else:
        net = cls._build(None, ck)
    net.eval()
    if name == "remoteclip":
        net = net.visual  # the embedder keeps only the vision tower
    params = sum(p.numel() for p in net.parameters())
    W.cached_model((name, variant, "cpu", str(placeholder)), lambda: (net, {}))
    return cls(variant=variant, device="cpu", weights=str(placeholder)), params


def _rate(emb, sensor, patches, repeats: int) -> float:
    ctx = [{"center": (8.5, 47.3), "dates": ["2022-%02d-15" % (1 + i % 12) for i in range(
        patches[0].shape[0] if patches[0].ndim == 4 else 1)]} for _ in patches]
    emb.embed_batch(patches, sensor=sensor, output=OutputSpec.pooled(), contexts=ctx)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        emb.embed_batch(patches, sensor=sensor, output=OutputSpec.pooled(), contexts=ctx)
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
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--batch", type=int, default=16, help="size of the batched run (default 16)")
    args = ap.parse_args(argv)
    if args.products:
        rows = _products(args.repeats)
        if args.json:
            Path(args.json).write_text(json.dumps({"products": rows}, indent=2))
        if not args.models:
            return 0

    import torch
    torch.set_num_threads(args.threads)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'case':<14} {'variant':<16} {'params':>8} {'input':>14} {'b=1 /s':>8} {f'b={args.batch} /s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.models:
            name, variant, side, scale, frames = CASES[case]
            emb, params = _embedder(name, variant, Path(tmp) / case)
            bands = emb.checkpoint.bands
            sensor = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", tuple(bands), scale_m=scale)
            rng = np.random.default_rng(0)
            shape = ((frames,) if frames else ()) + (len(bands), side, side)
            patches = [(rng.random(shape) * 4000).astype(np.float32) for _ in range(args.batch)]
            r1 = _rate(emb, sensor, patches[:1], args.repeats)
            rb = _rate(emb, sensor, patches, 1)
            shown = f"{frames or 1}x{len(bands)}x{side}"
            rows.append({"case": case, "model": name, "variant": variant, "params_m": round(params / 1e6, 1),
                         "input": shown, "batch1_per_s": round(r1, 3), f"batch{args.batch}_per_s": round(rb, 3)})
            print(f"{case:<14} {variant:<16} {params / 1e6:>7.1f}M {shown:>14} {r1:>8.2f} {rb:>8.2f}", flush=True)
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
