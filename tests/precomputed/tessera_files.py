"""Small TESSERA tiles in the published layout (int8 ``.npy`` + float32 scales + landmask
GeoTIFF, GeoParquet registries), written with geotessera's own path functions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_tile(root: Path, version: str, year: int, lon: float, lat: float, *, res: float = 200.0,
               seed: int = 0, zero_scale_box=None):
    """One tile centred at (lon, lat) in its own UTM zone; pixels well outside its 0.1
    degree box hold zero vectors, as nothing was computed there. ``zero_scale_box`` (lon0, lat0,
    lon1, lat1) zeroes the scales inside it (a published nodata patch)."""
    import rasterio
    from geotessera import registry as R
    from pyproj import Transformer

    from rs_embed.geometry import utm_epsg

    crs = f"EPSG:{utm_epsg(lon, lat)}"
    w0, s0, e0, n0 = R.tile_to_bounds(lon, lat)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    xmin, ymin, xmax, ymax = fwd.transform_bounds(w0, s0, e0, n0, densify_pts=21)
    x0, y1 = np.floor(xmin / res) * res, np.ceil(ymax / res) * res
    width, height = int(np.ceil((xmax - x0) / res)), int(np.ceil((y1 - ymin) / res))
    transform = rasterio.transform.from_origin(x0, y1, res, res)
    rng = np.random.default_rng(seed)
    quant = rng.integers(-127, 128, size=(height, width, 128), dtype=np.int8)
    scales = rng.uniform(0.01, 0.05, size=(height, width)).astype(np.float32)
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    plon, plat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    plon, plat = np.asarray(plon).reshape(height, width), np.asarray(plat).reshape(height, width)
    m = 2 * res / 111_000  # two pixels of margin: every point of the box lands on a computed pixel
    outside = (plon < w0 - m) | (plon >= e0 + m) | (plat < s0 - m) | (plat >= n0 + m)
    quant[outside] = 0
    if zero_scale_box is not None:
        a, b, c, d = zero_scale_box
        scales[(plon >= a) & (plon < c) & (plat >= b) & (plat < d)] = 0.0
    emb_rel, sc_rel = R.tile_to_embedding_paths(lon, lat, year)
    base = root / version / R.EMBEDDINGS_DIR_NAME
    (base / emb_rel).parent.mkdir(parents=True, exist_ok=True)
    np.save(base / emb_rel, quant)
    np.save(base / sc_rel, scales)
    lm = root / version / R.LANDMASKS_DIR_NAME / R.tile_to_landmask_filename(lon, lat)
    lm.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(lm, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                       crs=crs, transform=transform) as dst:
        dst.write((~outside).astype(np.uint8), 1)
    return {"lon": lon, "lat": lat, "year": year, "hash": _sha(base / emb_rel),
            "scales_hash": _sha(base / sc_rel), "file_size": (base / emb_rel).stat().st_size,
            "landmask_hash": _sha(lm), "landmask_size": lm.stat().st_size,
            "quant": quant, "scales": scales, "crs": crs, "transform": transform}


def write_registries(root: Path, version: str, tiles) -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import Point

    rows = [{k: t[k] for k in ("lon", "lat", "year", "hash", "scales_hash", "file_size")} for t in tiles]
    gdf = gpd.GeoDataFrame(rows, geometry=[Point(t["lon"], t["lat"]) for t in tiles], crs="EPSG:4326")
    gdf.to_parquet(root / version / "registry.parquet")
    seen = {}
    for t in tiles:
        seen[(t["lon"], t["lat"])] = {"lon": t["lon"], "lat": t["lat"], "hash": t["landmask_hash"],
                                      "file_size": t["landmask_size"]}
    pd.DataFrame(list(seen.values())).to_parquet(root / version / "landmasks.parquet")


def expected_at(tiles, lon: float, lat: float) -> np.ndarray:
    """The published value at (lon, lat): the tile whose box holds it, nearest pixel,
    dequantised by geotessera; NaN where no tile or a zero vector."""
    import rasterio
    from geotessera import dequantize_embedding
    from geotessera import registry as R
    from pyproj import Transformer

    for t in tiles:
        w0, s0, e0, n0 = R.tile_to_bounds(t["lon"], t["lat"])
        if w0 <= lon < e0 and s0 <= lat < n0:
            x, y = Transformer.from_crs("EPSG:4326", t["crs"], always_xy=True).transform(lon, lat)
            r, c = rasterio.transform.rowcol(t["transform"], x, y)
            v = dequantize_embedding(t["quant"][r, c][None, None], t["scales"][r, c][None, None])[0, 0]
            return np.full(128, np.nan, np.float32) if not np.any(v) else v.astype(np.float32)
    return np.full(128, np.nan, np.float32)
