"""The ROI grid: true ground sizes at any latitude, checked through real provider reads.

Each test writes a lon/lat raster whose two bands hold each pixel's own longitude and
latitude, so the values the local provider returns say where it really sampled; pyproj's
geodesic distances between those places give the ground footprint.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Geod

from rs_embed import BBox, PointBuffer, SensorSpec, SpecError
from rs_embed.geometry import roi_grid, transformer, utm_epsg
from rs_embed.providers.local import LocalProvider

GEOD = Geod(ellps="WGS84")
STEP = 1e-4  # degrees per pixel of the lon/lat raster
CODE = 1e4  # stored value = (degrees - origin) * CODE


def write_lonlat_raster(folder: Path, lon0: float, lat0: float, half_deg_lon: float,
                        half_deg_lat: float) -> Path:
    """Two float32 GeoTIFFs in EPSG:4326 whose values encode lon and lat (linear ramps)."""
    w = int(round(2 * half_deg_lon / STEP))
    h = int(round(2 * half_deg_lat / STEP))
    west, north = lon0 - half_deg_lon, lat0 + half_deg_lat
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    lon = np.broadcast_to(((west + cols * STEP) - lon0) * CODE, (h, w)).astype("float32")
    lat = np.broadcast_to((((north - rows * STEP) - lat0) * CODE)[:, None], (h, w)).astype("float32")
    folder.mkdir(parents=True, exist_ok=True)
    for band, data in (("LON", lon), ("LAT", lat)):
        with rasterio.open(folder / f"ramp_20200101_{band}.tif", "w", driver="GTiff", width=w,
                           height=h, count=1, dtype="float32", crs="EPSG:4326",
                           transform=Affine(STEP, 0, west, 0, -STEP, north), tiled=True,
                           blockxsize=256, blockysize=256, compress="deflate") as dst:
            dst.write(data, 1)
    return folder


def sampled_lonlat(patch, lon0, lat0):
    """Where the provider sampled each pixel, decoded from the ramp values."""
    return patch.data[0] / CODE + lon0, patch.data[1] / CODE + lat0


def dist(lon_a, lat_a, lon_b, lat_b) -> float:
    return GEOD.inv(lon_a, lat_a, lon_b, lat_b)[2]


@pytest.mark.parametrize("lon0, lat0", [(10.3, 0.5), (10.3, 60.0)])
def test_1000m_buffer_at_10m_is_200x200_pixels_covering_2km_by_2km(tmp_path, lon0, lat0):
    """A 1000 m buffer at 10 m gives a 200 x 200 patch whose ground footprint is 2 km x 2 km."""
    half_lat = 0.015
    half_lon = half_lat / math.cos(math.radians(lat0))
    provider = LocalProvider(write_lonlat_raster(tmp_path, lon0, lat0, half_lon, half_lat))
    spatial = PointBuffer(lon0, lat0, 1000)
    patch = provider.fetch(spatial, None, SensorSpec("ramp", ("LON", "LAT"), scale_m=10))
    assert patch.data.shape == (2, 200, 200)
    assert patch.meta["nodata_fraction"] == 0.0
    # only the ROI's window (about 0.6 x 0.6 of each raster here) is read, not the rasters
    raster_px = 2 * int(round(2 * half_lon / STEP)) * int(round(2 * half_lat / STEP))
    assert patch.meta["source_pixels_read"] < 0.5 * raster_px
    assert patch.grid.crs == f"EPSG:{utm_epsg(lon0, lat0)}"

    # 1. the grid's outer corners, in lon/lat, are 2 km apart on the ellipsoid
    left, bottom, right, top = patch.grid.bounds
    to_ll = transformer(patch.grid.crs, "EPSG:4326")
    nw, ne, sw, se = (to_ll.transform(x, y) for x, y in
                      ((left, top), (right, top), (left, bottom), (right, bottom)))
    for a, b in ((nw, ne), (sw, se), (nw, sw), (ne, se)):
        assert dist(*a, *b) == pytest.approx(2000, abs=2.0)  # UTM scale error < 0.1 %
    assert dist(*nw, *se) == pytest.approx(2000 * math.sqrt(2), abs=3.0)  # square, not skewed

    # 2. the provider really sampled there: the ramp values at the corner pixel centres
    lon, lat = sampled_lonlat(patch, lon0, lat0)
    centres = {k: (lon[r, c], lat[r, c]) for k, (r, c) in
               {"nw": (0, 0), "ne": (0, 199), "sw": (199, 0), "se": (199, 199)}.items()}
    edge = 199 * 10 * 200 / 199  # centre-to-centre spacing scaled to the outer edge
    for a, b in (("nw", "ne"), ("sw", "se"), ("nw", "sw"), ("ne", "se")):
        assert dist(*centres[a], *centres[b]) * 200 / 199 == pytest.approx(edge, abs=2.0)
    x0, y0 = left + 5, top - 5
    expect = to_ll.transform(x0, y0)
    assert dist(*centres["nw"], *expect) < 0.5
    # and the ROI centre is the middle of the patch
    mid_lon = (lon[99, 99] + lon[100, 100]) / 2
    mid_lat = (lat[99, 99] + lat[100, 100]) / 2
    assert dist(mid_lon, mid_lat, lon0, lat0) < 10


@pytest.mark.parametrize("lat", [0.5, 60.0])
@pytest.mark.parametrize("scale, n", [(10, 200), (20, 100), (30, 67), (60, 33)])
def test_point_buffer_grid_size_is_the_same_at_every_latitude(lat, scale, n):
    g = roi_grid(PointBuffer(10.3, lat, 1000), scale)
    assert (g.width, g.height) == (n, n)
    assert g.transform[0] == scale and g.transform[4] == -scale
    assert g.transform[2] % scale == 0 and g.transform[5] % scale == 0


@pytest.mark.parametrize("lat", [0.5, 60.0])
def test_bbox_grid_is_snapped_and_covers_the_box(tmp_path, lat):
    box = BBox(10.29, lat - 0.005, 10.31, lat + 0.005)
    square = roi_grid(box, 10)
    g = square.roi_grid()  # the box's own pixels inside the enclosing square
    # a rectangle is fetched as its enclosing square, centred on it, on the same lattice
    assert square.width == square.height == max(g.width, g.height)
    row, col, h, w = square.roi_window
    assert (h, w) == (g.height, g.width) and abs((square.height - h) - 2 * row) <= 1
    assert abs((square.width - w) - 2 * col) <= 1
    assert square.transform[2] % 10 == 0 and square.transform[5] % 10 == 0
    a, _, c, _, e, f = g.transform
    assert a == 10 and e == -10 and c % 10 == 0 and f % 10 == 0
    lon0, lat0, lon1, lat1 = g.lonlat_bounds()
    assert lon0 <= box.minlon and lat0 <= box.minlat and lon1 >= box.maxlon and lat1 >= box.maxlat
    # slack: a pixel at each end from snapping, plus what the box gains by being rotated
    # by the grid convergence (meridians are not grid-north away from the central meridian)
    width_m = dist(box.minlon, box.center[1], box.maxlon, box.center[1])
    height_m = dist(box.center[0], box.minlat, box.center[0], box.maxlat)
    central = (utm_epsg(10.3, lat) - 32600) * 6 - 183
    turn = abs(math.sin(math.radians((10.3 - central) * math.sin(math.radians(lat)))))
    assert 0 <= g.width * 10 - width_m <= 20 + height_m * turn + 2
    assert 0 <= g.height * 10 - height_m <= 20 + width_m * turn + 2
    # the same box in degrees is about half as wide on the ground at 60 degrees
    if lat == 60.0:
        g0 = roi_grid(BBox(10.29, -0.005 + 0.5, 10.31, 0.005 + 0.5), 10)
        assert g.width / g0.width == pytest.approx(0.5, abs=0.02)

    provider = LocalProvider(write_lonlat_raster(tmp_path, 10.3, lat, 0.03, 0.015))
    patch = provider.fetch(box, None, SensorSpec("ramp", ("LON", "LAT"), scale_m=10))
    # real imagery on the whole square, nothing stretched
    assert patch.data.shape == (2, square.height, square.width) and patch.meta["nodata_fraction"] == 0.0
    assert patch.grid == square
    patch.data = patch.data[:, row:row + h, col:col + w]
    patch.grid = g
    lon, lat_ = sampled_lonlat(patch, 10.3, lat)
    # the sampled pixel centres reach past the box by at most a pixel
    assert lon.min() < box.minlon + 1e-4 and lon.max() > box.maxlon - 1e-4
    assert lat_.min() < box.minlat + 1e-4 and lat_.max() > box.maxlat - 1e-4
    # north-up: longitude grows along rows, latitude falls down columns
    assert np.all(np.diff(lon, axis=1) > 0) and np.all(np.diff(lat_, axis=0) < 0)


def test_grid_rejects_bad_scale_and_polar_rois():
    with pytest.raises(SpecError, match="scale_m"):
        roi_grid(PointBuffer(0, 0, 100), 0)
    with pytest.raises(SpecError, match="polar"):
        roi_grid(PointBuffer(0, 85, 100), 10)


def test_models_of_any_size_see_just_the_rectangle_and_their_grid_lands_on_it():
    from rs_embed import get_embedding, sample
    from rs_embed.models import get_embedder
    from rs_embed.specs import OutputSpec

    box = BBox(-75.700, 37.645, -75.650, 37.655)  # 4.4 km x 1.1 km on the sample
    sensor = SensorSpec(sample.COLLECTION, ("B2", "B3", "B4", "B8", "B11"))
    patch = LocalProvider().fetch(box, sample.TEMPORAL, sensor)
    row, col, h, w = patch.grid.roi
    rect = patch.data[:, row:row + h, col:col + w]
    pooled = get_embedding("spectral", spatial=box, temporal=sample.TEMPORAL, sensor=sensor, backend="local")
    direct = get_embedder("spectral").embed(rect, sensor=sensor, output=OutputSpec.pooled())
    np.testing.assert_array_equal(pooled.data, direct.data)
    assert pooled.meta["input"]["shape"] == [5, patch.grid.height, patch.grid.width]  # what was fetched
    assert pooled.meta["roi_window"] == {"row": row, "col": col, "height": h, "width": w}
    grid = get_embedding("rcf", spatial=box, temporal=sample.TEMPORAL, sensor=sensor, backend="local",
                         output=OutputSpec.grid())
    geo = grid.meta["grid_georef"]
    roi = patch.grid.roi_grid()
    assert geo["transform"][0] == 160.0 and geo["transform"][2] == roi.transform[2]
    assert geo["transform"][5] == roi.transform[5]
    assert (geo["height"], geo["width"]) == grid.data.shape[1:] == (-(-h // 16), -(-w // 16))
