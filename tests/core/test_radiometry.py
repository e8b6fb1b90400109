"""One radiometric convention on every local path: a post-2022 copy of the embedded scene,
written with ESA's +1000 DN offset and the metadata that says so, embeds like the original."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rs_embed import SensorSpec, TemporalSpec, get_embedding, sample
from rs_embed.providers.local import LocalProvider

POINTS = [sample.points(400)[i] for i in (3, 20)]  # lagoon water and forest
LATE_DAY = "2023-06-15"
LATE = TemporalSpec.range("2023-06-01", "2023-07-01")
L1C = SensorSpec(sample.COLLECTION, sample.BANDS)
#: a window of the sample holding both points (UTM metres), read without resampling
_WINDOW_M = (439_980.0, 4_161_000.0, 447_000.0, 4_171_020.0)  # on the 60 m lattice


def _write_copy(folder: Path, *, offset: int = 1000) -> dict:
    """The sample cropped to _WINDOW_M, every valid DN + ``offset`` (nodata 0 stays 0)."""
    return sample.write_copy(folder, offset_dn=offset, bounds=_WINDOW_M)


def _sidecar(folder: Path, files: dict, **extra) -> Path:
    doc = {"type": "rs_embed.scene", "id": "late_copy", "datetime": f"{LATE_DAY}T15:49:11Z",
           "nodata": 0, "bands": files, **extra}
    path = folder / "scene.json"
    path.write_text(json.dumps(doc))
    return path


def _stac_item(folder: Path, files: dict, **props) -> Path:
    es = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
          "B6": "rededge2", "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B9": "nir09",
          "B10": "cirrus", "B11": "swir16", "B12": "swir22"}
    assets = {es[b]: {"href": f"./{f}", "type": "image/tiff; application=geotiff",
                      "roles": ["data", "reflectance"],
                      "eo:bands": [{"name": es[b], "common_name": es[b]}],
                      "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001,
                                        "offset": -0.1}]}
              for b, f in files.items()}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "S2A_18SVG_20230615_0_L1C",
            "collection": "sentinel-2-l1c", "geometry": None, "bbox": None,
            "properties": {"datetime": f"{LATE_DAY}T15:49:11Z", "platform": "sentinel-2a",
                           "s2:processing_baseline": "05.09", **props},
            "assets": assets, "links": []}
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path


def _embeddings(provider, temporal, model="spectral"):
    return [get_embedding(model, spatial=p.spatial, temporal=temporal, sensor=L1C, backend=provider).data
            for p in POINTS]


@pytest.fixture(scope="module")
def original():
    provider = LocalProvider()
    return {m: _embeddings(provider, sample.TEMPORAL, m) for m in ("spectral", "rcf")}


def _close(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())


def _no_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    return ctx


@pytest.mark.parametrize("how", ["sidecar offset", "sidecar baseline", "stac raster:bands",
                                 "stac baseline", "esa metadata"])
def test_post_2022_copy_embeds_like_the_original(tmp_path, original, how):
    files = _write_copy(tmp_path)
    if how == "sidecar offset":
        catalog = _sidecar(tmp_path, files, offset=-1000)
    elif how == "sidecar baseline":
        catalog = _sidecar(tmp_path, files, processing_baseline="04.00",
                           collection="COPERNICUS/S2_HARMONIZED")
    elif how == "stac raster:bands":
        catalog = _stac_item(tmp_path, files)
    elif how == "stac baseline":
        item = json.loads(_stac_item(tmp_path, files).read_text())
        for a in item["assets"].values():
            del a["raster:bands"][0]["offset"], a["raster:bands"][0]["scale"]
        (tmp_path / "item.json").write_text(json.dumps(item))
        catalog = tmp_path / "item.json"
    else:  # ESA's own layout: band files beside the product metadata
        for b, f in files.items():
            (tmp_path / f).rename(tmp_path / f"T18SVG_20230615T154911_{b}.tif")
        ids = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
        (tmp_path / "MTD_MSIL1C.xml").write_text(
            "<Level-1C_User_Product><General_Info><Product_Info><PROCESSING_BASELINE>04.00"
            "</PROCESSING_BASELINE></Product_Info><Product_Image_Characteristics>"
            "<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE>"
            f"<Radiometric_Offset_List>{ids}</Radiometric_Offset_List>"
            "</Product_Image_Characteristics></General_Info></Level-1C_User_Product>")
        catalog = tmp_path
    provider = LocalProvider(catalog)
    ctx = _no_warnings()
    try:
        for model in ("spectral", "rcf"):
            _close(_embeddings(provider, LATE, model), original[model])
    finally:
        ctx.__exit__(None, None, None)
    patch = provider.fetch(POINTS[0].spatial, LATE, L1C)
    # the very pixels of the original: any model embeds them alike
    original_patch = LocalProvider().fetch(POINTS[0].spatial, sample.TEMPORAL, L1C)
    np.testing.assert_array_equal(patch.data, original_patch.data)
    (rec,) = patch.meta["radiometry"]
    assert rec["harmonised"] and rec["certain"] and rec["bias_dn"]["B4"] == -1000.0
    expected = {"sidecar offset": "declared", "sidecar baseline": "declared processing_baseline",
                "stac raster:bands": "raster:bands", "stac baseline": "stac s2:processing_baseline",
                "esa metadata": "esa-metadata MTD_MSIL1C.xml"}[how]
    assert rec["source"] == expected
    assert patch.meta["value_scale"] == 1e-4 and "harmonised" in patch.meta["values"]


def test_earth_search_flag_means_the_copy_is_already_harmonised(tmp_path, original):
    files = _write_copy(tmp_path, offset=0)  # a harmonised copy, raster:bands still says -0.1
    provider = LocalProvider(_stac_item(tmp_path, files, **{"earthsearch:boa_offset_applied": True}))
    _close(_embeddings(provider, LATE), original["spectral"])
    rec = provider.fetch(POINTS[0].spatial, LATE, L1C).meta["radiometry"][0]
    assert rec["source"] == "earthsearch:boa_offset_applied" and rec["bias_dn"]["B4"] == 0.0


def test_unknown_baseline_after_2022_warns_once_and_keeps_the_values(tmp_path, original):
    files = _write_copy(tmp_path)
    provider = LocalProvider(_sidecar(tmp_path, files))  # no collection, no baseline, no offset
    with pytest.warns(UserWarning, match=r"'late_copy'.*processing baseline is unknown") as rec:
        got = _embeddings(provider, LATE)
    assert len([w for w in rec if "baseline is unknown" in str(w.message)]) == 1
    patch = provider.fetch(POINTS[0].spatial, LATE, L1C)
    meta = patch.meta["radiometry"][0]
    assert meta["certain"] is False and meta["source"] == "unknown"
    # the offset is still in: about +0.1 reflectance in every band, so the statistics differ
    assert not np.allclose(got[0], original["spectral"][0], rtol=1e-2)
    direct = LocalProvider().fetch(POINTS[0].spatial, sample.TEMPORAL, L1C)
    band = sample.BANDS.index("B4")
    assert np.median(patch.data[band] - direct.data[band]) == pytest.approx(1000.0, abs=1)


def test_pre_2022_and_harmonised_collections_need_nothing(tmp_path, original):
    files = _write_copy(tmp_path, offset=0)
    doc = {"type": "rs_embed.scene", "id": "early", "datetime": "2021-06-15", "nodata": 0, "bands": files}
    (tmp_path / "scene.json").write_text(json.dumps(doc))
    provider = LocalProvider(tmp_path / "scene.json")
    got = _embeddings(provider, TemporalSpec.range("2021-06-01", "2021-07-01"))
    _close(got, original["spectral"])
    rec = provider.fetch(POINTS[0].spatial, TemporalSpec.range("2021-06-01", "2021-07-01"), L1C)
    assert rec.meta["radiometry"][0]["source"] == "date"
    # the embedded sample declares the harmonised collection
    meta = LocalProvider().fetch(POINTS[0].spatial, sample.TEMPORAL, L1C).meta["radiometry"][0]
    assert meta["source"] == "declared collection COPERNICUS/S2_HARMONIZED (harmonised)"
    # a declared non-harmonised Earth Engine id after 2022 implies the offset
    files = _write_copy(tmp_path / "nh")
    doc = {"type": "rs_embed.scene", "id": "nh", "datetime": LATE_DAY, "nodata": 0, "bands": files,
           "collection": "COPERNICUS/S2"}
    (tmp_path / "nh" / "scene.json").write_text(json.dumps(doc))
    _close(_embeddings(LocalProvider(tmp_path / "nh" / "scene.json"), LATE), original["spectral"])


def test_bad_radiometry_declarations_fail_before_any_read(tmp_path):
    files = _write_copy(tmp_path)
    with pytest.raises(Exception, match="processing_baseline must look like"):
        LocalProvider(_sidecar(tmp_path, files, processing_baseline="new"))
    with pytest.raises(Exception, match="'offset' must be a finite number"):
        LocalProvider(_sidecar(tmp_path, files, offset="minus a thousand"))
