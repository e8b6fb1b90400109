"""ROI outlines on the map are the grids exports sample, at any latitude (one grid rule)."""

import numpy as np
import pytest
from pyproj import Transformer

import rs_embed
from rs_embed import BBox, PointBuffer
from rs_embed.widgets.footprints import ground_bounds, ground_ring, ground_size_m


def in_utm(ring, crs):
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return to_utm.transform([p[0] for p in ring], [p[1] for p in ring])


@pytest.mark.parametrize("lon,lat,buf", [(121.5, 31.2, 1000.0), (10.0, 69.5, 2500.0),
                                         (-70.6, -33.4, 640.0), (179.9, 0.5, 5000.0),
                                         (-75.62, 37.67, 333.0)])
def test_point_buffer_ring_is_the_grid_an_export_samples(lon, lat, buf):
    spatial = PointBuffer(lon, lat, buf)
    ring = ground_ring(spatial)
    assert ring[0] == ring[-1]
    grid = rs_embed.roi_grid(spatial, 10.0)
    xs, ys = in_utm(ring, grid.crs)
    left, bottom, right, top = grid.bounds
    assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx((left, bottom, right, top), abs=1e-3)
    assert max(xs) - min(xs) == pytest.approx(round(2 * buf / 10) * 10, abs=1e-3)  # snapped to pixels
    assert left % 10 == pytest.approx(0, abs=1e-6) or left % 10 == pytest.approx(10, abs=1e-6)


def test_square_spans_more_degrees_of_longitude_towards_the_pole():
    def lon_span(lat):
        b = ground_bounds(PointBuffer(15.0, lat, 1000.0))
        return b[2] - b[0]

    # 2 km is ~0.018 deg at the equator and ~2x that at 60 degrees (1 / cos 60)
    assert lon_span(60.0) / lon_span(0.0) == pytest.approx(2.0, rel=0.01)


def test_bbox_ring_is_its_enclosing_grid_and_sizes_match_the_patch():
    box = BBox(121.0, 31.0, 121.1, 31.05)
    grid = rs_embed.roi_grid(box, 10.0)
    xs, ys = in_utm(ground_ring(box), grid.crs)
    assert (max(xs) - min(xs), max(ys) - min(ys)) == pytest.approx(
        (grid.width * 10.0, grid.height * 10.0), abs=1e-3)
    w, h = ground_size_m(box)
    assert (w, h) == (grid.width * 10.0, grid.height * 10.0)
    assert w == pytest.approx(0.1 * 111_320 * np.cos(np.radians(31.0)), rel=0.03)
    # what is drawn is what is fetched: the local provider's patch has this shape
    assert ground_size_m(PointBuffer(0, 0, 300)) == (600.0, 600.0)
    assert ground_size_m(PointBuffer(0, 0, 300), scale_m=30) == (600.0, 600.0)


def test_large_squares_are_densified():
    small = rs_embed.roi_footprint(PointBuffer(10, 60, 500))
    large = rs_embed.roi_footprint(PointBuffer(10, 60, 50_000))
    assert len(small) == 5 and len(large) > 20
