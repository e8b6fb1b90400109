"""Landsat 8/9 C2 L2 and Sentinel-1 RTC from Planetary Computer shaped items."""

from __future__ import annotations

import numpy as np
import pytest

import scenes
from rs_embed import sample
from rs_embed.errors import ProviderError
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec
from test_provider import ROI

MAY = TemporalSpec.range("2021-05-01", "2021-05-10")


def sample_window(band, roi_patch):
    """The sample's own pixels under a patch on its (aligned) grid."""
    data, tr = scenes.sample_band(band)
    g = roi_patch.grid
    col = int(round((g.transform[2] - tr.c) / 10))
    row = int(round((tr.f - g.transform[5]) / 10))
    return data[row:row + g.height, col:col + g.width].astype(np.float32)


def test_landsat_stays_in_usgs_integers_and_qa_pixel_masks_clouds(pc):
    s = SensorSpec("LANDSAT/LC08/C02/T1_L2", ("SR_B4", "SR_B5"), scale_m=10, cloudy_pct=50)
    patch = pc.fetch(ROI, MAY, s)
    assert patch.meta["stac_collection"] == "landsat-c2-l2"
    assert patch.meta["radiometry"][0]["bands"]["SR_B4"] == {"asset": "red", "gain": 1.0, "bias_dn": 0.0,
                                                              "source": "raster:bands"}
    assert patch.meta["cloud_mask"]["band"] == "QA_PIXEL"
    np.testing.assert_array_equal(patch.data[0][np.isfinite(patch.data[0])],
                                  sample_window("B4", patch)[np.isfinite(patch.data[0])])
    # a place under the QA cloud block is masked, i.e. filled
    x = sample.BOUNDS_UTM[0] + 10 * 250
    y = sample.BOUNDS_UTM[3] - 10 * 750
    from rs_embed.geometry import transformer

    lon, lat = transformer(sample.CRS, "EPSG:4326").transform(x, y)
    with pytest.raises(ProviderError, match="no valid pixel"):
        pc.fetch(PointBuffer(lon, lat, 300), MAY, s)
    with pytest.raises(ProviderError, match="cloudier"):
        pc.fetch(ROI, MAY, SensorSpec("LANDSAT/LC08/C02/T1_L2", ("SR_B4",), cloudy_pct=10))


def test_sentinel1_rtc_gamma0_linear(pc):
    s = SensorSpec("sentinel-1-rtc", ("VV", "VH"), scale_m=10, cloudy_pct=10)
    patch = pc.fetch(ROI, MAY, s)
    assert patch.meta["cloud_filter"] is None  # radar has no cloud cover
    np.testing.assert_allclose(patch.data[0], sample_window("B8", patch) / 1e4, rtol=1e-6)


def test_earth_engine_s1_ids_point_at_the_rtc_collection(pc):
    with pytest.raises(ProviderError, match="sentinel-1-rtc"):
        pc.check(SensorSpec("COPERNICUS/S1_GRD_FLOAT", ("VV", "VH")))
