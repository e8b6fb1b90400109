"""Earth Engine radiometry and resampling, checked in the request graph the client sends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rs_embed.providers.gee import plan as gee_plan
from rs_embed.specs import PointBuffer, SensorSpec, TemporalSpec

ROI = PointBuffer(12.4964, 41.9028, 300)
LATE = TemporalSpec.range("2023-06-01", "2023-07-01")


def _resolve(node, values):
    while isinstance(node, dict) and "valueReference" in node:
        node = values[node["valueReference"]]
    return node


def _calls(body, name):
    """Every invocation of the Earth Engine function ``name`` in a serialised graph."""
    values = body["expression"]["values"]
    out = []

    def walk(node):
        node = _resolve(node, values)
        if isinstance(node, dict):
            inv = node.get("functionInvocationValue")
            if inv and inv.get("functionName") == name:
                out.append(inv["arguments"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(body["expression"]["result"])
    for v in values.values():
        walk(v)
    return out, values


def _selected_bands(arg, values):
    """The band names an ``Image.select`` (under toFloat/resample) picks."""
    node = _resolve(arg, values)
    inv = node.get("functionInvocationValue", {})
    if inv.get("functionName") == "Image.select":
        sel = _resolve(inv["arguments"]["bandSelectors"], values)
        return sel.get("constantValue") or [(_resolve(x, values) or {}).get("constantValue")
                                            for x in sel.get("arrayValue", {}).get("values", [])]
    for key in ("value", "image", "input"):
        if key in inv.get("arguments", {}):
            return _selected_bands(inv["arguments"][key], values)
    return None


@pytest.fixture(autouse=True)
def _fresh_warnings():
    gee_plan._warned_unharmonised.clear()
    yield
    gee_plan._warned_unharmonised.clear()


def test_non_harmonised_ids_are_read_from_their_harmonised_twin_with_one_warning(provider, transport):
    sensor = SensorSpec("COPERNICUS/S2_SR", ("B4", "B8"))
    with pytest.warns(UserWarning, match=r"COPERNICUS/S2_SR is not harmonised.*COPERNICUS/S2_SR_HARMONIZED"):
        (body,) = provider.request_params(ROI, LATE, [sensor])
    text = str(body["expression"])
    assert "'COPERNICUS/S2_SR_HARMONIZED'" in text and "'COPERNICUS/S2_SR'" not in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process, not per patch
        patch = provider.fetch(ROI, LATE, sensor)
    rad = patch.meta["radiometry"]
    assert patch.meta["collection"] == "COPERNICUS/S2_SR_HARMONIZED"
    assert patch.meta["collection_requested"] == "COPERNICUS/S2_SR"
    assert rad["source"] == "Earth Engine harmonised collection COPERNICUS/S2_SR_HARMONIZED"
    assert rad["bias_dn"] == {"*": 0.0} and rad["reflectance_scale"] == 1e-4
    # a harmonised request and a non-harmonised one of the same bands share the request
    transport.reset()
    a, b = provider.fetch_many(ROI, LATE, [sensor, SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",))])
    assert len(transport.compute_pixels_calls()) == 1
    assert "collection_requested" not in b.meta["radiometry"]
    np.testing.assert_array_equal(a.data[:1], b.data)


def test_l1c_too_and_landsat_records_the_usgs_scale(provider):
    with pytest.warns(UserWarning, match="COPERNICUS/S2 is not harmonised"):
        (body,) = provider.request_params(ROI, LATE, [SensorSpec("COPERNICUS/S2", ("B2",))])
    assert "'COPERNICUS/S2_HARMONIZED'" in str(body["expression"])
    patch = provider.fetch(ROI, LATE, SensorSpec("LANDSAT/LC09/C02/T1_L2", ("SR_B4",), scale_m=30))
    assert patch.meta["radiometry"]["scale"] == 2.75e-05 and patch.meta["radiometry"]["offset"] == -0.2


def test_one_resampling_policy_continuous_bilinear_categorical_nearest(provider):
    sensor = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "SCL", "B8"))
    (body,) = provider.request_params(ROI, LATE, [sensor])
    calls, values = _calls(body, "Image.resample")
    assert len(calls) == 1
    assert _resolve(calls[0]["mode"], values)["constantValue"] == "bilinear"
    assert _selected_bands(calls[0]["image"], values) == ["B4", "B8"]  # SCL is never interpolated
    patch = provider.fetch(ROI, LATE, sensor)
    assert patch.meta["resampling"] == {"B4": "bilinear", "SCL": "nearest", "B8": "bilinear"}
    assert patch.meta["resampling_policy"] == "bilinear"
    assert patch.valid.shape == patch.data.shape[1:] and patch.valid.all()


def test_nearest_policy_and_embedding_products_are_never_interpolated(transport):
    from rs_embed.providers.gee import GEEProvider

    nearest = GEEProvider(retry_base_s=0.001, retry_cap_s=0.01, seed=0, resampling="nearest")
    (body,) = nearest.request_params(ROI, LATE, [SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4",))])
    assert _calls(body, "Image.resample")[0] == []
    gse = SensorSpec("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL", ("A00", "A01"), cloudy_pct=100)
    default = GEEProvider(retry_base_s=0.001, retry_cap_s=0.01, seed=0)
    (body,) = default.request_params(ROI, TemporalSpec.year(2022), [gse])
    assert _calls(body, "Image.resample")[0] == []
    with pytest.raises(Exception, match="resampling must be one of"):
        GEEProvider(resampling="cubic")


class SampleAsEarthEngine:
    """Answers computePixels as Earth Engine's harmonised L1C collection would over the
    embedded scene: the scene's own pixels, sampled on the grid the request asks for."""

    def __init__(self):
        from rs_embed.providers.local import LocalProvider

        self.scene = LocalProvider().scenes[0]
        self.collections = []

    def __call__(self, body):
        from rs_embed.geometry import Grid
        from rs_embed.providers.gee.plan import IW_SCENES_BAND, SCENES_BAND, VALID_PREFIX
        from rs_embed.providers.gee.replay import npy_reply
        from rs_embed.providers.local import _sample_band

        self.collections.append(sorted({v for v in _constants(body) if str(v).startswith("COPERNICUS/")}))
        g = body["grid"]
        at, dims = g["affineTransform"], g["dimensions"]
        grid = Grid(g["crsCode"], (at["scaleX"], at["shearX"], at["translateX"], at["shearY"],
                                   at["scaleY"], at["translateY"]), dims["width"], dims["height"])
        names = body["bandIds"]
        dtype = [(n, "u1" if n.startswith(VALID_PREFIX) else "<u2" if n in (SCENES_BAND, IW_SCENES_BAND)
                  else "<f4") for n in names]
        out = np.zeros((grid.height, grid.width), dtype=dtype)
        for n in names:
            if n.startswith(VALID_PREFIX) or n in (SCENES_BAND, IW_SCENES_BAND):
                out[n] = 1
            else:
                band = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
                _sample_band(self.scene.bands[n], grid, "bilinear", band)
                out[n] = band
        return npy_reply(out)


def _constants(body):
    """Every string constant of a serialised graph."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            found.extend([node["constantValue"]] if "constantValue" in node else [])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(body["expression"])
    return [c for c in found if isinstance(c, str)]


def test_gee_path_at_its_transport_boundary_embeds_like_the_local_path(provider, transport):
    """A post-2022 window asked of the non-harmonised id reads the harmonised collection,
    whose pixels (here: the scene's) give the local path's embeddings."""
    from rs_embed import get_embedding, sample
    from rs_embed.providers.local import LocalProvider

    fake = SampleAsEarthEngine()
    transport.handler = fake
    points = [sample.points(400)[i] for i in (3, 20)]
    local = LocalProvider()
    for model in ("spectral", "rcf"):
        for p in points:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the one harmonisation notice
                got = get_embedding(model, spatial=p.spatial, temporal=LATE, backend=provider,
                                    sensor=SensorSpec("COPERNICUS/S2", sample.BANDS))
            want = get_embedding(model, spatial=p.spatial, temporal=sample.TEMPORAL, backend=local,
                                 sensor=SensorSpec(sample.COLLECTION, sample.BANDS))
            np.testing.assert_allclose(got.data, want.data, rtol=1e-4, atol=1e-4 * np.abs(want.data).max())
            assert got.meta["input"]["radiometry"]["collection_requested"] == "COPERNICUS/S2"
    assert fake.collections and all(c == ["COPERNICUS/S2_HARMONIZED"] for c in fake.collections)
