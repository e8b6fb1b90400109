"""``dofa``: DOFA (Dynamic One-For-All), one network for any band set, via torchgeo.

Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model for Earth
Observation" (DOFA), arXiv:2403.15356. The network is torchgeo's ``DOFA``
(``dofa_base_patch16_224`` / ``dofa_large_patch16_224`` shapes); its patch embedding
is generated from the central wavelength of each input band, so any subset of the
supported bands can be embedded. Checkpoints are the ones torchgeo's
``DOFABase16_Weights.DOFA_MAE`` / ``DOFALarge16_Weights.DOFA_MAE`` point to.

Pipeline, step by step:

1. **Input**: Sentinel-2 Level-1C DN; default the nine bands of the DOFA README demo
   (``B4 B3 B2 B5 B6 B7 B8 B11 B12``), any subset of them (in any order) also works.
2. **SatlasPretrain's 8-bit encoding**, the one DOFA's Sentinel-2 statistics describe
   (DOFA pretrained on SatlasPretrain; ``github.com/allenai/satlas``, Normalization.md):
   the true-colour bands as ESA's 8-bit TCI, ``DN x 255 / saturation`` with saturation
   3558 DN for Level-1C and 2000 DN for Level-2A (ESA "Sentinel-2 MSI definitions",
   from the sensor vocabulary); the other bands ``DN // 32`` clipped to 255 (Satlas'
   ``/ 8160`` = 255 x 32, torchgeo ``models.swin`` ``_std``).
3. **Standardise** each band with the README's ``S2_MEAN`` / ``S2_STD`` (0-255 scale,
   github.com/zhu-xlab/DOFA README "Data preprocessing").
4. **Resize** to 224 x 224 (bilinear, antialiased), as the README's ``K.Resize``.
5. **Wavelengths** (µm, Sentinel-2 central wavelengths as in the README) condition
   the dynamic patch embedding.
6. **Pooled** (mean): torchgeo's ``forward_features``: ``fc_norm`` of the mean patch
   token (the checkpoint carries no ``fc_norm``, so it is a plain LayerNorm); max
   pooling takes the max over patch tokens. **Grid**: the final patch tokens (14 x 14,
   CLS dropped, no norm, as in the forward pass).
7. **Nodata**: masked pixels take the README mean of each band (0 after step 3).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..errors import ModelError
from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from .. import sensors
from ..sensors import S2_L1C, canonical_band

#: DOFA README demo band order and Sentinel-2 statistics (0–255 scale), with the
#: central wavelengths (µm) it passes to the model: github.com/zhu-xlab/DOFA README.
DOFA_S2_BANDS = ("B4", "B3", "B2", "B5", "B6", "B7", "B8", "B11", "B12")
DOFA_S2_MEAN = (114.1099739, 114.81779093, 126.63977424, 84.33539309, 97.84789168,
                103.94461911, 101.435633, 72.32804172, 56.66528851)
DOFA_S2_STD = (77.84352553, 69.96844919, 67.42465279, 64.57022983, 61.72545487,
               61.34187099, 60.29744676, 47.88519516, 42.55886798)
DOFA_S2_WAVELENGTHS_UM = (0.665, 0.56, 0.49, 0.705, 0.74, 0.783, 0.842, 1.61, 2.19)
_BAND_INFO = {b: (m, s, wv) for b, m, s, wv in
              zip(DOFA_S2_BANDS, DOFA_S2_MEAN, DOFA_S2_STD, DOFA_S2_WAVELENGTHS_UM)}
#: SatlasPretrain's Sentinel-2 encoding: TCI bands as ESA's 8-bit true colour, others DN // 32
SATLAS_TCI_BANDS = ("B4", "B3", "B2")
SATLAS_DN_PER_COUNT = 32
_NORM_SOURCE = ("DOFA README (github.com/zhu-xlab/DOFA) S2_MEAN/S2_STD on SatlasPretrain's 8-bit "
                "scale: TCI bands DN*255/ESA TCI saturation, others DN//32 clipped to 255 "
                "(github.com/allenai/satlas Normalization.md)")
_PAPER = "Xiong et al., Neural Plasticity-Inspired Multimodal Foundation Model for EO (DOFA), arXiv:2403.15356"

CATALOG = W.catalog("dofa", default="base")


def _record(variant: str, dims: Dict[str, int], fname: str, approx_mb: float) -> W.Checkpoint:
    rev = "b8db318b64a90b9e085ec04ba8851233c5893666"
    url = f"https://hf.co/torchgeo/dofa/resolve/{rev}/{fname}"
    return W.Checkpoint(
        model="dofa", variant=variant, filename=fname, source=url, url=url,
        hf_repo="torchgeo/dofa", hf_filename=fname, hf_revision=rev,
        sha256_prefix=fname.rsplit("-", 1)[1].split(".")[0],
        arch={"img_size": 224, "patch_size": 16, **dims,
              "torchgeo_weights": f"DOFA{variant.capitalize()}16_Weights.DOFA_MAE"},
        bands=DOFA_S2_BANDS, image_size=224, licence="CC-BY-4.0", paper=_PAPER,
        approx_size_mb=approx_mb, mean=DOFA_S2_MEAN, std=DOFA_S2_STD, norm_source=_NORM_SOURCE,
        extra={"wavelengths_um": DOFA_S2_WAVELENGTHS_UM})


# Shapes of torchgeo's dofa_base_patch16_224 / dofa_large_patch16_224.
CATALOG.add(_record("base", {"embed_dim": 768, "depth": 12, "num_heads": 12},
                    "dofa_base_patch16_224-a0275954.pth", 450))
CATALOG.add(_record("large", {"embed_dim": 1024, "depth": 24, "num_heads": 16},
                    "dofa_large_patch16_224-0ff904d3.pth", 1360))

#: tensors the MAE checkpoint does not carry (torchgeo asserts the same set)
_ALLOW_MISSING = (r"fc_norm\.(weight|bias)", r"head\.(weight|bias)")


class DOFAEmbedder(PretrainedEmbedder):
    """DOFA base/large on any subset of the nine Sentinel-2 bands with published statistics."""

    name = "dofa"
    catalog = CATALOG
    requires = ("torch", "torchvision", "timm", "torchgeo")
    collection = S2_L1C
    summary = ("DOFA (torchgeo): wavelength-conditioned ViT for any band set; "
               "Sentinel-2 bands with published statistics.")

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("SatlasPretrain 8-bit encoding (TCI bands DN*255/TCI saturation: 3558 L1C, "
                              "2000 L2A; other bands DN//32 clipped to 255), per-band standardisation "
                              "with the DOFA README S2 statistics, bilinear resize to 224"),
            "band_wavelengths_um": dict(zip(DOFA_S2_BANDS, DOFA_S2_WAVELENGTHS_UM)),
            "band_order": "any subset of the listed bands, in any order",
            "outputs": {"pooled": "mean: fc_norm(mean patch token) as torchgeo forward_features; "
                                  "max: max over patch tokens",
                        "grid": "final patch tokens (embed_dim, 14, 14)"},
            "cls_handling": "CLS token dropped from pooled and grid",
        }

    def input_bands(self, sensor: SensorSpec) -> List[int]:
        """Every sensor band DOFA has statistics for, in the sensor's order."""
        canon = [canonical_band(b) for b in sensor.bands]
        unknown = [b for b, c in zip(sensor.bands, canon) if c not in _BAND_INFO]
        if unknown:
            raise ModelError(
                f"model 'dofa' has no published statistics/wavelength for band(s) {unknown}; "
                f"it accepts any subset of {list(DOFA_S2_BANDS)}")
        return list(range(len(canon)))

    def _build(self, ckpt: W.Checkpoint):
        from torchgeo.models.dofa import DOFA
        a = ckpt.arch
        return DOFA(img_size=a["img_size"], patch_size=a["patch_size"], embed_dim=a["embed_dim"],
                    depth=a["depth"], num_heads=a["num_heads"], num_classes=0)

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys,
                     allow_missing=_ALLOW_MISSING)

    @staticmethod
    def tci_saturation(sensor: SensorSpec) -> float:
        """ESA's TCI saturation (DN) for the sensor's product: Level-1C unless it is Level-2A."""
        prod = sensors.product(sensor.collection)
        if prod is None or prod.tci_saturation_dn is None:
            prod = sensors.S2_L1C_PRODUCT
        return float(prod.tci_saturation_dn)

    @classmethod
    def encode(cls, dn: np.ndarray, bands, sensor: SensorSpec) -> np.ndarray:
        """SatlasPretrain's 8-bit counts (float) of a ``(C, H, W)`` DN array in ``bands`` order."""
        sat = cls.tci_saturation(sensor)
        out = np.empty(dn.shape, dtype=np.float32)
        for j, b in enumerate(bands):
            if b in SATLAS_TCI_BANDS:
                out[j] = np.rint(dn[j] * (255.0 / sat))
            else:
                out[j] = np.floor(dn[j] / SATLAS_DN_PER_COUNT)
        return np.clip(out, 0.0, 255.0)

    def _nodata_fill(self, sensor: SensorSpec):
        """The DN whose 8-bit encoding is DOFA's band mean (0 after standardisation)."""
        sat = self.tci_saturation(sensor)
        bands = [canonical_band(b) for b in sensor.bands]
        values = [(_BAND_INFO[b][0] * sat / 255.0 if b in SATLAS_TCI_BANDS
                   else (_BAND_INFO[b][0] + 0.5) * SATLAS_DN_PER_COUNT) for b in bands]
        return values, "DOFA README band mean (standardised 0), encoded back to DN"

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        from torchvision.transforms.v2 import functional as TF
        bands = [canonical_band(b) for b in sensor.bands]
        mean = torch.tensor([_BAND_INFO[b][0] for b in bands]).view(1, -1, 1, 1)
        std = torch.tensor([_BAND_INFO[b][1] for b in bands]).view(1, -1, 1, 1)
        size = self.checkpoint.image_size
        xs = []
        for a in arrays:
            x = torch.from_numpy(self.encode(a, bands, sensor))[None]
            x = (x - mean) / std
            xs.append(TF.resize(x, [size, size], antialias=True)[0])
        wv = [_BAND_INFO[b][2] for b in bands]
        return torch.stack(xs), {"image_size": size, "wavelengths": wv, "bands": bands,
                                 "tci_saturation_dn": self.tci_saturation(sensor)}

    def _forward(self, net, x, info) -> Features:
        import torch
        waves = torch.tensor(info["wavelengths"], device=x.device).float()
        tokens, _ = net.patch_embed(x, waves)
        tokens = tokens + net.pos_embed[:, 1:, :]
        cls = (net.cls_token + net.pos_embed[:, :1, :]).expand(tokens.shape[0], -1, -1)
        t = torch.cat((cls, tokens), dim=1)
        for block in net.blocks:
            t = block(t)
        patches = t[:, 1:, :]
        side = x.shape[-1] // net.patch_size
        grid = tokens_to_grid(patches, x.shape[-2] // net.patch_size, side)
        pooled = net.fc_norm(patches.mean(dim=1))
        return Features(grid=grid, tokens=patches, pooled=pooled,
                        meta={"pooled_kind": "fc_norm_patch_mean", "cls_removed": True,
                              "grid_kind": "patch_tokens", "bands_used": info["bands"],
                              "wavelengths_um": info["wavelengths"],
                              "tci_saturation_dn": info["tci_saturation_dn"]})

    def _pool_tokens(self, tokens, pooling: str):
        """As the forward pass: ``fc_norm`` of the mean token (mean), max over tokens (max)."""
        if pooling == "max":
            return tokens.amax(dim=0)
        return self.network().fc_norm(tokens.mean(dim=0))

    def _preprocess_meta(self) -> Dict[str, Any]:
        return {"input_scaling": ("SatlasPretrain 8-bit: TCI bands DN*255/TCI saturation, others DN//32 "
                                  "(clip 0-255), then DOFA S2 mean/std")}


__all__ = ["DOFAEmbedder", "CATALOG", "DOFA_S2_BANDS", "DOFA_S2_MEAN", "DOFA_S2_STD",
           "SATLAS_TCI_BANDS", "SATLAS_DN_PER_COUNT",
           "DOFA_S2_WAVELENGTHS_UM"]
