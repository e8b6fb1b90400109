"""``prithvi``: Prithvi-EO-2.0 (300M / 600M, with or without time-location embeddings).

Szwarcman et al., "Prithvi-EO-2.0: A Versatile Multi-Temporal Foundation Model for
Earth Observation Applications", arXiv:2412.02732. Checkpoints: Hugging Face
``ibm-nasa-geospatial/Prithvi-EO-2.0-{300M,300M-TL,600M,600M-TL}`` (``Prithvi_EO_V2_*.pt``,
the full masked autoencoder in the ``encoder.*`` / ``decoder.*`` layout of the official
``prithvi_mae.py``). The only pip library that maintains that code is terratorch, a
heavy training framework; the encoder is therefore assembled here from timm pieces
(``timm.models.vision_transformer.Block``) with module names equal to the official
``PrithviViT`` so the published files load unchanged (decoder tensors are ignored).

Pipeline, step by step (as the official ``inference.py``):

1. **Input**: the six HLS bands ``BLUE GREEN RED NIR_NARROW SWIR_1 SWIR_2``, i.e.
   Sentinel-2 L2A ``B2 B3 B4 B8A B11 B12`` DN (reflectance x 10000) at 30 m; one frame
   ``(C, H, W)`` or several ``(T, C, H, W)`` (pretraining used T = 4).
2. **Standardise** each band with the Prithvi-EO-2.0 means/stds (HLS DN; the
   checkpoints' ``config.json``, also terratorch ``PRITHVI_V2_MEAN/STD``). Masked
   pixels take the band mean (0 after standardisation), as the official
   ``inference.py`` sets nodata to ``NO_DATA_FLOAT = 0.0001`` after standardising.
3. **Resize** each frame to 224 x 224 (bilinear, antialiased) when it is not already.
4. **Encoder**: 3-D patch embedding (1 x 16 x 16, or 1 x 14 x 14 for 600M), 3-D sin-cos
   position embedding for the actual T x h x w grid; TL variants add the year /
   day-of-year and latitude / longitude encodings when the patch's ``dates`` and
   ``center`` are known (given through ``context``), and skip them otherwise, as the
   official forward does with ``None`` coordinates.
5. **Grid**: final normalised patch tokens averaged over frames (14 x 14, or 16 x 16
   for 600M); **pooled**: mean or max over every frame's patch tokens; CLS dropped.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec
from . import weights as W
from .base import EmbedResult
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from ..sensors import S2_L2A

#: HLS bands in Prithvi order and their Sentinel-2 (HLS S30) equivalents.
HLS_BANDS = ("BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2")
PRITHVI_S2_BANDS = ("B2", "B3", "B4", "B8A", "B11", "B12")
#: Prithvi-EO-2.0 config.json "mean"/"std" (HLS DN), = terratorch PRITHVI_V2_MEAN/STD.
PRITHVI_V2_MEAN = (1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0)
PRITHVI_V2_STD = (2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0)
_NORM_SOURCE = ("Prithvi-EO-2.0 config.json (huggingface.co/ibm-nasa-geospatial/Prithvi-EO-2.0-300M), "
                "= terratorch.models.backbones.prithvi_vit PRITHVI_V2_MEAN/STD")
_PAPER = "Szwarcman et al., Prithvi-EO-2.0, arXiv:2412.02732"

CATALOG = W.catalog("prithvi", default="300m")


def _record(variant: str, repo: str, fname: str, dims: Dict[str, Any], tl: bool,
            approx_mb: float) -> W.Checkpoint:
    return W.Checkpoint(
        model="prithvi", variant=variant, filename=fname,
        source=f"https://huggingface.co/ibm-nasa-geospatial/{repo}/blob/main/{fname}",
        hf_repo=f"ibm-nasa-geospatial/{repo}", hf_filename=fname,
        arch={"img_size": 224, "in_chans": 6, "mlp_ratio": 4.0, **dims,
              "coords_encoding": ["time", "location"] if tl else [], "coords_scale_learn": tl},
        bands=PRITHVI_S2_BANDS, image_size=224, licence="Apache-2.0", paper=_PAPER,
        approx_size_mb=approx_mb, mean=PRITHVI_V2_MEAN, std=PRITHVI_V2_STD, norm_source=_NORM_SOURCE,
        extra={"hls_bands": HLS_BANDS, "pretrain_frames": 4})


# Shapes of the official configs (terratorch prithvi_cfgs: prithvi_eo_v2_300[_tl] / _600[_tl]).
_300 = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "patch_size": (1, 16, 16)}
_600 = {"embed_dim": 1280, "depth": 32, "num_heads": 16, "patch_size": (1, 14, 14)}
CATALOG.add(_record("300m", "Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt", _300, False, 1330))
CATALOG.add(_record("300m_tl", "Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt", _300, True, 1330))
CATALOG.add(_record("600m", "Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt", _600, False, 2640))
CATALOG.add(_record("600m_tl", "Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt", _600, True, 2640))


def sincos_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """MAE 1-D sin-cos embedding ``(M, embed_dim)`` of positions ``pos``."""
    omega = np.arange(embed_dim // 2, dtype=float) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(float), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_3d(embed_dim: int, t: int, h: int, w: int) -> np.ndarray:
    """Prithvi's 3-D sin-cos position embedding ``(t*h*w, D)``: 6/16 of D for w, 6/16 for h,
    4/16 for t, token order (t, h, w)."""
    if embed_dim % 16:
        raise ModelError(f"Prithvi embed_dim must be a multiple of 16, got {embed_dim}")
    dw = dh = embed_dim // 16 * 6
    dt = embed_dim // 16 * 4
    ew = np.tile(sincos_1d(dw, np.arange(w)), (t * h, 1))
    eh = np.tile(np.repeat(sincos_1d(dh, np.arange(h)), w, axis=0), (t, 1))
    et = np.repeat(sincos_1d(dt, np.arange(t)), h * w, axis=0)
    return np.concatenate([ew, eh, et], axis=1)


def _torch_sincos(embed_dim: int, pos):
    import torch
    omega = torch.arange(embed_dim // 2, dtype=pos.dtype, device=pos.device) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = torch.einsum("m,d->md", pos.reshape(-1), omega)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def _encoder(arch: Dict[str, Any]):
    """The Prithvi encoder from timm blocks, module names as the official ``PrithviViT``."""
    import torch
    import torch.nn as nn
    from timm.models.vision_transformer import Block

    class CoordEncoder(nn.Module):
        """Sin-cos encoding of two coordinates (year/day or lat/lon) times a scale."""

        def __init__(self, dim: int, learn: bool):
            super().__init__()
            self.first, self.second = dim // 2, dim - dim // 2
            if learn:
                self.scale = nn.Parameter(torch.full((1,), 0.1))
            else:
                self.register_buffer("scale", torch.ones(1))

        def forward(self, coords):  # (..., 2) -> (..., dim)
            a = _torch_sincos(self.first, coords[..., 0].flatten()).reshape(*coords.shape[:-1], -1)
            b = _torch_sincos(self.second, coords[..., 1].flatten()).reshape(*coords.shape[:-1], -1)
            return self.scale * torch.cat([a, b], dim=-1)

    class PatchEmbed3D(nn.Module):
        def __init__(self):
            super().__init__()
            ps = tuple(arch["patch_size"])
            self.patch_size = ps
            self.proj = nn.Conv3d(arch["in_chans"], arch["embed_dim"], kernel_size=ps, stride=ps)

        def forward(self, x):  # (B, C, T, H, W) -> (B, T*h*w, D)
            return self.proj(x).flatten(2).transpose(1, 2)

    class PrithviEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            d = arch["embed_dim"]
            self.embed_dim = d
            self.patch_embed = PatchEmbed3D()
            coords = arch.get("coords_encoding") or []
            learn = bool(arch.get("coords_scale_learn"))
            if "time" in coords:
                self.temporal_embed_enc = CoordEncoder(d, learn)
            if "location" in coords:
                self.location_embed_enc = CoordEncoder(d, learn)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
            self.blocks = nn.ModuleList([Block(d, arch["num_heads"], arch["mlp_ratio"], qkv_bias=True,
                                               norm_layer=nn.LayerNorm) for _ in range(arch["depth"])])
            self.norm = nn.LayerNorm(d)
            self._pos: Dict[tuple, Any] = {}

        def pos_embed(self, t: int, h: int, w: int, device, dtype):
            key = (t, h, w, str(device), dtype)
            pe = self._pos.get(key)
            if pe is None:
                pe = torch.from_numpy(sincos_3d(self.embed_dim, t, h, w)).float()[None].to(device, dtype)
                self._pos[key] = pe
            return pe

        def forward(self, x, temporal_coords=None, location_coords=None):
            """``(B, C, T, H, W)`` -> ``(B, 1 + T*h*w, D)`` normalised tokens."""
            _, _, t, hh, ww = x.shape
            ps = self.patch_embed.patch_size
            h, w = hh // ps[1], ww // ps[2]
            tok = self.patch_embed(x) + self.pos_embed(t // ps[0], h, w, x.device, x.dtype)
            if temporal_coords is not None and hasattr(self, "temporal_embed_enc"):
                per_frame = tok.shape[1] // t
                tok = tok + torch.repeat_interleave(self.temporal_embed_enc(temporal_coords), per_frame, dim=1)
            if location_coords is not None and hasattr(self, "location_embed_enc"):
                tok = tok + self.location_embed_enc(location_coords)[:, None, :]
            # the CLS position embedding is zero in the official code
            tok = torch.cat((self.cls_token.expand(tok.shape[0], -1, -1), tok), dim=1)
            for block in self.blocks:
                tok = block(tok)
            return self.norm(tok)

    return PrithviEncoder()


def _doy(d: str) -> tuple:
    day = date.fromisoformat(str(d)[:10])
    return float(day.year), float(day.timetuple().tm_yday)  # 1-based, as HLS "YYYYDDD" names


class PrithviEmbedder(PretrainedEmbedder):
    """Prithvi-EO-2.0 encoder on HLS-equivalent Sentinel-2 bands, one or several frames."""

    name = "prithvi"
    catalog = CATALOG
    requires = ("torch", "torchvision", "timm")
    collection = S2_L2A
    default_scale_m = 30
    input_ndim = (3, 4)
    summary = ("Prithvi-EO-2.0 (NASA/IBM) masked-autoencoder encoder, 6 HLS bands, single or "
               "multi-frame; TL variants use date and location.")

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": "per-band (DN - mean) / std with Prithvi-EO-2.0 HLS statistics; resize to 224",
            "hls_band_mapping": dict(zip(HLS_BANDS, PRITHVI_S2_BANDS)),
            "frames": "input (C, H, W) for one frame or (T, C, H, W) for T frames (pretrained with T=4)",
            "context": "TL variants: context={'center': (lon, lat), 'dates': [ISO date per frame]}",
            "outputs": {"pooled": "mean/max over all frames' patch tokens",
                        "grid": "patch tokens averaged over frames (embed_dim, 14, 14; 16 x 16 for 600M)"},
            "cls_handling": "CLS token dropped from pooled and grid",
        }

    def _build(self, ckpt: W.Checkpoint):
        return _encoder(dict(ckpt.arch))

    def _nodata_fill(self, sensor: SensorSpec):
        return (list(self.checkpoint.mean),
                "Prithvi-EO-2.0 band mean (standardised ~0: official inference.py replaces nodata "
                "with NO_DATA_FLOAT = 0.0001 after standardising)")

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not enc:  # an encoder-only export (no "encoder." prefix)
            enc = {k: v for k, v in state.items() if not k.startswith("decoder")}
        # Position embeddings are fixed sin-cos and recomputed for each input grid.
        enc.pop("pos_embed", None)
        res = net.load_state_dict(enc, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys,
                     allow_unexpected=(r"mask_token",))

    def embed_batch(self, inputs: Sequence[np.ndarray], *, sensor: SensorSpec, output: OutputSpec,
                    contexts: Optional[Sequence[Optional[dict]]] = None) -> List[EmbedResult]:
        """Patches with different frame counts run in separate forward passes."""
        inputs = list(inputs)
        contexts = list(contexts) if contexts is not None else [None] * len(inputs)
        frames = [1 if np.ndim(x) == 3 else int(np.shape(x)[0]) for x in inputs]
        out: List[Optional[EmbedResult]] = [None] * len(inputs)
        for t in sorted(set(frames)):
            idx = [i for i, f in enumerate(frames) if f == t]
            res = super().embed_batch([inputs[i] for i in idx], sensor=sensor, output=output,
                                      contexts=[contexts[i] for i in idx])
            for i, r in zip(idx, res):
                out[i] = r
        return out  # type: ignore[return-value]

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        import torch.nn.functional as F
        ck = self.checkpoint
        size = ck.image_size
        mean = torch.tensor(ck.mean).view(1, -1, 1, 1)
        std = torch.tensor(ck.std).view(1, -1, 1, 1)
        xs = []
        for a in arrays:
            x = torch.from_numpy(a if a.ndim == 4 else a[None])  # (T, C, H, W)
            x = torch.nan_to_num((x - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            xs.append(x.permute(1, 0, 2, 3))  # (C, T, H, W)
        t = xs[0].shape[1]
        tl = bool(ck.arch.get("coords_encoding"))
        use_time = tl and all(len(c.get("dates") or []) == t for c in contexts)
        use_loc = tl and all(c.get("center") is not None for c in contexts)
        temporal = torch.tensor([[_doy(d) for d in c["dates"]] for c in contexts]) if use_time else None
        location = torch.tensor([[float(c["center"][1]), float(c["center"][0])] for c in contexts]) \
            if use_loc else None
        info = {"image_size": size, "frames": t, "temporal": temporal, "location": location,
                "coords_used": {"time": use_time, "location": use_loc}}
        return torch.stack(xs), info

    def _forward(self, net, x, info) -> Features:
        temporal = info["temporal"].to(x.device) if info["temporal"] is not None else None
        location = info["location"].to(x.device) if info["location"] is not None else None
        tok = net(x, temporal, location)[:, 1:, :]
        t = info["frames"]
        ps = net.patch_embed.patch_size
        h, w = x.shape[-2] // ps[1], x.shape[-1] // ps[2]
        per_frame = tok.reshape(tok.shape[0], t, h * w, tok.shape[-1])
        grid = tokens_to_grid(per_frame.mean(dim=1), h, w)
        return Features(grid=grid, tokens=tok,
                        meta={"cls_removed": True, "frames": t, "coords_used": info["coords_used"],
                              "grid_kind": "patch_tokens_mean_over_frames" if t > 1 else "patch_tokens",
                              "grid_reduce": "mean_over_frames" if t > 1 else "none"})


__all__ = ["PrithviEmbedder", "CATALOG", "PRITHVI_S2_BANDS", "HLS_BANDS", "PRITHVI_V2_MEAN",
           "PRITHVI_V2_STD", "sincos_3d"]
