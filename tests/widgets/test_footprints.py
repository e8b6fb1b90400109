"""ROI outlines on the map are the true ground squares, at any latitude."""

import numpy as np
import pytest
from pyproj import Transformer

from rs_embed import BBox, PointBuffer
from rs_embed.widgets.footprints import ground_ring, ground_size_m, utm_crs


@pytest.mark.parametrize("lon,lat,buf", [(121.5, 31.2, 1000.0), (10.0, 69.5, 2500.0),
                                         (-70.6, -33.4, 640.0), (179.9, 0.5, 5000.0)])
def test_point_buffer_ring_is_its_utm_square(lon, lat, buf):
    ring = ground_ring(PointBuffer(lon, lat, buf))
    assert ring[0] == ring[-1]
    to_utm = Transformer.from_crs("EPSG:4326", utm_crs(lon, lat), always_xy=True)
    xs, ys = to_utm.transform([p[0] for p in ring], [p[1] for p in ring])
    cx, cy = to_utm.transform(lon, lat)
    assert max(xs) - min(xs) == pytest.approx(2 * buf, abs=1e-3)
    assert max(ys) - min(ys) == pytest.approx(2 * buf, abs=1e-3)
    assert (max(xs) + min(xs)) / 2 == pytest.approx(cx, abs=1e-3)
    assert (max(ys) + min(ys)) / 2 == pytest.approx(cy, abs=1e-3)


def test_square_spans_more_degrees_of_longitude_towards_the_pole():
    def lon_span(lat):
        ring = ground_ring(PointBuffer(15.0, lat, 1000.0))
        return max(p[0] for p in ring) - min(p[0] for p in ring)

    # 2 km is ~0.018 deg at the equator and ~2x that at 60 degrees (1 / cos 60)
    assert lon_span(60.0) / lon_span(0.0) == pytest.approx(2.0, rel=0.01)


def test_bbox_ring_and_ground_size():
    box = BBox(121.0, 31.0, 121.1, 31.05)
    ring = ground_ring(box)
    assert ring == [(121.0, 31.0), (121.1, 31.0), (121.1, 31.05), (121.0, 31.05), (121.0, 31.0)]
    w, h = ground_size_m(box)  # its envelope in UTM: a little wider than the box (grid convergence)
    assert w == pytest.approx(0.1 * 111_320 * np.cos(np.radians(31.0)), rel=0.03)
    assert h == pytest.approx(0.05 * 110_900, rel=0.04)
    assert ground_size_m(PointBuffer(0, 0, 300)) == (600.0, 600.0)
