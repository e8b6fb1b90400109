"""COGs and STAC items the STAC tests serve, written from the embedded real scene.

Every raster is the embedded Sentinel-2 sample (real digital numbers), re-encoded as
a tiled COG with overviews, and described by items shaped like real Earth Search v1
and Planetary Computer responses (asset keys, ``raster:bands``, ``eo:bands``,
``proj:*``, ``s2:processing_baseline``, ``earthsearch:boa_offset_applied``; see the
recorded items of pystac-client's and stactools' test suites). Scenes:

``pre``     2020-06-15, baseline 02.14: the stored values are the sample's.
``cloudy``  2020-06-25, 38 % cloud: clear pixels are the sample + 100 DN, a cloud
            block is 9000 DN with SCL class 9 (high-probability cloud) under it.
``post``    2023-06-20, baseline 05.09, ``earthsearch:boa_offset_applied: false``:
            stored values are the sample + 1000 DN (ESA's baseline-04.00 offset).
``applied`` 2023-07-10, baseline 05.09, ``earthsearch:boa_offset_applied: true``:
            stored values are the sample (Earth Search removed the offset) while
            ``raster:bands`` still says ``offset: -0.1``, as on the real catalog.
``zone19``  2020-07-05: the sample reprojected into UTM zone 19N (the neighbour).
``hazy``    2020-06-10, 85 % cloud: dropped by any cloudy_pct below 85.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from rs_embed import sample

#: the bands the test scenes carry (what rcf / spectral on L2A read) plus SCL
BANDS: Tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
RES = {"B2": 10, "B3": 10, "B4": 10, "B8": 10, "B5": 20, "B6": 20, "B7": 20, "B8A": 20,
       "B11": 20, "B12": 20, "SCL": 20}
#: Earth Search v1 asset keys and ESA file names (item S2A_39QTA_20230628_0_L2A)
ES_KEYS = {"B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1", "B6": "rededge2",
           "B7": "rededge3", "B8": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
           "SCL": "scl"}
ESA = {"B2": "B02", "B3": "B03", "B4": "B04", "B5": "B05", "B6": "B06", "B7": "B07",
       "B8": "B08", "B8A": "B8A", "B11": "B11", "B12": "B12", "SCL": "SCL"}
COMMON = {"B2": "blue", "B3": "green", "B4": "red", "B5": "rededge", "B6": "rededge",
          "B7": "rededge", "B8": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22"}
WAVELENGTH = {"B2": 0.49, "B3": 0.56, "B4": 0.665, "B5": 0.704, "B6": 0.74, "B7": 0.783,
              "B8": 0.842, "B8A": 0.865, "B11": 1.61, "B12": 2.19}
#: the cloud block of the cloudy scene, in 10 m pixels of the sample (rows, cols)
CLOUD_ROWS, CLOUD_COLS = slice(200, 700), slice(300, 900)
COG = dict(driver="COG", compress="ZSTD", level=1, predictor=2, blocksize=256,
           overviews="AUTO", resampling="average")


@dataclass(frozen=True)
class SceneSpec:
    id: str
    datetime: str
    cloud: float
    baseline: str
    offset_dn: int = 0                 # added to the stored values
    boa_offset_applied: Optional[bool] = False
    cloudy: bool = False
    crs: str = sample.CRS


SCENES: Dict[str, SceneSpec] = {s.id: s for s in (
    SceneSpec("pre", "2020-06-15T15:49:11Z", 3.0, "02.14"),
    SceneSpec("cloudy", "2020-06-25T15:49:21Z", 38.0, "02.14", cloudy=True),
    SceneSpec("post", "2023-06-20T15:49:01Z", 1.5, "05.09", offset_dn=1000),
    SceneSpec("applied", "2023-07-10T15:49:31Z", 2.0, "05.09", boa_offset_applied=True),
    SceneSpec("zone19", "2020-07-05T15:49:41Z", 4.0, "02.14", crs="EPSG:32619"),
    SceneSpec("hazy", "2020-06-10T15:49:05Z", 85.0, "02.14"),
)}


def item_id(api: str, spec: SceneSpec) -> str:
    day = spec.datetime[:10].replace("-", "")
    if api == "earth-search":
        return f"S2A_18SVG_{day}_0_L2A_{spec.id}"
    return f"S2A_MSIL2A_{day}T154911_R011_T18SVG_{day}T200000_{spec.id}"


def sample_band(band: str) -> Tuple[np.ndarray, "object"]:
    import rasterio

    with rasterio.open(sample.band_path(band)) as src:
        return src.read(1), src.transform


def scl_for_sample() -> Tuple[np.ndarray, "object"]:
    """A plausible 20 m SCL layer: water (6), vegetation (4), bare/other (5)."""
    green, tr = sample_band("B3")
    nir, _ = sample_band("B8")
    red, _ = sample_band("B4")
    g = green.astype(np.float32)[::2, ::2]
    n = nir.astype(np.float32)[::2, ::2]
    r = red.astype(np.float32)[::2, ::2]
    ndwi = (g - n) / np.maximum(g + n, 1)
    ndvi = (n - r) / np.maximum(n + r, 1)
    scl = np.full(g.shape, 5, np.uint8)
    scl[ndvi > 0.4] = 4
    scl[ndwi > 0.1] = 6
    from affine import Affine

    return scl, Affine(20.0, 0.0, tr.c, 0.0, -20.0, tr.f)


def _write(path: Path, data: np.ndarray, transform, crs: str, nodata) -> None:
    import rasterio

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **COG) as dst:
        dst.write(data, 1)


def _to_zone19(data: np.ndarray, transform, categorical: bool):
    """The sample reprojected onto a 10/20 m grid of UTM zone 19N (what a neighbour tile holds)."""
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    res = abs(transform.a)
    h, w = data.shape
    left, top = transform.c, transform.f
    dst_tr, dw, dh = calculate_default_transform(sample.CRS, "EPSG:32619", w, h, left, top - res * h,
                                                 left + res * w, top, resolution=res)
    from affine import Affine

    dst_tr = Affine(res, 0, np.floor(dst_tr.c / res) * res, 0, -res, np.ceil(dst_tr.f / res) * res)
    out = np.zeros((dh + 2, dw + 2), data.dtype)
    reproject(data, out, src_transform=transform, src_crs=sample.CRS, dst_transform=dst_tr,
              dst_crs="EPSG:32619", src_nodata=0, dst_nodata=0,
              resampling=Resampling.nearest if categorical else Resampling.bilinear)
    return out, dst_tr


def scene_arrays(spec: SceneSpec) -> Dict[str, Tuple[np.ndarray, object]]:
    """Band -> (stored array, transform) for one scene."""
    out = {}
    for band in (*BANDS, "SCL"):
        if band == "SCL":
            data, tr = scl_for_sample()
        else:
            data, tr = sample_band(band)
            data = data.astype(np.int32)
            valid = data > 0
            if spec.cloudy:
                data = np.where(valid, data + 100, 0)
                k = RES[band] // 10
                rows = slice(CLOUD_ROWS.start // k, CLOUD_ROWS.stop // k)
                cols = slice(CLOUD_COLS.start // k, CLOUD_COLS.stop // k)
                data[rows, cols] = 9000
            data = np.where(valid, data + spec.offset_dn, 0).astype(np.uint16)
        if band == "SCL" and spec.cloudy:
            data = data.copy()
            data[CLOUD_ROWS.start // 2:CLOUD_ROWS.stop // 2, CLOUD_COLS.start // 2:CLOUD_COLS.stop // 2] = 9
        if spec.crs != sample.CRS:
            data, tr = _to_zone19(data, tr, band == "SCL")
        out[band] = (data, tr)
    return out


def _footprint(arrays, crs: str):
    from rasterio.warp import transform_bounds

    data, tr = arrays["B2"]
    h, w = data.shape
    west, south, east, north = transform_bounds(crs, "EPSG:4326", tr.c, tr.f + tr.e * h,
                                                tr.c + tr.a * w, tr.f, densify_pts=21)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return [west, south, east, north], {"type": "Polygon", "coordinates": [ring]}


def _epsg(crs: str) -> int:
    return int(crs.split(":")[1])


def earth_search_item(spec: SceneSpec, base_url: str, arrays) -> dict:
    """An item shaped like Earth Search v1 ``sentinel-2-l2a`` (Collection 0)."""
    iid = item_id("earth-search", spec)
    bbox, geom = _footprint(arrays, spec.crs)
    assets = {}
    for band, key in ES_KEYS.items():
        data, tr = arrays[band]
        res = RES[band]
        asset = {
            "href": f"{base_url}/es/{iid}/{ESA[band]}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"{band} - {res}m",
            "proj:shape": list(data.shape),
            "proj:transform": [tr.a, tr.b, tr.c, tr.d, tr.e, tr.f],
            "raster:bands": [{"nodata": 0, "data_type": str(data.dtype), "spatial_resolution": res,
                              **({"scale": 0.0001, "offset": -0.1} if band != "SCL" else {})}],
            "roles": ["data"] if band == "SCL" else ["data", "reflectance"],
        }
        if band != "SCL":
            asset["gsd"] = res
            asset["eo:bands"] = [{"name": key, "common_name": COMMON[band],
                                  "center_wavelength": WAVELENGTH[band]}]
        assets[key] = asset
    assets["thumbnail"] = {"href": f"{base_url}/es/{iid}/thumbnail.jpg", "type": "image/jpeg",
                           "roles": ["thumbnail"]}
    assets["granule_metadata"] = {"href": f"{base_url}/es/{iid}/granule_metadata.xml",
                                  "type": "application/xml", "roles": ["metadata"]}
    props = {
        "created": "2023-07-01T00:00:00.000Z", "platform": "sentinel-2a",
        "constellation": "sentinel-2", "instruments": ["msi"], "eo:cloud_cover": spec.cloud,
        "proj:epsg": _epsg(spec.crs), "mgrs:utm_zone": _epsg(spec.crs) % 100,
        "mgrs:latitude_band": "S", "mgrs:grid_square": "VG", "grid:code": "MGRS-18SVG",
        "s2:product_type": "S2MSI2A", "s2:processing_baseline": spec.baseline,
        "s2:product_uri": f"S2A_MSIL2A_{spec.datetime[:10].replace('-', '')}T154911_N0{spec.baseline.replace('.', '')}"
                          f"_R011_T18SVG_{spec.datetime[:10].replace('-', '')}T200000.SAFE",
        "datetime": spec.datetime, "s2:sequence": "0",
        "earthsearch:s3_path": f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/18/S/VG/{iid}",
        "earthsearch:payload_id": f"roda-sentinel2/workflow-sentinel2-to-stac/{iid}",
        "processing:software": {"sentinel2-to-stac": "0.1.0"},
        "updated": "2023-07-01T00:00:00.000Z",
    }
    if spec.boa_offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = spec.boa_offset_applied
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": "sentinel-2-l2a",
            "bbox": bbox, "geometry": geom, "properties": props, "assets": assets,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "links": []}


PC_ACCOUNT, PC_CONTAINER = "sentinel2l2a01", "sentinel2-l2"


def pc_path(spec: SceneSpec, band: str) -> str:
    """Blob path (container onwards) of one band, as Planetary Computer lays it out."""
    day = spec.datetime[:10].replace("-", "")
    y, m, d = spec.datetime[:4], spec.datetime[5:7], spec.datetime[8:10]
    product = f"S2A_MSIL2A_{day}T154911_N0{spec.baseline.replace('.', '')}_R011_T18SVG_{day}T200000.SAFE"
    res = RES[band]
    return (f"{PC_CONTAINER}/18/S/VG/{y}/{m}/{d}/{product}/GRANULE/L2A_T18SVG_{spec.id}/IMG_DATA/"
            f"R{res}m/T18SVG_{day}T154911_{ESA[band]}_{res}m.tif")


def planetary_computer_item(spec: SceneSpec, arrays) -> dict:
    """An item shaped like Planetary Computer ``sentinel-2-l2a`` (unsigned blob hrefs)."""
    iid = item_id("planetary-computer", spec)
    bbox, geom = _footprint(arrays, spec.crs)
    assets = {}
    for band in (*BANDS, "SCL"):
        data, tr = arrays[band]
        res = RES[band]
        asset = {
            # http (not https) so that tests can reach "blob storage" through a local proxy
            "href": f"http://{PC_ACCOUNT}.blob.core.windows.net/{pc_path(spec, band)}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": f"Band {ESA[band]} - {res}m",
            "proj:bbox": [tr.c, tr.f + tr.e * data.shape[0], tr.c + tr.a * data.shape[1], tr.f],
            "proj:shape": list(data.shape),
            "proj:transform": [tr.a, tr.b, tr.c, tr.d, tr.e, tr.f],
            "gsd": float(res), "roles": ["data"],
        }
        if band != "SCL":
            asset["eo:bands"] = [{"name": ESA[band], "common_name": COMMON[band],
                                  "center_wavelength": WAVELENGTH[band]}]
        assets[ESA[band]] = asset
    day = spec.datetime[:10].replace("-", "")
    props = {
        "datetime": spec.datetime, "platform": "Sentinel-2A", "proj:epsg": _epsg(spec.crs),
        "instruments": ["msi"], "s2:mgrs_tile": "18SVG", "constellation": "Sentinel 2",
        "eo:cloud_cover": spec.cloud, "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": spec.baseline, "sat:orbit_state": "descending",
        "sat:relative_orbit": 11,
        "s2:product_uri": f"S2A_MSIL2A_{day}T154911_N0{spec.baseline.replace('.', '')}_R011_T18SVG_{day}T200000.SAFE",
    }
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": "sentinel-2-l2a",
            "bbox": bbox, "geometry": geom, "properties": props, "assets": assets,
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                                "https://stac-extensions.github.io/projection/v1.0.0/schema.json"],
            "links": []}


def collection(cid: str, title: str) -> dict:
    return {"type": "Collection", "stac_version": "1.0.0", "id": cid, "title": title,
            "description": title, "license": "proprietary",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]}},
            "links": []}


@dataclass
class Archive:
    """The written scenes: files under ``root``, items per API, arrays per scene."""

    root: Path
    arrays: Dict[str, Dict[str, Tuple[np.ndarray, object]]]

    def es_file(self, scene: str, band: str) -> Path:
        return self.root / "es" / item_id("earth-search", SCENES[scene]) / f"{ESA[band]}.tif"

    def pc_file(self, scene: str, band: str) -> Path:
        return self.root / "blob" / PC_ACCOUNT / pc_path(SCENES[scene], band)


def write_archive(root: Path) -> Archive:
    """Write every scene's COGs (one file, linked under both APIs' layouts)."""
    import os

    arrays = {}
    for name, spec in SCENES.items():
        arrs = arrays[name] = scene_arrays(spec)
        for band, (data, tr) in arrs.items():
            es = root / "es" / item_id("earth-search", spec) / f"{ESA[band]}.tif"
            _write(es, data, tr, spec.crs, 0)
            pc = root / "blob" / PC_ACCOUNT / pc_path(spec, band)
            pc.parent.mkdir(parents=True, exist_ok=True)
            os.link(es, pc)  # the same bytes under Planetary Computer's layout
    return Archive(root, arrays)


def write_items(archive: Archive, folder: Path, api: str, base_url: str,
                scenes: Optional[List[str]] = None) -> List[Path]:
    """The collection and item JSON files a STAC API server loads for ``api``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = scenes or list(SCENES)
    if api == "earth-search":
        feats = [earth_search_item(SCENES[n], base_url, archive.arrays[n]) for n in names]
        coll = collection("sentinel-2-l2a", "Sentinel-2 Level 2A")
    else:
        feats = [planetary_computer_item(SCENES[n], archive.arrays[n]) for n in names]
        coll = collection("sentinel-2-l2a", "Sentinel-2 Level-2A")
    cpath = folder / f"{api}-collection.json"
    ipath = folder / f"{api}-items.json"
    cpath.write_text(json.dumps(coll))
    ipath.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return [cpath, ipath]


__all__ = ["SCENES", "SceneSpec", "BANDS", "ES_KEYS", "ESA", "Archive", "write_archive",
           "write_items", "item_id", "earth_search_item", "planetary_computer_item",
           "CLOUD_ROWS", "CLOUD_COLS", "PC_ACCOUNT", "PC_CONTAINER"]


# ------------------------------------------------ Landsat C2 L2 and Sentinel-1 RTC (PC)

LS_DATETIME, S1_DATETIME = "2021-05-03T15:41:07Z", "2021-05-05T22:57:12Z"
#: Landsat QA_PIXEL bit 3 (cloud) is set on this block of the sample's 10 m pixels
LS_CLOUD_ROWS, LS_CLOUD_COLS = slice(600, 900), slice(100, 400)


def _pc_asset(href: str, data: np.ndarray, tr, key: str, **raster) -> dict:
    return {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "title": key, "proj:shape": list(data.shape),
            "proj:transform": [tr.a, tr.b, tr.c, tr.d, tr.e, tr.f], "roles": ["data"],
            "raster:bands": [dict(raster, data_type=str(data.dtype))]}


def write_pc_landsat_s1(archive: Archive, folder: Path) -> List[Path]:
    """A Landsat 8 C2 L2 item (SR_B4, SR_B5, QA_PIXEL) and a Sentinel-1 RTC item (VV, VH),
    shaped like Planetary Computer's, from the sample's real pixels."""
    red, tr = sample_band("B4")
    nir, _ = sample_band("B8")
    qa = np.full(red.shape, 21824, np.uint16)  # "clear, low confidence cloud" (USGS example)
    qa[LS_CLOUD_ROWS, LS_CLOUD_COLS] |= 1 << 3
    ls_dir = "landsat-c2/level-2/standard/oli-tirs/2021/014/034/LC08_L2SP_014034_20210503_20210508_02_T1"
    s1_dir = "sentinel1-grd-rtc/GRD/2021/5/5/IW/DV/S1A_IW_GRDH_1SDV_20210505T225712_rtc"
    files = {
        ("landsateuwest", f"{ls_dir}/LC08_L2SP_SR_B4.TIF"): red,
        ("landsateuwest", f"{ls_dir}/LC08_L2SP_SR_B5.TIF"): nir,
        ("landsateuwest", f"{ls_dir}/LC08_L2SP_QA_PIXEL.TIF"): qa,
        ("sentinel1euwestrtc", f"{s1_dir}/measurement/iw-vv.tiff"): (nir / 1e4).astype(np.float32),
        ("sentinel1euwestrtc", f"{s1_dir}/measurement/iw-vh.tiff"): (red / 1e4).astype(np.float32),
    }
    hrefs = {}
    for (account, path), data in files.items():
        _write(archive.root / "blob" / account / path, data, tr, sample.CRS,
               -32768.0 if data.dtype.kind == "f" else (1 if "QA" in path else 0))
        hrefs[path.rsplit("_", 1)[-1].split("/")[-1]] = f"http://{account}.blob.core.windows.net/{path}"
    bbox, geom = _footprint({"B2": (red, tr)}, sample.CRS)
    sr = dict(nodata=0, scale=2.75e-05, offset=-0.2, unit="unitless")
    landsat = {"type": "Feature", "stac_version": "1.0.0", "id": "LC08_L2SP_014034_20210503_02_T1",
               "collection": "landsat-c2-l2", "bbox": bbox, "geometry": geom, "links": [],
               "properties": {"datetime": LS_DATETIME, "platform": "landsat-8", "eo:cloud_cover": 12.4,
                              "proj:epsg": 32618, "landsat:wrs_path": "014", "landsat:wrs_row": "034",
                              "landsat:collection_category": "T1", "instruments": ["oli", "tirs"]},
               "assets": {"red": _pc_asset(hrefs["B4.TIF"], red, tr, "Red Band", **sr),
                          "nir08": _pc_asset(hrefs["B5.TIF"], nir, tr, "Near Infrared Band 0.8", **sr),
                          "qa_pixel": _pc_asset(hrefs["PIXEL.TIF"], qa, tr, "Pixel Quality Assessment Band",
                                                nodata=1, unit="bit index")}}
    s1 = {"type": "Feature", "stac_version": "1.0.0", "id": "S1A_IW_GRDH_1SDV_20210505T225712_rtc",
          "collection": "sentinel-1-rtc", "bbox": bbox, "geometry": geom, "links": [],
          "properties": {"datetime": S1_DATETIME, "platform": "SENTINEL-1A", "sar:instrument_mode": "IW",
                         "sar:polarizations": ["VV", "VH"], "sat:orbit_state": "descending",
                         "proj:epsg": 32618},
          "assets": {"vv": _pc_asset(hrefs["iw-vv.tiff"], files[("sentinel1euwestrtc",
                                                                  f"{s1_dir}/measurement/iw-vv.tiff")],
                                     tr, "VV: vertical transmit, vertical receive", nodata=-32768),
                     "vh": _pc_asset(hrefs["iw-vh.tiff"], files[("sentinel1euwestrtc",
                                                                  f"{s1_dir}/measurement/iw-vh.tiff")],
                                     tr, "VH: vertical transmit, horizontal receive", nodata=-32768)}}
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, coll, feat in (("landsat", collection("landsat-c2-l2", "Landsat Collection 2 Level-2"), landsat),
                             ("s1", collection("sentinel-1-rtc", "Sentinel 1 Radiometrically Terrain Corrected (RTC)"), s1)):
        (folder / f"{name}-collection.json").write_text(json.dumps(coll))
        (folder / f"{name}-items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
        out += [folder / f"{name}-collection.json", folder / f"{name}-items.json"]
    return out
