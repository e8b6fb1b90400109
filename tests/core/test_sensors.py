"""The sensor vocabulary against real STAC items, ESA metadata and every backend's spelling."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from rs_embed import sensors

STAC = Path(__file__).resolve().parents[1] / "data" / "stac"
ES_ITEM = json.loads((STAC / "earth_search_sentinel-2-l2a_S2A_39QTA_20230628_0_L2A.json").read_text())
PC_ITEM = json.loads((STAC / ("planetary_computer_sentinel-2-l2a_"
                              "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")).read_text())


@pytest.mark.parametrize("api, item", [("earth-search", ES_ITEM), ("planetary-computer", PC_ITEM)])
def test_every_spectral_asset_of_a_real_item_maps_to_the_band_it_is(api, item):
    coll = sensors.stac_collection(api, item["collection"])
    assert coll is not None and coll.product == "s2_l2a"
    seen = set()
    for key, asset in item["assets"].items():
        band = coll.band_for_asset(key)
        if not asset.get("eo:bands") or key == "visual":
            continue
        assert band is not None, f"{api} asset {key!r} is not in the vocabulary"
        info = sensors.SENTINEL2.band(band)
        eo = asset["eo:bands"][0]
        # the same band: the item's centre wavelength within the band, same ground sample distance
        assert abs(eo["center_wavelength"] - info.wavelength_um) < info.bandwidth_um / 2, (key, band)
        assert asset["gsd"] == info.resolution_m, (key, band)
        # and every spelling the item uses canonicalises to it
        assert sensors.canonical_band(eo["name"], "sentinel-2") == band
        assert sensors.canonical_band(key, item["properties"]["platform"]) == band
        seen.add(band)
    assert seen == set(sensors.S2_L2A_BANDS)  # every L2A band is served, none twice
    assert coll.assets["SCL"] in item["assets"]


def test_canonical_names_across_sources_and_sensors():
    cb = sensors.canonical_band
    assert [cb(b) for b in ("B02", "b8a", "B8A", "scl", "SCL", "rededge1", "vv", "qa_pixel")] == \
        ["B2", "B8A", "B8A", "SCL", "SCL", "B5", "VV", "QA_PIXEL"]
    # a common name means a band only once the sensor is known
    assert cb("red") == "red"
    assert cb("red", "sentinel-2") == "B4" and cb("red", "landsat-9") == "SR_B4"
    assert cb("B4", "landsat-8") == "SR_B4" and cb("nir08", "landsat-8") == "SR_B5"
    assert cb("nir08", "sentinel-2b") == "B8A" and cb("rededge", "sentinel-2") == "rededge"  # 3 bands share it
    assert cb("NDVI") == "NDVI"
    assert sensors.is_categorical("SCL") and sensors.is_categorical("qa_pixel")
    assert not sensors.is_categorical("B4") and sensors.is_categorical("QA10")
    assert sensors.sort_bands(["B12", "SCL", "B8A", "B2", "extra"]) == ["B2", "B8A", "B12", "SCL", "extra"]
    assert sensors.common_name("B04") == "red" and sensors.common_name("SR_B2") == "blue"


def test_products_answer_to_every_backends_collection_id():
    same = sensors.same_product
    assert same("COPERNICUS/S2_SR_HARMONIZED", "sentinel-2-l2a")
    assert same("COPERNICUS/S2_SR", "sentinel-2-c1-l2a")
    assert same("COPERNICUS/S2", "sentinel-2-l1c")
    assert not same("COPERNICUS/S2_HARMONIZED", "sentinel-2-l2a")
    assert same("LANDSAT/LC09/C02/T1_L2", "landsat-c2-l2")
    assert not same("sentinel-1-rtc", "COPERNICUS/S1_GRD")  # gamma0 RTC is not sigma0
    assert sensors.product("unknown/thing") is None
    assert sensors.harmonised_ee_id("COPERNICUS/S2") == "COPERNICUS/S2_HARMONIZED"
    assert sensors.harmonised_ee_id("COPERNICUS/S2_SR") == "COPERNICUS/S2_SR_HARMONIZED"
    assert sensors.harmonised_ee_id("COPERNICUS/S2_SR_HARMONIZED") == "COPERNICUS/S2_SR_HARMONIZED"
    info = sensors.ee_collection("COPERNICUS/S2_SR")
    assert info.cloud_property == "CLOUDY_PIXEL_PERCENTAGE" and not info.harmonised and info.deprecated
    assert sensors.ee_collection("LANDSAT/LC08/C02/T1_L2").cloud_property == "CLOUD_COVER"
    assert sensors.ee_collection("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL").annual
    assert sensors.ee_collection("MY/OWN").family == "generic"
    pc = sensors.stac_collection("planetary-computer", "sentinel-2-l2a")
    assert pc.signing == "planetary-computer" and pc.assets["B4"] == "B04" and pc.assets["B8A"] == "B8A"
    es = sensors.stac_collection("earth-search", "sentinel-2-l2a")
    assert es.assets["B5"] == "rededge1" and es.offset_signal == "earthsearch:boa_offset_applied"
    assert sensors.LANDSAT_C2_L2_PRODUCT.radiometry_of("SR_B4").scale == 2.75e-05
    assert sensors.LANDSAT_C2_L2_PRODUCT.radiometry_of("ST_B10").offset == 149.0
    assert sensors.expected_range("sentinel-2-l2a") == sensors.expected_range("COPERNICUS/S2_SR") == (0.0, 20000.0)
    assert sensors.canonical_modality("Sentinel-2") == "s2" and sensors.canonical_modality("sentinel-2-l2a") == "s2_l2a"


def test_each_real_item_signals_its_offset_its_own_way():
    # Earth Search, baseline 05.09, flag true: already removed, raster:bands' -0.1 notwithstanding
    p = ES_ITEM["properties"]
    rb = ES_ITEM["assets"]["red"]["raster:bands"][0]
    h = sensors.s2_harmonisation(offset_applied=p["earthsearch:boa_offset_applied"],
                                 baseline=p["s2:processing_baseline"], raster_scale=rb["scale"],
                                 raster_offset=rb["offset"])
    assert h.identity and h.source == "earthsearch:boa_offset_applied" and h.baseline == "05.09"
    # the same item had the flag been false: the offset is still in the pixels
    h = sensors.s2_harmonisation(offset_applied=False, baseline="05.09")
    assert h.bias_for("B4") == -1000.0
    # Planetary Computer, baseline 02.12: no offset exists
    h = sensors.s2_harmonisation(baseline=PC_ITEM["properties"]["s2:processing_baseline"])
    assert h.identity and h.baseline == "02.12"
    assert sensors.baseline_from_name(PC_ITEM["properties"]["s2:product_uri"]) == "02.12"
    # Earth Search Collection 1: raster:bands hold (DN * 1e-4 - 0.1 reflectance)
    h = sensors.s2_harmonisation(baseline="05.10", raster_scale=0.0001, raster_offset=-0.1)
    assert h.source == "raster:bands" and h.bias_for("B2") == pytest.approx(-1000.0) and h.gain == 1.0
    # a pre-04.00 baseline overrides a stray raster:bands offset
    assert sensors.s2_harmonisation(baseline="03.01", raster_offset=-0.1).identity
    # a scale alone sets the gain and says nothing about the offset
    h = sensors.s2_harmonisation(raster_scale=1.0, acquired=date(2021, 5, 1))
    assert h.gain == 10000.0 and h.bias_for("B4") == 0.0 and h.source == "date"
    # by date alone
    assert sensors.s2_harmonisation(acquired=date(2021, 12, 31)).certain
    late = sensors.s2_harmonisation(acquired=date(2022, 1, 25))
    assert not late.certain and late.identity and late.source == "unknown"
    # an explicit declaration wins
    assert sensors.s2_harmonisation(declared_offset_dn=-1000, offset_applied=True).bias_for("B8") == -1000


def test_esa_product_metadata_offsets_per_band():
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info><PRODUCT_START_TIME>2023-06-15T15:49:11.024Z</PRODUCT_START_TIME>
  <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
  <Product_Image_Characteristics>
   <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
   </QUANTIFICATION_VALUES_LIST>
   <BOA_ADD_OFFSET_VALUES_LIST>
    <BOA_ADD_OFFSET band_id="3">-1000</BOA_ADD_OFFSET><BOA_ADD_OFFSET band_id="8">-1000</BOA_ADD_OFFSET>
    <BOA_ADD_OFFSET band_id="12">-900</BOA_ADD_OFFSET>
   </BOA_ADD_OFFSET_VALUES_LIST>
   <Spectral_Information_List><Spectral_Information bandId="3" physicalBand="B4"/>
    <Spectral_Information bandId="8" physicalBand="B8A"/></Spectral_Information_List>
  </Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>"""
    md = sensors.parse_esa_product_metadata(xml)
    assert md["baseline"] == "05.09" and md["quantification"] == 10000.0 and md["level"] == "Level-2A"
    # bandId 3 is B4, bandId 8 is B8A (not B9), bandId 12 falls back to ESA order (B12)
    assert md["offsets"] == {"B4": -1000.0, "B8A": -1000.0, "B12": -900.0}
    assert md["sensing_date"] == "2023-06-15"
    h = sensors.s2_harmonisation(declared_offsets=md["offsets"], baseline=md["baseline"],
                                 declared_source="esa-metadata")
    assert h.source == "esa-metadata" and h.bias_for("B12") == -900.0


def test_harmonise_removes_the_offset_and_clips_like_the_harmonised_collections():
    h = sensors.s2_harmonisation(baseline="04.00")
    stored = np.array([np.nan, 1000.0, 1500.0, 950.0], dtype=np.float32)
    out = sensors.harmonise(stored, h, "B4")
    assert np.isnan(out[0]) and out[1:].tolist() == [0.0, 500.0, 0.0]


def test_quality_vocabulary():
    assert sensors.SCL_CLASSES[9] == "cloud_high_probability" and 4 not in sensors.SCL_INVALID
    ok = sensors.scl_valid(np.array([0, 4, 8, 9, 6, 11]))
    assert ok.tolist() == [False, True, False, False, True, True]
    qa = np.array([1 << 3, 1 << 6, (1 << 4) | (1 << 6)])
    bits = [sensors.LANDSAT_QA_PIXEL_BITS[b] for b in sensors.LANDSAT_QA_PIXEL_INVALID]
    assert sensors.qa_bits_clear(qa, bits).tolist() == [False, True, False]
    assert sensors.QA60_BITS == {"opaque_clouds": 10, "cirrus": 11}
