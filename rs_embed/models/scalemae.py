"""``scalemae``: Scale-MAE ViT-L/16 with ground-sample-distance positional encoding, via torchgeo.

Reed et al., "Scale-MAE: A Scale-Aware Masked Autoencoder for Multiscale Geospatial
Representation Learning", ICCV 2023, arXiv:2212.14532. The network is torchgeo's
``ScaleMAE`` (a timm ``VisionTransformer`` whose sin-cos position embedding is
stretched by the ground sample distance) and the checkpoint is the one torchgeo's
``ScaleMAELarge16_Weights.FMOW_RGB`` points to (pretrained on fMoW RGB).

Pipeline, step by step:

1. **Input**: Sentinel-2 L2A ``B4 B3 B2`` DN.
2. **To 8-bit RGB**: reflectance ``[0, rgb_max]`` stretched to ``[0, 255]`` (fMoW is
   8-bit imagery), then torchgeo's transform: ``/ 255`` and ImageNet mean/std.
3. **Resize** to 224 x 224 (bicubic, antialiased).
4. **GSD ratio**: the position grid is scaled by a *relative* ground-sample-distance
   ratio, as the official evaluation computes it (``scalemae/eval/knn.py``:
   ``gsd_ratio = eval_base_resolution * 224 / eval_scale``, with
   ``eval_base_resolution`` 1.0 by default): ``base_resolution x 224 / image_size``
   with the model's 224 px input, i.e. 1.0 unless ``base_resolution`` says the imagery
   is coarser or finer than the reference (torchgeo's ``ScaleMAE(res=1.0)`` default
   too). Not metres: a metre value would scale the grid tenfold for 10 m imagery.
6. **Nodata**: masked pixels take the ImageNet mean colour (0 after normalisation).
5. **Grid**: final normalised patch tokens (1024 x 14 x 14, CLS dropped); **pooled**:
   their mean or max.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, rgb_uint8, tokens_to_grid
from ..sensors import S2_L2A

#: ImageNet statistics after /255: torchgeo.models.scale_mae._scale_mae_transforms
#: (Normalize(0, 255) then Normalize(mean, std)), as Scale-MAE's fMoW pipeline.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_NORM_SOURCE = ("torchgeo.models.scale_mae._scale_mae_transforms (/255, ImageNet mean/std); "
                "github.com/bair-climate-initiative/scale-mae")
_PAPER = "Reed et al., Scale-MAE, ICCV 2023, arXiv:2212.14532"
_URL = ("https://hf.co/isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae/resolve/"
        "9dc7f569424baeb780698352cf6e87638c882123/vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth")

CATALOG = W.catalog("scalemae", default="vitl16_fmow_rgb")
CATALOG.add(W.Checkpoint(
    model="scalemae", variant="vitl16_fmow_rgb",
    filename="vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth", source=_URL, url=_URL,
    hf_repo="isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae",
    hf_filename="vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth",
    hf_revision="9dc7f569424baeb780698352cf6e87638c882123", sha256_prefix="98ed9821",
    # torchgeo.models.scalemae_large_patch16 shape
    arch={"img_size": 224, "patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16,
          "torchgeo_weights": "ScaleMAELarge16_Weights.FMOW_RGB"},
    bands=("B4", "B3", "B2"), image_size=224, licence="CC-BY-NC-4.0 (Scale-MAE repository)",
    paper=_PAPER, approx_size_mb=1220, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    norm_source=_NORM_SOURCE))

_ENCODER_MISSING_OK = (r"head\.(weight|bias)", r"fc_norm\.(weight|bias)", r"norm\.(weight|bias)",
                       r"pos_embed")


class ScaleMAEEmbedder(PretrainedEmbedder):
    """Scale-MAE ViT-L/16 (fMoW RGB) with GSD conditioning on Sentinel-2 RGB."""

    name = "scalemae"
    catalog = CATALOG
    requires = ("torch", "torchvision", "timm", "torchgeo")
    collection = S2_L2A
    summary = "Scale-MAE ViT-L/16 (torchgeo) with ground-sample-distance position encoding; RGB."

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {"rgb_max": {"type": "float", "default": 0.3, "gt": 0, "max": 1.5,
                            "help": "reflectance mapped to 255 when making the 8-bit RGB image"},
                "base_resolution": {"type": "float", "default": 1.0, "gt": 0,
                                    "help": "relative GSD of the imagery against the reference (the "
                                            "official eval's eval_base_resolution); the position grid "
                                            "is scaled by base_resolution * 224 / image_size"}}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("DN -> reflectance, [0, rgb_max] stretched to 8-bit RGB, /255, "
                              "ImageNet mean/std, bicubic resize to 224"),
            "gsd_conditioning": ("position grid scaled by the relative GSD ratio base_resolution * 224 / "
                                 "image_size (official scalemae/eval/knn.py)"),
            "outputs": {"pooled": "mean/max of final patch tokens (1024)",
                        "grid": "final patch tokens (1024, 14, 14)"},
            "cls_handling": "CLS token dropped from pooled and grid",
        }

    def _build(self, ckpt: W.Checkpoint):
        from functools import partial
        import torch.nn as nn
        from torchgeo.models.scale_mae import ScaleMAE
        a = ckpt.arch
        return ScaleMAE(img_size=a["img_size"], patch_size=a["patch_size"], embed_dim=a["embed_dim"],
                        depth=a["depth"], num_heads=a["num_heads"], mlp_ratio=4, qkv_bias=True,
                        norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=0)

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, [],
                     allow_missing=_ENCODER_MISSING_OK)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        from torchvision.transforms.v2 import functional as TF
        size = self.checkpoint.image_size
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        xs = []
        for a in arrays:
            x = torch.from_numpy(rgb_uint8(a, self.config["rgb_max"])).permute(2, 0, 1)[None].float() / 255.0
            x = TF.resize(x, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            xs.append(((x - mean) / std)[0])
        ratio = self.gsd_ratio()
        return torch.stack(xs), {"image_size": size, "gsd": [ratio] * len(xs),
                                 "per_item": [{"gsd_ratio": ratio}] * len(xs)}

    def gsd_ratio(self) -> float:
        """The official relative GSD ratio: base_resolution * 224 / model input size."""
        return float(self.config["base_resolution"]) * 224.0 / float(self.checkpoint.image_size)

    def _nodata_fill(self, sensor: SensorSpec):
        """The DN whose 8-bit colour is the ImageNet mean (0 after normalisation)."""
        rgb_max = float(self.config["rgb_max"])
        return ([m * rgb_max * 10000.0 for m in IMAGENET_MEAN],
                "ImageNet mean colour of the normalisation (0 after it), encoded back to DN")

    def _forward(self, net, x, info) -> Features:
        import torch
        from torchgeo.models.scale_mae import get_2d_sincos_pos_embed_with_resolution
        res = torch.tensor(info["gsd"], dtype=x.dtype, device=x.device)
        t = net.patch_embed(x)
        pos = get_2d_sincos_pos_embed_with_resolution(
            net.embed_dim, int(net.patch_embed.num_patches ** 0.5), res, cls_token=True).to(x.dtype)
        t = torch.cat((net.cls_token.expand(t.shape[0], -1, -1), t), dim=1) + pos
        t = net.norm_pre(net.patch_drop(net.pos_drop(t)))
        for block in net.blocks:
            t = block(t)
        t = net.norm(t)
        h, w = net.patch_embed.grid_size
        grid = tokens_to_grid(t[:, net.num_prefix_tokens:], h, w)
        return Features(grid=grid, meta={"cls_removed": True, "grid_kind": "patch_tokens"})

    def _preprocess_meta(self) -> Dict[str, Any]:
        return {"rgb_max_reflectance": self.config["rgb_max"],
                "base_resolution": self.config["base_resolution"]}


__all__ = ["ScaleMAEEmbedder", "CATALOG", "IMAGENET_MEAN", "IMAGENET_STD"]
