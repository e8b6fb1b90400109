"""NetCDF-4 files of an export: named dimensions, CF-style attributes, coordinates.

Written with ``netCDF4`` directly (the engine ``xarray`` uses to read them) so a
combined export can stream one point at a time into its variables instead of building
the whole dataset in memory. Dimension names are the plain ``point``, ``band``, ``y``,
``x``, ``dim``; an array whose size (or labels) differ from an existing dimension of
that name gets its own, suffixed with its key (``band__spectral``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

#: HDF5 is not thread-safe; every netCDF file is created under this lock
NC_LOCK = threading.RLock()
#: zlib level of NetCDF variables (with the shuffle filter)
COMPLEVEL = 1


def _netcdf4():
    try:
        import netCDF4
    except ImportError:  # pragma: no cover - a core dependency
        raise ImportError("format='netcdf' needs the netCDF4 package: pip install netCDF4 xarray") from None
    return netCDF4


@dataclass
class NcVar:
    """One variable to create: logical dim names map to sizes (and optional coordinates)."""

    name: str
    dims: Tuple[str, ...]
    shape: Tuple[int, ...]
    dtype: Any = "f4"
    attrs: Dict[str, Any] = field(default_factory=dict)
    #: coordinate values per logical dim (e.g. band names, projected x/y)
    coords: Dict[str, Any] = field(default_factory=dict)
    #: attributes of those coordinate variables
    coord_attrs: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    chunks: Optional[Tuple[int, ...]] = None
    compress: bool = True
    #: a ``_FillValue`` (NaN for floats); off for variables written whole at once
    fill: bool = True


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all(a == b))


def _attr(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        return arr if arr.dtype.kind in "iuf" else " ".join(str(v) for v in value)
    return value


class NetCDFWriter:
    """Define variables, then fill them whole or one point at a time."""

    def __init__(self, path: str, global_attrs: Mapping[str, Any]):
        nc = _netcdf4()
        self.ds = nc.Dataset(path, "w", format="NETCDF4")
        self._dims: Dict[str, Tuple[int, Any]] = {}  # actual dim -> (size, coord values)
        self.vars: Dict[str, Tuple[str, ...]] = {}
        for k, v in global_attrs.items():
            self.ds.setncattr(k, _attr(v))

    def _dim(self, logical: str, size: int, coord, owner: str, coord_attrs) -> str:
        name = logical
        n = 1
        while name in self._dims:
            have_size, have_coord = self._dims[name]
            if have_size == size and _same(have_coord, coord):
                return name
            name = f"{logical}__{owner}" if n == 1 else f"{logical}__{owner}_{n}"
            n += 1
        self.ds.createDimension(name, size)
        self._dims[name] = (size, None if coord is None else np.asarray(coord))
        if coord is not None:
            values = np.asarray(coord)
            if values.dtype.kind in "USO":
                var = self.ds.createVariable(name, str, (name,))
                var[:] = values.astype(object)
            else:
                var = self.ds.createVariable(name, values.dtype, (name,))
                var[:] = values
            for k, v in (coord_attrs or {}).items():
                var.setncattr(k, _attr(v))
        return name

    def define(self, var: NcVar) -> Tuple[str, ...]:
        owner = var.name.split("__", 1)[-1] or var.name
        dims = tuple(self._dim(d, s, var.coords.get(d), owner, var.coord_attrs.get(d))
                     for d, s in zip(var.dims, var.shape))
        if var.dtype is str:
            v = self.ds.createVariable(var.name, str, dims)
        else:
            kind = np.dtype(var.dtype).kind
            kwargs = {}
            if var.compress and len(dims) and int(np.prod(var.shape)) > 0:
                kwargs.update(zlib=True, complevel=COMPLEVEL, shuffle=True)
                if var.chunks is not None:
                    kwargs["chunksizes"] = var.chunks
            fill = np.nan if kind == "f" and var.fill else None
            v = self.ds.createVariable(var.name, np.dtype(var.dtype), dims, fill_value=fill, **kwargs)
        for k, value in var.attrs.items():
            v.setncattr(k, _attr(value))
        self.vars[var.name] = dims
        return dims

    def put(self, name: str, value, index: Optional[int] = None) -> None:
        var = self.ds.variables[name]
        if var.dtype is str:
            value = np.asarray(value, dtype=object)
        if index is None:
            var[...] = value
        else:
            var[index] = value

    def close(self) -> None:
        self.ds.close()


def write_netcdf(path: str, variables: Sequence[Tuple[NcVar, Any]], global_attrs: Mapping[str, Any]) -> Dict[str, Tuple[str, ...]]:
    """Create ``path`` holding each ``(NcVar, data)``; returns the dims used per variable."""
    with NC_LOCK:
        w = NetCDFWriter(path, global_attrs)
        try:
            for var, data in variables:
                w.define(var)
                if data is not None:
                    w.put(var.name, data)
        finally:
            w.close()
    return w.vars


__all__ = ["NcVar", "NetCDFWriter", "write_netcdf", "NC_LOCK", "COMPLEVEL"]


# ------------------------------------------------------------- export variables

_INPUT_UNITS_NOTE = ("values as served by the provider for this collection "
                     "(Sentinel-2: digital numbers = reflectance x 10000)")


def geotransform(transform: Sequence[float]) -> str:
    """GDAL ``GeoTransform`` string of a rasterio-order affine ``(a, b, c, d, e, f)``."""
    a, b, c, d, e, f = [float(v) for v in transform]
    return f"{c!r} {a!r} {b!r} {f!r} {d!r} {e!r}"


def input_var(key: str, shape: Sequence[int], *, bands: Sequence[str], collection: str,
              point_dim: bool, crs: Optional[str] = None,
              transform: Optional[Sequence[float]] = None) -> NcVar:
    """A model input patch: ``(band, y, x)`` or stacked ``(point, band, y, x)``."""
    shape = tuple(int(s) for s in shape)
    dims = ("point", "band", "y", "x") if point_dim else ("band", "y", "x")
    attrs = {"long_name": f"input patch ({collection})", "units": "1",
             "comment": _INPUT_UNITS_NOTE, "collection": collection,
             "coordinates": "lon lat"}
    coords: Dict[str, Any] = {"band": np.asarray([str(b) for b in bands])}
    cattrs: Dict[str, Dict[str, Any]] = {"band": {"long_name": "band name"}}
    if not point_dim and transform is not None:
        a, _, c, _, e, f = [float(v) for v in transform]
        h, w = shape[1], shape[2]
        coords["x"] = c + a * (np.arange(w) + 0.5)
        coords["y"] = f + e * (np.arange(h) + 0.5)
        cattrs["x"] = {"standard_name": "projection_x_coordinate", "long_name": "easting of pixel centre", "units": "m"}
        cattrs["y"] = {"standard_name": "projection_y_coordinate", "long_name": "northing of pixel centre", "units": "m"}
        attrs.update(grid_mapping=f"crs__{key.split('__', 1)[-1]}")
    chunks = (1,) + shape[1:] if point_dim and len(shape) == 4 else None
    return NcVar(key, dims, shape, "f4", attrs, coords, cattrs, chunks=chunks)


def embedding_var(key: str, shape: Sequence[int], *, model: str, point_dim: bool) -> NcVar:
    """An embedding: pooled ``(dim,)`` / ``(point, dim)`` or grid ``(dim, grid_y, grid_x)``."""
    shape = tuple(int(s) for s in shape)
    core = len(shape) - (1 if point_dim else 0)
    dims = ("dim",) if core == 1 else ("dim", "grid_y", "grid_x")
    if point_dim:
        dims = ("point",) + dims
    attrs = {"long_name": f"{model} embedding", "units": "1", "model": model,
             "coordinates": "lon lat"}
    chunks = (1,) + shape[1:] if point_dim and core > 1 else None
    return NcVar(key, dims, shape, "f4", attrs, chunks=chunks)


def crs_var(key: str, crs: str, transform: Sequence[float]) -> NcVar:
    """A CF grid-mapping variable naming the patch's projected CRS."""
    return NcVar(f"crs__{key}", (), (), "i4",
                 {"spatial_ref": crs, "crs": crs, "GeoTransform": geotransform(transform),
                  "long_name": "coordinate reference system of the input patch"}, compress=False)


def lonlat_vars(lon, lat, *, point_dim: bool) -> list:
    """Coordinates of the ROI centres (``point``-indexed in combined files)."""
    dims = ("point",) if point_dim else ()
    lon = np.asarray(lon, dtype="f8")
    lat = np.asarray(lat, dtype="f8")
    return [
        (NcVar("lon", dims, lon.shape, "f8", {"standard_name": "longitude", "long_name": "ROI centre longitude",
                                              "units": "degrees_east"}, compress=False), lon),
        (NcVar("lat", dims, lat.shape, "f8", {"standard_name": "latitude", "long_name": "ROI centre latitude",
                                             "units": "degrees_north"}, compress=False), lat),
    ]


def export_attrs(*, title: str, created_at: str, backend: str, device: str, n_items: int,
                 version: str, extra: Optional[Mapping[str, Any]] = None) -> dict:
    """Global attributes of an export file (public rs-embed names plus ours)."""
    attrs = {
        "Conventions": "CF-1.8",
        "title": title,
        "history": f"{created_at} created by rs_embed {version} export_batch (format=netcdf)",
        "source": f"rs_embed {version}",
        "created_at": created_at,
        "backend": backend,
        "device": device,
        "n_items": int(n_items),
    }
    attrs.update(extra or {})
    return attrs


__all__ += ["input_var", "embedding_var", "crs_var", "lonlat_vars", "export_attrs", "geotransform"]
