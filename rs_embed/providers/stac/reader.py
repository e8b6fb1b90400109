"""Reading the ROI's window of one remote COG onto the ROI's grid.

Only the window the grid needs is read (plus the resampling kernel's margin), so GDAL
fetches a few internal tiles with HTTP range requests instead of the file. When the
grid is coarser than the file by a factor of two or more, the read comes from the
coarsest overview that is still at least as fine as the grid (what GDAL's warper does
with ``-ovr AUTO`` and what Earth Engine's pyramids do), which divides the bytes read
by the square of the factor. GDAL options are set per read with ``rasterio.Env``,
never process-wide, so several providers with different settings can run side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ...errors import ProviderError
from ...geometry import Grid, transformer
from ..local import _ignore_spurious_mem_warning  # rasterio's in-memory warp quirk, once
from .faults import RetryPolicy, looks_transient, status_in, status_transient

#: COG access settings every read uses (GDAL configuration options)
COG_OPTIONS: Dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",   # no directory listing per open
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.vrt,.jp2,.JP2",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",       # header and tile index in one request
    "VSI_CACHE": "TRUE",
    "GDAL_NUM_THREADS": "1",
}


@dataclass
class ReadStats:
    """What one band read cost."""

    pixels: int = 0
    overview_level: Optional[int] = None   # None: full resolution
    source_resolution: float = 0.0


def gdal_path(href: str) -> str:
    """The GDAL path of an asset href (``https://`` -> ``/vsicurl/``, ``s3://`` -> ``/vsis3/``)."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("gs://"):
        return "/vsigs/" + href[len("gs://"):]
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


def _grid_bounds_in(crs: str, grid: Grid) -> Tuple[float, float, float, float]:
    if crs == grid.crs:
        return grid.bounds
    return transformer(grid.crs, crs).transform_bounds(*grid.bounds, densify_pts=21)


def _window(transform, width: int, height: int, bounds, pad: int):
    """(col, row, w, h) of the pixels of a raster that cover ``bounds``, padded; None if none."""
    a, b, c, d, e, f = tuple(transform)[:6]
    det = a * e - b * d
    left, bottom, right, top = bounds
    cols, rows = [], []
    for x, y in ((left, top), (right, top), (left, bottom), (right, bottom)):
        cols.append((e * (x - c) - b * (y - f)) / det)
        rows.append((a * (y - f) - d * (x - c)) / det)
    c0 = max(0, int(math.floor(min(cols))) - pad)
    r0 = max(0, int(math.floor(min(rows))) - pad)
    c1 = min(width, int(math.ceil(max(cols))) + pad)
    r1 = min(height, int(math.ceil(max(rows))) + pad)
    if c1 <= c0 or r1 <= r0:
        return None
    return c0, r0, c1 - c0, r1 - r0


def grid_resolution_in(crs: str, grid: Grid) -> float:
    """The grid's pixel size in the units of ``crs`` (metres for UTM, degrees for lon/lat)."""
    if crs == grid.crs:
        return grid.scale_m
    l, b, r, t = _grid_bounds_in(crs, grid)
    return max((r - l) / grid.width, (t - b) / grid.height)


def choose_overview(factors, file_res: float, target_res: float) -> Optional[int]:
    """Index of the coarsest overview no coarser than ``target_res`` (None: full resolution)."""
    best = None
    for i, f in enumerate(factors):
        if file_res * f <= target_res * (1 + 1e-6):
            best = i
    return best


def _server_message(path: str, env: Mapping[str, str], timeout_s: float) -> str:
    """The body of a failed plain-HTTP answer (GDAL reports only its status code)."""
    if not path.startswith("/vsicurl/http"):
        return ""
    try:
        import requests

        proxy = env.get("GDAL_HTTP_PROXY")
        proxies = {"http": f"http://{proxy}", "https": f"http://{proxy}"} if proxy else None
        r = requests.get(path[len("/vsicurl/"):], headers={"Range": "bytes=0-1023"},
                         timeout=timeout_s, proxies=proxies)
        if r.status_code >= 400:
            return f"HTTP {r.status_code}: {' '.join(r.text[:300].split())}"
    except Exception:  # the message is a courtesy; the error stands without it
        return ""
    return ""


def read_error(exc: BaseException, href: str, path: str, env: Mapping[str, str],
               timeout_s: float) -> ProviderError:
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) not in text:
        text = f"{text} ({cause})"
    status = status_in(text)
    if status is not None:
        transient = status_transient(status)
    else:
        transient = looks_transient(text)
    detail = "" if transient else _server_message(path, env, timeout_s)
    where = href.split("?")[0]  # never print a signature
    msg = f"reading {where} failed: {text.split('?')[0] if '?' in text else text}"
    if detail:
        msg += f"; the server said {detail}"
    return ProviderError(msg, transient=transient)


class WindowReader:
    """Reads windows of remote rasters; one instance per provider, shared by its threads.

    ``options``: extra GDAL configuration options for every read (e.g. a proxy,
    ``AWS_REQUEST_PAYER``); ``limiter``: a context manager bounding reads in flight.
    """

    def __init__(self, policy: RetryPolicy, *, options: Optional[Mapping[str, str]] = None,
                 limiter=None, use_overviews: bool = True):
        self.policy = policy
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self.limiter = limiter
        self.use_overviews = bool(use_overviews)

    def env_options(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        env = dict(COG_OPTIONS)
        env.update(self.policy.gdal_options())
        env.update(self.options)
        if extra:
            env.update({str(k): str(v) for k, v in extra.items()})
        return env

    def read(self, href: str, grid: Grid, out: np.ndarray, *, resampling: str,
             nodata: Optional[float] = None, extra_options: Optional[Mapping[str, str]] = None,
             overview_ok: bool = True, indexes=None) -> ReadStats:
        """Resample the needed window of ``href`` onto ``grid`` into ``out``.

        ``out`` is float32 ``(H, W)`` for band 1, or ``(len(indexes), H, W)`` for the
        bands ``indexes`` (1-based); pixels the raster does not cover, or that hold
        ``nodata``, become NaN.
        """
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        path = gdal_path(href)
        env = self.env_options(extra_options)
        stats = ReadStats()
        gate = self.limiter() if callable(self.limiter) else self.limiter
        try:
            with rasterio.Env(**env), (gate if gate is not None else _nothing()):
                with rasterio.open(path) as src:
                    if src.crs is None:
                        raise ProviderError(f"{href.split('?')[0]} has no CRS", transient=False)
                    crs = src.crs.to_string()
                    file_res = min(abs(src.res[0]), abs(src.res[1]))
                    target = grid_resolution_in(crs, grid)
                    src_nodata = src.nodata if nodata is None else nodata
                    level = None
                    if self.use_overviews and overview_ok:
                        level = choose_overview(src.overviews(1), file_res, target)
                    if level is None:
                        found = self._read_window(src, grid, crs, target, stats, indexes)
                if level is not None:
                    with rasterio.open(path, overview_level=level) as ovr:
                        found = self._read_window(ovr, grid, crs, target, stats, indexes)
                    stats.overview_level = level
        except ProviderError:
            raise
        except Exception as exc:
            raise read_error(exc, href, path, env, self.policy.timeout_s) from exc
        if found is None:
            out[...] = np.nan
            return stats
        arr, src_transform = found
        _ignore_spurious_mem_warning()
        data = arr.astype(np.float32, copy=False)
        if src_nodata is not None and not (isinstance(src_nodata, float) and math.isnan(src_nodata)):
            data = np.where(arr == src_nodata, np.float32(np.nan), data)
        reproject(source=data, destination=out, src_transform=src_transform, src_crs=crs,
                  src_nodata=float("nan"), dst_transform=grid.affine(), dst_crs=grid.crs,
                  dst_nodata=float("nan"), resampling=getattr(Resampling, resampling),
                  init_dest_nodata=True, num_threads=1)
        return stats

    @staticmethod
    def _read_window(src, grid: Grid, crs: str, target: float, stats: ReadStats, indexes=None):
        from rasterio.windows import Window

        res = min(abs(src.res[0]), abs(src.res[1]))
        stats.source_resolution = res
        pad = int(math.ceil(max(1.0, target / res))) + 1
        win = _window(src.transform, src.width, src.height, _grid_bounds_in(crs, grid), pad)
        if win is None:
            return None
        window = Window(*win)
        stats.pixels = int(win[2] * win[3])
        return (src.read(1 if indexes is None else list(indexes), window=window),
                src.window_transform(window))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["WindowReader", "ReadStats", "gdal_path", "choose_overview", "COG_OPTIONS",
           "grid_resolution_in"]
