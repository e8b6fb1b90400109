"""``gse`` without Earth Engine: public AlphaEarth COGs through their published index.

The test writes what Source Cooperative publishes, in miniature: bottom-up int8
64-band tiles (one in the ROI's UTM zone, one in the neighbouring zone), a GeoParquet
index with the published columns and ``s3://`` paths, all served over HTTP on
127.0.0.1. The Earth Engine side answers ``computePixels`` with the dequantised
values of the same stored pixels, so both paths are compared on the same pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ProviderError
from rs_embed.geometry import roi_grid, transformer
from rs_embed.specs import OutputSpec, PointBuffer, TemporalSpec

pa = pytest.importorskip("pyarrow")

YEAR = 2022
PX = 10.0
#: the zone-18 tile: 256 x 256 px whose lower-left corner is here (UTM 18N)
TILE18 = (440000.0, 4163000.0)
N = 256


def quantise(x: np.ndarray) -> np.ndarray:
    """Inverse of the published de-quantisation, for writing test tiles."""
    q = np.sign(x) * np.round(np.sqrt(np.abs(x)) * 127.5)
    return np.clip(q, -127, 127).astype(np.int8)


def smooth_unit_field(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 40.0
    f = np.stack([np.sin(xx * rng.uniform(0.5, 2) + rng.uniform(0, 6))
                  + np.cos(yy * rng.uniform(0.5, 2) + rng.uniform(0, 6)) for _ in range(64)])
    return f / np.linalg.norm(f, axis=0, keepdims=True)


def write_tile(path, codes: np.ndarray, x0: float, y0: float, crs: str) -> None:
    """A bottom-up (positive y resolution) tiled int8 GeoTIFF, as Source Cooperative's."""
    import rasterio
    from affine import Affine

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[2], height=codes.shape[1],
                       count=64, dtype="int8", crs=crs, transform=Affine(PX, 0, x0, 0, PX, y0),
                       nodata=-128, tiled=True, blockxsize=128, blockysize=128,
                       compress="deflate") as dst:
        dst.write(codes)
        for i in range(64):
            dst.set_band_description(i + 1, f"A{i:02d}")


@pytest.fixture(scope="module")
def aef(tmp_path_factory, cog_server):
    root = cog_server.root
    base = "tge-labs/aef/v1/annual"
    codes18 = quantise(smooth_unit_field(N, N, 1))
    codes18[:, 200:220, 30:60] = -128  # a masked patch (bottom-up: rows count from the south)
    write_tile(root / base / f"{YEAR}/18N/tile18.tiff", codes18, *TILE18, "EPSG:32618")
    # the neighbouring zone's tile covers the ground east of the zone-18 tile
    east_lon, east_lat = transformer("EPSG:32618", "EPSG:4326").transform(TILE18[0] + N * PX - 500,
                                                                          TILE18[1] + 600)
    x19, y19 = transformer("EPSG:4326", "EPSG:32619").transform(east_lon, east_lat)
    x19, y19 = np.floor(x19 / PX) * PX, np.floor(y19 / PX) * PX
    codes19 = quantise(smooth_unit_field(N, N, 2))
    write_tile(root / base / f"{YEAR}/19N/tile19.tiff", codes19, x19, y19, "EPSG:32619")
    rows = []
    for name, zone, crs, (x0, y0) in (("tile18", "18N", "EPSG:32618", TILE18),
                                      ("tile19", "19N", "EPSG:32619", (x19, y19))):
        w, s, e, n = transformer(crs, "EPSG:4326").transform_bounds(x0, y0, x0 + N * PX, y0 + N * PX)
        rows.append({"fid": len(rows), "year": YEAR, "utm_zone": zone,
                     "path": f"s3://us-west-2.opendata.source.coop/{base}/{YEAR}/{zone}/{name}.tiff",
                     "wgs84_west": w, "wgs84_south": s, "wgs84_east": e, "wgs84_north": n})
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), root / base / "aef_index.parquet")
    return {"codes18": codes18, "index": f"{cog_server.url}/{base}/aef_index.parquet",
            "rewrite": {"s3://us-west-2.opendata.source.coop/": f"{cog_server.url}/"},
            "cache": tmp_path_factory.mktemp("aef-cache")}


@pytest.fixture
def provider(aef):
    from rs_embed.providers.stac import AlphaEarthProvider

    return AlphaEarthProvider(aef["index"], href_rewrite=aef["rewrite"], cache_dir=aef["cache"],
                              max_retries=1, retry_base_s=0.01)


def roi_in_tile(cx_px: float, cy_px: float, buffer_m: float) -> PointBuffer:
    """A PointBuffer centred ``(cx_px, cy_px)`` pixels from the zone-18 tile's lower-left corner."""
    lon, lat = transformer("EPSG:32618", "EPSG:4326").transform(TILE18[0] + cx_px * PX,
                                                                TILE18[1] + cy_px * PX)
    return PointBuffer(lon, lat, buffer_m)


def expected_from_codes(codes: np.ndarray, grid) -> tuple:
    """What the product holds on ``grid`` (aligned with the zone-18 tile): values, validity."""
    a, _, c, _, e, f = grid.transform
    col0 = int(round((c - TILE18[0]) / PX))
    row_top = int(round((f - TILE18[1]) / PX))  # rows of a bottom-up file count northwards
    rows = np.arange(row_top - 1, row_top - 1 - grid.height, -1)
    cols = np.arange(col0, col0 + grid.width)
    q = codes[:, rows][:, :, cols].astype(np.float64)
    valid = (q != -128).all(axis=0)
    val = np.sign(q) * (np.abs(q) / 127.5) ** 2
    val[:, ~valid] = 0.0
    return val.astype(np.float32), valid


def test_dequantised_pixels_on_the_roi_grid(provider, aef):
    from rs_embed.models.gse import GSEEmbedder

    sensor = GSEEmbedder(device="cpu").default_sensor()
    roi = roi_in_tile(45, 205, 300)  # covers the masked block
    patch = provider.fetch(roi, TemporalSpec.year(YEAR), sensor)
    want, valid = expected_from_codes(aef["codes18"], patch.grid)
    np.testing.assert_allclose(patch.data, want, rtol=0, atol=1e-6)
    assert patch.meta["nodata_pixels"] == int((~valid).sum()) > 0
    assert patch.meta["files"] == [{"path": "s3://us-west-2.opendata.source.coop/tge-labs/aef/v1/annual/"
                                            "2022/18N/tile18.tiff", "utm_zone": "18N"}]
    norms = np.linalg.norm(patch.data[:, valid], axis=0)
    assert np.all(np.abs(norms - 1) < 0.03)  # unit vectors after de-quantisation


def test_the_neighbouring_zone_fills_what_the_own_zone_lacks(provider):
    from rs_embed.models.gse import GSEEmbedder

    sensor = GSEEmbedder(device="cpu").default_sensor()
    roi = roi_in_tile(N - 5, 120, 400)  # straddles the zone-18 tile's east edge
    patch = provider.fetch(roi, TemporalSpec.year(YEAR), sensor)
    zones = [f["utm_zone"] for f in patch.meta["files"]]
    assert zones == ["18N", "19N"] and patch.meta["nodata_fraction"] == 0.0


def test_no_file_for_the_year_or_place(provider):
    from rs_embed.models.gse import GSEEmbedder

    sensor = GSEEmbedder(device="cpu").default_sensor()
    with pytest.raises(ProviderError, match="no AlphaEarth file of 2021.*years 2022..2022"):
        provider.fetch(roi_in_tile(100, 100, 300), TemporalSpec.year(2021), sensor)
    with pytest.raises(ProviderError, match="no AlphaEarth file of 2022"):
        provider.fetch(PointBuffer(10.0, 45.0, 300), TemporalSpec.year(YEAR), sensor)


def test_the_index_is_downloaded_once(provider, aef, cog_server):
    from rs_embed.models.gse import GSEEmbedder

    sensor = GSEEmbedder(device="cpu").default_sensor()
    provider.fetch(roi_in_tile(100, 100, 300), TemporalSpec.year(YEAR), sensor)
    assert (aef["cache"] / "aef_index.parquet").is_file()
    cog_server.reset()
    from rs_embed.providers.stac import AlphaEarthProvider

    again = AlphaEarthProvider(aef["index"], href_rewrite=aef["rewrite"], cache_dir=aef["cache"])
    again.fetch(roi_in_tile(100, 100, 300), TemporalSpec.year(YEAR), sensor)
    assert not cog_server.served("aef_index.parquet")


def test_stac_backends_route_gse_to_the_public_cogs(es_api, provider):
    import rs_embed
    from rs_embed.providers.stac import StacProvider

    es = StacProvider(es_api.url, preset="earth-search", alphaearth=provider)
    roi = roi_in_tile(120, 80, 400)
    e = rs_embed.get_embedding("gse", spatial=roi, temporal=TemporalSpec.year(YEAR), backend=es)
    assert e.data.shape == (64,) and abs(np.linalg.norm(e.data) - 1) < 1e-5
    assert e.meta["backend"] == "earth-search"


# ------------------------------------------------------------ equal to the Earth Engine path


@pytest.fixture
def gee_replaying(aef, monkeypatch):
    """Earth Engine answering computePixels with the same stored pixels, dequantised."""
    ee = pytest.importorskip("ee")
    from rs_embed import providers as registry
    from rs_embed.providers.gee import session as gee_session
    from rs_embed.providers.gee.plan import SCENES_BAND, VALID_PREFIX
    from rs_embed.providers.gee.replay import ReplayTransport, npy_reply

    monkeypatch.setattr(ee.deprecation, "_FetchDataCatalogStac", lambda: {})

    def answer(body):
        from rs_embed.geometry import Grid

        g = body["grid"]
        at = g["affineTransform"]
        grid = Grid(g["crsCode"], (at["scaleX"], 0.0, at["translateX"], 0.0, at["scaleY"],
                                   at["translateY"]), g["dimensions"]["width"], g["dimensions"]["height"])
        val, valid = expected_from_codes(aef["codes18"], grid)
        names = body["bandIds"]
        out = np.zeros((grid.height, grid.width), dtype=[(n, "u1" if n.startswith(VALID_PREFIX) else
                                                           "<u2" if n == SCENES_BAND else "<f4")
                                                          for n in names])
        for i, n in enumerate(names):
            if n.startswith(VALID_PREFIX):
                out[n] = valid
            elif n == SCENES_BAND:
                out[n] = 1
            else:
                out[n] = val[i]
        return npy_reply(out)

    tr = ReplayTransport(answer)
    gee_session.initialize("rs-embed-test", credentials=None, http_transport=tr, force=True)
    registry._instances.pop("gee", None)
    from rs_embed.providers.gee import GEEProvider

    yield GEEProvider(retry_base_s=0.001, retry_cap_s=0.01, seed=0)
    gee_session.reset()
    ee.Reset()
    registry._instances.pop("gee", None)


@pytest.mark.parametrize("output", [OutputSpec.grid(), OutputSpec.pooled()])
def test_gse_grid_and_pooled_equal_the_earth_engine_path(provider, gee_replaying, output):
    import rs_embed

    roi = roi_in_tile(50, 195, 500)  # includes masked pixels: pooling must skip them alike
    t = TemporalSpec.year(YEAR)
    public = rs_embed.get_embedding("gse", spatial=roi, temporal=t, backend=provider, output=output)
    ee_path = rs_embed.get_embedding("gse", spatial=roi, temporal=t, backend=gee_replaying, output=output)
    assert public.data.shape == ee_path.data.shape
    np.testing.assert_allclose(public.data, ee_path.data, rtol=0, atol=1e-6)
    assert roi_grid(roi, 10).width == 100
