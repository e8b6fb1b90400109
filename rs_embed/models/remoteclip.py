"""``remoteclip``: RemoteCLIP image embeddings through ``open_clip``.

Liu et al., "RemoteCLIP: A Vision Language Foundation Model for Remote Sensing",
IEEE TGRS 62 (2024), arXiv:2306.11029. Checkpoints: Hugging Face
``chendelong/RemoteCLIP`` (``RemoteCLIP-ViT-B-32.pt``, ``RemoteCLIP-ViT-L-14.pt``),
each a plain state dict of the open_clip model of the same name; the authors'
README builds ``open_clip.create_model_and_transforms(name)`` and loads it strictly.

Pipeline, step by step:

1. **Input**: Sentinel-2 L2A ``B4 B3 B2`` DN (reflectance x 10000).
2. **To 8-bit RGB**: reflectance ``[0, rgb_max]`` stretched to ``[0, 255]`` (default
   0.3, the usual true-colour stretch; RemoteCLIP was trained on 8-bit aerial RGB, so
   a plain ``/ 10000`` would give nearly black images).
3. **open_clip's own eval transform** for the checkpoint's image size: bicubic
   resize of the shorter side to 224, centre crop 224, ``ToTensor``, normalise with
   the OpenAI CLIP mean/std (the constants open_clip ships as
   ``OPENAI_DATASET_MEAN/STD``).
4. **Pooled**: ``encode_image`` — the projected CLS embedding (512-d for B/32, 768-d
   for L/14), not L2-normalised. **Grid**: the last block's patch tokens after
   ``ln_post``, projected with the same matrix, so they live in the same space as the
   pooled vector (7 x 7 for B/32, 16 x 16 for L/14 at 224 px).
5. **Nodata**: masked pixels take the CLIP mean colour (0 after normalisation).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, rgb_uint8, tokens_to_grid
from ..sensors import S2_L2A

#: OpenAI CLIP normalisation, as in open_clip.constants OPENAI_DATASET_MEAN / _STD
#: (Radford et al. 2021); RemoteCLIP keeps it (its README uses open_clip's preprocess).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_NORM_SOURCE = ("open_clip OPENAI_DATASET_MEAN/STD via open_clip.image_transform, as in the "
                "RemoteCLIP README (github.com/ChenDelong1999/RemoteCLIP)")
_PAPER = "Liu et al., RemoteCLIP, IEEE TGRS 62 (2024), arXiv:2306.11029"

CATALOG = W.catalog("remoteclip", default="vit_b32")


def _record(variant: str, clip_name: str, arch: Dict[str, Any], approx_mb: float) -> W.Checkpoint:
    fname = f"RemoteCLIP-{clip_name}.pt"
    return W.Checkpoint(
        model="remoteclip", variant=variant, filename=fname,
        source=f"https://huggingface.co/chendelong/RemoteCLIP/blob/main/{fname}",
        hf_repo="chendelong/RemoteCLIP", hf_filename=fname,
        arch={"open_clip": clip_name, **arch}, bands=("B4", "B3", "B2"), image_size=224,
        licence="Apache-2.0", paper=_PAPER, approx_size_mb=approx_mb,
        mean=CLIP_MEAN, std=CLIP_STD, norm_source=_NORM_SOURCE)


# Architecture hyper-parameters are open_clip's own model configs (ViT-B-32.json, ViT-L-14.json).
CATALOG.add(_record("vit_b32", "ViT-B-32", {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
    605))
CATALOG.add(_record("vit_l14", "ViT-L-14", {
    "embed_dim": 768,
    "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
    1710))


class RemoteCLIPEmbedder(PretrainedEmbedder):
    """RemoteCLIP (ViT-B/32 or ViT-L/14) on Sentinel-2 RGB, via open_clip."""

    name = "remoteclip"
    catalog = CATALOG
    requires = ("torch", "torchvision", "open_clip", "PIL")
    collection = S2_L2A
    summary = ("RemoteCLIP vision tower (open_clip): projected CLS embedding pooled, "
               "projected patch tokens as grid. Sentinel-2 RGB.")

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {"rgb_max": {"type": "float", "default": 0.3, "gt": 0, "max": 1.5,
                            "help": "reflectance mapped to 255 when making the 8-bit RGB image"}}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("DN -> reflectance, [0, rgb_max] stretched to 8-bit RGB; open_clip eval "
                              "transform: bicubic resize shorter side to 224, centre crop 224, "
                              "normalise with OpenAI CLIP mean/std"),
            "outputs": {"pooled": "encode_image: projected CLS embedding (embed_dim)",
                        "grid": "last-block patch tokens after ln_post, projected (embed_dim, h, w)"},
            "cls_handling": "pooled is the CLS embedding; grid excludes CLS",
        }

    def _build(self, ckpt: W.Checkpoint):
        import open_clip
        arch = {k: v for k, v in ckpt.arch.items() if k != "open_clip"}
        return open_clip.CLIP(**arch)

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys)

    def _load_network(self):
        net, wmeta = super()._load_network()
        # Only the vision tower is needed for images; dropping the text tower halves memory.
        return net.visual, wmeta

    def _transform(self):
        import open_clip
        ck = self.checkpoint
        return open_clip.image_transform(ck.image_size, is_train=False, mean=ck.mean, std=ck.std)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        from PIL import Image
        tf = self._transform()
        imgs = [tf(Image.fromarray(rgb_uint8(a, self.config["rgb_max"]))) for a in arrays]
        return torch.stack(imgs), {"image_size": self.checkpoint.image_size}

    def _forward(self, visual, x, info) -> Features:
        out = visual.forward_intermediates(x, indices=1, normalize_intermediates=True, output_fmt="NLC")
        tokens = out["image_intermediates"][-1] @ visual.proj
        side = x.shape[-1] // visual.patch_size[1]
        grid = tokens_to_grid(tokens, x.shape[-2] // visual.patch_size[0], side)
        return Features(grid=grid, pooled=out["image_features"],
                        meta={"pooled_kind": "clip_projected_cls", "pooled_uses_cls": True, "pooled_any_pooling": True,
                              "grid_kind": "projected_patch_tokens"})

    def _preprocess_meta(self) -> Dict[str, Any]:
        return {"rgb_max_reflectance": self.config["rgb_max"],
                "preprocess": "open_clip.image_transform(eval): resize shorter side, centre crop"}

    def _nodata_fill(self, sensor: SensorSpec):
        rgb_max = float(self.config["rgb_max"])
        return ([m * rgb_max * 10000.0 for m in self.checkpoint.mean],
                "OpenAI CLIP mean colour of the normalisation (0 after it), encoded back to DN")

    def grid_footprint(self, input_hw):
        """open_clip's eval transform resizes the shorter side and centre-crops a square."""
        h, w = input_hw
        side = float(min(h, w))
        return ((h - side) / 2.0, (w - side) / 2.0, (h + side) / 2.0, (w + side) / 2.0)


__all__ = ["RemoteCLIPEmbedder", "CATALOG", "CLIP_MEAN", "CLIP_STD"]
