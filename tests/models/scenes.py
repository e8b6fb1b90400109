"""Small dated Sentinel-2 scenes on disk (one GeoTIFF per band, dates in the file names),
for time-series tests through the real local provider."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import rasterio
from affine import Affine

from rs_embed import PointBuffer
from rs_embed.geometry import transformer

UTM = "EPSG:32618"
X0, Y0 = 500_000.0, 4_400_000.0  # top-left corner of every scene (UTM 18N, ~39.7 N)


def write_scenes(folder: Path, dates: Sequence[str], bands: Sequence[str], *, size: int = 96,
                 seed: int = 0) -> Dict[str, np.ndarray]:
    """``S2_<date>_<band>.tif`` for every date; returns the DN written, per date ``(C, H, W)``."""
    rng = np.random.default_rng(seed)
    out = {}
    for day in dates:
        stack = (rng.random((len(bands), size, size)) * 4000 + 200).astype("uint16")
        for band, data in zip(bands, stack):
            path = Path(folder) / f"S2_{day.replace('-', '')}_{band}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1,
                               dtype="uint16", crs=UTM, nodata=0,
                               transform=Affine(10.0, 0, X0, 0, -10.0, Y0)) as dst:
                dst.write(data, 1)
        out[day] = stack.astype(np.float32)
    return out


def centre_roi(size: int = 96, buffer_m: float = 160.0) -> PointBuffer:
    """A square ROI in the middle of the scenes."""
    x, y = X0 + size * 5.0, Y0 - size * 5.0
    lon, lat = transformer(UTM, "EPSG:4326").transform(x, y)
    return PointBuffer(lon, lat, buffer_m)
