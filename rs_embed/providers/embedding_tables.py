"""GeoParquet embedding tables (Major TOM, Earth Index): read-only lookups under an ROI.

Some products publish embeddings as rows of GeoParquet, one row per image fragment,
rather than as rasters:

- **Major TOM embeddings** (Czerkawski et al., arXiv:2412.05600): one row per fragment
  of a Major TOM grid cell, columns ``embedding`` (list of floats), ``centre_lat``,
  ``centre_lon``, ``timestamp``, ``product_id``, ``grid_cell``, ``geometry``.
- **Earth Index embeddings** (Earth Genome; SoftCon on Earth Index v2 Sentinel-2
  mosaics): one 384-d row per 320 m patch, ``embedding``, ``id``, point ``geometry``
  (the patch centroid), one file per MGRS tile.

A lookup returns the rows whose centre lies in the ROI, grown by ``radius_m`` (half a
fragment, so a point ROI finds the fragment that covers it), and, where the table has
timestamps, inside the time window. The patch has one band, ``"embedding"``, holding
the N rows as an ``(N, D)`` table: data ``(1, N, D)``, the rows' ids, centres and dates
in ``meta["rows"]``; ``valid`` marks the rows (a row with a non-finite value is nodata,
NaN throughout).

Only what the ROI needs is read: files whose GeoParquet ``bbox`` misses the ROI are
skipped; row groups whose ``centre_lat``/``centre_lon`` statistics miss it are skipped;
the embedding column is read only for row groups that hold a match. Remote files are
read through fsspec's HTTP filesystem (Range requests). Files are listed in the
product's environment variable (``RS_EMBED_MAJORTOM_URLS`` /
``RS_EMBED_EARTHINDEX_URLS``: paths, folders or URLs, separated by commas or spaces).

Time: every HTTP request gets the fetch context's timeout and the context is looked
at between files and row groups; nothing retries here (the export engine's one retry
layer decides, within ``fetch_timeout_s``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ProviderError
from ..geometry import roi_grid, transformer
from ..specs import SensorSpec, SpatialSpec, TemporalSpec
from .base import Patch, Provider, current_fetch

#: the one "band" a table sensor names: the row's whole embedding vector
EMBEDDING_BAND = "embedding"


@dataclass(frozen=True)
class TableProduct:
    """How one published table is laid out."""

    name: str
    collection: str
    urls_env: str
    radius_m: float
    id_column: str
    lonlat_columns: Optional[Tuple[str, str]] = None   # else point ``geometry``
    time_column: Optional[str] = None
    extra_columns: Tuple[str, ...] = ()


MAJOR_TOM = TableProduct("majortom", "MAJOR_TOM/EMBEDDINGS", "RS_EMBED_MAJORTOM_URLS", radius_m=1120.0,
                         id_column="unique_id", lonlat_columns=("centre_lon", "centre_lat"),
                         time_column="timestamp", extra_columns=("product_id", "grid_cell"))
EARTH_INDEX = TableProduct("earthindex", "EARTH_INDEX/EMBEDDINGS", "RS_EMBED_EARTHINDEX_URLS", radius_m=160.0,
                           id_column="id")


def _split_urls(value: str) -> List[str]:
    return [u for u in value.replace(",", " ").split() if u]


class EmbeddingTableProvider(Provider):
    """Rows of one GeoParquet embedding product under an ROI (see the module docstring)."""

    def __init__(self, product: TableProduct, urls: Optional[Sequence[str]] = None):
        self.product = product
        self.name = product.name  # type: ignore[misc]
        self._urls = list(urls) if urls is not None else None

    def urls(self) -> List[str]:
        raw = self._urls if self._urls is not None else _split_urls(os.environ.get(self.product.urls_env, ""))
        out: List[str] = []
        for u in raw:
            p = Path(os.path.expanduser(u))
            if "://" not in u and p.is_dir():
                out += sorted(str(f) for f in p.rglob("*.parquet"))
            else:
                out.append(u)
        if not out:
            raise ProviderError(f"{self.product.name}: no GeoParquet files configured; set "
                                f"{self.product.urls_env} to the product's .parquet files (paths, a "
                                f"folder or URLs)")
        return out

    def settings(self) -> dict:
        return {"urls": self._urls if self._urls is not None else os.environ.get(self.product.urls_env, "")}

    def serves(self, sensor: SensorSpec) -> bool:
        return sensor.collection.upper() == self.product.collection

    def check_sensor(self, sensor: SensorSpec) -> Optional[str]:
        if not self.serves(sensor):
            return (f"the {self.product.name} provider serves only {self.product.collection!r}, "
                    f"not collection {sensor.collection!r}")
        if tuple(sensor.bands) != (EMBEDDING_BAND,):
            return (f"the {self.product.name} provider serves each row's whole vector: sensor bands "
                    f"must be ({EMBEDDING_BAND!r},), got {list(sensor.bands)[:4]}")
        return None

    def coverage(self) -> str:
        return f"{self.product.name} GeoParquet embedding rows"

    # -- reading -----------------------------------------------------------------------
    @staticmethod
    def _open(url: str, timeout_s: float):
        import pyarrow.parquet as pq

        if "://" in url and not url.startswith("file://"):
            import fsspec

            protocol = url.split("://", 1)[0]
            kwargs = {}
            if protocol in ("http", "https"):
                import aiohttp

                kwargs["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=timeout_s)}
            # a fresh filesystem per read: fsspec caches instances by their arguments
            fs = fsspec.filesystem(protocol, skip_instance_cache=True, **kwargs)
            return pq.ParquetFile(fs.open(url, "rb", block_size=1 << 16))
        return pq.ParquetFile(url.removeprefix("file://"))

    def fetch(self, spatial: SpatialSpec, temporal: Optional[TemporalSpec], sensor: SensorSpec) -> Patch:
        why = self.check_sensor(sensor)
        if why:
            raise ProviderError(why, transient=False)
        ctx = current_fetch()
        # the ROI's own pixels (a rectangle, not its enclosing square): rows are looked up
        # under the box itself, and the patch is no pixel grid to crop
        grid = roi_grid(spatial, 10).roi_grid()
        r = self.product.radius_m
        left, bottom, right, top = grid.bounds
        box = (left - r, bottom - r, right + r, top + r)
        lonlat_box = transformer(grid.crs, "EPSG:4326").transform_bounds(*box, densify_pts=21)
        window = None
        if temporal is not None:
            window = (datetime.combine(temporal.start_date, datetime.min.time(), timezone.utc),
                      datetime.combine(temporal.end_date, datetime.min.time(), timezone.utc))
        vecs, rows, files = [], [], []
        for url in self.urls():
            ctx.check()
            try:
                got = self._read(url, grid.crs, box, lonlat_box, window, ctx)
            except ProviderError:  # FetchTimeout and FetchCancelled included
                raise
            except Exception as exc:
                raise ProviderError(f"{self.product.name}: cannot read {url}: {type(exc).__name__}: {exc}",
                                    transient=url.startswith("http")) from exc
            if got is not None:
                vecs.append(got[0])
                rows += got[1]
                files.append(url)
        if not rows:
            raise ProviderError(f"{self.product.name}: no embedding row within {r:.0f} m of the ROI"
                                + (" in the time window" if window else "") + f" in {len(self.urls())} file(s)")
        table = np.concatenate(vecs, axis=0).astype(np.float32)  # (N, D)
        bad = ~np.isfinite(table).all(axis=1)  # a row with any non-finite value is nodata
        table[bad] = np.nan
        valid = np.broadcast_to(~bad[:, None], table.shape).copy()
        meta = {"source": files, "product": self.product.name, "rows": rows, "n_rows": len(rows),
                "embedding_dim": int(table.shape[1]),
                "radius_m": r, "nodata": "NaN", "nodata_fraction": float(bad.mean()),
                "layout": "(1, rows, D)",
                "temporal": temporal.to_dict() if temporal is not None else None}
        return Patch(data=table[None], bands=(EMBEDDING_BAND,), grid=grid, meta=meta, valid=valid)

    def _read(self, url, crs, box, lonlat_box, window, ctx):
        import pyarrow as pa
        import pyarrow.compute as pc

        prod = self.product
        pf = self._open(url, ctx.request_timeout())
        if not _file_may_intersect(pf, lonlat_box):
            return None
        names = pf.schema_arrow.names
        loc_cols = list(prod.lonlat_columns) if prod.lonlat_columns else ["geometry"]
        meta_cols = [c for c in (prod.id_column, prod.time_column, *prod.extra_columns) if c and c in names]
        fwd = transformer("EPSG:4326", crs)
        vecs, rows = [], []
        for g in range(pf.num_row_groups):
            ctx.check()
            if prod.lonlat_columns and not _group_may_intersect(pf, g, prod.lonlat_columns, lonlat_box):
                continue
            t = pf.read_row_group(g, columns=loc_cols + meta_cols)
            if prod.lonlat_columns:
                lon = t.column(loc_cols[0]).to_numpy()
                lat = t.column(loc_cols[1]).to_numpy()
            else:
                import shapely

                pts = shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
                lon, lat = shapely.get_x(pts), shapely.get_y(pts)
            x, y = fwd.transform(lon, lat)
            keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
            times = None
            if window is not None and prod.time_column and prod.time_column in names:
                times = t.column(prod.time_column).to_pylist()
                keep &= np.array([_in_window(v, window) for v in times], bool)
            idx = np.flatnonzero(keep)
            if idx.size == 0:
                continue
            emb = pf.read_row_group(g, columns=["embedding"]).column("embedding")
            emb = pc.take(emb, pa.array(idx)).combine_chunks()
            flat = np.asarray(emb.flatten().to_numpy(zero_copy_only=False), np.float32)
            vecs.append(flat.reshape(idx.size, -1))
            sub = t.take(pa.array(idx)).select(meta_cols).to_pylist() if meta_cols else [{}] * idx.size
            for k, i in enumerate(idx):
                row = {c: _plain(v) for c, v in sub[k].items()}
                row.update(lon=float(lon[i]), lat=float(lat[i]))
                rows.append(row)
        if not rows:
            return None
        return np.concatenate(vecs, axis=0), rows


def _plain(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def _in_window(v, window) -> bool:
    if v is None:
        return False
    if isinstance(v, str):
        v = datetime.fromisoformat(v.replace("Z", "+00:00"))
    if v.tzinfo is None:
        v = v.replace(tzinfo=timezone.utc)
    return window[0] <= v < window[1]


def _file_may_intersect(pf, lonlat_box) -> bool:
    """False only when the GeoParquet ``geo`` metadata has a bbox that misses the ROI."""
    md = pf.schema_arrow.metadata or {}
    try:
        geo = json.loads(md[b"geo"])
        bbox = geo["columns"][geo.get("primary_column", "geometry")]["bbox"]
    except (KeyError, ValueError, TypeError):
        return True
    minlon, minlat, maxlon, maxlat = lonlat_box
    return not (bbox[2] < minlon or bbox[0] > maxlon or bbox[3] < minlat or bbox[1] > maxlat)


def _group_may_intersect(pf, g: int, cols, lonlat_box) -> bool:
    rg = pf.metadata.row_group(g)
    leaf = {rg.column(j).path_in_schema: j for j in range(rg.num_columns)}
    limits = {"lon": (lonlat_box[0], lonlat_box[2]), "lat": (lonlat_box[1], lonlat_box[3])}
    for key, col in zip(("lon", "lat"), cols):
        if col not in leaf:
            continue
        st = rg.column(leaf[col]).statistics
        if st is None or not st.has_min_max:
            continue
        lo, hi = limits[key]
        if st.max < lo or st.min > hi:
            return False
    return True


def major_tom() -> EmbeddingTableProvider:
    return EmbeddingTableProvider(MAJOR_TOM)


def earth_index() -> EmbeddingTableProvider:
    return EmbeddingTableProvider(EARTH_INDEX)


__all__ = ["EmbeddingTableProvider", "TableProduct", "MAJOR_TOM", "EARTH_INDEX", "EMBEDDING_BAND",
           "major_tom", "earth_index"]
