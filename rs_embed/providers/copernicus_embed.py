"""The ``copernicus_embed`` provider: Copernicus-Embed-025, one 768-d vector per 0.25 degree cell.

Wang et al., "Towards a Unified Copernicus Foundation Model for Earth Vision",
arXiv:2503.11849. Copernicus-Embed-025 gives each 0.25 x 0.25 degree cell of the globe
one embedding, aggregated by Copernicus-FM over every modality of Copernicus-Pretrain,
published as one GeoTIFF (``embed_map_310k.tif``: 721 x 1440 cells, 768 bands,
EPSG:4326; empty ocean cells filled with 0).

- Reads only the cells under the ROI: a windowed read, which GDAL turns into HTTP
  Range requests when the file is a URL (``/vsicurl``), so the 3 GB map is never
  downloaded whole.
- The patch is on the product's own grid (``EPSG:4326``, 0.25 degree): resampling
  28 km cells to a 10 m UTM grid would only repeat them. Each cell's share of the
  ROI is kept in ``meta["cell_weights"]``.
- Nodata is NaN: cells whose 768 values are all 0 (the product's ocean fill) or
  the file's declared nodata.

Where it reads from: ``url`` (``RS_EMBED_COPERNICUS_EMBED_URL``: a local path or an
http(s) URL), by default the copy TorchGeo's ``CopernicusEmbed`` dataset downloads.

Time: each HTTP request gets the fetch context's timeout (``GDAL_HTTP_TIMEOUT``) and
GDAL does not retry (``GDAL_HTTP_MAX_RETRY=0``): the export engine's one retry layer
decides, within ``fetch_timeout_s``.
"""

from __future__ import annotations

import os
import threading
from typing import Optional, Tuple

import numpy as np

from ..errors import ProviderError
from ..geometry import Grid, roi_grid
from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .base import Patch, Provider, current_fetch

COLLECTION = "COPERNICUS_EMBED/025"
DIM = 768
BANDS: Tuple[str, ...] = tuple(f"E{i:03d}" for i in range(DIM))
CELL_DEG = 0.25
URL_ENV = "RS_EMBED_COPERNICUS_EMBED_URL"
#: where TorchGeo's CopernicusEmbed dataset downloads the map (and its published sha256)
DEFAULT_URL = ("https://hf.co/datasets/torchgeo/copernicus_embed/resolve/"
               "435b4a7bdce6f6fdbf4272f9d6e54f2604f35fdb/embed_map_310k.tif")
SHA256 = "38f6fd15b20153f7b3ba2d7b38fb9ef56b751dfcb42e17cc1b02aad1580a59ad"


class CopernicusEmbedProvider(Provider):
    """Copernicus-Embed-025 cells under an ROI (see the module docstring)."""

    name = "copernicus_embed"

    def __init__(self, url: Optional[str] = None):
        self.url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        self._lock = threading.Lock()

    def settings(self) -> dict:
        return {"url": self.url}

    def serves(self, sensor: SensorSpec) -> bool:
        return sensor.collection.upper() == COLLECTION

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        if not self.serves(sensor):
            return (f"the copernicus_embed provider serves only {COLLECTION!r}, not collection "
                    f"{sensor.collection!r}")
        if tuple(sensor.bands) != BANDS:
            return (f"copernicus_embed serves its {DIM} bands E000..E767 in order; the sensor lists "
                    f"{list(sensor.bands)[:4]}...")
        return None

    def coverage(self) -> str:
        return f"Copernicus-Embed-025 (768-d per 0.25 degree cell) from {self.url}"

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> Patch:
        import rasterio
        from rasterio.windows import Window, from_bounds

        why = self.check_sensor(sensor)
        if why:
            raise ProviderError(why, transient=False)
        ctx = current_fetch()
        # the ROI's own bounds (a rectangle, not its enclosing square): the cells it touches
        minlon, minlat, maxlon, maxlat = roi_grid(spatial, 10).roi_grid().lonlat_bounds()
        timeout = ctx.request_timeout()
        try:
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
                              CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff",
                              GDAL_HTTP_TIMEOUT=str(max(1, int(np.ceil(timeout)))),
                              GDAL_HTTP_CONNECTTIMEOUT=str(max(1, int(np.ceil(min(timeout, 10.0))))),
                              GDAL_HTTP_MAX_RETRY="0"), rasterio.open(self.url) as src:
                if src.count != DIM:
                    raise ProviderError(f"{self.url} has {src.count} bands, not Copernicus-Embed's {DIM}")
                win = from_bounds(minlon, minlat, maxlon, maxlat, transform=src.transform)
                r0, c0 = max(int(np.floor(win.row_off)), 0), max(int(np.floor(win.col_off)), 0)
                r1 = min(int(np.ceil(win.row_off + win.height)), src.height)
                c1 = min(int(np.ceil(win.col_off + win.width)), src.width)
                if r1 <= r0 or c1 <= c0:
                    raise ProviderError(f"copernicus_embed: the ROI (lon {minlon:.3f}..{maxlon:.3f}, lat "
                                        f"{minlat:.3f}..{maxlat:.3f}) lies outside {self.url}")
                window = Window(c0, r0, c1 - c0, r1 - r0)
                ctx.check()
                data = src.read(window=window).astype(np.float32)
                transform = src.window_transform(window)
                crs = src.crs.to_string() if src.crs else "EPSG:4326"
                nodata = src.nodata
        except ProviderError:  # FetchTimeout and FetchCancelled included
            raise
        except Exception as exc:  # rasterio/GDAL: file missing, HTTP error
            raise ProviderError(f"copernicus_embed: cannot read {self.url}: {type(exc).__name__}: {exc}; "
                                f"set {URL_ENV} to a local copy or a reachable URL",
                                transient=str(self.url).startswith("http")) from exc
        invalid = ~np.isfinite(data).all(axis=0) | (data == 0).all(axis=0)
        if nodata is not None and np.isfinite(nodata):
            invalid |= (data == nodata).all(axis=0)
        data[:, invalid] = np.nan
        weights = _overlap(transform, data.shape[1], data.shape[2], (minlon, minlat, maxlon, maxlat))
        grid = Grid(crs, tuple(transform)[:6], data.shape[2], data.shape[1])
        meta = {"source": self.url, "product": "Copernicus-Embed-025", "cell_deg": CELL_DEG,
                "cell_weights": weights.round(6).tolist(), "nodata": "NaN",
                "nodata_fraction": float(invalid.mean()), "window": [r0, c0, r1 - r0, c1 - c0],
                "temporal": None}
        return Patch(data=data, bands=BANDS, grid=grid, meta=meta)


def _overlap(transform, h: int, w: int, bounds) -> np.ndarray:
    """Share of each cell's area (in degrees) that lies inside ``bounds``, ``(h, w)``."""
    minlon, minlat, maxlon, maxlat = bounds
    a, _, c, _, e, f = tuple(transform)[:6]
    x0 = c + a * np.arange(w)
    y0 = f + e * np.arange(h)
    dx = np.clip(np.minimum(x0 + a, maxlon) - np.maximum(x0, minlon), 0, None)
    top, bottom = y0, y0 + e
    dy = np.clip(np.minimum(top, maxlat) - np.maximum(bottom, minlat), 0, None)
    return np.outer(dy, dx) / abs(a * e)


__all__ = ["CopernicusEmbedProvider", "BANDS", "DIM", "COLLECTION", "DEFAULT_URL"]
