"""Named ROIs and their files (CSV and GeoJSON).

A ROI is a name plus a ``PointBuffer`` or ``BBox``. Names end up as file names of
per-item exports, so they are checked here: non-empty, unique, no path separators.
Files are written to a temporary name beside the target and then renamed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from rs_embed import BBox, PointBuffer, SpecError

Spatial = Union[PointBuffer, BBox]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
CSV_COLUMNS = ("name", "type", "lon", "lat", "buffer_m", "minlon", "minlat", "maxlon", "maxlat")


@dataclass(frozen=True)
class Roi:
    """One named region of interest."""

    name: str
    spatial: Spatial

    def __post_init__(self):
        check_name(self.name)
        if not isinstance(self.spatial, (PointBuffer, BBox)):
            raise SpecError(f"Roi.spatial must be a PointBuffer or BBox, got {self.spatial!r}")


def check_name(name) -> str:
    """Return ``name`` if it can name an ROI (and a per-item export file)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"ROI name must be letters, digits, '_', '-' or '.', not starting with '.' or '-', "
            f"got {name!r}")
    return name


def check_unique(names: Sequence[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise SpecError(f"ROI names must be unique; {n!r} appears more than once")
        seen.add(n)


def next_name(prefix: str, taken: Iterable[str], start: int = 1) -> str:
    """The first ``<prefix>_NN`` (counting from ``start``) not in ``taken``."""
    taken = set(taken)
    i = start
    while f"{prefix}_{i:02d}" in taken:
        i += 1
    return check_name(f"{prefix}_{i:02d}")


# ------------------------------------------------------------------------------ write


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _format_for(path: Path, fmt: Optional[str]) -> str:
    if fmt is None:
        suffix = path.suffix.lower()
        fmt = {".csv": "csv", ".geojson": "geojson", ".json": "geojson"}.get(suffix)
        if fmt is None:
            raise SpecError(f"cannot tell the ROI file format from {str(path)!r}; "
                            "use a .csv or .geojson name, or pass fmt='csv'|'geojson'")
    if fmt not in ("csv", "geojson"):
        raise SpecError(f"fmt must be 'csv' or 'geojson', got {fmt!r}")
    return fmt


def rois_to_csv(rois: Sequence[Roi]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rois:
        row = {"name": r.name, **r.spatial.to_dict()}
        row.pop("crs", None)
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def rois_to_geojson(rois: Sequence[Roi]) -> dict:
    features = []
    for r in rois:
        s = r.spatial
        if isinstance(s, PointBuffer):
            geom = {"type": "Point", "coordinates": [s.lon, s.lat]}
            props = {"name": r.name, "type": "PointBuffer", "buffer_m": s.buffer_m}
        else:
            ring = [[s.minlon, s.minlat], [s.maxlon, s.minlat], [s.maxlon, s.maxlat],
                    [s.minlon, s.maxlat], [s.minlon, s.minlat]]
            geom = {"type": "Polygon", "coordinates": [ring]}
            props = {"name": r.name, "type": "BBox"}
        features.append({"type": "Feature", "geometry": geom, "properties": props})
    return {"type": "FeatureCollection", "features": features}


def save_rois(path, rois: Sequence[Roi], fmt: Optional[str] = None) -> Path:
    """Write ``rois`` to ``path`` as CSV or GeoJSON (chosen by the file extension)."""
    path = Path(path)
    fmt = _format_for(path, fmt)
    check_unique([r.name for r in rois])
    if fmt == "csv":
        text = rois_to_csv(rois)
    else:
        text = json.dumps(rois_to_geojson(rois), indent=1) + "\n"
    _atomic_write_text(path, text)
    return path


# ------------------------------------------------------------------------------- read


def _number(value, what: str, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {what} must be a number, got {value!r}") from None


def _pick(row: dict, *keys: str):
    for k in keys:
        v = row.get(k)
        if v not in (None, ""):
            return v
    return None


def rois_from_csv(text: str, *, default_buffer_m: float, where: str = "CSV") -> List[Roi]:
    """Rows of a table with ``lon, lat`` (and optionally ``name``, ``buffer_m``) or
    ``minlon, minlat, maxlon, maxlat`` columns; ``type`` decides when both are present."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return []
    out: List[Roi] = []
    names: List[str] = []
    for i, raw in enumerate(reader):
        row = {(k or "").strip().lower(): (v.strip() if isinstance(v, str) else v)
               for k, v in raw.items()}
        at = f"{where} row {i + 1}"
        kind = (row.get("type") or "").strip()
        has_box = all(_pick(row, k) is not None for k in ("minlon", "minlat", "maxlon", "maxlat"))
        if kind == "BBox" or (not kind and has_box):
            spatial: Spatial = BBox(*(_number(row.get(k), k, at)
                                      for k in ("minlon", "minlat", "maxlon", "maxlat")))
        else:
            lon = _pick(row, "lon", "longitude", "x")
            lat = _pick(row, "lat", "latitude", "y")
            if lon is None or lat is None:
                raise SpecError(f"{at}: needs lon and lat (or minlon, minlat, maxlon, maxlat) columns")
            buf = _pick(row, "buffer_m")
            spatial = PointBuffer(_number(lon, "lon", at), _number(lat, "lat", at),
                                  _number(buf, "buffer_m", at) if buf is not None else default_buffer_m)
        name = _pick(row, "name") or next_name("roi", names)
        out.append(Roi(name, spatial))
        names.append(name)
    check_unique(names)
    return out


def _polygon_bbox(coords, at: str) -> BBox:
    pts = [p for ring in coords for p in ring]
    if not pts:
        raise SpecError(f"{at}: empty polygon")
    lons = [float(p[0]) for p in pts]
    lats = [float(p[1]) for p in pts]
    return BBox(min(lons), min(lats), max(lons), max(lats))


def rois_from_geojson(obj: dict, *, default_buffer_m: float, where: str = "GeoJSON") -> List[Roi]:
    """Points become ``PointBuffer`` (``buffer_m`` property or the default); polygons
    become the ``BBox`` around them."""
    if obj.get("type") == "Feature":
        features = [obj]
    elif obj.get("type") == "FeatureCollection":
        features = obj.get("features") or []
    else:
        raise SpecError(f"{where}: expected a GeoJSON Feature or FeatureCollection, got type={obj.get('type')!r}")
    out: List[Roi] = []
    names: List[str] = []
    for i, feat in enumerate(features):
        at = f"{where} feature {i + 1}"
        geom = feat.get("geometry") or {}
        props = feat.get("properties") or {}
        gtype = geom.get("type")
        if gtype == "Point":
            lon, lat = geom["coordinates"][:2]
            buf = props.get("buffer_m")
            spatial: Spatial = PointBuffer(lon, lat, default_buffer_m if buf is None else _number(buf, "buffer_m", at))
        elif gtype == "Polygon":
            spatial = _polygon_bbox(geom["coordinates"], at)
        elif gtype == "MultiPolygon":
            spatial = _polygon_bbox([r for poly in geom["coordinates"] for r in poly], at)
        else:
            raise SpecError(f"{at}: geometry type {gtype!r} is not supported (Point, Polygon, MultiPolygon)")
        name = props.get("name") or next_name("roi", names)
        out.append(Roi(str(name), spatial))
        names.append(str(name))
    check_unique(names)
    return out


def load_rois(path, *, default_buffer_m: float = 1000.0, fmt: Optional[str] = None) -> List[Roi]:
    """Read ROIs saved by :func:`save_rois` (or any point table / GeoJSON of points and polygons)."""
    path = Path(path)
    fmt = _format_for(path, fmt)
    if not path.is_file():
        raise FileNotFoundError(f"no ROI file at {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    if fmt == "csv":
        return rois_from_csv(text, default_buffer_m=default_buffer_m, where=path.name)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path.name} is not valid JSON: {exc}") from None
    return rois_from_geojson(obj, default_buffer_m=default_buffer_m, where=path.name)


def split(rois: Sequence[Roi]) -> Tuple[List[str], List[Spatial]]:
    """(names, spatials) in order."""
    return [r.name for r in rois], [r.spatial for r in rois]
