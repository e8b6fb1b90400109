"""``terramind``: TerraMind v1 encoder (IBM / ESA), raw Sentinel-2 L2A, L1C or Sentinel-1 input.

Jakubik et al., "TerraMind: Large-Scale Generative Multimodality for Earth Observation",
arXiv:2504.11171. The only installable implementation is terratorch's
(``terratorch.models.backbones.terramind``, Apache-2.0), whose package needs
torchgeo >= 0.9 (Python >= 3.12) and a training stack. The encoder is therefore written
here with the module names of terratorch's ``TerraMindViT`` (``encoder_embeddings.<modality>``
with ``proj`` / ``pos_emb`` / ``mod_emb``, ``encoder.<i>`` blocks with ``norm1 attn.qkv
attn.proj norm2 mlp.fc1 mlp.fc2 mlp.fc3``, ``encoder_norm``), so the published checkpoints
load unchanged; tests compare it with terratorch's own ``TerraMindViT`` on the same file.

Checkpoints: Hugging Face ``ibm-esa-geospatial/TerraMind-1.0-{tiny,small,base,large}``,
``TerraMind_v1_{size}.pt`` (the whole any-to-any model; only the raw-input embeddings
and the encoder are read). Shapes: terratorch ``terramind_v1_*`` (no biases in qkv,
projection and MLP; SwiGLU MLP of 2/3 x 4 x dim; LayerNorm eps 1e-6 without bias).

Pipeline, step by step (terratorch ``terramind_register.py`` ``PRETRAINED_BANDS`` and
``v1_pretraining_mean`` / ``v1_pretraining_std``; ``modality_info.py``):

1. **Input**, by modality: ``s2_l2a`` (default) — Sentinel-2 L2A DN, 12 bands
   ``B1 B2 B3 B4 B5 B6 B7 B8 B8A B9 B11 B12`` (TerraMind's ``COASTAL_AEROSOL`` …
   ``SWIR_2``, ``untok_sen2l2a@224``); ``s2`` — Sentinel-2 L1C DN, all 13 bands
   (``untok_sen2l1c@224``); ``s1`` — Sentinel-1 GRD ``VV VH`` backscatter in dB
   (``untok_sen1grd@224``). 10 m.
2. **Standardise** per band with the v1 pretraining mean/std of that modality; nodata
   pixels (the provider's mask, non-finite, or every band at ``sensor.fill_value``) get
   that modality's pretraining mean (0 after standardising), recorded in
   ``meta["nodata_fill"]``.
3. **Resize** to 224 x 224 (bilinear, antialiased), the pretraining size. A rectangular
   ``BBox`` is fed as its enclosing square of real imagery (nothing stretched); the grid
   is cropped back to the box and pooled vectors pool the box's cells.
4. **Encoder**: patch 16 tokens + fixed 2-D sin-cos position + modality embedding, the
   transformer blocks, ``encoder_norm``. **Pooled**: mean or max of the 196 tokens;
   **grid**: the tokens as ``(dim, 14, 14)`` (no CLS token exists).
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..errors import ModelError
from ..sensors import S1_DB, S2_L1C, S2_L2A, canonical_band
from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder, tokens_to_grid
from .spectral import valid_mask

#: terratorch PRETRAINED_BANDS names -> Earth Engine band names
TERRAMIND_BAND_NAMES = {
    "COASTAL_AEROSOL": "B1", "BLUE": "B2", "GREEN": "B3", "RED": "B4", "RED_EDGE_1": "B5",
    "RED_EDGE_2": "B6", "RED_EDGE_3": "B7", "NIR_BROAD": "B8", "NIR_NARROW": "B8A",
    "WATER_VAPOR": "B9", "CIRRUS": "B10", "SWIR_1": "B11", "SWIR_2": "B12", "VV": "VV", "VH": "VH",
}
#: per modality: terratorch key, bands (PRETRAINED_BANDS order), v1_pretraining_mean / std
MODALITIES: Dict[str, Dict[str, Any]] = {
    "s2_l2a": {
        "key": "untok_sen2l2a@224", "collection": S2_L2A, "units": "DN (reflectance x 10000)",
        "bands": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"),
        "mean": (1390.458, 1503.317, 1718.197, 1853.91, 2199.1, 2779.975, 2987.011, 3083.234,
                 3132.22, 3162.988, 2424.884, 1857.648),
        "std": (2106.761, 2141.107, 2038.973, 2134.138, 2085.321, 1889.926, 1820.257, 1871.918,
                1753.829, 1797.379, 1434.261, 1334.311)},
    "s2": {
        "key": "untok_sen2l1c@224", "collection": S2_L1C, "units": "DN (reflectance x 10000)",
        "bands": ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"),
        "mean": (2357.089, 2137.385, 2018.788, 2082.986, 2295.651, 2854.537, 3122.849, 3040.56,
                 3306.481, 1473.847, 506.07, 2472.825, 1838.929),
        "std": (1624.683, 1675.806, 1557.708, 1833.702, 1823.738, 1733.977, 1732.131, 1679.732,
                1727.26, 1024.687, 442.165, 1331.411, 1160.419)},
    "s1": {
        "key": "untok_sen1grd@224", "collection": S1_DB, "units": "backscatter dB",
        "bands": ("VV", "VH"), "mean": (-12.599, -20.293), "std": (5.195, 5.890)},
}
_NORM_SOURCE = ("terratorch models/backbones/terramind/model/terramind_register.py "
                "v1_pretraining_mean / v1_pretraining_std (TerraMind v1 pretraining statistics)")
_PAPER = "Jakubik et al., TerraMind: Large-Scale Generative Multimodality for EO, arXiv:2504.11171"

#: terratorch terramind_v1_{tiny,small,base,large}
SHAPES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}

CATALOG = W.catalog("terramind", default="base")
for _size, (_dim, _depth, _heads) in SHAPES.items():
    _repo = f"ibm-esa-geospatial/TerraMind-1.0-{_size}"
    _file = f"TerraMind_v1_{_size}.pt"
    CATALOG.add(W.Checkpoint(
        model="terramind", variant=_size, filename=_file,
        source=f"https://huggingface.co/{_repo}/blob/main/{_file}", hf_repo=_repo, hf_filename=_file,
        arch={"dim": _dim, "depth": _depth, "num_heads": _heads, "mlp_ratio": 4.0, "patch_size": 16,
              "img_size": 224},
        bands=MODALITIES["s2_l2a"]["bands"], image_size=224, licence="Apache-2.0", paper=_PAPER,
        mean=MODALITIES["s2_l2a"]["mean"], std=MODALITIES["s2_l2a"]["std"], norm_source=_NORM_SOURCE))


def sincos_posemb(h: int, w: int, dim: int):
    """TerraMind's fixed 2-D sin-cos table ``(1, h*w, dim)`` (MoCo-v3 style; its meshgrid
    puts the width index first, and token ``n`` takes row ``n`` of the table as is)."""
    import torch
    gw, gh = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="ij")
    om = 1.0 / (10000.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    ow = gw.reshape(-1)[:, None].float() * om[None]
    oh = gh.reshape(-1)[:, None].float() * om[None]
    return torch.cat([ow.sin(), ow.cos(), oh.sin(), oh.cos()], dim=1)[None]


def _encoder(arch: Dict[str, Any], modality_keys: Dict[str, int]):
    """Raw-input embeddings (one per modality) + the TerraMind encoder, terratorch names."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    dim, heads, p = arch["dim"], arch["num_heads"], arch["patch_size"]
    grid = arch["img_size"] // p

    class LayerNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.register_buffer("bias", torch.zeros(dim))

        def forward(self, x):
            return F.layer_norm(x, (dim,), self.weight, self.bias, eps=1e-6)

    class Embedding(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.register_buffer("pos_emb", sincos_posemb(grid, grid, dim))
            self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim))
            self.proj = nn.Linear(channels * p * p, dim, bias=False)

        def forward(self, x):
            b, c, hh, ww = x.shape
            patches = x.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 3, 5, 1)
            return self.proj(patches.reshape(b, (hh // p) * (ww // p), p * p * c)) + self.pos_emb + self.mod_emb

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, dim * 3, bias=False)
            self.proj = nn.Linear(dim, dim, bias=False)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4).unbind(0)
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, dim))

    class SwiGLU(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = int(2 * int(dim * arch["mlp_ratio"]) / 3)
            self.fc1 = nn.Linear(dim, hidden, bias=False)
            self.fc2 = nn.Linear(hidden, dim, bias=False)
            self.fc3 = nn.Linear(dim, hidden, bias=False)

        def forward(self, x):
            return self.fc2(F.silu(self.fc1(x)) * self.fc3(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn, self.norm2, self.mlp = LayerNorm(), Attention(), LayerNorm(), SwiGLU()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class TerraMindEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_size = p
            self.encoder_embeddings = nn.ModuleDict({k: Embedding(c) for k, c in modality_keys.items()})
            self.encoder = nn.ModuleList([Block() for _ in range(arch["depth"])])
            self.encoder_norm = LayerNorm()

        def forward(self, x, key: str):
            t = self.encoder_embeddings[key](x)
            for block in self.encoder:
                t = block(t)
            return self.encoder_norm(t)

    return TerraMindEncoder()


class TerraMindEmbedder(PretrainedEmbedder):
    """TerraMind v1 encoder on one raw modality: Sentinel-2 L2A (default), L1C or Sentinel-1 GRD."""

    name = "terramind"
    catalog = CATALOG
    requires = ("torch",)
    extra = "models-terramind"
    collection = S2_L2A
    summary = ("TerraMind v1 (IBM/ESA) any-to-any model's encoder on raw Sentinel-2 L2A, "
               "Sentinel-2 L1C or Sentinel-1 GRD (modality=).")

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": "per-band (x - mean) / std with TerraMind v1 pretraining statistics; resize to 224",
            "modalities": ["s2_l2a", "s2", "s1"],
            "inputs_by_modality": {m: {"collection": v["collection"], "bands": list(v["bands"]),
                                       "units": v["units"], "terramind_input": v["key"]}
                                   for m, v in MODALITIES.items()},
            "outputs": {"pooled": "mean/max of the 196 encoder tokens",
                        "grid": "encoder tokens (dim, 14, 14)"},
            "cls_handling": "no CLS token",
            "nodata": "non-finite or fill_value pixels -> 0 after standardising (the band mean)",
        }

    def sensor_for_modality(self, modality: str) -> SensorSpec:
        m = MODALITIES.get(modality if modality != "s2_l2a" else "s2_l2a")
        if m is None:
            raise ModelError(f"model 'terramind' has no modality {modality!r}; choose one of {list(MODALITIES)}")
        return SensorSpec(collection=m["collection"], bands=m["bands"], scale_m=10, cloudy_pct=30,
                          composite="median", modality=None if modality == "s2_l2a" else modality)

    def _modality(self, sensor: SensorSpec) -> str:
        if sensor.modality in MODALITIES:
            return sensor.modality
        coll = sensor.collection.upper()
        if "S1" in coll.split("/")[-1][:3]:
            return "s1"
        if coll.rstrip("/").endswith(("S2", "S2_HARMONIZED")) or "L1C" in coll:
            return "s2"
        return "s2_l2a"

    def input_bands(self, sensor: SensorSpec) -> List[int]:
        want = MODALITIES[self._modality(sensor)]["bands"]
        pos = {canonical_band(b): i for i, b in enumerate(sensor.bands)}
        missing = [b for b in want if b not in pos]
        if missing:
            raise ModelError(f"model 'terramind' ({self._modality(sensor)}) reads bands {list(want)} but the "
                             f"sensor lacks {missing} (it has {list(sensor.bands)})")
        return [pos[b] for b in want]

    def _build(self, ckpt: W.Checkpoint):
        return _encoder(dict(ckpt.arch), {v["key"]: len(v["bands"]) for v in MODALITIES.values()})

    def _load_into(self, net, state: Dict[str, Any]) -> None:
        own = net.state_dict()
        keep = {k: v for k, v in state.items() if k in own}
        res = net.load_state_dict(keep, strict=False)
        # a checkpoint may lack a modality's embedding; only those of the encoder are required
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, [],
                     allow_missing=(r"encoder_embeddings\..*", r".*\.bias", r".*pos_emb"))
        if not any(k.startswith("encoder.") for k in keep):
            raise ModelError(f"checkpoint {self.weights_path} holds no TerraMind encoder blocks")
        self._loaded_modalities = sorted({k.split(".")[1] for k in keep if k.startswith("encoder_embeddings.")
                                          and k.endswith(".proj.weight")})

    def _nodata_fill(self, sensor: SensorSpec):
        m = MODALITIES[self._modality(sensor)]
        return list(m["mean"]), f"{m['key']} pretraining mean, 0 after standardising ({_NORM_SOURCE})"

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        import torch.nn.functional as F
        mod = self._modality(sensor)
        m = MODALITIES[mod]
        size = self.checkpoint.image_size
        mean = torch.tensor(m["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(m["std"]).view(1, -1, 1, 1)
        xs = []
        for a in arrays:
            keep = torch.from_numpy(valid_mask(a, sensor.fill_value))
            x = torch.nan_to_num((torch.from_numpy(a)[None] - mean) / std, nan=0.0, posinf=0.0, neginf=0.0) * keep
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            xs.append(x[0])
        return torch.stack(xs), {"image_size": size, "key": m["key"], "modality": mod}

    def _forward(self, net, x, info) -> Features:
        if info["key"] not in getattr(self, "_loaded_modalities", [info["key"]]):
            raise ModelError(f"checkpoint {self.weights_path} has no {info['key']} embedding for modality "
                             f"{info['modality']!r}")
        tok = net(x, info["key"])
        side = x.shape[-1] // net.patch_size
        return Features(grid=tokens_to_grid(tok, side, side),
                        meta={"cls_removed": True, "grid_kind": "encoder_tokens", "modality": info["modality"],
                              "terramind_input": info["key"]})

    def _results(self, feats, chunk, sensor, output, info, contexts=()):
        res = super()._results(feats, chunk, sensor, output, info, contexts)
        m = MODALITIES[info["modality"]]
        for r in res:
            r.meta["model_bands"] = list(m["bands"])
            r.meta["normalization"] = {"mean": list(m["mean"]), "std": list(m["std"]), "source": _NORM_SOURCE}
        return res


__all__ = ["TerraMindEmbedder", "CATALOG", "MODALITIES", "TERRAMIND_BAND_NAMES", "SHAPES", "sincos_posemb"]
