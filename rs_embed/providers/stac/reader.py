"""Reading the ROI's window of one remote COG onto the ROI's grid.

Only the window the grid needs is read (plus the resampling kernel's margin), so GDAL
fetches a few internal tiles with HTTP range requests instead of the file. When the
grid is coarser than the file by a factor of two or more, the read comes from the
coarsest overview that is still at least as fine as the grid (what GDAL's warper does
with ``-ovr AUTO`` and what Earth Engine's pyramids do), which divides the bytes read
by the square of the factor. GDAL options are set per read with ``rasterio.Env``,
never process-wide, so several providers with different settings can run side by side.

Each read is one attempt of the fetch's :class:`~.faults.FetchBudget`: GDAL's timeout is
what is left of the fetch and its own retries are off. GDAL remembers a failed open
(a timeout or a 503 makes it report the file as missing until the process ends), so a
file whose read failed is opened with ``CPL_VSIL_CURL_NON_CACHED`` the next time,
which asks the server again and drops what GDAL kept of it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Set, Tuple

import numpy as np

from ...errors import ProviderError
from ...geometry import Grid, transformer
from ..local import _ignore_spurious_mem_warning  # rasterio's in-memory warp quirk, once
from .faults import FetchBudget, RetryPolicy, looks_transient, status_in, status_transient

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


def _server_message(path: str, env: Mapping[str, str], budget: FetchBudget) -> str:
    """The body of a failed plain-HTTP answer (GDAL reports only its status code)."""
    if not path.startswith("/vsicurl/http"):
        return ""
    try:
        import requests

        timeout_s = min(budget.request_timeout(), 10.0)
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
               budget: FetchBudget) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) not in text:
        text = f"{text} ({cause})"
    status = status_in(text)
    if status is not None:
        transient = status_transient(status)
    else:
        transient = looks_transient(text)
    detail = "" if transient else _server_message(path, env, budget)
    where = href.split("?")[0]  # never print a signature
    msg = f"reading {where} failed: {text.split('?')[0] if '?' in text else text}"
    if detail:
        msg += f"; the server said {detail}"
    return ProviderError(msg, transient=transient)


#: GDAL paths whose last read failed, in this process (GDAL's cache of files is
#: process-wide, so this record of which entries to distrust is too)
_FAILED: Set[str] = set()
_FAILED_LOCK = threading.Lock()


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

    def env_options(self, timeout_s: float, extra: Optional[Mapping[str, str]] = None,
                    path: Optional[str] = None) -> Dict[str, str]:
        """The GDAL options of one read attempt of ``path`` sent with ``timeout_s``."""
        env = dict(COG_OPTIONS)
        env.update(self.policy.gdal_options(timeout_s))
        env.update(self.options)
        if extra:
            env.update({str(k): str(v) for k, v in extra.items()})
        if path is not None:
            with _FAILED_LOCK:
                failed = path in _FAILED
            if failed:  # ask the server again instead of GDAL's memory of the failure
                env["CPL_VSIL_CURL_NON_CACHED"] = path
        return env

    @staticmethod
    def _failed_read(path: str, ok: bool) -> None:
        with _FAILED_LOCK:
            (_FAILED.discard if ok else _FAILED.add)(path)

    def read(self, href: str, grid: Grid, out: np.ndarray, *, resampling: str,
             nodata: Optional[float] = None, extra_options: Optional[Mapping[str, str]] = None,
             overview_ok: bool = True, indexes=None, budget: Optional[FetchBudget] = None) -> ReadStats:
        """Resample the needed window of ``href`` onto ``grid`` into ``out``.

        ``out`` is float32 ``(H, W)`` for band 1, or ``(len(indexes), H, W)`` for the
        bands ``indexes`` (1-based); pixels the raster does not cover, or that hold
        ``nodata``, become NaN. The requests spend ``budget`` (default: one for the
        calling thread's fetch).
        """
        from rasterio.enums import Resampling
        from rasterio.warp import reproject

        budget = budget if budget is not None else FetchBudget(self.policy)
        path = gdal_path(href)
        where = href.split("?")[0]  # never print a signature
        last_env: Dict[str, str] = {}

        def attempt():
            gate = self.limiter() if callable(self.limiter) else self.limiter
            with (gate if gate is not None else _nothing()):
                env = self.env_options(budget.request_timeout(), extra_options, path)
                last_env.clear()
                last_env.update(env)
                try:
                    got = self._read_once(path, where, env, grid, overview_ok, indexes, nodata)
                except BaseException:
                    self._failed_read(path, False)
                    raise
                self._failed_read(path, True)
                return got

        stats, found, src_nodata, crs = budget.call(
            attempt, lambda exc: read_error(exc, href, path, last_env, budget), f"reading {where}")
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

    def _read_once(self, path: str, where: str, env: Mapping[str, str], grid: Grid,
                   overview_ok: bool, indexes, nodata):
        """One attempt: open, pick the overview, read the window (stats, window, nodata, crs)."""
        import rasterio

        stats = ReadStats()
        with rasterio.Env(**env):
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise ProviderError(f"{where} has no CRS", transient=False)
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
        return stats, found, src_nodata, crs

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
