"""The requests pinned by golden files, and a way to record them in a fresh process.

``python tests/gee/request_cases.py`` prints every case's computePixels bodies as
JSON; the golden test compares that output (another process, another hash seed)
with the files in ``fixtures/golden/`` and with the bodies sent in-process.
"""

from __future__ import annotations

import json
import sys

from rs_embed.specs import BBox, PointBuffer, SensorSpec, TemporalSpec

S2_L1C = "COPERNICUS/S2_HARMONIZED"
S2_L2A = "COPERNICUS/S2_SR_HARMONIZED"
SUMMER = TemporalSpec.range("2022-06-01", "2022-09-01")
ROME = PointBuffer(12.4964, 41.9028, 1000)

#: name -> (spatial, temporal, sensors, provider options)
CASES = {
    "s2_l2a_median": (ROME, SUMMER, [SensorSpec(S2_L2A, ("B4", "B3", "B2", "B8"))], {}),
    "s2_l1c_mosaic_cloudscoreplus": (
        PointBuffer(-3.7038, 40.4168, 640),
        TemporalSpec.range("2023-03-01", "2023-04-01"),
        [SensorSpec(S2_L1C, ("B2", "B3", "B4", "B8", "B11", "B12"), cloudy_pct=60,
                    composite="mosaic")],
        {"cloud_score_plus": 0.65}),
    "landsat9_median": (
        BBox(-122.52, 37.70, -122.35, 37.83), TemporalSpec.year(2023),
        [SensorSpec("LANDSAT/LC09/C02/T1_L2", ("SR_B2", "SR_B3", "SR_B4", "SR_B5"),
                    scale_m=30, cloudy_pct=20)], {}),
    "s1_iw_descending_linear_relaxed": (
        PointBuffer(4.9041, 52.3676, 1500), SUMMER,
        [SensorSpec("COPERNICUS/S1_GRD", ("VV", "VH"), orbit="descending",
                    use_float_linear=True)], {}),
    "s1_db_strict_iw": (
        PointBuffer(4.9041, 52.3676, 1500), SUMMER,
        [SensorSpec("COPERNICUS/S1_GRD", ("VV", "VH", "angle"), use_float_linear=False,
                    s1_relax_iw_on_empty=False)], {}),
    "gse_2022": (
        PointBuffer(-58.3816, -34.6037, 1000), TemporalSpec.year(2022),
        [SensorSpec("GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL",
                    tuple(f"A{i:02d}" for i in range(64)), cloudy_pct=100,
                    composite="mosaic")], {}),
    "shared_s2_three_sensors": (
        ROME, SUMMER,
        [SensorSpec(S2_L2A, ("B4", "B3", "B2")),
         SensorSpec(S2_L2A, ("B8", "B4"), fill_value=-1.0),
         SensorSpec(S2_L2A, ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"))],
        {}),
    "generic_collection_no_cloud_filter": (
        PointBuffer(138.7274, 35.3606, 3000), None,
        [SensorSpec("COPERNICUS/DEM/GLO30", ("DEM",), scale_m=30, composite="mosaic")], {}),
}


def record(transport, make_provider) -> dict:
    """Send every case through ``transport`` and return the bodies it received."""
    out = {}
    for name, (spatial, temporal, sensors, options) in CASES.items():
        transport.reset()
        make_provider(**options).fetch_many(spatial, temporal, sensors)
        out[name] = [c.body for c in transport.compute_pixels_calls()]
    return out


def _main() -> None:  # pragma: no cover - run in a subprocess by the tests
    import ee

    ee.deprecation._FetchDataCatalogStac = lambda: {}
    from rs_embed.providers.gee import GEEProvider, initialize
    from rs_embed.providers.gee.replay import ReplayTransport

    tr = ReplayTransport()
    initialize("rs-embed-test", credentials=None, http_transport=tr, force=True)
    json.dump(record(tr, lambda **kw: GEEProvider(**kw)), sys.stdout, sort_keys=True)


if __name__ == "__main__":
    _main()
