"""``satmae``: SatMAE encoders (fMoW RGB ViT-L/16, fMoW-Sentinel group-channel ViT-L/8).

Cong et al., "SatMAE: Pre-training Transformers for Temporal and Multi-Spectral
Satellite Imagery", NeurIPS 2022, arXiv:2207.08051. No maintained library ships the
SatMAE encoders, so they are assembled from timm: the RGB model *is* timm's
``VisionTransformer`` (ViT-L/16, LayerNorm eps 1e-6, as SatMAE's
``mae_vit_large_patch16``), and the multispectral model is timm ``PatchEmbed`` (one per
channel group) + timm ``Block`` s with SatMAE's position (768-d) + channel-group
(256-d) encoding. Module names match the official pretraining checkpoints
(``{"model": state_dict}``; the MAE decoder tensors are ignored), so those files load
as published.

Pipelines (SatMAE ``util/datasets.py`` evaluation transforms):

* ``vitl16_rgb`` — Sentinel-2 ``B4 B3 B2`` DN -> 8-bit RGB (reflectance ``[0, rgb_max]``
  -> ``[0, 255]``; fMoW RGB is 8-bit) -> ``ToTensor`` (/255) -> fMoW-RGB mean/std ->
  bicubic resize of the shorter side to 256 -> centre crop 224. Grid 14 x 14.
* ``vitl8_multispectral`` — Sentinel-2 L1C, 10 bands ``B2 B3 B4 B5 B6 B7 B8 B8A B11
  B12`` (fMoW-Sentinel minus B1, B9, B10) -> ``SentinelNormalize`` (per band,
  ``(x - (mean - 2 std)) / (4 std) x 255`` clipped to 0–255 and cast to uint8, with the
  fMoW-Sentinel means/stds) -> /255 -> bicubic resize to 109 -> centre crop 96.
  Channel groups ``(B2 B3 B4 B8) (B5 B6 B7 B8A) (B11 B12)``; each grid cell is the
  mean over the three group tokens (12 x 12), pooled is the mean/max over all
  group x position tokens.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, rgb_uint8, tokens_to_grid
from ..sensors import S2_BANDS, S2_L1C, S2_L2A

#: SatMAE util/datasets.py, build_fmow_transform: fMoW-RGB mean/std (on /255 values).
FMOW_RGB_MEAN = (0.4182007312774658, 0.4214799106121063, 0.3991275727748871)
FMOW_RGB_STD = (0.28774282336235046, 0.27541765570640564, 0.2764017581939697)
#: SatMAE util/datasets.py, SentinelIndividualImageDataset.mean/std: fMoW-Sentinel
#: statistics of the 13 L1C bands B1..B8, B8A, B9..B12 in DN ...
FMOW_S2_BANDS13 = S2_BANDS
FMOW_S2_MEAN13 = (1370.19151926, 1184.3824625, 1120.77120066, 1136.26026392, 1263.73947144,
                  1645.40315151, 1846.87040806, 1762.59530783, 1972.62420416, 582.72633433,
                  14.77112979, 1732.16362238, 1247.91870117)
FMOW_S2_STD13 = (633.15169573, 650.2842772, 712.12507725, 965.23119807, 948.9819932,
                 1108.06650639, 1258.36394548, 1233.1492281, 1364.38688993, 472.37967789,
                 14.3114637, 1310.36996126, 1087.6020813)
#: ... of which pretraining dropped bands [0, 9, 10] (B1, B9, B10): main_pretrain.py --dropped_bands.
SATMAE_MS_BANDS = tuple(b for b in FMOW_S2_BANDS13 if b not in ("B1", "B9", "B10"))
_MS_MEAN = tuple(m for b, m in zip(FMOW_S2_BANDS13, FMOW_S2_MEAN13) if b in SATMAE_MS_BANDS)
_MS_STD = tuple(s for b, s in zip(FMOW_S2_BANDS13, FMOW_S2_STD13) if b in SATMAE_MS_BANDS)
#: models_mae_group_channels.py default grouping, as positions in SATMAE_MS_BANDS
CHANNEL_GROUPS = ((0, 1, 2, 6), (3, 4, 5, 7), (8, 9))

_PAPER = "Cong et al., SatMAE, NeurIPS 2022, arXiv:2207.08051"
_LICENCE = "CC-BY-NC-4.0 (SatMAE repository, built on MAE)"
_DATASETS = "github.com/sustainlab-group/SatMAE util/datasets.py"

CATALOG = W.catalog("satmae", default="vitl16_rgb")
CATALOG.add(W.Checkpoint(
    model="satmae", variant="vitl16_rgb", filename="fmow_pretrain.pth",
    source="https://zenodo.org/record/7369797/files/fmow_pretrain.pth",
    url="https://zenodo.org/record/7369797/files/fmow_pretrain.pth", state_dict_key="model",
    arch={"kind": "rgb", "img_size": 224, "patch_size": 16, "embed_dim": 1024, "depth": 24,
          "num_heads": 16},
    bands=("B4", "B3", "B2"), image_size=224, licence=_LICENCE, paper=_PAPER,
    approx_size_mb=1330, mean=FMOW_RGB_MEAN, std=FMOW_RGB_STD,
    norm_source=f"{_DATASETS} build_fmow_transform (fMoW RGB mean/std)",
    extra={"crop_pct": 224 / 256}))
CATALOG.add(W.Checkpoint(
    model="satmae", variant="vitl8_multispectral", filename="pretrain-vit-large-e199.pth",
    source="https://zenodo.org/record/7338613/files/pretrain-vit-large-e199.pth",
    url="https://zenodo.org/record/7338613/files/pretrain-vit-large-e199.pth", state_dict_key="model",
    arch={"kind": "group_channels", "img_size": 96, "patch_size": 8, "embed_dim": 1024, "depth": 24,
          "num_heads": 16, "channel_embed": 256, "channel_groups": CHANNEL_GROUPS},
    bands=SATMAE_MS_BANDS, image_size=96, licence=_LICENCE, paper=_PAPER,
    approx_size_mb=1330, mean=_MS_MEAN, std=_MS_STD,
    norm_source=f"{_DATASETS} SentinelIndividualImageDataset.mean/std + SentinelNormalize",
    extra={"crop_pct": 96 / 109}))

#: MAE pretraining checkpoints also hold the decoder; the encoder ignores it.
_DECODER = (r"decoder_.*", r"mask_token", r"decoder_.*\..*")
_HEAD = (r"head\.(weight|bias)", r"fc_norm\.(weight|bias)")


def _group_channel_encoder(arch: Dict[str, Any]):
    """SatMAE's group-channel ViT encoder from timm pieces (checkpoint-compatible names)."""
    from functools import partial

    import torch
    import torch.nn as nn
    from timm.layers import PatchEmbed
    from timm.models.vision_transformer import Block

    class GroupChannelEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            d, groups = arch["embed_dim"], tuple(tuple(g) for g in arch["channel_groups"])
            self.channel_groups = groups
            self.patch_embed = nn.ModuleList(
                [PatchEmbed(arch["img_size"], arch["patch_size"], len(g), d) for g in groups])
            n = self.patch_embed[0].num_patches
            self.grid_size = self.patch_embed[0].grid_size
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
            self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, d - arch["channel_embed"]), requires_grad=False)
            self.channel_embed = nn.Parameter(torch.zeros(1, len(groups), arch["channel_embed"]),
                                              requires_grad=False)
            norm = partial(nn.LayerNorm, eps=1e-6)
            self.blocks = nn.ModuleList([Block(d, arch["num_heads"], 4.0, qkv_bias=True, norm_layer=norm)
                                         for _ in range(arch["depth"])])
            self.norm = norm(d)

        def forward(self, x):
            """``(B, C, H, W)`` -> ``(B, 1 + G*L, D)`` tokens, group-major, as the MAE encoder."""
            b = x.shape[0]
            t = torch.stack([pe(x[:, list(g)]) for pe, g in zip(self.patch_embed, self.channel_groups)], 1)
            _, g, n, _ = t.shape
            pos = self.pos_embed[:, 1:, :].unsqueeze(1).expand(-1, g, -1, -1)
            chan = self.channel_embed.unsqueeze(2).expand(-1, -1, n, -1)
            t = (t + torch.cat((pos, chan), dim=-1)).reshape(b, g * n, -1)
            t = torch.cat((self.cls_token.expand(b, -1, -1), t), dim=1)
            for block in self.blocks:
                t = block(t)
            return self.norm(t)

    return GroupChannelEncoder()


class SatMAEEmbedder(PretrainedEmbedder):
    """SatMAE RGB (ViT-L/16, 224) or multispectral group-channel (ViT-L/8, 96) encoder."""

    name = "satmae"
    catalog = CATALOG
    requires = ("torch", "torchvision", "timm")
    collection = S2_L2A
    summary = "SatMAE ViT-L encoders (timm): fMoW RGB, or fMoW-Sentinel 10-band group-channel."

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {"rgb_max": {"type": "float", "default": 0.3, "gt": 0, "max": 1.5,
                            "help": "RGB variant: reflectance mapped to 255 for the 8-bit image"}}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": {
                "vitl16_rgb": "8-bit RGB, /255, fMoW-RGB mean/std, bicubic resize 256, centre crop 224",
                "vitl8_multispectral": ("L1C 10 bands, SentinelNormalize (mean +- 2 std -> uint8), /255, "
                                        "bicubic resize 109, centre crop 96")},
            "inputs_by_variant": {"vitl16_rgb": {"collection": S2_L2A, "bands": ["B4", "B3", "B2"]},
                                  "vitl8_multispectral": {"collection": S2_L1C,
                                                          "bands": list(SATMAE_MS_BANDS)}},
            "outputs": {"pooled": "mean/max of final patch tokens (1024)",
                        "grid": "RGB: patch tokens 14 x 14; multispectral: group-mean tokens 12 x 12"},
            "cls_handling": "CLS token dropped from pooled and grid",
        }

    def default_sensor(self) -> SensorSpec:
        sensor = super().default_sensor()
        if self.checkpoint.arch["kind"] == "group_channels":  # fMoW-Sentinel is L1C
            return SensorSpec(collection=S2_L1C, bands=sensor.bands, scale_m=sensor.scale_m)
        return sensor

    def _build(self, ckpt: W.Checkpoint):
        a = ckpt.arch
        if a["kind"] == "group_channels":
            return _group_channel_encoder(a)
        from functools import partial
        import torch.nn as nn
        from timm.models.vision_transformer import VisionTransformer
        return VisionTransformer(img_size=a["img_size"], patch_size=a["patch_size"], in_chans=3,
                                 embed_dim=a["embed_dim"], depth=a["depth"], num_heads=a["num_heads"],
                                 mlp_ratio=4.0, qkv_bias=True, num_classes=0, global_pool="",
                                 norm_layer=partial(nn.LayerNorm, eps=1e-6))

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys,
                     allow_missing=_HEAD, allow_unexpected=_DECODER)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        from torchvision.transforms.v2 import functional as TF
        ck = self.checkpoint
        size = ck.image_size
        resize_to = int(size / ck.extra["crop_pct"])
        xs = []
        for a in arrays:
            if ck.arch["kind"] == "group_channels":
                mean = np.asarray(ck.mean, np.float64)[:, None, None]
                std = np.asarray(ck.std, np.float64)[:, None, None]
                lo, hi = mean - 2 * std, mean + 2 * std
                u8 = np.clip((np.nan_to_num(a.astype(np.float64)) - lo) / (hi - lo) * 255.0, 0, 255)
                x = torch.from_numpy(u8.astype(np.uint8)).float() / 255.0
            else:
                x = torch.from_numpy(rgb_uint8(a, self.config["rgb_max"])).permute(2, 0, 1).float() / 255.0
                x = TF.normalize(x, list(ck.mean), list(ck.std))
            x = TF.resize(x[None], [resize_to], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
            xs.append(TF.center_crop(x, [size, size])[0])
        return torch.stack(xs), {"image_size": size}

    def _forward(self, net, x, info) -> Features:
        if self.checkpoint.arch["kind"] == "group_channels":
            t = net(x)[:, 1:, :]
            g = len(net.channel_groups)
            h, w = net.grid_size
            per_group = t.reshape(t.shape[0], g, h * w, t.shape[-1])
            grid = tokens_to_grid(per_group.mean(dim=1), h, w)
            return Features(grid=grid, tokens=t,
                            meta={"cls_removed": True, "grid_kind": "patch_tokens_mean_over_channel_groups",
                                  "channel_groups": [[SATMAE_MS_BANDS[i] for i in grp]
                                                     for grp in net.channel_groups]})
        t = net.forward_features(x)
        h, w = net.patch_embed.grid_size
        grid = tokens_to_grid(t[:, net.num_prefix_tokens:], h, w)
        return Features(grid=grid, meta={"cls_removed": True, "grid_kind": "patch_tokens"})

    def _nodata_fill(self, sensor: SensorSpec):
        ck = self.checkpoint
        if ck.arch["kind"] == "group_channels":
            return list(ck.mean), "fMoW-Sentinel band mean (SentinelNormalize maps it to 127.5)"
        rgb_max = float(self.config["rgb_max"])
        return ([m * rgb_max * 10000.0 for m in ck.mean],
                "fMoW-RGB mean colour of the normalisation (0 after it), encoded back to DN")

    def grid_footprint(self, input_hw):
        """Resize the shorter side to size / crop_pct, centre crop ``size``: the grid covers
        the middle ``size / int(size / crop_pct)`` of the patch."""
        ck = self.checkpoint
        size = ck.image_size
        h, w = input_hw
        short = float(min(h, w))
        side = short * size / float(int(size / ck.extra["crop_pct"]))
        return ((h - side) / 2.0, (w - side) / 2.0, (h + side) / 2.0, (w + side) / 2.0)

    def _preprocess_meta(self) -> Dict[str, Any]:
        if self.checkpoint.arch["kind"] == "group_channels":
            return {"input_scaling": "SentinelNormalize (fMoW-Sentinel mean +- 2 std -> uint8) / 255"}
        return {"rgb_max_reflectance": self.config["rgb_max"]}


__all__ = ["SatMAEEmbedder", "CATALOG", "FMOW_RGB_MEAN", "FMOW_RGB_STD", "FMOW_S2_MEAN13",
           "FMOW_S2_STD13", "SATMAE_MS_BANDS", "CHANNEL_GROUPS"]
