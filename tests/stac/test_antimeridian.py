"""Across the antimeridian: searches split in two, and pixels from the other side's zone."""

from __future__ import annotations

import numpy as np

from rs_embed.geometry import roi_grid, transformer
from rs_embed.providers.stac.faults import RetryPolicy
from rs_embed.providers.stac.reader import WindowReader
from rs_embed.providers.stac.search import _overlaps, split_antimeridian
from rs_embed.specs import PointBuffer

ROI = PointBuffer(179.995, -16.5, 1500)  # Fiji's Taveuni: zone 60, the raster is in zone 1


def test_a_grid_across_180_is_searched_as_two_boxes():
    grid = roi_grid(ROI, 10)
    w, s, e, n = grid.lonlat_bounds()
    assert w > e  # pyproj reports a box across the antimeridian as west > east
    boxes = split_antimeridian((w, s, e, n))
    assert boxes == [(w, s, 180.0, n), (-180.0, s, e, n)]
    assert _overlaps([-179.999, -17.0, -179.5, -16.0], (w, s, e, n))  # east of 180
    assert _overlaps([179.5, -17.0, 179.999, -16.0], (w, s, e, n))    # west of 180
    assert _overlaps([179.9, -17.0, -179.9, -16.0], (w, s, e, n))     # an item across it
    assert not _overlaps([170.0, -17.0, 171.0, -16.0], (w, s, e, n))


def test_pixels_come_from_a_raster_in_the_zone_across_180(cog_server, tmp_path):
    import rasterio
    from affine import Affine

    # a zone-1 raster whose value is its own easting (km), reaching west across 180
    x0, y0, res, n = 170000.0, 8180000.0, 10.0, 1600
    xs = x0 + res * (np.arange(n) + 0.5)
    data = np.repeat((xs / 1000.0)[None, :], n, axis=0).astype(np.float32)
    path = cog_server.root / "antimeridian" / "zone1.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs="EPSG:32701", transform=Affine(res, 0, x0, 0, -res, y0), tiled=True,
                       blockxsize=256, blockysize=256, nodata=-9999) as dst:
        dst.write(data, 1)
    grid = roi_grid(ROI, 10)
    assert grid.crs == "EPSG:32760"
    out = np.empty((grid.height, grid.width), np.float32)
    WindowReader(RetryPolicy(max_retries=1, base_s=0.01)).read(
        f"{cog_server.url}/antimeridian/zone1.tif", grid, out, resampling="nearest")
    assert np.isfinite(out).all()
    # each grid pixel holds the zone-1 easting of its centre (to the raster's 10 m)
    a, _, c, _, e, f = grid.transform
    X, Y = np.meshgrid(c + a * (np.arange(grid.width) + 0.5), f + e * (np.arange(grid.height) + 0.5))
    east, _ = transformer("EPSG:32760", "EPSG:32701").transform(X, Y)
    np.testing.assert_allclose(out, east / 1000.0, atol=0.011)
    lon, _ = transformer("EPSG:32760", "EPSG:4326").transform(X, Y)
    assert (lon > 179.99).any() and (lon < -179.99).any()
