"""The grid Earth Engine is asked for is the ROI's UTM grid, true metres on the ground."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from rs_embed.geometry import roi_grid
from rs_embed.specs import BBox, PointBuffer, SensorSpec, TemporalSpec

S2 = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"))
T = TemporalSpec.range("2022-06-01", "2022-09-01")


@pytest.mark.parametrize("lon, lat, epsg", [
    (9.19, 0.0, 32632),      # equator, zone 32N
    (-0.57, 45.0, 32630),    # Bordeaux latitude, zone 30N
    (24.94, 60.0, 32635),    # Helsinki latitude, zone 35N
    (151.21, -33.87, 32756), # Sydney, zone 56S
])
def test_1000m_buffer_is_200x200_at_10m_in_the_local_utm_zone(provider, transport, lon, lat, epsg):
    patch = provider.fetch(PointBuffer(lon, lat, 1000), T, S2)
    assert patch.data.shape == (3, 200, 200)
    assert patch.grid.crs == f"EPSG:{epsg}"
    (call,) = transport.compute_pixels_calls()
    g = call.body["grid"]
    assert g["crsCode"] == f"EPSG:{epsg}"
    assert g["dimensions"] == {"width": 200, "height": 200}
    at = g["affineTransform"]
    assert (at["scaleX"], at["scaleY"], at["shearX"], at["shearY"]) == (10.0, -10.0, 0.0, 0.0)
    # on the 10 m lattice, so the grid lines up with Sentinel-2's native pixels
    assert at["translateX"] % 10 == 0 and at["translateY"] % 10 == 0
    # 2 km on the ground, centred on the point to within one pixel
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    assert abs(at["translateX"] + 1000 - x) <= 5 and abs(at["translateY"] - 1000 - y) <= 5
    assert patch.grid == roi_grid(PointBuffer(lon, lat, 1000), 10)


def test_bbox_grid_covers_the_box_on_the_scale_lattice(provider, transport):
    box = BBox(11.30, 44.45, 11.40, 44.52)
    patch = provider.fetch(box, T, SensorSpec("LANDSAT/LC08/C02/T1_L2", ("SR_B4",), scale_m=30))
    g = transport.compute_pixels_calls()[0].body["grid"]
    left, bottom, right, top = patch.grid.bounds
    at = g["affineTransform"]
    assert (at["translateX"], at["translateY"]) == (left, top)
    assert left % 30 == 0 and top % 30 == 0
    assert g["dimensions"] == {"width": patch.grid.width, "height": patch.grid.height}
    xs, ys = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(
        [11.30, 11.40, 11.30, 11.40], [44.45, 44.45, 44.52, 44.52])
    assert left <= min(xs) and right >= max(xs) and bottom <= min(ys) and top >= max(ys)
    assert patch.data.shape == (1, patch.grid.height, patch.grid.width)
