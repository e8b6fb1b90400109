"""From a STAC item to what to read: the asset of each band and the map to the convention.

Asset keys, band names and radiometric conventions are facts of the sensor
vocabulary (:mod:`rs_embed.sensors`); this module only applies them to one item:
which asset holds a band (the collection's key, else an asset whose ``eo:bands``
entry names the band), how to sign its href, and the linear map that brings its
stored numbers to the product's convention (for Sentinel-2 the harmonised one,
decided per item from ``earthsearch:boa_offset_applied``, ``s2:processing_baseline``
and ``raster:bands``; for other products the asset's ``raster:bands`` scale/offset
converted to the product's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Dict, Mapping, Optional

import numpy as np

from ...errors import ProviderError
from ...sensors import bands as sensor_bands
from ...sensors import radiometry as s2_radiometry
from ...sensors.products import Product, Radiometry, StacCollection


@dataclass(frozen=True)
class BandAsset:
    """One band of one item: where it is and how its values become the convention."""

    band: str                  # as the sensor spec spells it
    key: str                   # asset key in the item
    href: str
    categorical: bool
    nodata: Optional[float]
    gain: float = 1.0          # convention = stored * gain + bias
    bias: float = 0.0
    clip_negative: bool = False
    source: str = "as stored"

    def apply(self, values: np.ndarray) -> np.ndarray:
        if self.categorical or (self.gain == 1.0 and self.bias == 0.0):
            return values
        out = values * np.float32(self.gain) + np.float32(self.bias)
        if self.clip_negative:
            np.maximum(out, np.float32(0.0), out=out, where=np.isfinite(out))
        return out


def _raster_band(asset: Mapping) -> Mapping:
    rb = asset.get("raster:bands") or asset.get("bands") or []
    return rb[0] if rb and isinstance(rb[0], Mapping) else {}


def _acquired(item: Mapping) -> Optional[date]:
    text = (item.get("properties") or {}).get("datetime")
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def asset_key(item: Mapping, band: str, coll: Optional[StacCollection],
              product: Optional[Product]) -> Optional[str]:
    """The key of the asset holding ``band`` in ``item`` (None: the item lacks it)."""
    assets = item.get("assets") or {}
    sensor = product.sensor if product is not None else None
    canon = sensor_bands.canonical_band(band, sensor)
    if coll is not None:
        key = coll.assets.get(canon)
        if key in assets:
            return key
    for key, asset in assets.items():  # any API: the asset's own band names, or its key
        names = [key] + [b.get("name") for b in (asset.get("eo:bands") or asset.get("bands") or [])
                         if isinstance(b, Mapping) and b.get("name")]
        if len(asset.get("eo:bands") or []) > 1:
            continue
        if any(sensor_bands.canonical_band(n, sensor) == canon for n in names):
            return key
    return None


def _convert(stored_scale: float, stored_offset: float, conv: Radiometry):
    """Gain/bias taking values with (scale, offset) to the convention's (scale, offset)."""
    gain = stored_scale / conv.scale
    bias = (stored_offset - conv.offset) / conv.scale
    return round(gain, 12), round(bias, 9)


def band_assets(item: Mapping, bands, coll: Optional[StacCollection], product: Optional[Product],
                sign=None) -> Dict[str, BandAsset]:
    """``band -> BandAsset`` for the bands ``item`` holds (missing bands are left out)."""
    props = item.get("properties") or {}
    out: Dict[str, BandAsset] = {}
    harmonisation = None
    for band in bands:
        key = asset_key(item, band, coll, product)
        if key is None:
            continue
        asset = item["assets"][key]
        href = asset.get("href")
        if not isinstance(href, str):
            continue
        if sign is not None:
            href = sign(href)
        rb = _raster_band(asset)
        sensor = product.sensor if product is not None else None
        categorical = sensor_bands.is_categorical(band, sensor)
        nodata = rb.get("nodata", asset.get("nodata"))
        nodata = None if nodata is None else float(nodata)
        gain, bias, clip, source = 1.0, 0.0, False, "as stored"
        if not categorical and product is not None and product.s2_baseline_offset:
            if harmonisation is None or harmonisation[0] != (rb.get("scale"), rb.get("offset")):
                h = s2_radiometry.s2_harmonisation(
                    offset_applied=props.get("earthsearch:boa_offset_applied"),
                    baseline=props.get("s2:processing_baseline"),
                    raster_scale=rb.get("scale"), raster_offset=rb.get("offset"),
                    acquired=_acquired(item))
                harmonisation = ((rb.get("scale"), rb.get("offset")), h)
            h = harmonisation[1]
            gain, bias = h.gain, h.bias_for(sensor_bands.canonical_band(band, sensor))
            clip, source = True, h.source
        elif not categorical and product is not None and (rb.get("scale") is not None
                                                          or rb.get("offset") is not None):
            conv = product.radiometry_of(band)
            gain, bias = _convert(float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), conv)
            source = "raster:bands"
        out[band] = BandAsset(band=band, key=key, href=href, categorical=categorical, nodata=nodata,
                              gain=gain, bias=bias, clip_negative=clip, source=source)
    return out


def radiometry_record(item: Mapping, assets: Mapping[str, BandAsset],
                      product: Optional[Product]) -> dict:
    """What was applied to one item (for the manifest): gain/bias per band and why."""
    props = item.get("properties") or {}
    rec = {"item": item.get("id"), "processing_baseline": props.get("s2:processing_baseline"),
           "bands": {b: {"asset": a.key, "gain": a.gain, "bias_dn": a.bias, "source": a.source}
                     for b, a in assets.items() if not a.categorical}}
    if "earthsearch:boa_offset_applied" in props:
        rec["earthsearch:boa_offset_applied"] = props["earthsearch:boa_offset_applied"]
    if product is not None and product.s2_baseline_offset:
        rec["convention"] = "harmonised DN = reflectance x 10000 (no baseline offset)"
    return rec


def require_bands(item: Mapping, bands, coll, product, api: str) -> None:
    """Raise naming the missing bands and the item's assets when ``item`` lacks some."""
    missing = [b for b in bands if asset_key(item, b, coll, product) is None]
    if missing:
        have = sorted((item.get("assets") or {}).keys())
        raise ProviderError(
            f"{api} item {item.get('id')!r} has no asset for band(s) {missing}; its assets: {have}",
            transient=False)


__all__ = ["BandAsset", "band_assets", "asset_key", "radiometry_record", "require_bands"]
