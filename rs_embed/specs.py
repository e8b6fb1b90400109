"""The request vocabulary: where, when, which sensor, what output.

Every spec validates itself on construction and raises :class:`SpecError` naming the
field and the offending value, so bad input fails before any imagery is fetched.
Specs are immutable and serialise to plain dicts (``to_dict``) for manifests and
request fingerprints; ``spatial_from_dict`` and friends read them back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date
from collections.abc import Sequence
from typing import Any, Mapping, Optional, Tuple, Union

import numpy as np

from .errors import SpecError

_WGS84 = "EPSG:4326"


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(f"{name} must be finite, got {value!r}")
    return value


def _check_crs(owner: str, crs: Any) -> str:
    if not isinstance(crs, str) or crs.strip().upper() not in (_WGS84, "WGS84", "OGC:CRS84"):
        raise SpecError(
            f"{owner}.crs must be 'EPSG:4326' (lon/lat degrees), got {crs!r}; "
            "reproject your coordinates to WGS84 first"
        )
    return _WGS84


def _check_lon(owner: str, name: str, value: Any) -> float:
    v = _finite_number(f"{owner}.{name}", value)
    if not -180.0 <= v <= 180.0:
        raise SpecError(f"{owner}.{name} must be within [-180, 180] degrees, got {value!r}")
    return v


def _check_lat(owner: str, name: str, value: Any) -> float:
    v = _finite_number(f"{owner}.{name}", value)
    if not -90.0 <= v <= 90.0:
        raise SpecError(f"{owner}.{name} must be within [-90, 90] degrees, got {value!r}")
    return v


# --------------------------------------------------------------------------- spatial


@dataclass(frozen=True)
class PointBuffer:
    """A square ROI of ``2 * buffer_m`` metres on the ground, centred on (lon, lat).

    The square is laid out in the local UTM zone, so it has the same ground size at
    every latitude (unlike a Web Mercator buffer, which shrinks towards the poles).
    """

    lon: float
    lat: float
    buffer_m: float
    crs: str = _WGS84

    def __post_init__(self):
        object.__setattr__(self, "lon", _check_lon("PointBuffer", "lon", self.lon))
        object.__setattr__(self, "lat", _check_lat("PointBuffer", "lat", self.lat))
        b = _finite_number("PointBuffer.buffer_m", self.buffer_m)
        if b <= 0:
            raise SpecError(f"PointBuffer.buffer_m must be > 0 metres, got {self.buffer_m!r}")
        object.__setattr__(self, "buffer_m", b)
        object.__setattr__(self, "crs", _check_crs("PointBuffer", self.crs))

    def validate(self) -> "PointBuffer":
        return self

    @property
    def center(self) -> Tuple[float, float]:
        return (self.lon, self.lat)

    def to_dict(self) -> dict:
        return {"type": "PointBuffer", "lon": self.lon, "lat": self.lat,
                "buffer_m": self.buffer_m, "crs": self.crs}


@dataclass(frozen=True)
class BBox:
    """A geographic box in lon/lat degrees (EPSG:4326 only at the API boundary)."""

    minlon: float
    minlat: float
    maxlon: float
    maxlat: float
    crs: str = _WGS84

    def __post_init__(self):
        for name in ("minlon", "maxlon"):
            object.__setattr__(self, name, _check_lon("BBox", name, getattr(self, name)))
        for name in ("minlat", "maxlat"):
            object.__setattr__(self, name, _check_lat("BBox", name, getattr(self, name)))
        if not self.minlon < self.maxlon:
            raise SpecError(f"BBox.minlon must be < maxlon, got minlon={self.minlon!r}, maxlon={self.maxlon!r}")
        if not self.minlat < self.maxlat:
            raise SpecError(f"BBox.minlat must be < maxlat, got minlat={self.minlat!r}, maxlat={self.maxlat!r}")
        object.__setattr__(self, "crs", _check_crs("BBox", self.crs))

    def validate(self) -> "BBox":
        return self

    @property
    def center(self) -> Tuple[float, float]:
        return ((self.minlon + self.maxlon) / 2.0, (self.minlat + self.maxlat) / 2.0)

    def to_dict(self) -> dict:
        return {"type": "BBox", "minlon": self.minlon, "minlat": self.minlat,
                "maxlon": self.maxlon, "maxlat": self.maxlat, "crs": self.crs}


SpatialSpec = Union[BBox, PointBuffer]


class PointBuffers(Sequence):
    """Many :class:`PointBuffer` ROIs held as arrays of lon, lat and buffer.

    A million places as a list of ``PointBuffer`` objects cost about 220 MB before any
    work starts; as three float arrays they cost 24 MB. ``export_batch`` keeps the arrays
    as they are and makes each point's ``PointBuffer`` when it is fetched. Every value is
    checked here, at once, and a bad one is named by its index::

        PointBuffers(gdf.geometry.x, gdf.geometry.y, buffer_m=80)   # gdf in EPSG:4326
    """

    def __init__(self, lon: Any, lat: Any, buffer_m: Any, crs: str = _WGS84):
        self.crs = _check_crs("PointBuffers", crs)
        self.lon = self._floats("lon", lon)
        self.lat = self._floats("lat", lat, len(self.lon))
        if np.ndim(buffer_m) == 0:
            b = _finite_number("PointBuffers.buffer_m", buffer_m)
            if b <= 0:
                raise SpecError(f"PointBuffers.buffer_m must be > 0 metres, got {buffer_m!r}")
            self.buffer_m = np.broadcast_to(np.float64(b), self.lon.shape)
        else:
            self.buffer_m = self._floats("buffer_m", buffer_m, len(self.lon))
        self._check_range("lon", self.lon, -180.0, 180.0, "within [-180, 180] degrees")
        self._check_range("lat", self.lat, -90.0, 90.0, "within [-90, 90] degrees")
        self._check_range("buffer_m", self.buffer_m, 0.0, np.inf, "> 0 metres", open_low=True)
        for a in (self.lon, self.lat):
            a.flags.writeable = False

    @staticmethod
    def _floats(name: str, value: Any, n: Optional[int] = None) -> np.ndarray:
        if isinstance(value, (str, bytes)):
            raise SpecError(f"PointBuffers.{name} must be an array of numbers, got {value!r}")
        try:
            arr = np.array(value, dtype=np.float64).reshape(-1) if np.ndim(value) == 1 else None
        except (TypeError, ValueError):
            arr = None
        if arr is None:
            raise SpecError(f"PointBuffers.{name} must be a 1-D array of numbers, got "
                            f"{type(value).__name__}: {value!r:.200}")
        if n is not None and len(arr) != n:
            raise SpecError(f"PointBuffers.{name} has {len(arr)} values for {n} points (lon)")
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise SpecError(f"PointBuffers.{name}[{bad[0]}] must be finite, got {arr[bad[0]]!r}")
        return arr

    @staticmethod
    def _check_range(name: str, arr: np.ndarray, lo: float, hi: float, what: str,
                     open_low: bool = False) -> None:
        low = arr <= lo if open_low else arr < lo
        bad = np.flatnonzero(low | (arr > hi))
        if len(bad):
            raise SpecError(f"PointBuffers.{name}[{bad[0]}] must be {what}, got {float(arr[bad[0]])!r}")

    def __len__(self) -> int:
        return len(self.lon)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return PointBuffers(self.lon[i], self.lat[i], self.buffer_m[i], self.crs)
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise TypeError(f"PointBuffers indices must be integers or slices, not {type(i).__name__}")
        n = len(self.lon)
        j = i.__index__()
        if not -n <= j < n:
            raise IndexError(f"PointBuffers index {i} out of range (0..{n - 1})")
        # checked as arrays already: made without checking each value again
        p = object.__new__(PointBuffer)
        for k, v in (("lon", float(self.lon[j])), ("lat", float(self.lat[j])),
                     ("buffer_m", float(self.buffer_m[j])), ("crs", self.crs)):
            object.__setattr__(p, k, v)
        return p

    def __repr__(self) -> str:
        return f"PointBuffers({len(self)} points)"


def check_spatial(value: Any, name: str = "spatial") -> SpatialSpec:
    """Return ``value`` if it is a spatial spec, else raise naming the argument."""
    if isinstance(value, (BBox, PointBuffer)):
        return value
    raise SpecError(f"{name} must be a PointBuffer or BBox, got {type(value).__name__}: {value!r}")


def spatial_from_dict(d: Mapping[str, Any]) -> SpatialSpec:
    """Inverse of ``to_dict``; also reads the public rs-embed form (no ``type`` tag)."""
    kind = d.get("type")
    if kind == "PointBuffer" or (kind is None and "buffer_m" in d):
        return PointBuffer(d["lon"], d["lat"], d["buffer_m"], d.get("crs", _WGS84))
    if kind == "BBox" or (kind is None and "minlon" in d):
        return BBox(d["minlon"], d["minlat"], d["maxlon"], d["maxlat"], d.get("crs", _WGS84))
    raise SpecError(f"not a spatial spec: {dict(d)!r}")


# -------------------------------------------------------------------------- temporal


def _parse_date(name: str, value: Any) -> date:
    if isinstance(value, date):
        return value if type(value) is date else value.date()  # datetime -> date
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise SpecError(f"TemporalSpec.{name} must be an ISO date 'YYYY-MM-DD', got {value!r}")


class _Either:
    """Class access gives the constructor, instance access gives the stored value.

    Lets ``TemporalSpec.year(2022)`` build a spec while ``spec.year`` reads its year,
    the way the public rs-embed API is spelled.
    """

    def __init__(self, slot: str, ctor: str):
        self.slot, self.ctor = slot, ctor

    def __get__(self, obj, cls):
        if obj is None:
            return getattr(cls, self.ctor)
        return getattr(obj, self.slot)


class TemporalSpec:
    """A time window: a calendar year, or the half-open date range ``[start, end)``."""

    __slots__ = ("mode", "_year", "start", "end")
    year = _Either("_year", "_make_year")
    range = _Either("_range", "_make_range")

    def __init__(self, mode: str, year: Optional[int] = None,
                 start: Any = None, end: Any = None):
        if mode == "year":
            if isinstance(year, bool) or not isinstance(year, (int, np.integer)):
                raise SpecError(f"TemporalSpec.year must be an integer year, got {year!r}")
            if not 1900 <= int(year) <= 2200:
                raise SpecError(f"TemporalSpec.year must be within [1900, 2200], got {year!r}")
            y = int(year)
            s, e = date(y, 1, 1), date(y + 1, 1, 1)
        elif mode == "range":
            if start is None or end is None:
                raise SpecError(f"TemporalSpec.range needs start and end, got start={start!r}, end={end!r}")
            s, e = _parse_date("start", start), _parse_date("end", end)
            if not s < e:
                raise SpecError(
                    f"TemporalSpec.start must be before end (the window is [start, end)), "
                    f"got start={s.isoformat()!r}, end={e.isoformat()!r}")
            y = None
        else:
            raise SpecError(f"TemporalSpec.mode must be 'year' or 'range', got {mode!r}")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "_year", y)
        object.__setattr__(self, "start", s.isoformat())
        object.__setattr__(self, "end", e.isoformat())

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __reduce__(self):  # picklable although frozen (export workers, subprocesses)
        return (TemporalSpec, (self.mode, self._year, self.start, self.end))

    @classmethod
    def _make_year(cls, year: int) -> "TemporalSpec":
        return cls("year", year=year)

    @classmethod
    def _make_range(cls, start: Any, end: Any) -> "TemporalSpec":
        return cls("range", start=start, end=end)

    @property
    def _range(self):  # pragma: no cover - only reached through the descriptor
        return (self.start, self.end)

    @property
    def start_date(self) -> date:
        return date.fromisoformat(self.start)

    @property
    def end_date(self) -> date:
        """Exclusive end of the window."""
        return date.fromisoformat(self.end)

    def validate(self) -> "TemporalSpec":
        return self

    def to_dict(self) -> dict:
        return {"mode": self.mode, "year": self._year, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TemporalSpec":
        if d.get("mode") == "year":
            return cls("year", year=d["year"])
        return cls("range", start=d["start"], end=d["end"])

    def _key(self):
        return (self.mode, self._year, self.start, self.end)

    def __eq__(self, other):
        return isinstance(other, TemporalSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        if self.mode == "year":
            return f"TemporalSpec.year({self._year})"
        return f"TemporalSpec.range({self.start!r}, {self.end!r})"


def check_temporal(value: Any, name: str = "temporal") -> Optional[TemporalSpec]:
    if value is None or isinstance(value, TemporalSpec):
        return value
    raise SpecError(f"{name} must be a TemporalSpec or None, got {type(value).__name__}: {value!r}")


# ---------------------------------------------------------------------- sensor/fetch

_COMPOSITES = ("median", "mosaic")


def _check_scale(owner: str, value: Any) -> float:
    v = _finite_number(f"{owner}.scale_m", value)
    if v <= 0:
        raise SpecError(f"{owner}.scale_m must be > 0 metres, got {value!r}")
    return v


def _check_cloudy(owner: str, value: Any) -> float:
    v = _finite_number(f"{owner}.cloudy_pct", value)
    if not 0 <= v <= 100:
        raise SpecError(f"{owner}.cloudy_pct must be within [0, 100], got {value!r}")
    return v


def _check_composite(owner: str, value: Any) -> str:
    if value not in _COMPOSITES:
        raise SpecError(f"{owner}.composite must be one of {_COMPOSITES}, got {value!r}")
    return value


@dataclass(frozen=True)
class SensorSpec:
    """Everything a provider needs to build one input patch for a model."""

    collection: str
    bands: Tuple[str, ...]
    scale_m: float = 10
    cloudy_pct: float = 30
    fill_value: float = 0.0
    composite: str = "median"
    modality: Optional[str] = None
    orbit: Optional[str] = None
    use_float_linear: bool = True
    s1_require_iw: bool = True
    s1_relax_iw_on_empty: bool = True
    check_input: bool = False
    check_raise: bool = True
    check_save_dir: Optional[str] = None
    #: a time series instead of one composite: the window is cut into ``frames`` equal
    #: bins, one composite each, stacked ``(T, C, H, W)`` (see ``Provider.fetch_frames``)
    frames: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.collection, str) or not self.collection.strip():
            raise SpecError(f"SensorSpec.collection must be a non-empty string, got {self.collection!r}")
        bands = self.bands
        if isinstance(bands, str):
            bands = (bands,)
        try:
            bands = tuple(bands)
        except TypeError:
            raise SpecError(f"SensorSpec.bands must be a sequence of band names, got {self.bands!r}") from None
        if not bands or not all(isinstance(b, str) and b for b in bands):
            raise SpecError(f"SensorSpec.bands must be a non-empty sequence of band names, got {self.bands!r}")
        if len(set(bands)) != len(bands):
            raise SpecError(f"SensorSpec.bands must not repeat a band, got {self.bands!r}")
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "scale_m", _check_scale("SensorSpec", self.scale_m))
        object.__setattr__(self, "cloudy_pct", _check_cloudy("SensorSpec", self.cloudy_pct))
        fill = self.fill_value
        if isinstance(fill, bool) or not isinstance(fill, (int, float, np.integer, np.floating)):
            raise SpecError(f"SensorSpec.fill_value must be a number, got {fill!r}")
        object.__setattr__(self, "fill_value", float(fill))
        _check_composite("SensorSpec", self.composite)
        if self.check_save_dir is not None:
            object.__setattr__(self, "check_save_dir", str(self.check_save_dir))
        if self.frames is not None:
            if isinstance(self.frames, bool) or not isinstance(self.frames, (int, np.integer)) \
                    or not 1 <= int(self.frames) <= 366:
                raise SpecError(f"SensorSpec.frames must be an integer from 1 to 366 or None, got {self.frames!r}")
            object.__setattr__(self, "frames", int(self.frames))

    def identity(self) -> dict:
        """The fields that decide which pixels a provider returns (not the checks)."""
        d = self.to_dict()
        for k in ("check_input", "check_raise", "check_save_dir"):
            d.pop(k)
        return d

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["bands"] = list(self.bands)
        if d["frames"] is None:  # single composites keep the dict (and fingerprints) they always had
            d.pop("frames")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SensorSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class FetchSpec:
    """A light override of a model's default sensor (resolution, clouds, compositing)."""

    scale_m: Optional[float] = None
    cloudy_pct: Optional[float] = None
    fill_value: Optional[float] = None
    composite: Optional[str] = None

    def __post_init__(self):
        if self.scale_m is not None:
            object.__setattr__(self, "scale_m", _check_scale("FetchSpec", self.scale_m))
        if self.cloudy_pct is not None:
            object.__setattr__(self, "cloudy_pct", _check_cloudy("FetchSpec", self.cloudy_pct))
        if self.fill_value is not None:
            object.__setattr__(self, "fill_value", _finite_number("FetchSpec.fill_value", self.fill_value))
        if self.composite is not None:
            _check_composite("FetchSpec", self.composite)

    def apply(self, sensor: SensorSpec) -> SensorSpec:
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(sensor, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- output


@dataclass(frozen=True)
class OutputSpec:
    """Pooled ``(D,)`` vectors or ``(D, H, W)`` grids."""

    mode: str
    pooling: str = "mean"
    grid_orientation: str = "north_up"

    def __post_init__(self):
        if self.mode not in ("grid", "pooled"):
            raise SpecError(f"OutputSpec.mode must be 'grid' or 'pooled', got {self.mode!r}")
        if self.pooling not in ("mean", "max"):
            raise SpecError(f"OutputSpec.pooling must be 'mean' or 'max', got {self.pooling!r}")
        if self.grid_orientation not in ("north_up", "native"):
            raise SpecError(
                f"OutputSpec.grid_orientation must be 'north_up' or 'native', got {self.grid_orientation!r}")

    @classmethod
    def pooled(cls, pooling: str = "mean") -> "OutputSpec":
        return cls("pooled", pooling=pooling)

    @classmethod
    def grid(cls, pooling: str = "mean", grid_orientation: str = "north_up") -> "OutputSpec":
        return cls("grid", pooling=pooling, grid_orientation=grid_orientation)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OutputSpec":
        return cls(d["mode"], d.get("pooling", "mean"), d.get("grid_orientation", "north_up"))


def check_output(value: Any, name: str = "output") -> OutputSpec:
    if isinstance(value, OutputSpec):
        return value
    if value in ("pooled", "grid"):
        return OutputSpec(value)
    raise SpecError(f"{name} must be an OutputSpec ('pooled' or 'grid'), got {value!r}")


# ------------------------------------------------------------------------ input prep


def _positive_int_or_none(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SpecError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class InputPrepSpec:
    """How a patch larger than a model's input size is fed to the model.

    ``resize`` lets the model resize it; ``tile`` runs the model on tiles and
    stitches them; ``auto`` tiles when a grid is asked for and few tiles are needed.
    """

    mode: str = "resize"
    tile_size: Optional[int] = None
    tile_stride: Optional[int] = None
    max_tiles: int = 9
    pad_edges: bool = True

    def __post_init__(self):
        if self.mode not in ("resize", "tile", "auto"):
            raise SpecError(f"InputPrepSpec.mode must be 'resize', 'tile' or 'auto', got {self.mode!r}")
        ts = _positive_int_or_none("InputPrepSpec.tile_size", self.tile_size)
        st = _positive_int_or_none("InputPrepSpec.tile_stride", self.tile_stride)
        if st is not None and ts is not None and st != ts:
            raise SpecError(
                f"InputPrepSpec.tile_stride must equal tile_size for now, got tile_stride={st}, tile_size={ts}")
        mt = _positive_int_or_none("InputPrepSpec.max_tiles", self.max_tiles)
        object.__setattr__(self, "tile_size", ts)
        object.__setattr__(self, "tile_stride", st)
        object.__setattr__(self, "max_tiles", mt)

    @classmethod
    def resize(cls) -> "InputPrepSpec":
        return cls("resize")

    @classmethod
    def tile(cls, tile_size: Optional[int] = None, max_tiles: int = 9,
             pad_edges: bool = True, tile_stride: Optional[int] = None) -> "InputPrepSpec":
        return cls("tile", tile_size=tile_size, tile_stride=tile_stride,
                   max_tiles=max_tiles, pad_edges=pad_edges)

    @classmethod
    def auto(cls, max_tiles: int = 4, tile_size: Optional[int] = None) -> "InputPrepSpec":
        return cls("auto", tile_size=tile_size, max_tiles=max_tiles)

    @classmethod
    def coerce(cls, value: Any, name: str = "input_prep") -> Optional["InputPrepSpec"]:
        """Accept a spec, a mode string or None (model default)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, str) and value in ("resize", "tile", "auto"):
            return {"resize": cls.resize, "tile": cls.tile, "auto": cls.auto}[value]()
        raise SpecError(
            f"{name} must be 'resize', 'tile', 'auto', an InputPrepSpec or None, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------- embedding


@dataclass
class Embedding:
    """One embedding: ``data`` is float32 ``(D,)`` or ``(D, H, W)``; ``meta`` says how it was made."""

    data: Any
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return tuple(self.data.shape)


__all__ = [
    "BBox", "PointBuffer", "PointBuffers", "SpatialSpec", "TemporalSpec", "SensorSpec", "FetchSpec",
    "OutputSpec", "InputPrepSpec", "Embedding", "check_spatial", "check_temporal",
    "check_output", "spatial_from_dict",
]
