"""Base layers for the map: an offline one by default, web tiles on request.

The default base layer is a plain ``data:`` tile drawn here, so the map works with
no network at all; the sample and catalog quicklooks give it real imagery. Web
basemaps (OpenStreetMap, Esri imagery, any xyzservices provider or TileLayer) are
opt-in; when the network is absent their tiles simply stay blank.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .extra import require


@lru_cache(maxsize=1)
def offline_tile_url() -> str:
    """A 256 px light-grey tile with a faint frame, as a ``data:`` URL."""
    from .quicklook import image_data_url

    tile = np.full((256, 256, 3), 0.93, dtype=np.float32)
    tile[0, :, :] = tile[:, 0, :] = 0.85
    return image_data_url(tile)


def base_layer(basemap=None):
    """The map's base ``TileLayer``.

    ``None`` or ``"offline"``: the offline tile. ``"osm"``: OpenStreetMap. ``"imagery"``:
    Esri World Imagery. An ``xyzservices`` provider or an ipyleaflet ``TileLayer`` is
    used as given.
    """
    L = require("ipyleaflet", "the ROI map")
    if basemap is None or basemap == "offline":
        return L.TileLayer(url=offline_tile_url(), name="offline", base=True,
                           attribution="", max_zoom=22, max_native_zoom=22)
    if isinstance(basemap, L.TileLayer):
        return basemap
    if isinstance(basemap, str):
        providers = {"osm": L.basemaps.OpenStreetMap.Mapnik, "imagery": L.basemaps.Esri.WorldImagery}
        if basemap not in providers:
            raise ValueError(f"basemap must be None, 'offline', 'osm', 'imagery', an xyzservices "
                             f"provider or a TileLayer, got {basemap!r}")
        basemap = providers[basemap]
    layer = L.basemap_to_tiles(basemap)
    layer.base = True
    return layer
