"""``ssl4eo``: SSL4EO-S12 self-supervised backbones on 13-band Sentinel-2 L1C, via torchgeo.

Wang et al., "SSL4EO-S12: A large-scale multi-modal, multi-temporal dataset for
self-supervised learning in Earth observation", IEEE GRSM (2023), arXiv:2211.07044.
The networks are torchgeo's builders (``torchgeo.models.resnet50``,
``torchgeo.models.vit_small_patch16_224``, both timm models) and the checkpoints are
the ones torchgeo's weight enums point to; the records below copy those enums' URL,
band list and input-channel count as data (a test checks them against torchgeo).

Pipeline, step by step (torchgeo's ``_ssl4eo_s12_transforms_s2_10k`` /
``_zhu_xlab_transforms``, from the SSL4EO-S12 linear-probe code
``src/benchmark/transfer_classification/linear_BE_moco.py`` and
``datasets/EuroSat/eurosat_dataset.py``):

1. **Input**: the 13 Sentinel-2 L1C bands ``B1 ... B8 B8A B9 B10 B11 B12`` as DN.
2. **Resize** to 256 x 256 (bilinear, antialiased), **centre crop** 224 x 224.
3. **Scale**: ``DN / 10000`` (no per-band standardisation for these weights).
4. ResNet-50: **grid** = the final 2048-channel feature map (7 x 7), **pooled** =
   its spatial mean (or max). ViT-S/16: **grid** = the final normalised patch tokens
   (14 x 14, CLS dropped), **pooled** = their mean (or max). The grid covers the centre
   crop (the middle 224/256 of the patch), which its georeferencing says.
5. **Nodata**: the SSL4EO-S12 project publishes no convention; masked pixels take the
   SSL4EO-S12 L1C band mean (the statistics :data:`SSL4EO_S12_L1C_STATS`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from ..sensors import S2_BANDS, S2_L1C

#: SSL4EO-S12 L1C band order (torchgeo ``_sentinel2_toa_bands``, SSL4EO-S12
#: ``src/download_data/convert_rgb.py``), in Earth Engine spelling.
SSL4EO_BANDS = S2_BANDS
#: The weights expect reflectance: DN / 10000 (torchgeo Normalize(mean=0, std=10000)).
DN_DIVISOR = 10000.0
#: Sentinel-2 L1C per-band mean and std in DN over SSL4EO-S12 (Wang et al. 2022, 50k-patch
#: statistics, rounded to 0.1 DN): the dataset these weights were trained on.
SSL4EO_S12_L1C_STATS: Dict[str, Tuple[float, float]] = {
    "B1": (1605.6, 786.8), "B2": (1390.8, 850.3), "B3": (1314.9, 875.1),
    "B4": (1363.5, 1138.8), "B5": (1549.4, 1122.2), "B6": (2091.7, 1161.6),
    "B7": (2371.7, 1274.4), "B8": (2299.9, 1248.4), "B8A": (2560.3, 1345.5),
    "B9": (830.1, 577.3), "B10": (22.1, 51.2), "B11": (2177.1, 1336.1),
    "B12": (1524.1, 1136.5),
}
_NORM_SOURCE = ("torchgeo.models.resnet._ssl4eo_s12_transforms_s2_10k (Resize 256, CenterCrop 224, "
                "/10000), citing SSL4EO-S12 linear_BE_moco.py#L167 and eurosat_dataset.py#L97 "
                "(github.com/zhu-xlab/SSL4EO-S12 @ d2868ad)")
_PAPER = "Wang et al., SSL4EO-S12, IEEE GRSM (2023), arXiv:2211.07044"

CATALOG = W.catalog("ssl4eo", default="resnet50_moco")


def _record(variant: str, enum: str, builder: str, repo: str, rev: str, fname: str,
            ssl: str, approx_mb: float) -> W.Checkpoint:
    url = f"https://hf.co/torchgeo/{repo}/resolve/{rev}/{fname}"
    return W.Checkpoint(
        model="ssl4eo", variant=variant, filename=fname, source=url, url=url,
        hf_repo=f"torchgeo/{repo}", hf_filename=fname, hf_revision=rev,
        sha256_prefix=fname.rsplit("-", 1)[1].split(".")[0],
        arch={"builder": builder, "kwargs": {}, "torchgeo_weights": enum},
        bands=SSL4EO_BANDS, image_size=224, licence="CC-BY-4.0", paper=_PAPER,
        approx_size_mb=approx_mb, mean=(0.0,) * 13, std=(DN_DIVISOR,) * 13,
        norm_source=_NORM_SOURCE, extra={"ssl_method": ssl, "resize_to": 256})


CATALOG.add(_record("resnet50_moco", "ResNet50_Weights.SENTINEL2_ALL_MOCO", "resnet50",
                    "resnet50_sentinel2_all_moco", "da4f3c9dbe09272eb902f3b37f46635fa4726879",
                    "resnet50_sentinel2_all_moco-df8b932e.pth", "moco", 94))
CATALOG.add(_record("resnet50_dino", "ResNet50_Weights.SENTINEL2_ALL_DINO", "resnet50",
                    "resnet50_sentinel2_all_dino", "d7f14bf5530d70ac69d763e58e77e44dbecfec7c",
                    "resnet50_sentinel2_all_dino-d6c330e9.pth", "dino", 94))
CATALOG.add(_record("vits16_moco", "ViTSmall16_Weights.SENTINEL2_ALL_MOCO", "vit_small_patch16_224",
                    "vit_small_patch16_224_sentinel2_all_moco", "1cb683f6c14739634cdfaaceb076529adf898c74",
                    "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth", "moco", 88))
CATALOG.add(_record("vits16_dino", "ViTSmall16_Weights.SENTINEL2_ALL_DINO", "vit_small_patch16_224",
                    "vit_small_patch16_224_sentinel2_all_dino", "5b41dd418a79de47ac9f5be3e035405a83818a62",
                    "vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth", "dino", 88))

#: tensors torchgeo tolerates being absent from / extra in these checkpoints
_HEAD_KEYS = (r"fc\.(weight|bias)", r"head\.(weight|bias)", r"norm\.(weight|bias)")


def preprocess(x, image_size: int, resize_to: int):
    """torchgeo's SSL4EO-S12 S2 transform on a ``(B, 13, H, W)`` DN tensor."""
    from torchvision.transforms.v2 import functional as TF
    x = TF.resize(x, [resize_to, resize_to], antialias=True)
    x = TF.center_crop(x, [image_size, image_size])
    return x / DN_DIVISOR


class SSL4EOEmbedder(PretrainedEmbedder):
    """SSL4EO-S12 ResNet-50 / ViT-S/16 (MoCo or DINO) on 13-band Sentinel-2 L1C."""

    name = "ssl4eo"
    catalog = CATALOG
    requires = ("torch", "torchvision", "timm", "torchgeo")
    collection = S2_L1C
    summary = ("SSL4EO-S12 self-supervised ResNet-50 / ViT-S/16 (MoCo, DINO) from torchgeo; "
               "13-band Sentinel-2 L1C.")

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": "resize to 256 (bilinear, antialias), centre crop 224, DN / 10000",
            "outputs": {"pooled": "spatial mean/max of the final feature map (ResNet, 2048) or of "
                                  "the final patch tokens (ViT-S, 384)",
                        "grid": "final feature map 7 x 7 (ResNet) or patch tokens 14 x 14 (ViT-S)"},
            "cls_handling": "ViT-S: CLS token dropped from pooled and grid",
        }

    def _build(self, ckpt: W.Checkpoint):
        import torchgeo.models as tgm
        builder = getattr(tgm, ckpt.arch["builder"])
        return builder(None, in_chans=len(ckpt.bands), **dict(ckpt.arch.get("kwargs", {})))

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys,
                     allow_missing=_HEAD_KEYS, allow_unexpected=_HEAD_KEYS)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        ck = self.checkpoint
        x = torch.stack([preprocess(torch.from_numpy(a)[None], ck.image_size,
                                    ck.extra.get("resize_to", ck.image_size))[0] for a in arrays])
        return x, {"image_size": ck.image_size}

    def _nodata_fill(self, sensor: SensorSpec):
        return ([SSL4EO_S12_L1C_STATS[b][0] for b in self.checkpoint.bands],
                "SSL4EO-S12 L1C band mean (no official convention)")

    def grid_footprint(self, input_hw):
        """Resize to 256, centre crop 224: the grid covers the middle 224/256 of the patch."""
        ck = self.checkpoint
        f = ck.image_size / float(ck.extra.get("resize_to", ck.image_size))
        h, w = input_hw
        return (h * (1 - f) / 2.0, w * (1 - f) / 2.0, h * (1 + f) / 2.0, w * (1 + f) / 2.0)

    def _forward(self, net, x, info) -> Features:
        feats = net.forward_features(x)
        if feats.ndim == 4:  # ResNet feature map
            return Features(grid=feats, meta={"cls_removed": False, "grid_kind": "feature_map"})
        n_prefix = getattr(net, "num_prefix_tokens", 1)
        h, w = net.patch_embed.dynamic_feat_size(x.shape[-2:]) if hasattr(
            net.patch_embed, "dynamic_feat_size") else net.patch_embed.grid_size
        grid = tokens_to_grid(feats[:, n_prefix:], h, w)
        return Features(grid=grid, meta={"cls_removed": True, "grid_kind": "patch_tokens"})

    def _preprocess_meta(self) -> Dict[str, Any]:
        ck = self.checkpoint
        return {"ssl_method": ck.extra.get("ssl_method"),
                "preprocess": f"resize {ck.extra.get('resize_to')} + centre crop {ck.image_size}, /10000"}


__all__ = ["SSL4EOEmbedder", "CATALOG", "SSL4EO_BANDS", "SSL4EO_S12_L1C_STATS", "preprocess"]
