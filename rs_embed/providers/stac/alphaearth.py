"""``gse`` without Earth Engine: Google's public AlphaEarth annual embedding COGs.

Google publishes the Satellite Embedding V1 annual product (AlphaEarth Foundations)
as Cloud-Optimised GeoTIFFs outside Earth Engine: a free copy on Source Cooperative
(``tge-labs/aef``, no account) and Google's requester-pays bucket
``gs://alphaearth_foundations``. Facts used here (Google, "AlphaEarth Foundations
GCS data", developers.google.com/earth-engine/guides/aef_on_gcs_readme; Source
Cooperative, source.coop/tge-labs/aef) live in the sensor vocabulary
(:data:`rs_embed.sensors.products.GSE_PUBLIC_COGS`):

- one folder per year and UTM zone; each file 8192 x 8192 pixels of 10 m, 64 bands
  ``A00`` .. ``A63`` in order, in that zone's UTM CRS; file names say nothing about
  place, so a published index (GeoParquet ``aef_index.parquet``, also CSV) maps each
  file to its year, zone and lon/lat box;
- values are signed 8-bit integers; the embedding is ``sign(v) * (|v| / 127.5) ** 2``
  and ``-128`` marks a masked pixel in every band;
- the Source Cooperative files are "bottom-up" (positive y resolution); GDAL reads them
  through their geotransform, which the window arithmetic here handles as any affine.

A fetch reads the ROI's window of the files covering it (own UTM zone first, so no
resampling happens there; neighbours fill what is left), nearest neighbour on the
ROI's UTM grid like Earth Engine's default, dequantises, and fills masked pixels with
``fill_value`` (Earth Engine's path unmasks them to the same value).
"""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ...errors import ProviderError, SpecError
from ...geometry import Grid, roi_grid
from ...sensors.products import GSE_ANNUAL_PRODUCT, GSE_PUBLIC_COGS
from ...specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal
from ..base import Patch, Provider
from ..compositing import fill_invalid
from ..gee.session import InFlightLimiter
from .faults import FetchBudget, RetryPolicy, status_transient
from .reader import WindowReader
from .search import split_antimeridian


def dequantise(values: np.ndarray) -> np.ndarray:
    """int8 codes (as float, NaN = masked) to embedding values: sign(v) * (|v| / 127.5)^2."""
    v = np.asarray(values, dtype=np.float32)
    scale = np.float32(GSE_PUBLIC_COGS.quantisation_divisor)
    return (np.sign(v) * (np.abs(v) / scale) ** 2).astype(np.float32)


def _default_cache_dir() -> Path:
    base = os.environ.get("RS_EMBED_CACHE") or os.environ.get("XDG_CACHE_HOME") \
        or os.path.join(os.path.expanduser("~"), ".cache")
    sub = "alphaearth" if os.environ.get("RS_EMBED_CACHE") else os.path.join("rs_embed", "alphaearth")
    return Path(base) / sub


class AlphaEarthIndex:
    """The published file index: downloaded once (atomically) into a cache, then queried.

    ``source``: an http(s) URL or a local ``.parquet``/``.csv`` path. Columns used:
    ``year``, ``path``, ``utm_zone``, ``wgs84_west``/``south``/``east``/``north``.
    """

    COLUMNS = ("year", "path", "utm_zone", "wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")

    def __init__(self, source: str = GSE_PUBLIC_COGS.index_url, *, cache_dir=None,
                 policy: Optional[RetryPolicy] = None):
        self.source = str(source)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        self.policy = policy or RetryPolicy()
        self._rows: Optional[Dict[int, List[tuple]]] = None
        self._identity: Optional[str] = None
        self._lock = threading.Lock()

    def identity(self) -> str:
        """The index as a fingerprint records it: its URL, or a local file's name and sha1
        (so the same index fingerprints alike wherever it lies)."""
        if self.source.startswith(("http://", "https://")):
            return self.source
        if self._identity is None:
            import hashlib

            p = Path(self.source).expanduser()
            h = hashlib.sha1()
            try:
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                self._identity = f"{p.name} sha1:{h.hexdigest()}"
            except OSError:
                self._identity = p.name
        return self._identity

    def local_path(self, budget: Optional[FetchBudget] = None) -> Path:
        if not self.source.startswith(("http://", "https://")):
            p = Path(self.source).expanduser()
            if not p.is_file():
                raise SpecError(f"AlphaEarth index {self.source!r} does not exist")
            return p
        name = self.source.rstrip("/").rsplit("/", 1)[-1] or "aef_index.parquet"
        dest = self.cache_dir / name
        if dest.is_file():
            return dest
        budget = budget if budget is not None else FetchBudget(self.policy)
        budget.call(lambda: self._download(dest, budget), self._download_error,
                    f"downloading the AlphaEarth index {self.source}")
        return dest

    def _download_error(self, exc: BaseException) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        return ProviderError(f"downloading the AlphaEarth index {self.source} failed: {exc}",
                             transient=True)

    def _download(self, dest: Path, budget: FetchBudget) -> None:
        """One attempt (``requests``' own retries are off: the budget retries)."""
        import requests

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            timeout = RetryPolicy.requests_timeout(budget.request_timeout())
            with requests.get(self.source, stream=True, timeout=timeout) as r:
                if r.status_code >= 400:
                    raise ProviderError(f"downloading the AlphaEarth index {self.source} failed: HTTP "
                                        f"{r.status_code}: {' '.join(r.text[:300].split())}",
                                        transient=status_transient(r.status_code))
                with open(tmp, "wb") as fh:
                    for chunk in r.iter_content(1 << 20):
                        budget.check()  # a slow download stops at the deadline
                        fh.write(chunk)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _load(self, budget: Optional[FetchBudget] = None) -> Dict[int, List[tuple]]:
        if self._rows is not None:
            return self._rows
        budget = budget if budget is not None else FetchBudget(self.policy)
        budget.wait_lock(self._lock)  # one download; the others wait within their deadline
        try:
            if self._rows is not None:
                return self._rows
            path = self.local_path(budget)
            if path.suffix.lower() == ".csv":
                with open(path, newline="", encoding="utf-8") as fh:
                    table = list(csv.DictReader(fh))
                cols = {c: [row.get(c) for row in table] for c in self.COLUMNS}
            else:
                try:
                    import pyarrow.parquet as pq
                except ImportError:
                    raise ProviderError("reading the AlphaEarth index needs pyarrow: "
                                        "pip install 'rs_embed[stac]'", transient=False) from None
                t = pq.read_table(path, columns=list(self.COLUMNS))
                cols = {c: t.column(c).to_pylist() for c in self.COLUMNS}
            missing = [c for c in self.COLUMNS if all(v is None for v in cols[c])]
            if missing:
                raise ProviderError(f"AlphaEarth index {path} lacks column(s) {missing}", transient=False)
            rows: Dict[int, List[tuple]] = {}
            for i in range(len(cols["year"])):
                y = int(cols["year"][i])
                rows.setdefault(y, []).append(
                    (str(cols["path"][i]), str(cols["utm_zone"][i]),
                     tuple(float(cols[k][i]) for k in ("wgs84_west", "wgs84_south", "wgs84_east",
                                                       "wgs84_north"))))
            self._rows = rows
            return rows
        finally:
            self._lock.release()

    def years(self, budget: Optional[FetchBudget] = None) -> List[int]:
        return sorted(self._load(budget))

    def tiles(self, year: int, bbox: Tuple[float, float, float, float],
              budget: Optional[FetchBudget] = None) -> List[Tuple[str, str]]:
        """``(path, utm_zone)`` of the files of ``year`` overlapping ``bbox`` (lon/lat)."""
        out = []
        for path, zone, (w, s, e, n) in self._load(budget).get(int(year), ()):
            for tw, ts, te, tn in split_antimeridian(bbox):
                if w < te and tw < e and s < tn and ts < n:
                    out.append((path, zone))
                    break
        return sorted(set(out))


def _zone_of(grid: Grid) -> str:
    epsg = int(grid.crs.split(":")[1])
    return f"{epsg % 100}{'N' if epsg < 32700 else 'S'}"


class AlphaEarthProvider(Provider):
    """``backend="alphaearth"``: the annual AlphaEarth embeddings from public COGs.

    ``index``: the index URL or a local copy (default: Source Cooperative's
    ``aef_index.parquet``); ``href_rewrite``: prefix replacements applied to index paths
    (default: Source Cooperative's S3 bucket to its public HTTPS endpoint);
    ``cache_dir``: where the index is kept (default ``~/.cache/rs_embed/alphaearth``).
    Like the STAC provider it retries by itself: every request of a fetch (the index
    download, each tile read) spends one :class:`~.faults.FetchBudget`.
    """

    name = "alphaearth"
    retries_itself = True

    def __init__(self, index: Optional[str] = None, *, href_rewrite: Optional[Mapping[str, str]] = None,
                 cache_dir=None, fetch_timeout_s: float = 30.0, max_retries: int = 4,
                 retry_base_s: float = 0.5, retry_cap_s: float = 30.0, max_concurrent_reads: int = 16,
                 gdal_options: Optional[Mapping[str, str]] = None):
        self.policy = RetryPolicy(max_retries, retry_base_s, retry_cap_s, fetch_timeout_s)
        self.index = AlphaEarthIndex(index or GSE_PUBLIC_COGS.index_url, cache_dir=cache_dir,
                                     policy=self.policy)
        self.href_rewrite = dict(GSE_PUBLIC_COGS.href_rewrite if href_rewrite is None else href_rewrite)
        self.limiter = InFlightLimiter(max_concurrent_reads)
        self.reader = WindowReader(self.policy, options=gdal_options, limiter=self.limiter,
                                   use_overviews=False)

    @classmethod
    def availability(cls) -> Optional[str]:
        """None when the public COGs can be read here (offline check), else what to install."""
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            return "pyarrow not installed (it reads the file index): pip install 'rs_embed[stac]'"
        return None

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        try:
            self.check(sensor)
        except ProviderError as exc:
            return str(exc)
        return None

    def coverage(self) -> str:
        return f"AlphaEarth annual embeddings (public COGs, index {self.index.source})"

    def settings(self) -> dict:
        """What decides the pixels: the index (a URL, or a local copy by name and content)
        and where its paths are read from."""
        return {"index": self.index.identity(), "href_rewrite": dict(sorted(self.href_rewrite.items()))}

    def href(self, path: str) -> str:
        for old, new in self.href_rewrite.items():
            if path.startswith(old):
                return new + path[len(old):]
        return path

    def check(self, sensor: SensorSpec) -> dict:
        if not isinstance(sensor, SensorSpec):
            raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
        if sensor.collection not in GSE_ANNUAL_PRODUCT.ids():
            raise ProviderError(f"backend 'alphaearth' serves only {GSE_ANNUAL_PRODUCT.ee_id!r} "
                                f"(the gse model); got collection {sensor.collection!r}", transient=False)
        bad = [b for b in sensor.bands if b not in GSE_ANNUAL_PRODUCT.bands]
        if bad:
            raise ProviderError(f"AlphaEarth has bands A00..A63; not {bad}", transient=False)
        return {"backend": self.name, "index": self.index.source}

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        self.check(sensor)
        if temporal is None:
            raise ProviderError("AlphaEarth is annual: pass temporal=TemporalSpec.year(Y)", transient=False)
        year = temporal.start_date.year
        grid = roi_grid(spatial, sensor.scale_m)
        bbox = grid.lonlat_bounds()
        budget = FetchBudget(self.policy)  # the caller's deadline and cancel, one retry budget
        tiles = self.index.tiles(year, bbox, budget)
        if not tiles:
            years = self.index.years(budget)
            span = f"{years[0]}..{years[-1]}" if years else "none"
            raise ProviderError(
                f"no AlphaEarth file of {year} covers {spatial!r} (lon {bbox[0]:.4f}..{bbox[2]:.4f}, "
                f"lat {bbox[1]:.4f}..{bbox[3]:.4f}); the index {self.index.source} has years {span}",
                transient=False)
        own = _zone_of(grid)
        tiles.sort(key=lambda t: (t[1] != own, t[0]))  # own zone first: no resampling there
        idx = [GSE_ANNUAL_PRODUCT.bands.index(b) + 1 for b in sensor.bands]
        data = np.full((len(idx), grid.height, grid.width), np.nan, np.float32)
        used, pixels = [], 0
        buf = np.empty_like(data)
        for path, zone in tiles:
            holes = ~np.isfinite(data).all(axis=0)
            if not holes.any():
                break
            stats = self.reader.read(self.href(path), grid, buf, resampling="nearest",
                                     nodata=GSE_PUBLIC_COGS.nodata, overview_ok=False, indexes=idx,
                                     budget=budget)
            got = np.isfinite(buf).all(axis=0) & holes
            if got.any():
                data[:, got] = buf[:, got]
                used.append({"path": path, "utm_zone": zone})
            pixels += stats.pixels
        data = dequantise(data)
        valid, filled = fill_invalid(data, sensor.fill_value)
        window = {"start": f"{year}-01-01", "end": f"{year + 1}-01-01"}
        meta = {"backend": self.name, "collection": sensor.collection,
                "source": "AlphaEarth public COGs", "index": self.index.source, "year": year,
                "temporal": window, "composite": "mosaic", "cloud_filter": None,
                "scale_m": sensor.scale_m, "files": used, "scenes": [u["path"] for u in used],
                "n_scenes": len(used), "resampling": {"*": "nearest"},
                "dequantisation": GSE_PUBLIC_COGS.quantisation, **filled,
                "source_pixels_read": int(pixels),
                "requests": {"attempts": budget.sent, "retries": budget.retries},
                "licence": GSE_PUBLIC_COGS.attribution}
        return Patch(data=np.ascontiguousarray(data), bands=tuple(sensor.bands), grid=grid, meta=meta,
                     valid=valid)


__all__ = ["AlphaEarthProvider", "AlphaEarthIndex", "dequantise"]
