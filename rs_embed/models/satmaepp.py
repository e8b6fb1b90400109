"""``satmaepp``: SatMAE++ (multi-scale MAE) ViT-L/16 encoder, fMoW-RGB pretraining.

Noman et al., "Rethinking Transformers Pre-training for Multi-Spectral Satellite
Imagery", CVPR 2024, arXiv:2403.05419 (github.com/techmn/satmae_pp). The installable
implementation is rshf's ``rshf.satmaepp`` (PyPI ``rshf`` 0.2.2, the MVRL hub ports of
the authors' weights). Its encoder is a plain MAE ViT-L/16 — the same network as SatMAE's
RGB model, timm's ``VisionTransformer`` with LayerNorm eps 1e-6 as the official
``models_mae.py`` builds it — so this family reuses :mod:`rs_embed.models.satmae`'s
encoder and eval transform; the multi-scale upsampling blocks and the MAE decoder are
pretraining-only and ignored.

Checkpoint: Hugging Face ``MVRL/satmaepp_ViT-L_pretrain_fmow_rgb`` (``model.safetensors`` +
``config.json``, rshf's ``PyTorchModelHubMixin`` layout; the authors' original is
``mubashir04/checkpoint_ViT-L_pretrain_fmow_rgb``).

Pipeline (SatMAE++ README and SatMAE ``util/datasets.py`` eval transform):

1. **Input**: Sentinel-2 L2A ``B2 B3 B4`` — **BGR**: the README notes SatMAE++ was
   trained on BGR images (OpenCV reads), so the channels go in blue, green, red order.
2. **8-bit**: reflectance ``[0, rgb_max]`` -> ``[0, 255]`` (fMoW RGB is 8-bit), then
   ``ToTensor`` (/255) and the fMoW-RGB mean/std applied per channel position, as the
   training transform applied them to its BGR tensors.
3. **Resize** the shorter side to 256 (bicubic) and centre-crop 224; patch 16 -> 14 x 14.
4. **Pooled**: mean/max of the patch tokens (CLS dropped); **grid**: the patch tokens.
"""

from __future__ import annotations

from typing import Any, Dict

from . import weights as W
from .satmae import FMOW_RGB_MEAN, FMOW_RGB_STD, SatMAEEmbedder


_PAPER = "Noman et al., Rethinking Transformers Pre-training for Multi-Spectral Satellite Imagery (SatMAE++), CVPR 2024"
_LICENCE = "Apache-2.0 (SatMAE++ repository); fMoW-based weights"
#: BGR: SatMAE++ README, "Satmae++ uses the BGR image format for model training"
SATMAEPP_RGB_BANDS = ("B2", "B3", "B4")

CATALOG = W.catalog("satmaepp", default="vitl16_rgb")
CATALOG.add(W.Checkpoint(
    model="satmaepp", variant="vitl16_rgb", filename="satmaepp_ViT-L_pretrain_fmow_rgb/model.safetensors",
    source="https://huggingface.co/MVRL/satmaepp_ViT-L_pretrain_fmow_rgb",
    hf_repo="MVRL/satmaepp_ViT-L_pretrain_fmow_rgb", hf_filename="model.safetensors",
    arch={"kind": "rgb", "img_size": 224, "patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16},
    bands=SATMAEPP_RGB_BANDS, image_size=224, licence=_LICENCE, paper=_PAPER,
    approx_size_mb=1320, mean=FMOW_RGB_MEAN, std=FMOW_RGB_STD,
    norm_source="SatMAE util/datasets.py build_fmow_transform (fMoW RGB mean/std), applied to BGR tensors",
    extra={"crop_pct": 224 / 256, "channel_order": "BGR"}))

#: pretraining-only parts of the checkpoint: MAE decoder, multi-scale upsampling branch
_IGNORED = (r"decoder_.*", r"mask_token", r"proj_up_.*", r"up_block\..*")
_HEAD = (r"head\.(weight|bias)", r"fc_norm\.(weight|bias)")


class SatMAEPPEmbedder(SatMAEEmbedder):
    """SatMAE++ ViT-L/16 (fMoW-RGB) encoder on Sentinel-2 BGR."""

    name = "satmaepp"
    catalog = CATALOG
    extra = "models-satmaepp"
    summary = "SatMAE++ ViT-L/16 encoder (fMoW-RGB multi-scale MAE), Sentinel-2 BGR, 224 px."

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("8-bit BGR (B2 B3 B4), /255, fMoW-RGB mean/std per channel position, "
                              "bicubic resize 256, centre crop 224"),
            "channel_order": "BGR (SatMAE++ README)",
            "outputs": {"pooled": "mean/max of final patch tokens (1024)", "grid": "patch tokens 14 x 14"},
            "cls_handling": "CLS token dropped from pooled and grid",
        }

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys,
                     allow_missing=_HEAD, allow_unexpected=_IGNORED)


__all__ = ["SatMAEPPEmbedder", "CATALOG", "SATMAEPP_RGB_BANDS", "FMOW_RGB_MEAN", "FMOW_RGB_STD"]
