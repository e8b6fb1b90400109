"""The ``tessera`` provider: TESSERA annual embeddings through the ``geotessera`` client.

TESSERA (Feng et al., arXiv:2506.20380) publishes one 128-d embedding per 10 m pixel
per year, in 0.1 x 0.1 degree tiles, each stored in its own UTM zone as int8 values
with float32 scales beside them, plus a "landmask" GeoTIFF carrying the tile's CRS and
transform. ``geotessera`` (its official client) finds tiles in a GeoParquet registry,
downloads them into a local folder and dequantises them; this provider uses it for
all of that and adds what the client leaves to its callers:

- **Only the ROI's tiles** are fetched, and from each only the window under the ROI is
  read (the ``.npy`` files are memory-mapped).
- **One grid**: every tile's window is resampled (nearest neighbour, so each output
  pixel is one published embedding) onto :func:`rs_embed.geometry.roi_grid`, the same
  UTM grid every provider samples. An ROI that straddles UTM zones is mosaicked from
  tiles in both zones (the published tiles do not share a CRS there); each output
  pixel takes the tile whose 0.1 degree box holds its centre, so overlapping tile
  rasters never decide by read order.
- **Dequantisation** by ``geotessera.dequantize_embedding`` (value x scale).
- **Nodata is NaN**: pixels no tile covers, non-finite values, and all-zero vectors
  (where the product holds no embedding, e.g. a zero scale).
- **One dataset version** per provider (``dataset_version``, default ``v1``), recorded
  in every patch's meta; tiles of different versions are never mixed.

Time and retries: geotessera's downloads retry by themselves (its
``download_file_to_temp``: a few tries with backoff, each with its own socket timeout,
which its ``Registry.fetch`` does not let a caller shorten), so this provider is one
retry layer (``retries_itself``): the export engine calls it once per fetch and does
not repeat what geotessera already repeated. The fetch context is looked at before
every tile file; a download that hangs past ``fetch_timeout_s`` is abandoned by the
engine.

Where the data comes from (``geotessera``'s own configuration, never patched around):
``base_url`` (``RS_EMBED_TESSERA_URL``; default geotessera's ``TESSERA_BASE_URL``)
serves the registries and tiles; ``embeddings_dir`` (``RS_EMBED_TESSERA_DIR``; default
``~/.cache/rs_embed/tessera``) is geotessera's local tile folder: tiles already there
(e.g. from ``geotessera download``) are used without any network access.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..errors import ProviderError, SpecError
from ..geometry import roi_grid
from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .base import Patch, Provider, current_fetch

#: collection id of the product; the dataset version follows the slash
COLLECTION_PREFIX = "TESSERA/"
DIM = 128
BANDS: Tuple[str, ...] = tuple(f"T{i:03d}" for i in range(DIM))
NATIVE_SCALE_M = 10.0
URL_ENV, DIR_ENV, VERSION_ENV = "RS_EMBED_TESSERA_URL", "RS_EMBED_TESSERA_DIR", "RS_EMBED_TESSERA_VERSION"
DEFAULT_VERSION = "v1"

# geotessera reads its data URL from a module constant at call time; every call that
# may download holds this lock with the constant set to the provider's base URL.
_client_lock = threading.RLock()


def collection(version: str) -> str:
    return f"{COLLECTION_PREFIX}{version}"


def version_of(collection_id: str) -> Optional[str]:
    if isinstance(collection_id, str) and collection_id.upper().startswith(COLLECTION_PREFIX):
        return collection_id[len(COLLECTION_PREFIX):] or None
    return None


def _import_geotessera():
    try:
        import geotessera
        import geotessera.registry  # noqa: F401
    except ImportError as exc:
        raise ProviderError(
            "the tessera provider needs geotessera; run: pip install 'rs_embed[models-tessera]' "
            f"({type(exc).__name__}: {exc})") from None
    return geotessera


def _pixel_centres(grid):
    """(lon, lat) of every pixel centre of ``grid``, each ``(H, W)``."""
    from ..geometry import transformer

    a, _, c, _, e, f = grid.transform
    xx, yy = np.meshgrid(c + a * (np.arange(grid.width) + 0.5), f + e * (np.arange(grid.height) + 0.5))
    lon, lat = transformer(grid.crs, "EPSG:4326").transform(xx.ravel(), yy.ravel())
    return np.asarray(lon).reshape(xx.shape), np.asarray(lat).reshape(xx.shape)


def _client_attempts() -> int:
    """How many tries geotessera's downloads make (its ``download_file_to_temp`` default)."""
    import inspect

    try:
        from geotessera.registry import download_file_to_temp
        return int(inspect.signature(download_file_to_temp).parameters["max_retries"].default)
    except Exception:  # pragma: no cover - another geotessera layout
        return 1


class TesseraProvider(Provider):
    """TESSERA embeddings on the ROI grid (see the module docstring)."""

    name = "tessera"
    retries_itself = True  # geotessera retries its downloads (see the module docstring)

    def __init__(self, *, dataset_version: Optional[str] = None, base_url: Optional[str] = None,
                 embeddings_dir: Optional[str] = None, cache_dir: Optional[str] = None,
                 verify_hashes: bool = True):
        self.dataset_version = dataset_version or os.environ.get(VERSION_ENV) or DEFAULT_VERSION
        self.base_url = (base_url or os.environ.get(URL_ENV) or "").rstrip("/") or None
        default_dir = Path.home() / ".cache" / "rs_embed" / "tessera"
        self.embeddings_dir = Path(embeddings_dir or os.environ.get(DIR_ENV) or default_dir).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.embeddings_dir / "registry"
        self.verify_hashes = bool(verify_hashes)
        self._gt = None
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------
    def settings(self) -> Dict[str, Any]:
        """What decides the data served (recorded in metas; part of a request's identity)."""
        return {"dataset_version": self.dataset_version, "base_url": self._url(),
                "embeddings_dir": str(self.embeddings_dir)}

    def _url(self) -> str:
        if self.base_url:
            return self.base_url
        return _import_geotessera().registry.TESSERA_BASE_URL

    def serves(self, sensor: SensorSpec) -> bool:
        return version_of(sensor.collection) is not None

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Collection, dataset version and bands, without a request."""
        version = version_of(sensor.collection)
        if version is None:
            return (f"the tessera provider serves only {collection(self.dataset_version)!r}, not "
                    f"collection {sensor.collection!r}")
        if version != self.dataset_version:
            return (f"collection {sensor.collection!r} asks for TESSERA {version} but this provider "
                    f"serves {self.dataset_version}; one export never mixes dataset versions "
                    f"(make the provider with dataset_version={version!r})")
        if tuple(sensor.bands) != BANDS:
            return (f"tessera serves its {DIM} bands T000..T127 in order; the sensor lists "
                    f"{list(sensor.bands)[:4]}...")
        return None

    def coverage(self) -> str:
        return f"TESSERA {self.dataset_version} annual 128-d embeddings from {self._url()}"

    @contextmanager
    def _pointed(self):
        """geotessera's base URL set to ours for the duration of a call."""
        reg = _import_geotessera().registry
        with _client_lock:
            old = reg.TESSERA_BASE_URL
            reg.TESSERA_BASE_URL = self._url()
            try:
                yield
            finally:
                reg.TESSERA_BASE_URL = old

    def client(self):
        """The geotessera client (registries loaded once, on first use)."""
        with self._lock:
            if self._gt is None:
                gt_mod = _import_geotessera()
                self.embeddings_dir.mkdir(parents=True, exist_ok=True)
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                base = self._url()
                try:
                    with self._pointed():
                        self._gt = gt_mod.GeoTessera(
                            dataset_version=self.dataset_version, cache_dir=str(self.cache_dir),
                            embeddings_dir=str(self.embeddings_dir),
                            registry_url=f"{base}/{self.dataset_version}/registry.parquet",
                            verify_hashes=self.verify_hashes)
                except Exception as exc:
                    raise ProviderError(
                        f"tessera: cannot load the {self.dataset_version} registry from {base} "
                        f"({type(exc).__name__}: {exc}); set {URL_ENV} to a reachable mirror or "
                        f"put tiles in {self.embeddings_dir}", transient=True) from exc
            return self._gt

    # -- fetch -------------------------------------------------------------------------
    def _check(self, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> int:
        why = self.check_sensor(sensor)
        if why:
            raise ProviderError(why, transient=False)
        if temporal is None or temporal.mode != "year":
            raise SpecError(f"tessera is annual: pass temporal=TemporalSpec.year(Y), got {temporal!r}")
        return int(temporal.year)

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> Patch:
        import rasterio
        from rasterio.warp import Resampling, reproject, transform_bounds
        from rasterio.windows import Window, from_bounds

        year = self._check(temporal, sensor)
        ctx = current_fetch()
        grid = roi_grid(spatial, sensor.scale_m)  # a rectangle's enclosing square (grid.roi: the box)
        ctx.check()
        gt = self.client()
        gt_mod = _import_geotessera()
        tiles = gt.registry.load_blocks_for_region(grid.lonlat_bounds(), year)
        out = np.full((DIM, grid.height, grid.width), np.nan, dtype=np.float32)
        plon, plat = _pixel_centres(grid)
        used, zones = [], set()
        for (ty, lon, lat) in tiles:
            ctx.check()
            try:
                with self._pointed():
                    emb_path = gt.registry.fetch(year=ty, lon=lon, lat=lat, is_scales=False, progressbar=False)
                    sc_path = gt.registry.fetch(year=ty, lon=lon, lat=lat, is_scales=True, progressbar=False)
                    lm_path = gt.registry.fetch_landmask(lon=lon, lat=lat, progressbar=False)
            except Exception as exc:
                err = ProviderError(
                    f"tessera: tile grid_{lon:.2f}_{lat:.2f} ({ty}) could not be fetched from "
                    f"{self._url()}: {type(exc).__name__}: {exc}", transient=True)
                err.attempts = _client_attempts()  # geotessera retried it already
                raise err from exc
            with rasterio.open(lm_path) as src:
                crs, transform = src.crs, src.transform
            quant = np.load(emb_path, mmap_mode="r")      # (H, W, 128) int8
            scales = np.load(sc_path, mmap_mode="r")      # (H, W) or (H, W, 128) float32
            th, tw = quant.shape[:2]
            left, bottom, right, top = transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)
            win = from_bounds(left, bottom, right, top, transform=transform)
            r0, c0 = max(int(np.floor(win.row_off)) - 1, 0), max(int(np.floor(win.col_off)) - 1, 0)
            r1 = min(int(np.ceil(win.row_off + win.height)) + 1, th)
            c1 = min(int(np.ceil(win.col_off + win.width)) + 1, tw)
            if r1 <= r0 or c1 <= c0:
                continue
            emb = gt_mod.dequantize_embedding(np.asarray(quant[r0:r1, c0:c1]),
                                              np.asarray(scales[r0:r1, c0:c1]))
            emb = np.ascontiguousarray(np.moveaxis(emb.astype(np.float32, copy=False), -1, 0))
            invalid = ~np.isfinite(emb).all(axis=0) | (emb == 0).all(axis=0)
            emb[:, invalid] = np.nan
            part = np.full_like(out, np.nan)
            reproject(source=emb, destination=part,
                      src_transform=rasterio.windows.transform(Window(c0, r0, c1 - c0, r1 - r0), transform),
                      src_crs=crs, src_nodata=np.nan, dst_transform=grid.affine(), dst_crs=grid.crs,
                      dst_nodata=np.nan, resampling=Resampling.nearest, tolerance=0.0)
            w0, s0, e0, n0 = gt_mod.registry.tile_to_bounds(lon, lat)
            inside = (plon >= w0) & (plon < e0) & (plat >= s0) & (plat < n0)
            fill = inside & np.isnan(out[0]) & np.isfinite(part).all(axis=0)
            if fill.any():
                out[:, fill] = part[:, fill]
                used.append(f"grid_{lon:.2f}_{lat:.2f}")
                zones.add(str(crs))
        if not used:
            raise ProviderError(
                f"tessera {self.dataset_version}: no embedding covers this ROI in {year} "
                f"(registry at {self._url()} lists {len(tiles)} tile(s) near it)")
        nodata = float(np.isnan(out[0]).mean())
        meta = {"source": "geotessera", "product": "TESSERA", "dataset_version": self.dataset_version,
                "year": year, "tiles": used, "tile_crs": sorted(zones), "nodata_fraction": nodata,
                "nodata": "NaN", "resampling": "nearest",
                "dequantisation": "int8 value x float32 scale (geotessera.dequantize_embedding)",
                "geotessera_version": getattr(gt_mod, "__version__", None), "base_url": self._url(),
                "temporal": {"mode": "year", "year": year}}
        return Patch(data=out, bands=BANDS, grid=grid, meta=meta)


__all__ = ["TesseraProvider", "BANDS", "DIM", "COLLECTION_PREFIX", "collection", "version_of"]
