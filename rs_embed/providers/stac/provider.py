"""The STAC provider: items from a STAC API, pixels from their COGs, on the ROI's UTM grid.

One fetch: the ROI's grid (:func:`rs_embed.geometry.roi_grid`, the grid every backend
samples), one search for the items of the window (cached), then for each item and
band a windowed read resampled onto the grid (bilinear for measurements, nearest for
classes, as the ``local`` provider does; items in another UTM zone or across the
antimeridian are reprojected), the Sentinel-2 scene classification mask (documented
SCL classes) and the radiometric map to the product's convention, and finally the
median or time-ordered mosaic of :mod:`rs_embed.providers.compositing`. The items
used (ids, datetimes, cloud cover) and what was applied to each are in the patch meta.

The provider keeps the engine's contract (:class:`~rs_embed.providers.base.Provider`):
every request of a fetch spends one :class:`~.faults.FetchBudget` (the caller's
deadline and cancel event, ``max_retries`` retries in all), so it retries by itself
(``retries_itself``) and the engine does not multiply its retries; :meth:`settings`
names what decides the pixels; :meth:`check_sensor` refuses what it cannot serve
before an export writes anything.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from functools import partial
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...errors import ProviderError, SpecError
from ...geometry import Grid, roi_grid
from ...sensors import products as vocab
from ...sensors import quality
from ...specs import SensorSpec, SpatialSpec, TemporalSpec, check_spatial, check_temporal
from ..base import (FetchCancelled, FetchContext, FetchTimeout, Patch, Provider, check_resampling,
                    resampling_method)
from ..compositing import composite, fill_invalid
from ..gee.session import InFlightLimiter
from .apis import StacApi, preset as find_preset
from .faults import FetchBudget, RetryPolicy
from .items import BandAsset, asset_key, band_assets, radiometry_record
from .reader import WindowReader
from .search import CLOUD_PROPERTY, ItemSearch, Window, item_summary

#: concurrent COG reads per provider unless told otherwise
DEFAULT_MAX_CONCURRENT_READS = 32


def _has_aws_credentials() -> bool:
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return True
    home = os.path.expanduser("~")
    return any(os.path.isfile(os.path.join(home, ".aws", f)) for f in ("credentials", "config"))


class StacProvider(Provider):
    """Imagery from any STAC API whose items point at COGs.

    ``url``: the API root (default: the preset's). ``preset``: ``"earth-search"`` or
    ``"planetary-computer"`` (inferred from ``url`` when it is one of theirs); it names
    the API in the sensor vocabulary, which says which collection and asset keys serve a
    product and how each signals the Sentinel-2 offset. ``collections``: override the
    collection read for a product (e.g. ``{"s2_l2a": "sentinel-2-c1-l2a"}``).
    ``mask_clouds``: drop Sentinel-2 L2A pixels whose SCL class is in ``scl_invalid``
    (default: no data, defective, cloud shadow, medium/high cloud, cirrus) and Landsat
    pixels flagged in QA_PIXEL. ``resampling``: ``"bilinear"`` (default; classes always
    nearest) or ``"nearest"``. ``use_overviews``: read coarse scales from COG overviews.
    ``max_concurrent_reads``: reads in flight across all threads. ``fetch_timeout_s``:
    the longest one HTTP request may take (shortened to what is left of the export's
    ``fetch_timeout_s`` for the whole fetch); ``max_retries``, ``retry_base_s``,
    ``retry_cap_s``: the retries of one fetch, over all its requests, and their backoff
    for 429/5xx/timeouts (the export's ``max_retries`` does not apply: this provider
    retries by itself). ``gdal_options``: extra GDAL settings for every read (e.g.
    ``GDAL_HTTP_PROXY``). ``sign``: a callable signing hrefs (Planetary Computer's
    preset signs through the ``planetary-computer`` package). ``headers``: sent with
    every API request.
    """

    name = "stac"
    retries_itself = True

    def __init__(self, url: Optional[str] = None, *, preset: Optional[str] = None,
                 collections: Optional[Mapping[str, str]] = None, mask_clouds: bool = True,
                 scl_invalid: Optional[Sequence[int]] = None, resampling: str = "bilinear",
                 use_overviews: bool = True,
                 max_concurrent_reads: int = DEFAULT_MAX_CONCURRENT_READS,
                 fetch_timeout_s: float = 30.0, max_retries: int = 4, retry_base_s: float = 0.5,
                 retry_cap_s: float = 30.0, gdal_options: Optional[Mapping[str, str]] = None,
                 sign: Optional[Callable[[str], str]] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 subscription_key: Optional[str] = None, alphaearth: Any = None):
        api = find_preset(preset, url)
        if url is None:
            if api is None:
                raise SpecError("StacProvider needs url= (a STAC API root) or preset= "
                                "('earth-search' or 'planetary-computer')")
            url = api.url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SpecError(f"url must be an http(s) STAC API root, got {url!r}")
        check_resampling(resampling)
        if isinstance(max_concurrent_reads, bool) or not isinstance(max_concurrent_reads, int) \
                or max_concurrent_reads < 1:
            raise SpecError(f"max_concurrent_reads must be an integer >= 1, got {max_concurrent_reads!r}")
        self.api: Optional[StacApi] = api
        self.url = url.rstrip("/")
        if api is not None:
            self.name = api.name
        self.policy = RetryPolicy(max_retries, retry_base_s, retry_cap_s, fetch_timeout_s)
        self.collections = {str(k): str(v) for k, v in (collections or {}).items()}
        self.mask_clouds = bool(mask_clouds)
        self.scl_invalid = frozenset(int(c) for c in scl_invalid) if scl_invalid is not None \
            else quality.SCL_INVALID
        self.resampling = resampling
        self.limiter = InFlightLimiter(max_concurrent_reads)
        self.reader = WindowReader(self.policy, options=gdal_options, limiter=self.limiter,
                                   use_overviews=use_overviews)
        self.search = ItemSearch(self.url, self.policy, headers=dict(headers or {}))
        if sign is None and api is not None and api.signing == "planetary-computer":
            from .signing import PlanetaryComputerSigner

            sign = PlanetaryComputerSigner(timeout_s=fetch_timeout_s, subscription_key=subscription_key)
        self.sign = sign
        self._alphaearth = alphaearth
        self._aef_lock = threading.Lock()
        self._pool = ReadPool(max_concurrent_reads, "rs_embed-stac-read")
        self._collections_seen: Dict[str, Optional[dict]] = {}

    # -- what it serves ----------------------------------------------------------------
    @classmethod
    def availability(cls) -> Optional[str]:
        """None when the STAC backends can run here (offline check), else what to install."""
        import importlib.util

        missing = [m for m in cls._needs if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed: pip install 'rs_embed[stac]'"
        return None

    _needs: Tuple[str, ...] = ("pystac_client",)

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        """Why this backend cannot serve ``sensor``, or None. Collections and bands the
        sensor vocabulary knows are decided without a request; a collection id it does
        not know is looked up once on the API (``GET /collections/{id}``, cached)."""
        try:
            self.check(sensor)
            prod, entry, cid = self.resolve(sensor.collection)
            if prod is None and entry is None:
                return self._check_unknown_collection(cid, sensor)
        except ProviderError as exc:
            return str(exc)
        return None

    def _check_unknown_collection(self, cid: str, sensor: SensorSpec) -> Optional[str]:
        """Whether the API holds ``cid`` and, when it lists its assets (``item_assets``),
        the bands; None when the API cannot be asked now (the fetch will say)."""
        if cid not in self._collections_seen:
            ctx = FetchContext(timeout_s=min(self.policy.timeout_s, 10.0),
                               deadline=time.monotonic() + 2 * min(self.policy.timeout_s, 10.0),
                               what=f"looking up collection {cid!r}")
            try:
                self._collections_seen[cid] = self.search.collection(cid, FetchBudget(self.policy, ctx))
            except ProviderError:
                return None  # unreachable now: not a reason to refuse
        doc = self._collections_seen[cid]
        if doc is None:
            try:
                known = self.search.collection_ids(FetchBudget(self.policy, FetchContext(
                    timeout_s=10.0, deadline=time.monotonic() + 20.0)))
            except ProviderError:
                known = []
            return (f"{self.coverage()} has no collection {cid!r}"
                    + (f"; it has {known}" if known else "")
                    + "; the sensor vocabulary maps products to collections (see rs_embed.sensors.products)")
        item_assets = doc.get("item_assets") or {}
        if item_assets:
            from ...sensors import bands as sensor_bands

            names = set()
            for key, asset in item_assets.items():
                names.add(sensor_bands.canonical_band(key, None))
                for b in asset.get("eo:bands") or asset.get("bands") or []:
                    if isinstance(b, Mapping) and b.get("name"):
                        names.add(sensor_bands.canonical_band(b["name"], None))
            unknown = [b for b in sensor.bands if sensor_bands.canonical_band(b, None) not in names]
            if unknown:
                return (f"{self.coverage()}: collection {cid!r} has no asset for band(s) {unknown}; "
                        f"its item_assets: {sorted(item_assets)}")
        return None

    def settings(self) -> dict:
        """What decides the pixels: the API (preset and root), the collection mapping, cloud
        masking (SCL classes, Landsat QA_PIXEL bits), resampling, the overview policy,
        whether hrefs are signed, and for ``gse`` the AlphaEarth index. Not timeouts,
        retries, headers or GDAL options (they may hold credentials and change no pixel)."""
        sign = None
        if self.sign is not None:
            sign = getattr(self.sign, "name", None) or getattr(self.sign, "__qualname__", None) \
                or type(self.sign).__qualname__
        return {"api": self.api_name, "url": self.url, "collections": dict(sorted(self.collections.items())),
                "mask_clouds": self.mask_clouds,
                "scl_invalid": sorted(self.scl_invalid) if self.mask_clouds else None,
                "qa_pixel_invalid": list(quality.LANDSAT_QA_PIXEL_INVALID) if self.mask_clouds else None,
                "resampling": self.resampling, "use_overviews": self.reader.use_overviews,
                "signing": sign, "alphaearth": self.alphaearth().settings()}

    @property
    def api_name(self) -> str:
        return self.api.name if self.api is not None else "stac"

    def coverage(self) -> str:
        title = self.api.title if self.api is not None else "STAC API"
        return f"{title} at {self.url}"

    def resolve(self, collection: str) -> Tuple[Optional[vocab.Product], Optional[vocab.StacCollection], str]:
        """(product, vocabulary entry, STAC collection id) a sensor collection is read from."""
        api = self.api_name
        entry = vocab.stac_collection(api, collection)
        prod = vocab.product(collection)
        if entry is not None:
            return vocab.product(entry.product) or prod, entry, entry.id
        if prod is not None and prod.key == vocab.GSE_ANNUAL_PRODUCT.key:
            return prod, None, collection  # served from the public COGs, not the STAC API
        if prod is not None:
            override = self.collections.get(prod.key) or self.collections.get(collection)
            if override:
                return prod, vocab.stac_collection(api, override) or prod.stac_collection(api), override
            entry = prod.stac_collection(api)
            if entry is None and self.api is None and prod.stac:
                entry = prod.stac[0]  # a generic API: assume the first known layout
            if entry is not None:
                return prod, entry, entry.id
            served = sorted({c.api for c in prod.stac})
            kin = [f"{c.id!r} ({p.title})" for p in vocab.PRODUCTS if p is not prod
                   and p.sensor is prod.sensor for c in p.stac if c.api == api]
            raise ProviderError(
                f"{self.coverage()} has no collection serving {collection!r} ({prod.title})"
                + (f"; it is served by backend(s) {served}" if served else "")
                + (f"; Earth Engine serves it as {prod.ee_id!r} (backend='gee')" if prod.ee_id else "")
                + (f"; this API has the same sensor as {', '.join(kin)}: pass "
                   f"SensorSpec(collection=...) with that id" if kin else ""),
                transient=False)
        return None, None, self.collections.get(collection, collection)

    def check(self, sensor: SensorSpec) -> dict:
        """Cheap checks before any work: collection known here, bands it can serve, access.

        Sends no request. Returns what a fetch would read.
        """
        if not isinstance(sensor, SensorSpec):
            raise SpecError(f"sensor must be a SensorSpec, got {type(sensor).__name__}: {sensor!r}")
        prod, entry, cid = self.resolve(sensor.collection)
        if prod is not None and prod.key == vocab.GSE_ANNUAL_PRODUCT.key:
            return self.alphaearth().check(sensor)
        if entry is not None:
            from ...sensors import bands as sensor_bands

            unknown = [b for b in sensor.bands
                       if sensor_bands.canonical_band(b, prod.sensor if prod else None) not in entry.assets]
            if unknown:
                raise ProviderError(
                    f"{self.coverage()}: collection {cid!r} has no asset for band(s) {unknown}; "
                    f"it serves {sorted(entry.assets)}", transient=False)
            if entry.requester_pays and not _has_aws_credentials():
                raise ProviderError(
                    f"{self.coverage()}: collection {cid!r} is stored in a requester-pays bucket "
                    f"({entry.radiometry_note or 'AWS S3'}): reading it needs AWS credentials (you "
                    "are billed for the transfer). Configure them (AWS_PROFILE or "
                    "~/.aws/credentials), or read another collection"
                    + ("; Sentinel-2 L2A is free: SensorSpec(collection='COPERNICUS/S2_SR_HARMONIZED', ...) "
                       "or modality='s2_l2a'" if prod is not None and prod.key == "s2_l1c" else ""),
                    transient=False)
        return {"backend": self.name, "stac_api": self.url, "stac_collection": cid,
                "product": prod.key if prod else None}

    def alphaearth(self):
        """The reader of Google's public AlphaEarth COGs (``gse`` without Earth Engine)."""
        with self._aef_lock:
            if self._alphaearth is None:
                from .alphaearth import AlphaEarthProvider

                self._alphaearth = AlphaEarthProvider(fetch_timeout_s=self.policy.timeout_s,
                                                      max_retries=self.policy.max_retries,
                                                      retry_base_s=self.policy.base_s,
                                                      retry_cap_s=self.policy.cap_s)
            return self._alphaearth

    # -- search ----------------------------------------------------------------------
    def _window(self, temporal: Optional[TemporalSpec]) -> Optional[Window]:
        return Window(temporal.start_date, temporal.end_date) if temporal is not None else None

    def _cloud_pct(self, prod, sensor: SensorSpec) -> Optional[float]:
        if sensor.cloudy_pct >= 100:
            return None
        if prod is not None and prod.key in ("s1_grd", "s1_rtc", "s1_grd_l1", vocab.GSE_ANNUAL_PRODUCT.key):
            return None  # radar and embeddings have no cloud cover
        return float(sensor.cloudy_pct)

    def items(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> List[dict]:
        """The items a fetch would composite, oldest first (one cached search)."""
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        prod, _, cid = self.resolve(sensor.collection)
        grid = roi_grid(spatial, sensor.scale_m)
        return self.search.search(cid, grid.lonlat_bounds(), self._window(temporal),
                                  self._cloud_pct(prod, sensor))

    def footprints(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
                   sensor: SensorSpec) -> dict:
        """The items of the window over the ROI as a GeoJSON FeatureCollection (for maps)."""
        feats = []
        for item in self.items(spatial, temporal, sensor):
            feats.append({"type": "Feature", "id": item.get("id"), "geometry": item.get("geometry"),
                          "bbox": item.get("bbox"), "properties": item_summary(item)})
        return {"type": "FeatureCollection", "features": feats}

    def _no_items_error(self, spatial, grid: Grid, cid: str, window: Optional[Window],
                        cloudy: Optional[float], budget: FetchBudget) -> ProviderError:
        bbox = grid.lonlat_bounds()
        wtext = window.text() if window else "(no time filter)"
        ftext = f"{CLOUD_PROPERTY} <= {cloudy:g}" if cloudy is not None else "no cloud filter"
        where = (f"lon {bbox[0]:.4f}..{bbox[2]:.4f}, lat {bbox[1]:.4f}..{bbox[3]:.4f}")
        if cloudy is not None:
            n_all = len(self.search.search(cid, bbox, window, None, budget))
            if n_all:
                return ProviderError(
                    f"no {cid!r} items with {ftext} cover {spatial!r} ({where}) in the window "
                    f"{wtext} on {self.coverage()}: all {n_all} item(s) there are cloudier; raise "
                    f"cloudy_pct (FetchSpec(cloudy_pct=...)) or widen the window", transient=False)
        return ProviderError(
            f"no {cid!r} items cover {spatial!r} ({where}) in the window {wtext} ({ftext}) on "
            f"{self.coverage()}; widen the time window, or check that the place is on land "
            f"inside the collection's coverage", transient=False)

    # -- fetch -------------------------------------------------------------------------
    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec],
              sensor: SensorSpec) -> Patch:
        spatial = check_spatial(spatial)
        temporal = check_temporal(temporal)
        self.check(sensor)
        prod, entry, cid = self.resolve(sensor.collection)
        if prod is not None and prod.key == vocab.GSE_ANNUAL_PRODUCT.key:
            patch = self.alphaearth().fetch(spatial, temporal, sensor)
            patch.meta["backend"] = self.name
            return patch
        budget = FetchBudget(self.policy)  # the caller's deadline and cancel, one retry budget
        grid = roi_grid(spatial, sensor.scale_m)
        window = self._window(temporal)
        cloudy = self._cloud_pct(prod, sensor)
        items = self.search.search(cid, grid.lonlat_bounds(), window, cloudy, budget)
        if not items:
            raise budget.mark(self._no_items_error(spatial, grid, cid, window, cloudy, budget))
        h, w = grid.height, grid.width
        stacks = np.full((len(items), len(sensor.bands), h, w), np.nan, dtype=np.float32)
        used = np.zeros(len(items), dtype=bool)
        records: List[dict] = []
        resampling_used: Dict[str, str] = {}
        overviews: Dict[str, Optional[int]] = {}
        pixels_read, masked_px = 0, 0
        mask_band = self._mask_band(prod, entry)
        per_item, jobs = [], []
        sign = self._signer(budget)
        for i, item in enumerate(items):
            assets = band_assets(item, sensor.bands, entry, prod, sign)
            missing = [b for b in sensor.bands if b not in assets]
            if missing:
                raise ProviderError(
                    f"{self.coverage()}: item {item.get('id')!r} of {cid!r} has no asset for band(s) "
                    f"{missing}; its assets: {sorted((item.get('assets') or {}))}", transient=False)
            per_item.append(assets)
            for j, band in enumerate(sensor.bands):
                a = assets[band]
                method = resampling_method(band, self.resampling, a.categorical)
                resampling_used[band] = method
                jobs.append((band, partial(self._read_band, a, grid, stacks[i, j], method, budget)))
            jobs.append((i, partial(self._clear_mask, item, grid, mask_band, entry, prod, sign, budget)))
        # every read of the patch at once (bounded by the limiter): one round trip of latency
        clears: Dict[int, Optional[np.ndarray]] = {}
        for key, result in zip([k for k, _ in jobs], self._pool.run([fn for _, fn in jobs], budget)):
            if isinstance(key, str):
                overviews[key] = result.overview_level
                pixels_read += result.pixels
            else:
                clears[key] = result
        for i, item in enumerate(items):
            clear = clears.get(i)
            if clear is not None:
                bad = ~clear & np.isfinite(stacks[i]).all(axis=0)
                masked_px += int(bad.sum())
                stacks[i][:, ~clear] = np.nan
            used[i] = bool(np.isfinite(stacks[i]).any())
            records.append(radiometry_record(item, per_item[i], prod))
        if not used.any():
            raise ProviderError(
                f"the {len(items)} {cid!r} item(s) found for {spatial!r} have no valid pixel on the "
                f"ROI (outside their footprints, no data, or masked as cloud): "
                f"{[it.get('id') for it in items]}", transient=False)
        data = composite(stacks[used], sensor.composite)
        valid, filled = fill_invalid(data, sensor.fill_value)
        used_items = [it for it, u in zip(items, used) if u]
        meta = {
            "backend": self.name,
            "stac_api": self.url,
            "collection": sensor.collection,
            "stac_collection": cid,
            "product": prod.key if prod else None,
            "composite": sensor.composite,
            "scale_m": sensor.scale_m,
            "cloud_filter": f"{CLOUD_PROPERTY} <= {cloudy:g}" if cloudy is not None else None,
            "temporal": {"start": temporal.start, "end": temporal.end} if temporal else None,
            "scenes": [it.get("id") for it in used_items],
            "scene_dates": [(it.get("properties") or {}).get("datetime") for it in used_items],
            "items": [item_summary(it) for it in used_items],
            "n_scenes": len(used_items),
            "order": "datetime ascending, then id",
            "resampling": resampling_used,
            "resampling_policy": self.resampling,
            "overview_level": overviews,
            "radiometry": [r for r, u in zip(records, used) if u],
            "cloud_mask": ({"band": mask_band, "invalid_classes": sorted(self.scl_invalid)
                            if mask_band == "SCL" else list(quality.LANDSAT_QA_PIXEL_INVALID),
                            "masked_pixels": masked_px} if mask_band else None),
            "signing": getattr(self.sign, "name", None) if self.sign else None,
            **filled,
            "source_pixels_read": int(pixels_read),
            "requests": {"attempts": budget.sent, "retries": budget.retries},
        }
        return Patch(data=np.ascontiguousarray(data, dtype=np.float32), bands=tuple(sensor.bands),
                     grid=grid, meta=meta, valid=valid)

    def _read_band(self, a: BandAsset, grid: Grid, out: np.ndarray, method: str, budget: FetchBudget):
        stats = self.reader.read(a.href, grid, out, resampling=method, nodata=a.nodata,
                                 overview_ok=not a.categorical, budget=budget)
        out[...] = a.apply(out)
        return stats

    def _signer(self, budget: FetchBudget) -> Optional[Callable[[str], str]]:
        """``self.sign`` bounded by the fetch: a signer that takes ``timeout_s`` (Planetary
        Computer's) gets what is left of the fetch."""
        if self.sign is None:
            return None
        timed = getattr(self.sign, "accepts_timeout", False)

        def sign(href: str) -> str:
            budget.check()
            try:
                return self.sign(href, timeout_s=budget.request_timeout()) if timed else self.sign(href)
            except ProviderError as exc:
                raise budget.mark(exc)
        return sign

    def close(self) -> None:
        self._pool.close()

    # -- cloud masks ---------------------------------------------------------------------
    def _mask_band(self, prod, entry) -> Optional[str]:
        if not self.mask_clouds or prod is None or entry is None:
            return None
        for band in ("SCL", "QA_PIXEL"):
            if band in prod.quality_bands and band in entry.assets:
                return band
        return None

    def _clear_mask(self, item: dict, grid: Grid, band: Optional[str], entry, prod, sign,
                    budget: FetchBudget) -> Optional[np.ndarray]:
        """True where the item's quality band says the pixel is clear (None: no mask)."""
        if band is None or asset_key(item, band, entry, prod) is None:
            return None
        a = band_assets(item, (band,), entry, prod, sign)[band]
        q = np.empty((grid.height, grid.width), np.float32)
        self.reader.read(a.href, grid, q, resampling="nearest", nodata=None, overview_ok=False,
                         budget=budget)
        finite = np.isfinite(q)
        if band == "SCL":
            return quality.scl_valid(q, self.scl_invalid) & finite
        bits = [quality.LANDSAT_QA_PIXEL_BITS[n] for n in quality.LANDSAT_QA_PIXEL_INVALID]
        return quality.qa_bits_clear(np.where(finite, q, 1), bits) & finite

    def describe(self) -> dict:
        return {"backend": self.name, "stac_api": self.url, **self.policy.to_dict(),
                "mask_clouds": self.mask_clouds, "resampling": self.resampling,
                "use_overviews": self.reader.use_overviews,
                "collections": dict(self.collections)}


#: how long past the deadline a fetch waits for reads still running (less than the
#: engine's grace, :func:`rs_embed.export.workers.grace_s`, so the provider's own
#: FetchTimeout comes first)
_OVERRUN_S = 0.25


class ReadPool:
    """Daemon threads running the reads of patches, shared by a provider's fetches.

    Daemon, because a read stuck in a socket must never hold up the interpreter's exit
    (``concurrent.futures`` joins its threads at exit). The fetch waiting for its reads
    looks at its cancel event and deadline meanwhile, so it returns on time even when a
    read does not.
    """

    def __init__(self, size: int, name: str):
        self.size = int(size)
        self.name = name
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def _worker(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
            if job is None:
                return
            job.run()

    def run(self, fns: Sequence[Callable[[], Any]], budget: FetchBudget) -> list:
        """``[fn() for fn in fns]`` on the pool (in order; the first error is raised).

        Even one read goes to the pool: GDAL gives each HTTP request of a read the time
        left when the read began, so a read of several requests can overrun; the waiting
        fetch gives up on it just past the deadline instead."""
        jobs = [_Job(fn) for fn in fns]
        with self._lock:
            want = min(self.size, len(self._threads) + max(0, len(jobs) - self._idle))
            while len(self._threads) < want:
                t = threading.Thread(target=self._worker, daemon=True,
                                     name=f"{self.name}-{len(self._threads) + 1}")
                self._threads.append(t)
                t.start()
        for job in jobs:
            self._jobs.put(job)
        try:
            out = []
            for job in jobs:
                while not job.done.wait(0.1):
                    if budget.ctx.cancelled():
                        raise budget.mark(FetchCancelled(f"{budget.ctx.what} was cancelled"))
                    left = budget.remaining()
                    if left is not None and left < -_OVERRUN_S:  # the reads should have timed out
                        raise budget.mark(FetchTimeout(
                            f"{budget.ctx.what}: a read did not return within "
                            f"fetch_timeout_s={budget.ctx.timeout_s:g} s"))
                if job.error is not None:
                    raise job.error
                out.append(job.value)
            return out
        finally:
            for job in jobs:
                job.skip = True  # those not started yet are dropped

    def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)


class _Job:
    __slots__ = ("fn", "done", "value", "error", "skip")

    def __init__(self, fn):
        self.fn = fn
        self.done = threading.Event()
        self.value = None
        self.error: Optional[BaseException] = None
        self.skip = False

    def run(self) -> None:
        try:
            if not self.skip:
                self.value = self.fn()
        except BaseException as exc:  # raised by the waiting fetch
            self.error = exc
        finally:
            self.done.set()


class EarthSearchProvider(StacProvider):
    """``backend="earth-search"``: Earth Search by Element 84 (no account)."""

    def __init__(self, url: Optional[str] = None, **kwargs):
        super().__init__(url, preset="earth-search", **kwargs)


class PlanetaryComputerProvider(StacProvider):
    """``backend="planetary-computer"``: Microsoft Planetary Computer (no account; assets
    signed with free SAS tokens)."""

    _needs = ("pystac_client", "planetary_computer")

    def __init__(self, url: Optional[str] = None, **kwargs):
        super().__init__(url, preset="planetary-computer", **kwargs)


def earth_search(**kwargs) -> StacProvider:
    """Earth Search by Element 84 (no account): ``StacProvider(preset="earth-search")``."""
    return EarthSearchProvider(**kwargs)


def planetary_computer(**kwargs) -> StacProvider:
    """Microsoft Planetary Computer (no account; assets signed with free SAS tokens)."""
    return PlanetaryComputerProvider(**kwargs)


__all__ = ["StacProvider", "ReadPool", "EarthSearchProvider", "PlanetaryComputerProvider", "earth_search",
           "planetary_computer", "DEFAULT_MAX_CONCURRENT_READS"]
