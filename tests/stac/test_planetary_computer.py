"""Planetary Computer: assets signed through the planetary-computer package, tokens cached.

The package's token API (``PC_SDK_SAS_URL``) and "blob storage" are the local COG
server; GDAL reaches the blob hosts through it as an HTTP proxy, and the server
refuses unsigned blob reads as Azure does (409 PublicAccessNotPermitted).
"""

from __future__ import annotations

import numpy as np
import pytest

import scenes
from servers import FAST
from rs_embed.errors import ProviderError
from test_provider import ROI, sensor, window


def test_assets_are_signed_and_one_token_serves_the_container(pc, pc_token_api):
    patch = pc.fetch(ROI, window("pre"), sensor())
    assert patch.meta["signing"] == "planetary-computer"
    blob_reads = [s for s in pc_token_api.log if s.path.startswith("/blob/")]
    assert blob_reads and all(s.signed for s in blob_reads)
    assert all(s.status in (200, 206) for s in blob_reads)
    assert pc.sign.calls >= len(scenes.BANDS)  # every href went through planetary_computer.sign
    assert pc_token_api.token_requests == [f"/api/sas/v1/token/{scenes.PC_ACCOUNT}/{scenes.PC_CONTAINER}"]
    pc.fetch(ROI, window("post"), sensor(("B4",)))
    assert len(pc_token_api.token_requests) == 1  # cached


def test_a_token_near_expiry_is_renewed(pc, pc_token_api):
    pc_token_api.token_ttl_s = 30  # the package renews tokens with under a minute left
    pc.fetch(ROI, window("pre"), sensor(("B4", "B8")))
    assert len(pc_token_api.token_requests) >= 2


def test_unsigned_reads_are_refused_with_azures_message(pc_api, pc_token_api):
    from rs_embed.providers.stac import StacProvider

    unsigned = StacProvider(pc_api.url, preset="planetary-computer", sign=lambda href: href,
                            gdal_options={"GDAL_HTTP_PROXY": f"127.0.0.1:{pc_token_api.port}"}, **FAST)
    with pytest.raises(ProviderError, match="409") as err:
        unsigned.fetch(ROI, window("pre"), sensor(("B4",)))
    assert "PublicAccessNotPermitted" in str(err.value) and err.value.transient is False


def test_planetary_computer_equals_earth_search_on_the_same_pixels(pc, es):
    a = pc.fetch(ROI, window("pre"), sensor())
    b = es.fetch(ROI, window("pre"), sensor())
    np.testing.assert_array_equal(a.data, b.data)
    assert a.meta["stac_collection"] == b.meta["stac_collection"] == "sentinel-2-l2a"
    assert a.meta["backend"] == "planetary-computer" and b.meta["backend"] == "earth-search"
