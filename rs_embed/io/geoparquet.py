"""The GeoParquet 1.1 layout of a combined export (``format="parquet"``): the one place it lives.

One row per ROI x model, rows ordered by model then point, each model in its own row
groups (so a reader that wants one model skips the others by the ``model`` column's
statistics). Columns:

``point_index`` int32, ``name`` string, ``model`` string, ``status`` string (``ok`` /
``failed``), ``error`` string (null when ok), ``lon``/``lat`` float64 (ROI centre,
EPSG:4326), ``geometry`` WKB polygon (the footprint of the ROI's pixels in EPSG:4326),
``utm_crs`` string and ``utm_bounds`` fixed-size list<float64, 4> (minx, miny, maxx,
maxy of that grid in its UTM CRS), ``time_start``/``time_end`` date32, ``fingerprint``
string (SHA-1 of the one-point request, as a per-item export records it) and
``embedding`` fixed-size list<float32, D> (null where the point failed).

File key-value metadata: ``geo`` (GeoParquet 1.1: version, primary column, encoding
WKB, geometry types, CRS as PROJJSON, bbox) and ``rs_embed`` (JSON: request
fingerprint, models with their ``describe()``, sensors, output, run settings, package
version). Input patches are not stored (a table of pooled vectors; use
``format="zarr"`` for patches and grid embeddings).
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

GEO_VERSION = "1.1.0"
#: key-value metadata key of the run metadata
META_KEY = b"rs_embed"
#: key-value metadata key of each model's vector size and row groups (written last)
MODELS_KEY = b"rs_embed_models"
#: bytes of embeddings per row group (a row group is what a writer or reader holds at once)
ROW_GROUP_BYTES = 16 << 20


def _pa():
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def rows_per_group(dim: int) -> int:
    return int(max(1024, min(131_072, ROW_GROUP_BYTES // max(1, 4 * dim))))


def schema(dim: int):
    pa, _ = _pa()
    return pa.schema([
        ("point_index", pa.int32()), ("name", pa.string()), ("model", pa.string()),
        ("status", pa.string()), ("error", pa.string()),
        ("lon", pa.float64()), ("lat", pa.float64()), ("geometry", pa.binary()),
        ("utm_crs", pa.string()), ("utm_bounds", pa.list_(pa.float64(), 4)),
        ("time_start", pa.date32()), ("time_end", pa.date32()),
        ("fingerprint", pa.string()), ("embedding", pa.list_(pa.float32(), max(1, dim))),
    ])


def crs_projjson() -> dict:
    from pyproj import CRS

    return CRS.from_epsg(4326).to_json_dict()


def geo_metadata(bbox: Sequence[float]) -> dict:
    return {"version": GEO_VERSION, "primary_column": "geometry",
            "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"],
                                     "crs": crs_projjson(), "edges": "planar",
                                     "bbox": [float(v) for v in bbox]}}}


# ------------------------------------------------------------------- footprints


def footprints(spatials: Sequence[Any], scale_m: float) -> Tuple[np.ndarray, List[str], np.ndarray]:
    """Per ROI: its grid's corners in lon/lat ``(n, 5, 2)`` (closed ring), the UTM CRS and
    the grid bounds ``(n, 4)`` in it, vectorised by UTM zone (a million ROIs in seconds).

    The grid is :func:`rs_embed.geometry.roi_grid`'s (the pixels every provider samples),
    cropped to the ROI's own pixels for a non-square ``BBox``."""
    from ..geometry import _buffer_pixels, roi_grid, transformer, utm_epsg
    from ..specs import PointBuffer

    n = len(spatials)
    rings = np.zeros((n, 5, 2))
    bounds = np.zeros((n, 4))
    crs: List[str] = [""] * n
    by_zone: Dict[int, List[int]] = {}
    s = float(scale_m)
    for j, sp in enumerate(spatials):
        if isinstance(sp, PointBuffer):
            by_zone.setdefault(utm_epsg(*sp.center), []).append(j)
        else:
            g = roi_grid(sp, s).roi_grid()
            bounds[j] = g.bounds
            crs[j] = g.crs
    for epsg, idx in by_zone.items():
        name = f"EPSG:{epsg}"
        lon = np.array([spatials[j].lon for j in idx])
        lat = np.array([spatials[j].lat for j in idx])
        buf = np.array([spatials[j].buffer_m for j in idx])
        px = np.array([_buffer_pixels(b, s) for b in buf]) if len(set(buf.tolist())) > 1 else \
            np.full(len(idx), _buffer_pixels(float(buf[0]), s))
        cx, cy = transformer("EPSG:4326", name).transform(lon, lat)
        x0 = np.round((np.asarray(cx) - buf) / s) * s
        y1 = np.round((np.asarray(cy) + buf) / s) * s
        bounds[idx] = np.stack([x0, y1 - px * s, x0 + px * s, y1], axis=1)
        for j in idx:
            crs[j] = name
    for name in set(crs):
        idx = [j for j, c in enumerate(crs) if c == name]
        b = bounds[idx]
        xs = np.stack([b[:, 0], b[:, 2], b[:, 2], b[:, 0], b[:, 0]], axis=1)
        ys = np.stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3], b[:, 1]], axis=1)
        lo, la = transformer(name, "EPSG:4326").transform(xs.ravel(), ys.ravel())
        rings[idx, :, 0] = np.asarray(lo).reshape(-1, 5)
        rings[idx, :, 1] = np.asarray(la).reshape(-1, 5)
    return rings, crs, bounds


def polygons_wkb(rings: np.ndarray) -> List[bytes]:
    import shapely

    polys = shapely.polygons(rings)
    return list(shapely.to_wkb(polys, flavor="iso"))


def _days(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    return (date.fromisoformat(str(text)[:10]) - date(1970, 1, 1)).days


# ------------------------------------------------------------------------ writer


class GeoParquetWriter:
    """Streams row groups into an open binary file object (the caller renames it into place)."""

    def __init__(self, fh, dim: int, meta: dict):
        pa, pq = _pa()
        self.dim = max(1, int(dim))
        self.schema = schema(self.dim).with_metadata({META_KEY: json.dumps(meta, allow_nan=False)})
        self._file = pa.PythonFile(fh, mode="w")
        self._w = pq.ParquetWriter(self._file, self.schema, compression={
            c: ("none" if c == "embedding" else "zstd") for c in self.schema.names},
            use_dictionary=["model", "status", "utm_crs", "error"], write_statistics=[
                "point_index", "model", "status", "lon", "lat"])
        self.bbox = [math.inf, math.inf, -math.inf, -math.inf]
        self.row_groups: Dict[str, List[int]] = {}
        self._groups = 0

    def write(self, *, model: str, index: np.ndarray, names: Sequence[str], ok: np.ndarray,
              errors: Sequence[Optional[str]], lon: np.ndarray, lat: np.ndarray, rings: np.ndarray,
              crs: Sequence[str], bounds: np.ndarray, temporal: Optional[dict],
              fingerprints: Sequence[str], embeddings: np.ndarray) -> None:
        """One row group: the rows of ``model`` for the points ``index``; ``embeddings``
        ``(len(index), D)`` with rows only where ``ok``."""
        pa, _ = _pa()
        k = len(index)
        t = temporal or {}
        start, end = _days(t.get("start")), _days(t.get("end"))
        flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1), type=pa.float32())
        emb = pa.FixedSizeListArray.from_arrays(flat, self.dim, mask=pa.array(~ok))
        ub = pa.FixedSizeListArray.from_arrays(pa.array(bounds.reshape(-1), type=pa.float64()), 4)
        self.bbox = [min(self.bbox[0], float(rings[..., 0].min())), min(self.bbox[1], float(rings[..., 1].min())),
                     max(self.bbox[2], float(rings[..., 0].max())), max(self.bbox[3], float(rings[..., 1].max()))]
        table = pa.Table.from_arrays([
            pa.array(index, type=pa.int32()), pa.array(list(names), type=pa.string()),
            pa.array([model] * k, type=pa.string()),
            pa.array(np.where(ok, "ok", "failed"), type=pa.string()), pa.array(list(errors), type=pa.string()),
            pa.array(lon, type=pa.float64()), pa.array(lat, type=pa.float64()),
            pa.array(polygons_wkb(rings), type=pa.binary()), pa.array(list(crs), type=pa.string()), ub,
            pa.array([start] * k, type=pa.date32()), pa.array([end] * k, type=pa.date32()),
            pa.array(list(fingerprints), type=pa.string()), emb,
        ], schema=self.schema)
        self._w.write_table(table, row_group_size=k)
        self.row_groups.setdefault(model, []).append(self._groups)
        self._groups += 1

    def close(self, dims: Optional[Dict[str, int]] = None) -> None:
        """Finish the file; ``dims``: each model's vector size (shorter ones are NaN-padded
        to the column's size when models differ)."""
        if not all(math.isfinite(v) for v in self.bbox):
            self.bbox = [0.0, 0.0, 0.0, 0.0]
        models = {m: {"dim": int((dims or {}).get(m, self.dim)), "row_groups": g}
                  for m, g in self.row_groups.items()}
        self._w.add_key_value_metadata({"geo": json.dumps(geo_metadata(self.bbox)),
                                        MODELS_KEY.decode(): json.dumps(models)})
        self._w.close()


# ------------------------------------------------------------------------ reader


def file_metadata(path: str, key: bytes = META_KEY) -> Optional[dict]:
    """The ``rs_embed`` key-value metadata of a GeoParquet export (None if it has none)."""
    _, pq = _pa()
    try:
        kv = pq.read_metadata(path).metadata or {}
    except Exception:
        return None
    raw = kv.get(key)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def models_in(path: str) -> List[str]:
    meta = file_metadata(path) or {}
    return [m.get("model") for m in meta.get("models") or [] if isinstance(m, dict) and m.get("model")]


def read_embeddings(path: str, model: str, n: int) -> Optional[np.ndarray]:
    """``(n, D)`` float32 of one model, NaN rows where a point failed; reads that model's
    row groups only, one at a time (the returned array plus one row group in memory)."""
    pa, pq = _pa()
    pf = pq.ParquetFile(path)
    try:
        info = (file_metadata(path, MODELS_KEY) or {}).get(model) or {}
        groups = info.get("row_groups")
        md = pf.metadata
        col = pf.schema_arrow.get_field_index("model")
        if groups is None:  # from the statistics of the model column
            groups = []
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(col).statistics
                if st is None or not st.has_min_max or st.min <= model <= st.max:
                    groups.append(g)
        dim = pf.schema_arrow.field("embedding").type.list_size
        out: Optional[np.ndarray] = None
        for g in groups:
            t = pf.read_row_group(g, columns=["point_index", "model", "embedding"])
            keep = np.asarray(t.column("model").to_numpy(zero_copy_only=False) == model)
            if not keep.any():
                continue
            if out is None:
                out = np.full((n, dim), np.nan, dtype=np.float32)
            idx = t.column("point_index").to_numpy()[keep]
            emb = t.column("embedding").combine_chunks()
            valid = ~np.asarray(emb.is_null().to_numpy(zero_copy_only=False))
            vals = emb.flatten().to_numpy().reshape(-1, dim) if len(emb) else np.zeros((0, dim), np.float32)
            # flatten() drops null rows' values: map the valid rows back
            rows_valid = valid & keep
            sel = np.flatnonzero(rows_valid)
            pos = np.cumsum(valid) - 1
            out[t.column("point_index").to_numpy()[sel]] = vals[pos[sel]]
            del t, emb, vals, idx
            pa.default_memory_pool().release_unused()  # keep one row group's worth, not many
        d = info.get("dim")
        if out is not None and isinstance(d, int) and 0 < d < dim:
            out = np.ascontiguousarray(out[:, :d])
        return out
    finally:
        pf.close()


__all__ = ["GeoParquetWriter", "geo_metadata", "footprints", "polygons_wkb", "file_metadata", "models_in",
           "read_embeddings", "rows_per_group", "schema", "META_KEY", "MODELS_KEY", "GEO_VERSION"]
