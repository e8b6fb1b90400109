"""``clay``: Clay v1.5 encoder (Clay Foundation), wavelength-, GSD-, time- and place-conditioned.

Clay Foundation Model v1.5 (github.com/Clay-foundation/model; docs
clay-foundation.github.io/model). Its official code is on PyPI as ``claymodel`` 1.5.0, but
that wheel cannot be imported as published (its ``model.py`` imports ``src.backbone``,
absent from the wheel) and pins ``torch==2.4.0``; terratorch carries the same files
(``models/backbones/clay_v15``) behind a package that needs torchgeo >= 0.9. The encoder
is therefore written here, module for module as the official ``Encoder`` (``cls_token``,
``patch_embedding`` = DOFA-style ``DynamicEmbedding`` whose patch weights a small
transformer generates from the bands' wavelengths, ``transformer`` = vit-pytorch
``Transformer``), so the published Lightning checkpoint loads unchanged; tests compare it
with ``claymodel``'s own ``Encoder`` on the same checkpoint.

Checkpoint: Hugging Face ``made-with-clay/Clay``, ``v1.5/clay-v1.5.ckpt`` (Lightning,
``state_dict`` with ``model.encoder.*``; the MAE decoder, the DINOv2 teacher and the
projection heads are ignored). Clay v1.5 is the ``large`` shape (dim 1024, depth 24,
16 heads of 64, MLP ratio 4, patch 8).

Pipeline, step by step (``claymodel`` ``datamodule.py`` / ``module.py``, the sensor
table ``configs/metadata.yaml`` and the "how-to-embed" notebook of the repository):

1. **Input**: Sentinel-2 L2A DN in ``metadata.yaml``'s ``sentinel-2-l2a`` band order
   ``blue green red rededge1 rededge2 rededge3 nir nir08 swir16 swir22`` = ``B2 B3 B4
   B5 B6 B7 B8 B8A B11 B12`` at 10 m.
2. **Normalise** per band with that table's mean/std (``v2.Normalize``); nodata pixels
   (the provider's mask, non-finite, or every band at ``sensor.fill_value``) get the
   band mean, 0 after normalising (``meta["nodata_fill"]``).
3. **Size**: chips were 256 x 256; a patch of another size is resized (bilinear,
   antialiased) to 256 and its ground sample distance scaled to match
   (``gsd = scale_m x H / 256``), so the GSD-aware position encoding stays true. A
   rectangular ``BBox`` is fed as its enclosing square of real imagery; the grid is
   cropped back to the box and pooled vectors pool the box's patch tokens (the CLS
   token of ``pooled_from="cls"`` stays the square's, as ``meta["roi_pooling"]`` says).
4. **Wavelengths**: the table's centre wavelengths in µm (as ``module.py`` passes them).
5. **Time and place**: ``[sin, cos]`` of ISO week x 2π/52 and of hour x 2π/24, then of
   latitude and longitude in radians (the how-to notebook's ``normalize_timestamp`` /
   ``normalize_latlon``), from the patch's date (its hour unknown: 0) and centre; unknown
   ones are zeros, as in training (20 % of chips had both zeroed).
6. **Encoder** with mask ratio 0, no shuffle. **Pooled**: mean or max of the patch tokens
   (CLS dropped, the spec's rule); ``pooled_from="cls"`` gives the CLS token, the
   embedding Clay's notebooks use. **Grid**: the 32 x 32 patch tokens.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import ModelError
from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from .spectral import valid_mask
from ..sensors import S2_L2A

#: configs/metadata.yaml (github.com/Clay-foundation/model @0fa6dc7), sentinel-2-l2a
CLAY_S2_NAMES = ("blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08",
                 "swir16", "swir22")
CLAY_S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
CLAY_S2_MEAN = (1105.0, 1355.0, 1552.0, 1887.0, 2422.0, 2630.0, 2743.0, 2785.0, 2388.0, 1835.0)
CLAY_S2_STD = (1809.0, 1757.0, 1888.0, 1870.0, 1732.0, 1697.0, 1742.0, 1648.0, 1470.0, 1379.0)
CLAY_S2_WAVELENGTHS_UM = (0.493, 0.56, 0.665, 0.704, 0.74, 0.783, 0.842, 0.865, 1.61, 2.19)
CLAY_S2_GSD = 10
_META_SOURCE = "github.com/Clay-foundation/model configs/metadata.yaml (sentinel-2-l2a)"
_PAPER = "Clay Foundation Model v1.5, clay-foundation.github.io/model (no paper)"

#: claymodel model.py clay_mae_{tiny,small,base,large}: encoder shapes
CLAY_SHAPES = {
    "tiny": {"dim": 192, "depth": 6, "heads": 4, "dim_head": 48, "mlp_ratio": 2},
    "small": {"dim": 384, "depth": 6, "heads": 6, "dim_head": 64, "mlp_ratio": 2},
    "base": {"dim": 768, "depth": 12, "heads": 12, "dim_head": 64, "mlp_ratio": 4},
    "large": {"dim": 1024, "depth": 24, "heads": 16, "dim_head": 64, "mlp_ratio": 4},
}

CATALOG = W.catalog("clay", default="v1.5")
CATALOG.add(W.Checkpoint(
    model="clay", variant="v1.5", filename="clay-v1.5.ckpt",
    source="https://huggingface.co/made-with-clay/Clay/blob/main/v1.5/clay-v1.5.ckpt",
    hf_repo="made-with-clay/Clay", hf_filename="v1.5/clay-v1.5.ckpt", state_dict_key="state_dict",
    arch={**CLAY_SHAPES["large"], "patch_size": 8, "wave_dim": 128, "num_latent_tokens": 128},
    bands=CLAY_S2_BANDS, image_size=256, licence="Apache-2.0 (code and weights)", paper=_PAPER,
    mean=CLAY_S2_MEAN, std=CLAY_S2_STD, norm_source=_META_SOURCE,
    extra={"wavelengths_um": CLAY_S2_WAVELENGTHS_UM, "gsd_m": CLAY_S2_GSD,
           "state_prefix": "model.encoder."}))


def time_encoding(day: Optional[str]) -> List[float]:
    """``[sin, cos](week 2π/52) + [sin, cos](hour 2π/24)``; the hour of a date is 0."""
    if not day:
        return [0.0, 0.0, 0.0, 0.0]
    d = date.fromisoformat(str(day)[:10])
    hour = int(str(day)[11:13]) if len(str(day)) >= 13 and str(day)[10] in "T " else 0
    week = d.isocalendar().week * 2 * math.pi / 52
    h = hour * 2 * math.pi / 24
    return [math.sin(week), math.cos(week), math.sin(h), math.cos(h)]


def latlon_encoding(center) -> List[float]:
    """``[sin, cos](lat) + [sin, cos](lon)``, degrees to radians; unknown: zeros."""
    if center is None:
        return [0.0, 0.0, 0.0, 0.0]
    lon, lat = float(center[0]), float(center[1])
    la, lo = math.radians(lat), math.radians(lon)
    return [math.sin(la), math.cos(la), math.sin(lo), math.cos(lo)]


def _encoder(arch: Dict[str, Any]):
    """The Clay v1.5 encoder, with the official module names (checkpoint-compatible)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    dim, p, wd, nlat = arch["dim"], arch["patch_size"], arch["wave_dim"], arch["num_latent_tokens"]

    def sincos_1d(values, width):
        # claymodel utils.posemb_sincos_1d
        freq = 1.0 / 10000 ** (torch.arange(width // 2, device=values.device) / (width // 2 - 1))
        ang = values[:, None] * freq[None, :]
        return torch.cat((ang.sin(), ang.cos()), dim=1)

    def sincos_2d_gsd(side, width, gsd):
        # claymodel utils.posemb_sincos_2d_with_gsd (its exponent 2*omega/width, times gsd)
        y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        om = torch.arange(width // 4) / (width // 4 - 1)
        freq = 1.0 / (10000 ** (2 * om / width)) * gsd
        xs, ys = x.flatten()[:, None] * freq[None, :], y.flatten()[:, None] * freq[None, :]
        return torch.cat((xs.sin(), xs.cos(), ys.sin(), ys.cos()), dim=1)

    class FCBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = nn.Linear(wd, wd), nn.Linear(wd, wd)

        def forward(self, x):
            return x + F.gelu(self.l2(F.gelu(self.l1(x))))

    class WavesTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=wd, nhead=4, activation="gelu", dropout=0,
                                               norm_first=False, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.fc_weight = nn.Linear(wd, p * p * dim)
            self.fc_bias = nn.Linear(wd, dim)
            self.weight_tokens = nn.Parameter(torch.zeros(nlat, wd))
            self.bias_token = nn.Parameter(torch.zeros(1, wd))

        def forward(self, waves):
            seq = torch.cat([self.weight_tokens, waves, self.bias_token], dim=0)
            out = self.encoder(seq)
            return self.fc_weight(out[nlat:-1] + seq[nlat:-1]), self.fc_bias(out[-1])

    class DynamicEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight_generator = WavesTransformer()
            self.fclayer = FCBlock()

        def forward(self, x, waves):
            w, b = self.weight_generator(self.fclayer(sincos_1d(waves, wd)))
            kernel = w.reshape(w.shape[0], dim, p, p).transpose(0, 1)  # (cout, cin, p, p)
            out = F.conv2d(x, kernel * 0.02, bias=b, stride=p)
            return out.flatten(2).transpose(1, 2)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            inner = arch["heads"] * arch["dim_head"]
            self.norm = nn.LayerNorm(dim)
            self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
            self.to_out = nn.Linear(inner, dim, bias=False)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = (t.reshape(b, n, arch["heads"], -1).transpose(1, 2)
                       for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
            o = F.scaled_dot_product_attention(q, k, v)
            return self.to_out(o.transpose(1, 2).reshape(b, n, -1))

    class FeedForward(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = int(dim * arch["mlp_ratio"])
            self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

        def forward(self, x):
            return self.net(x)

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(dim)
            self.layers = nn.ModuleList([nn.ModuleList([Attention(), FeedForward()])
                                         for _ in range(arch["depth"])])

        def forward(self, x):
            for attn, ff in self.layers:
                x = attn(x) + x
                x = ff(x) + x
            return self.norm(x)

    class ClayEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_size = p
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.patch_embedding = DynamicEmbedding()
            self.transformer = Transformer()

        def forward(self, pixels, time, latlon, gsd, waves):
            """``(B, C, H, W)`` normalised pixels -> ``(B, 1 + L, D)`` tokens (CLS first)."""
            tok = self.patch_embedding(pixels, waves)
            b, n, _ = tok.shape
            side = int(math.isqrt(n))
            pos = sincos_2d_gsd(side, dim - 8, gsd).to(tok)
            meta = torch.cat((time, latlon), dim=1).to(tok)
            tok = tok + torch.cat((pos[None].expand(b, -1, -1), meta[:, None, :].expand(-1, n, -1)), dim=-1)
            tok = torch.cat((self.cls_token.expand(b, -1, -1), tok), dim=1)
            return self.transformer(tok)

    return ClayEncoder()


class ClayEmbedder(PretrainedEmbedder):
    """Clay v1.5 encoder on the ten Sentinel-2 L2A bands of its metadata table."""

    name = "clay"
    catalog = CATALOG
    requires = ("torch",)
    extra = "models-clay"
    collection = S2_L2A
    summary = ("Clay v1.5 (Clay Foundation) MAE encoder: wavelength-generated patch embedding, "
               "GSD-aware positions, week/hour and lat/lon conditioning; Sentinel-2 L2A.")

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {"pooled_from": {"type": "str", "default": "patch_tokens", "choices": ["patch_tokens", "cls"],
                                "help": "pooled output: mean/max of patch tokens, or Clay's CLS token"},
                "use_time_location": {"type": "bool", "default": True, "choices": [True, False],
                                      "help": "condition on the patch's date and centre (else zeros)"}}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("per-band (DN - mean) / std with Clay metadata.yaml sentinel-2-l2a; "
                              "bilinear resize to 256 with gsd = scale_m * H / 256"),
            "band_names": dict(zip(CLAY_S2_BANDS, CLAY_S2_NAMES)),
            "band_wavelengths_um": dict(zip(CLAY_S2_BANDS, CLAY_S2_WAVELENGTHS_UM)),
            "context": "center (lat/lon sin/cos) and dates[0] (ISO week and hour sin/cos)",
            "outputs": {"pooled": "mean/max of the 32 x 32 patch tokens (or the CLS token)",
                        "grid": "patch tokens (1024, 32, 32)"},
            "cls_handling": "CLS dropped from grid; pooled per pooled_from",
            "nodata": "non-finite or fill_value pixels -> 0 after normalising (the band mean)",
        }

    def _build(self, ckpt: W.Checkpoint):
        return _encoder(dict(ckpt.arch))

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        prefix = self.checkpoint.extra.get("state_prefix", "model.encoder.")
        enc = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not enc:  # an encoder-only export
            enc = dict(state)
        res = net.load_state_dict(enc, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        import torch.nn.functional as F
        ck = self.checkpoint
        size = ck.image_size
        mean = torch.tensor(ck.mean).view(1, -1, 1, 1)
        std = torch.tensor(ck.std).view(1, -1, 1, 1)
        xs, gsds = [], []
        for a in arrays:
            keep = torch.from_numpy(valid_mask(a, sensor.fill_value))
            x = torch.nan_to_num((torch.from_numpy(a)[None] - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)
            x = x * keep  # nodata (non-finite or fill_value) -> 0, the band mean
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            xs.append(x[0])
            gsds.append(float(sensor.scale_m) * a.shape[-2] / size)
        if len(set(gsds)) > 1:
            raise ModelError(f"model 'clay' got patches of different sizes in one batch: GSD {sorted(set(gsds))}")
        use = self.config["use_time_location"]
        time = [time_encoding((c.get("dates") or [None])[0]) if use else [0.0] * 4 for c in contexts]
        latlon = [latlon_encoding(c.get("center")) if use else [0.0] * 4 for c in contexts]
        info = {"image_size": size, "gsd": gsds[0], "time": torch.tensor(time), "latlon": torch.tensor(latlon),
                "per_item": [{"time_encoding": t, "latlon_encoding": ll} for t, ll in zip(time, latlon)]}
        return torch.stack(xs), info

    def _forward(self, net, x, info) -> Features:
        import torch
        waves = torch.tensor(self.checkpoint.extra["wavelengths_um"], dtype=torch.float32, device=x.device)
        tok = net(x, info["time"].to(x.device), info["latlon"].to(x.device),
                  torch.tensor(info["gsd"], dtype=torch.float32), waves)
        patches = tok[:, 1:]
        side = x.shape[-1] // net.patch_size
        grid = tokens_to_grid(patches, side, side)
        cls = self.config["pooled_from"] == "cls"
        return Features(grid=grid, tokens=patches, pooled=tok[:, 0] if cls else None,
                        meta={"cls_removed": True, "grid_kind": "patch_tokens", "gsd_m": info["gsd"],
                              "wavelengths_um": list(self.checkpoint.extra["wavelengths_um"]),
                              **({"pooled_kind": "cls_token", "pooled_uses_cls": True,
                                  "pooled_any_pooling": True} if cls else {})})


__all__ = ["ClayEmbedder", "CATALOG", "CLAY_S2_BANDS", "CLAY_S2_MEAN", "CLAY_S2_STD",
           "CLAY_S2_WAVELENGTHS_UM", "time_encoding", "latlon_encoding"]
