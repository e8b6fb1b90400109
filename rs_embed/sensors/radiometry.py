"""The Sentinel-2 processing-baseline offset: how each source signals it, and removing it.

From processing baseline 04.00 (products from 2022-01-25 on), ESA shifts Sentinel-2
Level-1C and Level-2A digital numbers by a band-dependent ``RADIO_ADD_OFFSET`` /
``BOA_ADD_OFFSET`` (-1000 for every band so far): reflectance = (DN + offset) / 10000,
and DN 0 stays "no data" (ESA, "Copernicus Sentinel-2: Major Products Upgrade Upcoming",
2021, and the S2 MSI processing-baseline page; the Level-1C/2A product metadata
``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` carry the offsets and the quantification
value). Baseline 05.00 tags ESA's Collection-1 reprocessing, which carries the offset
for every date.

rs_embed returns every Sentinel-2 scene on the convention of Earth Engine's
``*_HARMONIZED`` collections: digital numbers = reflectance x 10000 with the offset
removed, negative values clipped to 0 (as the Planetary Computer ``harmonize_to_old``
example and Sentinel Hub's ``harmonizeValues`` do). :func:`s2_harmonisation` decides,
from whatever a source says, which linear map does that, and records where the
fact came from.

How sources signal it (:data:`OFFSET_SIGNALS`), strongest first:

1. an explicit declaration (an ``rs_embed.scene`` sidecar ``offset`` or
   ``processing_baseline``; the harmonised Earth Engine ids, which have none);
2. Earth Search's ``earthsearch:boa_offset_applied`` item property (legacy
   ``sentinel-2-l2a``): true means the pixels were already shifted back;
3. the processing baseline: STAC ``s2:processing_baseline``, ESA's
   ``PROCESSING_BASELINE`` in the product metadata, or ``_N0400_``-style tokens in ESA
   product names; below 04.00 there is no offset, whatever else says;
4. STAC ``raster:bands`` ``scale``/``offset`` (STAC raster extension: ``value * scale
   + offset``), honoured when the baseline is 04.00+ or unknown;
5. the acquisition date: before 2022-01-25 no offset; on or after it and nothing
   else known, the values are kept as stored and the caller warns once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .bands import S2_BANDS
from .products import S2_DN_SCALE, S2_REFLECTANCE_SCALE

#: first day of processing baseline 04.00 products (ESA)
S2_BASELINE_04_DATE = date(2022, 1, 25)
#: the offset ESA applies from baseline 04.00, in digital numbers
S2_BASELINE_OFFSET_DN = -1000.0

#: the ways a source can say whether the offset is in its pixels
OFFSET_SIGNALS: Tuple[Tuple[str, str], ...] = (
    ("declared", "rs_embed.scene sidecar 'offset' (DN to add) or 'processing_baseline'"),
    ("earth-engine-harmonised", "COPERNICUS/S2_HARMONIZED and COPERNICUS/S2_SR_HARMONIZED: removed"),
    ("earthsearch:boa_offset_applied", "Earth Search item property; true = already removed"),
    ("processing_baseline", "STAC s2:processing_baseline, ESA PROCESSING_BASELINE, _N0400_ in names"),
    ("esa-metadata", "MTD_MSIL1C.xml RADIO_ADD_OFFSET / MTD_MSIL2A.xml BOA_ADD_OFFSET"),
    ("raster:bands", "STAC raster extension scale/offset of the asset"),
    ("date", "acquisition on or after 2022-01-25 implies baseline >= 04.00 for new products"),
)

_BASELINE_TOKEN = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")
#: ESA ``band_id`` order in the product metadata (Spectral_Information_List)
ESA_BAND_IDS: Tuple[str, ...] = S2_BANDS


def parse_baseline(value: Any) -> Optional[Tuple[int, int]]:
    """``"04.00"``, ``"N0400"``, ``4.0``, ``"05.09"`` -> ``(4, 0)`` / ``(5, 9)``; None if unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        major = int(value)
        return (major, int(round((float(value) - major) * 100)))
    text = str(value).strip().upper().lstrip("N")
    m = re.fullmatch(r"(\d{1,2})\.?(\d{2})", text)
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)))


def baseline_from_name(name: str) -> Optional[str]:
    """The baseline an ESA product name carries (``..._N0509_...`` -> ``"05.09"``)."""
    m = _BASELINE_TOKEN.search(str(name))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _has_offset(baseline: Tuple[int, int]) -> bool:
    return baseline >= (4, 0)


@dataclass(frozen=True)
class Harmonisation:
    """The linear map from stored values to harmonised DN, and why.

    ``harmonised = clip(stored * gain + bias, 0, None)`` per band (``bias`` in DN of the
    harmonised convention); ``gain`` is 1 unless a source stores another scale.
    """

    bias_dn: Mapping[str, float] = field(default_factory=dict)   # band -> bias; "*" default
    gain: float = 1.0
    source: str = "declared"
    baseline: Optional[str] = None
    certain: bool = True
    note: str = ""

    def bias_for(self, band: str) -> float:
        return float(self.bias_dn.get(band, self.bias_dn.get("*", 0.0)))

    @property
    def identity(self) -> bool:
        return self.gain == 1.0 and all(v == 0.0 for v in self.bias_dn.values())

    def to_dict(self) -> dict:
        biases = {k: float(v) for k, v in self.bias_dn.items()}
        return {"convention": "harmonised DN = reflectance x 10000 (no baseline offset)",
                "gain": self.gain, "bias_dn": biases or {"*": 0.0},
                "reflectance_scale": S2_REFLECTANCE_SCALE, "reflectance_offset": 0.0,
                "source": self.source, "processing_baseline": self.baseline,
                "certain": self.certain, **({"note": self.note} if self.note else {})}


NONE_NEEDED = Harmonisation({"*": 0.0}, source="earth-engine-harmonised")


def s2_harmonisation(*, declared_offset_dn: Optional[float] = None,
                     declared_offsets: Optional[Mapping[str, float]] = None,
                     declared_source: str = "declared",
                     offset_applied: Optional[bool] = None,
                     baseline: Any = None, baseline_source: str = "processing_baseline",
                     raster_scale: Optional[float] = None, raster_offset: Optional[float] = None,
                     acquired: Optional[date] = None) -> Harmonisation:
    """Decide how to bring one Sentinel-2 scene (or band) to the harmonised convention.

    ``declared_offset_dn`` / ``declared_offsets`` (per band): DN the source says to add
    (ESA's ``BOA_ADD_OFFSET`` convention, e.g. -1000); ``declared_source`` names where
    that came from (``"esa-metadata"`` for the product XML). ``offset_applied``: Earth
    Search's ``earthsearch:boa_offset_applied``. ``baseline``: the processing baseline
    in any spelling (``baseline_source`` says where it was read). ``raster_scale`` /
    ``raster_offset``: STAC ``raster:bands`` of the asset (reflectance = value * scale +
    offset); a scale alone only sets the gain, it says nothing about the offset.
    ``acquired``: the acquisition date.
    """
    base = parse_baseline(baseline)
    base_text = f"{base[0]:02d}.{base[1]:02d}" if base else None
    gain = 1.0 if raster_scale is None else round(float(raster_scale) / S2_REFLECTANCE_SCALE, 12)

    def make(bias, source, certain=True, note=""):
        biases = dict(bias) if isinstance(bias, Mapping) else {"*": float(bias)}
        return Harmonisation(biases, gain=gain, source=source, baseline=base_text, certain=certain,
                             note=note)

    if declared_offsets:
        return make({k: float(v) for k, v in declared_offsets.items()}, declared_source)
    if declared_offset_dn is not None:
        return make(declared_offset_dn, declared_source)
    if offset_applied is not None:
        if offset_applied:
            return make(0.0, "earthsearch:boa_offset_applied", note="offset already removed by the catalog")
        return make(S2_BASELINE_OFFSET_DN if base is None or _has_offset(base) else 0.0,
                    "earthsearch:boa_offset_applied")
    if base is not None and not _has_offset(base):
        return make(0.0, baseline_source)
    if raster_offset is not None:
        return make(float(raster_offset) * S2_DN_SCALE, "raster:bands")
    if base is not None:
        return make(S2_BASELINE_OFFSET_DN, baseline_source)
    if acquired is not None and acquired < S2_BASELINE_04_DATE:
        return make(0.0, "date", note="acquired before 2022-01-25 (baseline < 04.00)")
    if acquired is not None:
        return make(0.0, "unknown", certain=False,
                    note=("acquired on/after 2022-01-25 but no processing baseline, offset or Earth "
                          "Search flag is known: values kept as stored (assumed already harmonised)"))
    return make(0.0, "unknown", certain=False,
                note="undated scene of unknown baseline: values kept as stored")


def parse_esa_product_metadata(text: str) -> Dict[str, Any]:
    """Read ``PROCESSING_BASELINE``, quantification and per-band offsets from ESA XML.

    Works on ``MTD_MSIL1C.xml`` (``RADIO_ADD_OFFSET``, ``QUANTIFICATION_VALUE``) and
    ``MTD_MSIL2A.xml`` (``BOA_ADD_OFFSET``, ``BOA_QUANTIFICATION_VALUE``); ``band_id``
    maps to a band through ``Spectral_Information bandId``/``physicalBand`` when present,
    else ESA's order (B1 .. B8, B8A, B9 .. B12). Returns ``{"baseline", "quantification",
    "offsets", "level", "sensing_date"}`` (missing entries are None / empty).
    """
    root = ET.fromstring(text)

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    out: Dict[str, Any] = {"baseline": None, "quantification": None, "offsets": {},
                           "level": None, "sensing_date": None}
    physical: Dict[str, str] = {}
    raw_offsets: Dict[str, float] = {}
    for el in root.iter():
        name = local(el.tag)
        txt = (el.text or "").strip()
        if name == "PROCESSING_BASELINE" and txt:
            out["baseline"] = txt
        elif name in ("QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE") and txt:
            out["quantification"] = float(txt)
        elif name in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and txt:
            raw_offsets[str(el.attrib.get("band_id", ""))] = float(txt)
        elif name == "Spectral_Information" and "bandId" in el.attrib:
            physical[str(el.attrib["bandId"])] = str(el.attrib.get("physicalBand", ""))
        elif name == "PROCESSING_LEVEL" and txt:
            out["level"] = txt
        elif name in ("PRODUCT_START_TIME", "SENSING_TIME") and txt and out["sensing_date"] is None:
            out["sensing_date"] = txt[:10]
    for bid, value in raw_offsets.items():
        band = physical.get(bid)
        if not band and bid.isdigit() and int(bid) < len(ESA_BAND_IDS):
            band = ESA_BAND_IDS[int(bid)]
        if band:
            from .bands import canonical_band
            out["offsets"][canonical_band(band, "sentinel-2")] = value
    return out


def harmonise(values, h: Harmonisation, band: str):
    """Apply ``h`` to one band's float array (NaN stays NaN); returns a float32 array."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float32)
    gain, bias = np.float32(h.gain), np.float32(h.bias_for(band))
    if gain == 1 and bias == 0:
        return arr
    out = arr * gain + bias
    np.maximum(out, np.float32(0.0), out=out, where=np.isfinite(out))
    return out


__all__ = ["S2_BASELINE_04_DATE", "S2_BASELINE_OFFSET_DN", "OFFSET_SIGNALS", "ESA_BAND_IDS",
           "Harmonisation", "NONE_NEEDED", "parse_baseline", "baseline_from_name",
           "s2_harmonisation", "parse_esa_product_metadata", "harmonise"]
