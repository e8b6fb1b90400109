"""``dofa``: DOFA (Dynamic One-For-All), one network for any band set, via torchgeo.

Xiong et al., "Neural Plasticity-Inspired Multimodal Foundation Model for Earth
Observation" (DOFA), arXiv:2403.15356. The network is torchgeo's ``DOFA``
(``dofa_base_patch16_224`` / ``dofa_large_patch16_224`` shapes); its patch embedding
is generated from the central wavelength of each input band, so any subset of the
supported bands can be embedded. Checkpoints are the ones torchgeo's
``DOFABase16_Weights.DOFA_MAE`` / ``DOFALarge16_Weights.DOFA_MAE`` point to.

Pipeline, step by step:

1. **Input**: Sentinel-2 L2A DN; default the nine bands of the DOFA README demo
   (``B4 B3 B2 B5 B6 B7 B8 B11 B12``), any subset of them (in any order) also works.
2. **To the 0–255 scale** of the published statistics: ``clip(DN / 10000, 0, 1) x 255``.
   The DOFA README gives Sentinel-2 means/stds on an 8-bit scale without saying how
   DN were mapped to it; this linear mapping is our assumption and is recorded in
   every result's meta.
3. **Standardise** each band with the README's ``S2_MEAN`` / ``S2_STD``
   (github.com/zhu-xlab/DOFA, README "Data preprocessing").
4. **Resize** to 224 x 224 (bilinear, antialiased), as the README's ``K.Resize``.
5. **Wavelengths** (µm, Sentinel-2 central wavelengths as in the README) condition
   the dynamic patch embedding.
6. **Pooled** (mean): torchgeo's ``forward_features`` — ``fc_norm`` of the mean patch
   token (the checkpoint carries no ``fc_norm``, so it is a plain LayerNorm); max
   pooling takes the max over patch tokens. **Grid**: the final patch tokens (14 x 14,
   CLS dropped, no norm, as in the forward pass).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..errors import ModelError
from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from ..sensors import S2_L2A, canonical_band

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
_NORM_SOURCE = ("DOFA README (github.com/zhu-xlab/DOFA) S2_MEAN/S2_STD on a 0-255 scale; "
                "DN mapped as clip(DN/10000, 0, 1) * 255 (rs_embed assumption)")
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
    collection = S2_L2A
    summary = ("DOFA (torchgeo): wavelength-conditioned ViT for any band set; "
               "Sentinel-2 bands with published statistics.")

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("clip(DN/10000, 0, 1) * 255, per-band standardisation with the DOFA "
                              "README S2 statistics, bilinear resize to 224"),
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

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        from torchvision.transforms.v2 import functional as TF
        bands = [canonical_band(b) for b in sensor.bands]
        mean = torch.tensor([_BAND_INFO[b][0] for b in bands]).view(1, -1, 1, 1)
        std = torch.tensor([_BAND_INFO[b][1] for b in bands]).view(1, -1, 1, 1)
        size = self.checkpoint.image_size
        xs = []
        for a in arrays:
            x = torch.from_numpy(a)[None]
            x = torch.clamp(torch.nan_to_num(x) / 10000.0, 0.0, 1.0) * 255.0
            x = (x - mean) / std
            xs.append(TF.resize(x, [size, size], antialias=True)[0])
        wv = [_BAND_INFO[b][2] for b in bands]
        return torch.stack(xs), {"image_size": size, "wavelengths": wv, "bands": bands}

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
                              "wavelengths_um": info["wavelengths"]})

    def _preprocess_meta(self) -> Dict[str, Any]:
        return {"input_scaling": "clip(DN/10000, 0, 1) * 255 then DOFA S2 mean/std"}


__all__ = ["DOFAEmbedder", "CATALOG", "DOFA_S2_BANDS", "DOFA_S2_MEAN", "DOFA_S2_STD",
           "DOFA_S2_WAVELENGTHS_UM"]
