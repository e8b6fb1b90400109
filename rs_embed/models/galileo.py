"""``galileo``: Galileo (NASA Harvest) encoder on Sentinel-2 (or Sentinel-1) time series.

Tseng et al., "Galileo: Learning Global & Local Features of Many Remote Sensing
Modalities", ICML 2025, arXiv:2502.09356 (github.com/nasaharvest/galileo). The official
code is one file, ``single_file_galileo.py``, published on GitHub only; the copy that is on
PyPI ships inside Ai2's ``olmoearth-pretrain`` (``evals/models/galileo``), tied to that
package's training stack. The encoder is therefore written here with the module names of
the official ``Encoder`` (``space_time_embed.<group>.proj``, ``space_embed``, ``time_embed``,
``static_embed``, ``blocks.<i>`` with separate ``q k v`` projections, ``norm``, the frozen
``pos_embed`` / ``month_embed`` tables and the four ``*_channel_embed``), so the published
``encoder.pt`` loads unchanged; tests run the PyPI copy's ``Encoder`` on the same weights.

Checkpoints: Hugging Face ``nasaharvest/galileo``, ``models/{nano,tiny,base}/`` holding
``config.json`` (``{"model": {"encoder": {...}}}``) and ``encoder.pt``.

Pipeline, step by step (``construct_galileo_input`` and ``Normalizer`` of the official
code, ``config/normalization.json``):

1. **Input**: Sentinel-2 L2A DN, the 10 bands ``B2 B3 B4 B5 B6 B7 B8 B8A B11 B12``
   (groups ``S2_RGB``, ``S2_Red_Edge``, ``S2_NIR_10m``, ``S2_NIR_20m``, ``S2_SWIR``), or with
   ``modality="s1"`` Sentinel-1 ``VV VH`` in dB (group ``S1``); one frame ``(C, H, W)`` or a
   time series ``(T, C, H, W)`` (export: ``frames`` composites over the window). The
   groups not supplied (the other sensor, NDVI, ERA5, TerraClimate, VIIRS, SRTM,
   Dynamic World, WorldCereal, LandScan) are masked, as ``construct_galileo_input`` does.
2. **Normalise** the space-time bands as the official ``Normalizer(std=True)``:
   ``(x - (mean - 2 std)) / (4 std)`` with the pretraining statistics of
   ``config/normalization.json`` (key ``"13"``).
3. **Location**: the patch centre as ``to_cartesian(lat, lon)`` = ``(cos φ cos λ,
   cos φ sin λ, sin φ)`` in the static ``location`` group (shift 0, div 1); **months**:
   the month (0-11) of each frame's date, ``DEFAULT_MONTH`` 5 when unknown.
4. **Tokens**: ``patch_size`` (default 4, the FlexiViT kernel resized from the
   checkpoint's ``max_patch_size`` by the official pseudo-inverse rule) at 10 m; a frame
   with no valid pixel is masked, like a missing input (``construct_galileo_input``
   masks every input not supplied); other masked pixels get the band's pretraining
   mean (``meta["nodata_fill"]``). The input is centre-cropped to a square whose side
   is a multiple of ``patch_size`` (the official position encoding needs ``h == w``);
   the grid's georeferencing carries the crop. A rectangular ``BBox`` is fed as its
   enclosing square; the grid is cropped back to the box and pooled vectors are
   ``average_tokens`` over the box's cells (and the unmasked static tokens).
5. **Pooled**: the official ``average_tokens`` (mean, or max) over every unmasked token;
   **grid**: ``apply_mask_and_average_tokens_per_patch`` — per spatial patch, the mean of
   its space-time tokens and the unmasked time/static tokens, ``(D, H/p, W/p)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from ..errors import ModelError
from ..sensors import S1_DB, S2_L2A, canonical_band
from ..specs import SensorSpec
from . import weights as W
from .pretrained import Features, PretrainedEmbedder
from .spectral import valid_mask

#: official band lists (single_file_galileo.py), Earth Engine names
S1_BANDS = ("VV", "VH")
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
SPACE_TIME_BANDS = S1_BANDS + S2_BANDS + ("NDVI",)
SPACE_TIME_GROUPS = {"S1": ("VV", "VH"), "S2_RGB": ("B2", "B3", "B4"), "S2_Red_Edge": ("B5", "B6", "B7"),
                     "S2_NIR_10m": ("B8",), "S2_NIR_20m": ("B8A",), "S2_SWIR": ("B11", "B12"),
                     "NDVI": ("NDVI",)}
SPACE_GROUPS = {"SRTM": 2, "DW": 9, "WC": 5}
TIME_GROUPS = {"ERA5": 2, "TC": 3, "VIIRS": 1}
STATIC_GROUPS = {"LS": 1, "location": 3, "DW_static": 9, "WC_static": 5}
#: config/normalization.json "13" (space-time bands, SPACE_TIME_BANDS order)
ST_MEAN = (-11.728724389184965, -18.85558188024017, 1395.3408730676722, 1338.4026921784578,
           1343.09883810357, 1543.8607982512297, 2186.2022069512263, 2525.0932853316694,
           2410.3377187373408, 2750.2854646886753, 2234.911100061487, 1474.5311266077113,
           0.2892116502999044)
ST_STD = (4.887145774840316, 5.730270320384293, 917.7041440370853, 913.2988423581528,
          1092.678723527555, 1047.2206083460424, 1048.0101611156767, 1143.6903026819996,
          1098.979177731649, 1204.472755085893, 1145.9774063078878, 980.2429840007796,
          0.2720939024500081)
STD_MULTIPLIER = 2.0
DEFAULT_MONTH = 5
BASE_GSD = 10
_NORM_SOURCE = ("github.com/nasaharvest/galileo config/normalization.json (key 13), "
                "Normalizer(std=True): (x - (mean - 2 std)) / (4 std)")
_PAPER = ("Tseng et al., Galileo: Learning Global & Local Features of Many Remote Sensing "
          "Modalities, ICML 2025, arXiv:2502.09356")

CATALOG = W.catalog("galileo", default="base")
for _size, _mb in (("nano", 4), ("tiny", 22), ("base", 340)):
    CATALOG.add(W.Checkpoint(
        model="galileo", variant=_size, filename=f"galileo-{_size}/encoder.pt",
        source=f"https://huggingface.co/nasaharvest/galileo/tree/main/models/{_size}",
        hf_repo="nasaharvest/galileo", hf_filename=f"models/{_size}/encoder.pt",
        arch={"config": "config.json", "size": _size}, bands=S2_BANDS, image_size=64,
        licence="MIT", paper=_PAPER, approx_size_mb=_mb, mean=ST_MEAN[2:12], std=ST_STD[2:12],
        norm_source=_NORM_SOURCE))


def to_cartesian(lat: float, lon: float) -> List[float]:
    """The official ``to_cartesian``: a point on the unit sphere."""
    la, lo = math.radians(lat), math.radians(lon)
    return [math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)]


def _encoder(cfg: Dict[str, Any]):
    """The Galileo encoder, official module names; forward on the supplied tokens only."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    d = int(cfg.get("embedding_size", 128))
    q = int(d * 0.25)
    heads, depth = int(cfg.get("num_heads", 8)), int(cfg.get("depth", 2))
    mlp_ratio = float(cfg.get("mlp_ratio", 2))
    max_seq = int(cfg.get("max_sequence_length", 24))
    max_patch = int(cfg.get("max_patch_size", 8))

    def sincos_1d(dim, pos):
        # official get_1d_sincos_pos_embed_from_grid_torch (its omega = i / dim / 2)
        omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float32) / dim / 2.0)
        out = pos.reshape(-1).float()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    def month_table(dim):
        ang = torch.arange(0, 13) / (12 / (2 * np.pi))
        sin = torch.sin(ang)[:, None].expand(-1, dim // 2)
        cos = torch.cos(ang)[:, None].expand(-1, dim // 2)
        return torch.cat([sin[:-1], cos[:-1]], dim=-1)

    class FlexiPatchEmbed(nn.Module):
        def __init__(self, chans):
            super().__init__()
            self.proj = nn.Conv2d(chans, d, kernel_size=max_patch, stride=max_patch)
            self._pinv: Dict[int, Any] = {}

        def kernel(self, p):
            if p == max_patch:
                return self.proj.weight
            if p not in self._pinv:  # official resize_patch_embed: pinv of the bicubic resize matrix
                basis = torch.eye(max_patch * max_patch).reshape(-1, 1, max_patch, max_patch)
                mat = F.interpolate(basis, (p, p), mode="bicubic", antialias=True).reshape(basis.shape[0], -1)
                self._pinv[p] = torch.linalg.pinv(mat)
            w = self.proj.weight
            flat = w.reshape(w.shape[0] * w.shape[1], -1) @ self._pinv[p].T.to(w)
            return flat.reshape(w.shape[0], w.shape[1], p, p)

        def forward(self, x, p):  # (N, C, H, W) -> (N, h, w, D)
            return F.conv2d(x, self.kernel(p), bias=self.proj.bias, stride=p).permute(0, 2, 3, 1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(d, d, bias=True) for _ in range(3))
            self.proj = nn.Linear(d, d)

        def forward(self, x):
            b, n, _ = x.shape
            sh = lambda t: t.reshape(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
            o = F.scaled_dot_product_attention(sh(self.q(x)), sh(self.k(x)), sh(self.v(x)))
            return self.proj(o.transpose(1, 2).reshape(b, n, d))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(d, int(d * mlp_ratio)), nn.GELU(), nn.Linear(int(d * mlp_ratio), d)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn, self.norm2, self.mlp = nn.LayerNorm(d), Attention(), nn.LayerNorm(d), Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class GalileoEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding_size = d
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.pos_embed = nn.Parameter(sincos_1d(q, torch.arange(max_seq)), requires_grad=False)
            self.month_embed = nn.Embedding.from_pretrained(month_table(q), freeze=True)
            self.s_t_channel_embed = nn.Parameter(torch.zeros(len(SPACE_TIME_GROUPS), q))
            self.sp_channel_embed = nn.Parameter(torch.zeros(len(SPACE_GROUPS), q))
            self.t_channel_embed = nn.Parameter(torch.zeros(len(TIME_GROUPS), q))
            self.st_channel_embed = nn.Parameter(torch.zeros(len(STATIC_GROUPS), q))
            self.space_time_embed = nn.ModuleDict({g: FlexiPatchEmbed(len(b)) for g, b in SPACE_TIME_GROUPS.items()})
            self.space_embed = nn.ModuleDict({g: FlexiPatchEmbed(n) for g, n in SPACE_GROUPS.items()})
            self.time_embed = nn.ModuleDict({g: nn.Linear(n, d) for g, n in TIME_GROUPS.items()})
            self.static_embed = nn.ModuleDict({g: nn.Linear(n, d) for g, n in STATIC_GROUPS.items()})
            self.norm = nn.LayerNorm(d)

        def spatial_embed(self, side, gsd_ratio):
            # official get_2d_sincos_pos_embed_with_resolution (h == w)
            g = torch.arange(side, dtype=torch.float32) * gsd_ratio
            gy, gx = torch.meshgrid(g, g, indexing="ij")
            return torch.cat([sincos_1d(q // 2, gx), sincos_1d(q // 2, gy)], dim=1).reshape(side, side, q)

        def forward(self, x, groups, months, frame_ok, location, p, input_res):
            """``x`` (B, T, C, H, W) normalised space-time bands in SPACE_TIME_BANDS order;
            ``groups`` the supplied group names; ``frame_ok`` (B, T) bool; ``location``
            (B, 3) or None. Returns (tokens (B, N, D), token mask (B, N), layout)."""
            b, t, _, hh, ww = x.shape
            side = hh // p
            idx = {n: i for i, n in enumerate(SPACE_TIME_GROUPS)}
            parts = []
            pos = self.spatial_embed(side, input_res * p / BASE_GSD).to(x)              # (h, w, q)
            for g in groups:
                chans = [SPACE_TIME_BANDS.index(c) for c in SPACE_TIME_GROUPS[g]]
                e = self.space_time_embed[g](x[:, :, chans].flatten(0, 1), p).reshape(b, t, side, side, d)
                enc = torch.cat([self.s_t_channel_embed[idx[g]].expand(b, t, side, side, q),
                                 self.pos_embed[:t][None, :, None, None].expand(b, t, side, side, q),
                                 self.month_embed(months)[:, :, None, None].expand(b, t, side, side, q),
                                 pos[None, None].expand(b, t, side, side, q)], dim=-1)
                parts.append((e + enc).permute(0, 2, 3, 1, 4))                          # (B, h, w, T, D)
            st = torch.stack(parts, dim=4)                                               # (B, h, w, T, G, D)
            st_mask = (~frame_ok)[:, None, None, :, None].expand(b, side, side, t, len(groups))
            tokens, mask = [st.reshape(b, -1, d)], [st_mask.reshape(b, -1)]
            if location is not None:
                li = list(STATIC_GROUPS).index("location")
                enc = torch.cat([self.st_channel_embed[li].expand(b, q), torch.zeros(b, 3 * q).to(x)], dim=-1)
                tokens.append((self.static_embed["location"](location.to(x)) + enc)[:, None])
                mask.append(torch.zeros(b, 1, dtype=torch.bool, device=x.device))
            tok, m = torch.cat(tokens, 1), torch.cat(mask, 1)
            keep = ~m
            if bool(keep.all()):
                out = tok
                for blk in self.blocks:
                    out = blk(out)
            else:  # drop masked tokens per item, as the official remove_masked_tokens
                out = torch.zeros_like(tok)
                for i in range(b):
                    y = tok[i:i + 1, keep[i]]
                    for blk in self.blocks:
                        y = blk(y)
                    out[i, keep[i]] = y[0]
            return self.norm(out), m, (side, t, len(groups))

    return GalileoEncoder()


class GalileoEmbedder(PretrainedEmbedder):
    """Galileo nano / tiny / base encoder on Sentinel-2 (or Sentinel-1) frames."""

    name = "galileo"
    catalog = CATALOG
    requires = ("torch",)
    extra = "models-galileo"
    collection = S2_L2A
    input_ndim = (3, 4)
    batch_by_shape = True
    fills_nodata_itself = True  # empty frames are masked, not filled
    summary = ("Galileo (NASA Harvest) multi-modal, multi-temporal encoder: Sentinel-2 (or S1) "
               "time series with month and location conditioning.")

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {"patch_size": {"type": "int", "default": 4, "min": 1, "max": 8,
                               "help": "pixels per token side (FlexiViT; pretraining sampled 1-8)"},
                "frames": {"type": "int", "default": 12, "min": 1, "max": 24,
                           "help": "frames the time window is binned into"},
                "use_location": {"type": "bool", "default": True, "choices": [True, False],
                                 "help": "condition on the patch centre (static location group)"}}

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": "official Normalizer(std=True) with config/normalization.json; no resampling",
            "modalities": ["s2", "s2_l2a", "s1"],
            "band_groups": {g: list(b) for g, b in SPACE_TIME_GROUPS.items()},
            "context": "dates (months) and center (location as unit-sphere x, y, z)",
            "frames": "(C, H, W) or (T, C, H, W), T <= 24; export fetches `frames` composites",
            "outputs": {"pooled": "average_tokens: mean/max of every unmasked token",
                        "grid": "per-patch mean of its tokens (D, H/p, W/p)"},
            "cls_handling": "no CLS token",
            "nodata": "frames without valid pixels are masked; other nodata pixels -> the band mean",
        }

    @classmethod
    def _describe(cls) -> dict:
        d = super()._describe()
        d["temporal"] = {"mode": "range", "frames_default": 12}
        d["defaults"].update({"frames": 12, "patch_size": 4})
        return d

    def default_sensor(self) -> SensorSpec:
        return SensorSpec(collection=S2_L2A, bands=S2_BANDS, scale_m=10, composite="median",
                          frames=self.config["frames"])

    def sensor_for_modality(self, modality: str) -> SensorSpec:
        if modality == "s1":
            return SensorSpec(collection=S1_DB, bands=S1_BANDS, scale_m=10, composite="median", modality="s1",
                              frames=self.config["frames"])
        return self.default_sensor()

    @staticmethod
    def _modality(sensor: SensorSpec) -> str:
        return "s1" if sensor.modality == "s1" or "S1" in sensor.collection.upper().split("/")[-1][:2] else "s2"

    def input_bands(self, sensor: SensorSpec) -> List[int]:
        want = S1_BANDS if self._modality(sensor) == "s1" else S2_BANDS
        pos = {canonical_band(b): i for i, b in enumerate(sensor.bands)}
        missing = [b for b in want if b not in pos]
        if missing:
            raise ModelError(f"model 'galileo' reads bands {list(want)} but the sensor lacks {missing} "
                             f"(it has {list(sensor.bands)})")
        return [pos[b] for b in want]

    # ----------------------------------------------------------------- weights
    def __init__(self, *, device: str = "auto", **model_config: Any):
        super().__init__(device=device, **model_config)
        self.config_path = Path(self.weights_path).parent / "config.json"
        if not self.config_path.is_file():
            ck = self.checkpoint
            size = ck.arch["size"]
            if ck.hf_repo and not W.downloads_disabled():
                from huggingface_hub import hf_hub_download
                self.config_path = Path(hf_hub_download(ck.hf_repo, f"models/{size}/config.json"))
            else:
                raise ModelError(
                    f"checkpoint for model 'galileo' variant {ck.variant!r} lacks its config.json: it must sit "
                    f"beside {self.weights_path} (a few KB, models/{size}/config.json of {ck.hf_repo}, "
                    f"{ck.source}). Downloads are disabled; download both config.json and encoder.pt into one folder.")

    def _load_network(self):
        import torch
        wmeta = W.verify_checkpoint(self.checkpoint, self.weights_path)
        cfg = json.loads(self.config_path.read_text())["model"]["encoder"]
        net = _encoder(cfg)
        state = torch.load(str(self.weights_path), map_location="cpu", weights_only=True)
        state = {k.replace(".backbone", ""): v for k, v in state.items()}  # as the official load_from_folder
        res = net.load_state_dict(state, strict=False)
        W.check_keys(self.checkpoint, self.weights_path, res.missing_keys, res.unexpected_keys)
        net.eval().to(self.device)
        return net, {**wmeta, "config": str(self.config_path), "encoder_config": cfg}

    # --------------------------------------------------------------- inference
    def _nodata_fill(self, sensor: SensorSpec):
        names = S1_BANDS if self._modality(sensor) == "s1" else S2_BANDS
        return ([ST_MEAN[SPACE_TIME_BANDS.index(n)] for n in names],
                "frames without imagery masked like an input not supplied (official construct_galileo_input); "
                f"other masked pixels the band's pretraining mean ({_NORM_SOURCE})")

    def _square(self, h: int, w: int):
        p = int(self.config["patch_size"])
        side = min(h, w) - min(h, w) % p
        if side == 0:
            raise ModelError(f"model 'galileo' needs patches of at least {p} x {p} pixels, got {h} x {w}")
        return (h - side) // 2, (w - side) // 2, side

    def grid_footprint(self, input_hw):
        y0, x0, side = self._square(*input_hw)
        return (float(y0), float(x0), float(y0 + side), float(x0 + side))

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch
        p = int(self.config["patch_size"])
        x = np.stack([a if a.ndim == 4 else a[None] for a in arrays]).astype(np.float32)   # B T C H W
        b, t, c, h, w = x.shape
        y0, x0, side = self._square(h, w)
        x = x[..., y0:y0 + side, x0:x0 + side]   # square: the official position encoding needs h == w
        mod = self._modality(sensor)
        names = S1_BANDS if mod == "s1" else S2_BANDS
        full = np.zeros((b, t, len(SPACE_TIME_BANDS), side, side), np.float32)
        st_idx = [SPACE_TIME_BANDS.index(n) for n in names]
        mean = np.asarray(ST_MEAN, np.float32)[st_idx][:, None, None]
        std = np.asarray(ST_STD, np.float32)[st_idx][:, None, None]
        lo = mean - STD_MULTIPLIER * std
        valid = valid_mask(x, sensor.fill_value)                                     # B T H W
        normed = (np.nan_to_num(x) - lo) / (2 * STD_MULTIPLIER * std)
        full[:, :, st_idx] = np.where(valid[:, :, None], normed, ((mean - lo) / (2 * STD_MULTIPLIER * std)))
        frame_ok = valid.any(axis=(2, 3))
        if not frame_ok.any(axis=1).all():
            raise ModelError("model 'galileo' got a patch with no valid pixel in any frame")
        months = []
        for ctx in contexts:
            dates = list(ctx.get("dates") or [])
            months.append([int(str(d)[5:7]) - 1 for d in dates] if len(dates) == t else [DEFAULT_MONTH] * t)
        use_loc = bool(self.config["use_location"]) and all(ctx.get("center") is not None for ctx in contexts)
        loc = torch.tensor([to_cartesian(float(ctx["center"][1]), float(ctx["center"][0])) for ctx in contexts]) \
            if use_loc else None
        groups = ["S1"] if mod == "s1" else [g for g in SPACE_TIME_GROUPS if g.startswith("S2")]
        info = {"groups": groups, "months": torch.tensor(months, dtype=torch.long), "input_res": float(sensor.scale_m),
                "frame_ok": torch.from_numpy(frame_ok), "location": loc, "image_size": side,
                "per_item": [{"months": months[i], "frames_input": t, "frames_encoded": int(frame_ok[i].sum()),
                              "frames_missing": int(t - frame_ok[i].sum()), "location_used": use_loc,
                              "crop": [int(y0), int(x0), int(side), int(side)]} for i in range(b)]}
        return torch.from_numpy(full), info

    def _forward(self, net, x, info) -> Features:
        import torch
        p = int(self.config["patch_size"])
        dev = x.device
        loc = info["location"].to(dev) if info["location"] is not None else None
        tok, m, (side, t, g) = net(x, info["groups"], info["months"].to(dev), info["frame_ok"].to(dev), loc, p,
                                   info["input_res"])
        keep = (~m).to(tok.dtype)[..., None]
        pooled = (tok * keep).sum(1) / keep.sum(1)
        low = tok.min() - 1
        mx = torch.where(keep.bool(), tok, low).max(dim=1).values
        b, d = tok.shape[0], tok.shape[-1]
        n_st = side * side * t * g
        st = tok[:, :n_st].reshape(b, side * side, t * g, d)
        st_keep = keep[:, :n_st].reshape(b, side * side, t * g, 1)
        num = (st * st_keep).sum(2)
        den = st_keep.sum(2)
        if tok.shape[1] > n_st:  # the unmasked static / time tokens count in every patch's mean
            rest = (tok[:, n_st:] * keep[:, n_st:]).sum(1, keepdim=True)
            num, den = num + rest, den + keep[:, n_st:].sum(1, keepdim=True)
        grid = (num / den).reshape(b, side, side, d).permute(0, 3, 1, 2)
        info.update(max_pooled=mx, st_tokens=st, st_keep=st_keep[..., 0] > 0,
                    rest_tokens=tok[:, n_st:], rest_keep=keep[:, n_st:, 0] > 0)
        return Features(grid=grid, pooled=pooled,
                        meta={"cls_removed": True, "pooled_kind": "average_tokens_mean",
                              "grid_kind": "per_patch_token_mean", "grid_reduce": "mean_over_frames_and_groups",
                              "patch_size": p, "band_groups": info["groups"]})

    def _pool_roi(self, feats, info, i, cells, pooling):
        """``average_tokens`` over the unmasked space-time tokens of the ROI's cells and the
        unmasked static and time tokens (which belong to the whole input)."""
        import torch
        keep = torch.from_numpy(np.asarray(cells).reshape(-1)).to(info["st_tokens"].device)
        st = info["st_tokens"][i][keep][info["st_keep"][i][keep]]       # (m, D)
        rest = info["rest_tokens"][i][info["rest_keep"][i]]               # (r, D)
        tok = torch.cat([st, rest], dim=0)
        return tok.amax(dim=0) if pooling == "max" else tok.mean(dim=0)

    def _results(self, feats, chunk, sensor, output, info, contexts=()):
        if output.mode == "pooled" and output.pooling == "max":
            feats = Features(grid=feats.grid, pooled=info["max_pooled"],
                             meta={**feats.meta, "pooled_kind": "average_tokens_max", "pooled_any_pooling": True})
        res = super()._results(feats, chunk, sensor, output, info, contexts)
        names = S1_BANDS if self._modality(sensor) == "s1" else S2_BANDS
        idx = [SPACE_TIME_BANDS.index(n) for n in names]
        for r in res:
            r.meta["model_bands"] = list(names)
            r.meta["normalization"] = {"mean": [ST_MEAN[i] for i in idx], "std": [ST_STD[i] for i in idx],
                                       "std_multiplier": STD_MULTIPLIER, "source": _NORM_SOURCE}
        return res


__all__ = ["GalileoEmbedder", "CATALOG", "S1_BANDS", "S2_BANDS", "SPACE_TIME_BANDS", "SPACE_TIME_GROUPS",
           "ST_MEAN", "ST_STD", "to_cartesian"]
