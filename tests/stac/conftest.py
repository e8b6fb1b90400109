"""Fixtures: the test archive, a COG server and two real STAC API servers on 127.0.0.1.

Written once per session: COGs of every test scene (:mod:`scenes`), an Earth Search
shaped API and a Planetary Computer shaped API (``rustac serve``), and the COG server
that plays S3 (plain HTTP) and Azure blob storage (as an HTTP proxy) for both.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pystac_client", reason="the 'stac' extra (pystac-client) is not installed")

import scenes  # noqa: E402
from servers import FAST, CogServer, FaultProxy, StacApiServer  # noqa: E402


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    return scenes.write_archive(tmp_path_factory.mktemp("cogs"))


@pytest.fixture(scope="session")
def cog_server(archive):
    srv = CogServer(archive.root)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def es_api(archive, cog_server, tmp_path_factory):
    hrefs = scenes.write_items(archive, tmp_path_factory.mktemp("es-items"), "earth-search",
                               cog_server.url)
    srv = StacApiServer(hrefs)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def pc_api(archive, cog_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pc-items")
    hrefs = scenes.write_items(archive, folder, "planetary-computer", cog_server.url)
    hrefs += scenes.write_pc_landsat_s1(archive, folder)
    srv = StacApiServer(hrefs)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def front(archive, cog_server, tmp_path_factory):
    """A fault proxy in front of an Earth Search shaped API holding the "pre" scene."""
    proxy = FaultProxy("http://127.0.0.1:1")  # upstream set once the API is up
    hrefs = scenes.write_items(archive, tmp_path_factory.mktemp("es-front"), "earth-search",
                               cog_server.url, scenes=["pre"])
    api = StacApiServer(hrefs, public_url=proxy.url)
    proxy.upstream = api.url
    yield proxy
    api.close()
    proxy.close()


@pytest.fixture(autouse=True)
def _fresh_log(cog_server):
    cog_server.reset()
    cog_server.latency_s = 0.0
    yield


@pytest.fixture
def es(es_api):
    from rs_embed.providers.stac import StacProvider

    return StacProvider(es_api.url, preset="earth-search", **FAST)


@pytest.fixture
def pc_token_api(cog_server, monkeypatch):
    """planetary-computer's token API pointed at the COG server, its caches emptied."""
    import planetary_computer.sas as sas
    from planetary_computer.settings import Settings

    monkeypatch.setenv("PC_SDK_SAS_URL", f"{cog_server.url}/api/sas/v1/token")
    Settings.get.cache_clear()
    sas.TOKEN_CACHE.clear()
    yield cog_server
    Settings.get.cache_clear()
    sas.TOKEN_CACHE.clear()


@pytest.fixture
def pc(pc_api, pc_token_api):
    from rs_embed.providers.stac import StacProvider

    return StacProvider(pc_api.url, preset="planetary-computer",
                        gdal_options={"GDAL_HTTP_PROXY": f"127.0.0.1:{pc_token_api.port}"}, **FAST)
