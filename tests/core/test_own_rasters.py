"""Your own rasters without sidecars: multi-band GeoTIFFs named by band descriptions or
``bands=``, dates from file names or tags, and errors that say which sensor would fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine

from rs_embed import ProviderError, SensorSpec, TemporalSpec, get_embedding
from rs_embed.providers.local import LocalProvider
from rs_embed.specs import PointBuffer

UTM = "EPSG:32618"
X0, Y0 = 500_000.0, 4_400_000.0


def _roi():
    from rs_embed.geometry import transformer

    lon, lat = transformer(UTM, "EPSG:4326").transform(X0 + 1500, Y0 - 1500)
    return PointBuffer(lon, lat, 500)


def _write(path, values, *, descriptions=None, tags=None):
    data = np.stack([np.full((300, 300), v, dtype="uint16") for v in values])
    with rasterio.open(path, "w", driver="GTiff", width=300, height=300, count=len(values),
                       dtype="uint16", crs=UTM, transform=Affine(10, 0, X0, 0, -10, Y0), nodata=0) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = tuple(descriptions)
        if tags:
            dst.update_tags(**tags)
    return path


S2 = "COPERNICUS/S2_SR_HARMONIZED"
JUNE = TemporalSpec.range("2021-06-01", "2021-07-01")


def test_a_four_band_geotiff_with_band_descriptions_and_a_dated_name(tmp_path):
    _write(tmp_path / "S2_20210615.tif", [500, 600, 700, 3000], descriptions=["B2", "B3", "B4", "B8"])
    provider = LocalProvider(tmp_path)
    (scene,) = provider.scenes
    assert sorted(scene.bands) == ["B2", "B3", "B4", "B8"] and scene.datetime == "2021-06-15"
    patch = provider.fetch(_roi(), JUNE, SensorSpec(S2, ("B8", "B4")))
    assert patch.data[0].mean() == 3000 and patch.data[1].mean() == 700
    with pytest.raises(ProviderError, match="no scene overlaps"):
        provider.fetch(_roi(), TemporalSpec.range("2021-07-01", "2021-08-01"), SensorSpec(S2, ("B4",)))
    emb = get_embedding("spectral", spatial=_roi(), temporal=JUNE, backend=provider,
                        sensor=SensorSpec(S2, ("B2", "B3", "B4", "B8")))
    assert "NDVI_mean" in emb.meta["dim_names"]


def test_unnamed_bands_need_bands_and_get_them_by_list_or_glob(tmp_path):
    _write(tmp_path / "field_2021-06-15.tif", [500, 3000])
    with pytest.raises(ProviderError, match=r"2 bands without names.*bands=\[\.\.\.\]"):
        LocalProvider(tmp_path)
    by_list = LocalProvider(tmp_path, bands=["B4", "B8"])
    by_glob = LocalProvider(tmp_path, bands={"field_*.tif": ["red", "B08"]})
    for p in (by_list, by_glob):
        patch = p.fetch(_roi(), JUNE, SensorSpec(S2, ("B8",)))
        assert patch.data.mean() == 3000
    with pytest.raises(ProviderError, match="has 2 band"):
        LocalProvider(tmp_path, bands=["B4"])


def test_dates_from_tags_and_from_hls_style_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write(tmp_path / "a" / "scene.tif", [700, 3000], descriptions=["B4", "B8"],
           tags={"ACQUISITION_DATE": "2021-06-20", "TIFFTAG_DATETIME": "2024:01:01 00:00:00"})
    _write(tmp_path / "b" / "HLS.S30.T18SVG.2021166T154911.v2.0.tif", [800, 3100],
           descriptions=["B4", "B8"])
    days = sorted(s.datetime for s in LocalProvider(tmp_path).scenes)
    assert days == ["2021-06-15", "2021-06-20"]  # day 166 of 2021; the tag, not the file's creation


def test_a_missing_band_names_what_was_found_and_the_sensor_that_fits(tmp_path):
    _write(tmp_path / "S2_20210615.tif", [500, 600, 700, 3000], descriptions=["B2", "B3", "B4", "B8"])
    with pytest.raises(ProviderError) as err:
        LocalProvider(tmp_path).fetch(_roi(), JUNE, SensorSpec(S2, ("B2", "B3", "B4", "B8", "B11", "B12")))
    msg = str(err.value)
    assert "'B11', 'B12'" in msg and "the bands found are B2, B3, B4, B8" in msg
    assert "sensor=SensorSpec('COPERNICUS/S2_SR_HARMONIZED', bands=('B2', 'B3', 'B4', 'B8'), scale_m=10)" in msg


def test_esa_style_names_inside_a_safe_folder_read_the_product_metadata(tmp_path):
    safe = tmp_path / "S2A_MSIL2A_20230615T154911_N0509_R011_T18SVG_20230615T201512.SAFE"
    img = safe / "GRANULE" / "L2A_T18SVG" / "IMG_DATA" / "R10m"
    img.mkdir(parents=True)
    for band, v in (("B04", 1700), ("B08", 4000)):
        _write(img / f"T18SVG_20230615T154911_{band}_10m.tif", [v])
    (safe / "MTD_MSIL2A.xml").write_text(
        "<Level-2A_User_Product><General_Info><Product_Info><PROCESSING_BASELINE>05.09"
        "</PROCESSING_BASELINE></Product_Info><Product_Image_Characteristics>"
        "<BOA_QUANTIFICATION_VALUE unit=\"none\">10000</BOA_QUANTIFICATION_VALUE>"
        "<BOA_ADD_OFFSET_VALUES_LIST><BOA_ADD_OFFSET band_id=\"3\">-1000</BOA_ADD_OFFSET>"
        "<BOA_ADD_OFFSET band_id=\"7\">-1000</BOA_ADD_OFFSET></BOA_ADD_OFFSET_VALUES_LIST>"
        "</Product_Image_Characteristics></General_Info></Level-2A_User_Product>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patch = LocalProvider(tmp_path).fetch(_roi(), TemporalSpec.range("2023-06-15", "2023-06-16"),
                                              SensorSpec(S2, ("B4", "B8")))
    assert patch.data[0].mean() == 700 and patch.data[1].mean() == 3000
    assert patch.meta["radiometry"][0]["source"] == "esa-metadata MTD_MSIL2A.xml"
