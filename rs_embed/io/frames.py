"""An export as a table or a dataset: ``ExportResult.to_geodataframe()`` / ``.to_xarray()``.

Both work for every format and layout (they read through the :class:`ExportResult`, so a
lazy result reads only the models asked for).

* :func:`to_geodataframe`: one row per point x model, the layout of the GeoParquet
  output (``geopandas.read_parquet`` of a ``format="parquet"`` export gives the same
  columns): ``point_index``, ``name``, ``model``, ``status``, ``lon``, ``lat``, ``geometry``
  (the footprint of the ROI's pixels, EPSG:4326) and ``embedding`` (a float32 vector per
  row, None where the point failed). Long rows suit filtering (``gdf[gdf.model == m]``)
  and maps (``lonboard.viz(gdf)``).
* :func:`to_xarray`: one ``point`` dimension with ``lon``/``lat``/``name`` coordinates,
  ``embeddings__<model>`` (and ``inputs_bchw__<model>`` with ``inputs=True``) and
  ``status__<model>`` per model.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from . import keys as K


def _models(result, models: Optional[Sequence[str]]) -> List[str]:
    if models is None:
        return list(result.models)
    if isinstance(models, str):
        models = [models]
    return [result._model(m).name for m in models]


def _spatial(d: Any):
    from ..specs import BBox, PointBuffer

    if not isinstance(d, dict):
        return None
    try:
        if d.get("type") == "BBox":
            return BBox(d["minlon"], d["minlat"], d["maxlon"], d["maxlat"])
        if d.get("type") == "PointBuffer":
            return PointBuffer(d["lon"], d["lat"], d["buffer_m"])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _scale(result, model: str) -> float:
    for e in (result.manifest or {}).get("models") or []:
        if isinstance(e, dict) and e.get("model") == model:
            s = (e.get("sensor") or {}).get("scale_m")
            if isinstance(s, (int, float)) and s > 0:
                return float(s)
    return 10.0


def _ok(result, model: str) -> np.ndarray:
    r = result._model(model)
    ok = np.ones(result.n_items, bool)
    ok[np.asarray(list(r.failed_indices), dtype=int)] = False
    return ok


def to_geodataframe(result, models: Optional[Sequence[str]] = None, *, embeddings: bool = True):
    """One row per point x model (see the module doc); ``models``: a subset, ``embeddings``:
    False leaves the vectors out (a light table for a map)."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from .geoparquet import footprints

    names = result.names or [K.default_item_name(i) for i in range(result.n_items)]
    specs = [_spatial(d) for d in result.spatials]
    frames = []
    for m in _models(result, models):
        n = result.n_items
        lon = np.array([s.center[0] if s is not None else np.nan for s in specs])
        lat = np.array([s.center[1] if s is not None else np.nan for s in specs])
        geoms = np.full(n, None, dtype=object)
        known = [i for i, s in enumerate(specs) if s is not None]
        if known:
            rings, _, _ = footprints([specs[i] for i in known], _scale(result, m))
            geoms[known] = shapely.polygons(rings)
        ok = _ok(result, m)
        cols = {"point_index": np.arange(n, dtype=np.int32), "name": list(names[:n]), "model": [m] * n,
                "status": np.where(ok, "ok", "failed"), "lon": lon, "lat": lat}
        if embeddings:
            r = result._model(m)
            emb = result.embedding(m) if r.status != "failed" else None
            vecs = np.full(n, None, dtype=object)
            if emb is not None:
                for i in np.flatnonzero(ok).tolist():
                    row = emb[i]
                    vecs[i] = None if row is None else np.asarray(row, dtype=np.float32)
            cols["embedding"] = vecs
        frames.append(pd.DataFrame(cols).assign(geometry=geoms))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return gpd.GeoDataFrame(df, geometry="geometry", crs="EPSG:4326")


def to_xarray(result, models: Optional[Sequence[str]] = None, *, inputs: bool = False):
    """An ``xarray.Dataset`` with a ``point`` dimension (see the module doc). A Zarr export
    opens lazily from its store; other formats are built from the loaded arrays."""
    import xarray as xr

    chosen = _models(result, models)
    if result.format == "zarr" and result.layout == "combined":
        ds = xr.open_zarr(result.path, consolidated=None)
        keep = {"point", "lon", "lat", "time_start", "time_end"}
        for m in chosen:
            key = K.sanitize_key(m)
            keep |= {K.embeddings_key(key), f"status__{key}"}
            if inputs:
                keep.add(K.inputs_key(key))
        return ds[[v for v in ds.data_vars if v in keep]]
    n = result.n_items
    specs = [_spatial(d) for d in result.spatials]
    names = result.names or [K.default_item_name(i) for i in range(n)]
    coords = {"point": np.arange(n), "name": ("point", list(names[:n])),
              "lon": ("point", np.array([s.center[0] if s is not None else np.nan for s in specs])),
              "lat": ("point", np.array([s.center[1] if s is not None else np.nan for s in specs]))}
    data = {}
    for m in chosen:
        key = K.sanitize_key(m)
        r = result._model(m)
        data[f"status__{key}"] = ("point", np.where(_ok(result, m), 1, 2).astype(np.int8),
                                  {"flag_values": [0, 1, 2], "flag_meanings": "not_exported ok failed"})
        emb = result.embedding(m) if r.status != "failed" and r.embeddings is not None else None
        if isinstance(emb, list):
            raise ValueError(f"the embeddings of {m!r} differ in shape from point to point; to_xarray needs one "
                             "shape per model (read them with result.embedding(m))")
        if emb is not None:
            dims = ["point", f"dim__{key}", f"y__{key}", f"x__{key}"][:np.ndim(emb)]
            data[K.embeddings_key(key)] = (dims, np.asarray(emb), {"model": m})
        if inputs:
            inp = result.inputs(m)
            if inp is not None and not isinstance(inp, list):
                dims = ["point", f"band__{key}", f"y__{key}", f"x__{key}"][:np.ndim(inp)]
                data[K.inputs_key(key)] = (dims, np.asarray(inp), {"model": m})
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"layout": result.layout, "format": result.format, "n_items": n,
                     "request_fingerprint": str((result.manifest or {}).get("request_fingerprint", ""))})
    return ds


__all__ = ["to_geodataframe", "to_xarray"]
