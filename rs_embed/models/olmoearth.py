"""``olmoearth``: OlmoEarth v1 / v1.1 / v1.2 / v1.3 encoders (Ai2), through their official package.

Herzog et al., "OlmoEarth: Stable Latent Image Modeling for Multimodal Earth
Observation", arXiv:2511.13655 (v1.1–v1.3: the tech reports linked from the model
cards). The network, its configuration format, the normaliser and the sample type are
those of Ai2's own inference package ``olmoearth-pretrain-minimal`` (PyPI; Apache-2.0),
which builds the exact modules of the training package ``olmoearth-pretrain`` from a
checkpoint's ``config.json``. Nothing of the architecture is re-implemented here: this
module turns our patches into the package's ``MaskedOlmoEarthSample`` and its tokens
back into embeddings.

Checkpoints: Hugging Face ``allenai/OlmoEarth-v1-{Nano,Tiny,Base,Large}``,
``allenai/OlmoEarth-v1_1-{Nano,Tiny,Base}``, ``allenai/OlmoEarth-v1_2-{Nano,Tiny,Small,Base}``
and ``allenai/OlmoEarth-v1_3-Base``; each repository holds ``config.json`` (the training
config, ``{"model": {"_CLASS_": ...}}``) and ``weights.pth`` (the LatentMIM state dict).
The weights are under the OlmoEarth Artifact License.

Pipeline, step by step (the package README, "Sample Code", "Expected Band Orders",
"Missing Bands"):

1. **Input**: Sentinel-2 L2A DN (reflectance x 10000, harmonised) in the package's
   ``Modality.SENTINEL2_L2A.band_order`` — ``B02 B03 B04 B08 B05 B06 B07 B8A B11 B12
   B01 B09`` — at 10 m (``input_res=10``, the package's ``BASE_GSD``), one frame
   ``(C, H, W)`` or a time series ``(T, C, H, W)`` of at most 12 frames
   (``MAX_SEQUENCE_LENGTH``; pretraining used monthly frames over a year).
   ``modality="s1"`` reads Sentinel-1 GRD ``vv vh`` backscatter in dB instead
   (``Modality.SENTINEL1``), which the encoders were trained on as well.
2. **Normalise** with the package's ``Normalizer`` for the checkpoint's version
   (``(x - (mean - 2 std)) / (4 std)`` with the statistics of its ``computed.json``).
   Nodata follows the package's documented convention for that version (README,
   "Missing Bands"): masked pixels reach its normaliser as NaN; v1 copies a missing
   band from the nearest band in wavelength, v1.1+ set missing values to 0 after
   normalising (what band dropout taught them); ``meta["nodata_fill"]`` says which.
   Nodata pixels are those the provider masked (``Patch.valid``, per frame for a time
   series), non-finite ones, or those with every band equal to ``sensor.fill_value``.
3. **Frames** without any valid pixel are marked ``MaskValue.MISSING`` so the encoder
   does not attend to them; their count is in ``meta["frames_missing"]``.
4. **Timestamps**: one ``(day, month - 1, year)`` per frame, from the frame dates the
   provider reports (``context["dates"]``); without dates the window is unknown and
   the middle of 2020 is used, with a warning.
5. **Size**: pixels are not resampled (the model is resolution-aware at 10 m); a patch
   whose side is not a multiple of ``patch_size`` is centre-cropped to one, and the
   grid's georeferencing carries that crop. A rectangular ``BBox`` is fed as its
   enclosing square; the grid is cropped back to the box and pooled vectors pool the
   box's cells (the package's pooling over the unmasked tokens of those cells).
6. **Encoder**: ``model.encoder(sample, patch_size, input_res=10, fast_pass=True)``.
   **Pooled**: the package's ``TokensAndMasks.pool_unmasked_tokens`` (mean or max over
   every encoded token: positions x frames x band groups). **Grid**: tokens averaged
   over frames and band groups (``pool_spatially``), ``(D, H / patch_size, W / patch_size)``.
"""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from ..errors import ModelError
from ..specs import OutputSpec, SensorSpec
from . import weights as W
from .base import EmbedResult
from .pretrained import Features, PretrainedEmbedder
from .spectral import valid_mask
from ..sensors import S1_DB, S2_L2A, canonical_band

#: the package's Modality.SENTINEL2_L2A.band_order / Modality.SENTINEL1.band_order,
#: in Earth Engine spelling (tests compare them with the package)
OLMOEARTH_S2_BANDS = ("B2", "B3", "B4", "B8", "B5", "B6", "B7", "B8A", "B11", "B12", "B1", "B9")
OLMOEARTH_S1_BANDS = ("VV", "VH")
S1_GRD = S1_DB
#: the package's BASE_GSD (metres) and MAX_SEQUENCE_LENGTH
INPUT_RES_M = 10
MAX_FRAMES = 12
#: package module names
_PKG = "olmoearth_pretrain_minimal"
_MOD = {"s2": "sentinel2_l2a", "s1": "sentinel1"}
_PAPER = ("Herzog et al., OlmoEarth: Stable Latent Image Modeling for Multimodal Earth "
          "Observation, arXiv:2511.13655")
_LICENCE = "OlmoEarth Artifact License (weights); code Apache-2.0"
_NORM_SOURCE = ("olmoearth_pretrain_minimal Normalizer(model_type=<version>) with its "
                "norm_configs/computed.json (mean +- 2 std -> [0, 1])")

CATALOG = W.catalog("olmoearth", default="base_v1_2")

#: variant -> (Hugging Face repo name, model version, encoder+decoder parameters in millions,
#: from the package README's model tables)
_VARIANTS = {
    "nano": ("OlmoEarth-v1-Nano", "v1", 2.2), "tiny": ("OlmoEarth-v1-Tiny", "v1", 8.1),
    "base": ("OlmoEarth-v1-Base", "v1", 119), "large": ("OlmoEarth-v1-Large", "v1", 361),
    "nano_v1_1": ("OlmoEarth-v1_1-Nano", "v1.1", 2.5), "tiny_v1_1": ("OlmoEarth-v1_1-Tiny", "v1.1", 14.4),
    "base_v1_1": ("OlmoEarth-v1_1-Base", "v1.1", 144),
    "nano_v1_2": ("OlmoEarth-v1_2-Nano", "v1.2", 2.5), "tiny_v1_2": ("OlmoEarth-v1_2-Tiny", "v1.2", 14.4),
    "small_v1_2": ("OlmoEarth-v1_2-Small", "v1.2", 43), "base_v1_2": ("OlmoEarth-v1_2-Base", "v1.2", 144),
    "base_v1_3": ("OlmoEarth-v1_3-Base", "v1.3", 158),
}
for _v, (_repo, _ver, _mparams) in _VARIANTS.items():
    CATALOG.add(W.Checkpoint(
        model="olmoearth", variant=_v, filename=f"{_repo}/weights.pth",
        source=f"https://huggingface.co/allenai/{_repo}", hf_repo=f"allenai/{_repo}",
        hf_filename="weights.pth", arch={"version": _ver, "repo": _repo, "config": "config.json"},
        bands=OLMOEARTH_S2_BANDS, image_size=256, licence=_LICENCE, paper=_PAPER,
        approx_size_mb=round(_mparams * 4.0), norm_source=_NORM_SOURCE,
        extra={"input_res_m": INPUT_RES_M, "max_frames": MAX_FRAMES}))


def frame_timestamp(day: str) -> tuple:
    """``(day, month - 1, year)``: the package's timestamp layout (months zero-indexed)."""
    d = date.fromisoformat(str(day)[:10])
    return d.day, d.month - 1, d.year


class _Inputs:
    """Normalised pixels, missing frames and timestamps of a batch, with the ``.to(device)``
    the batch loop uses; the package's sample is built from them in the forward pass
    (its mask needs the network's band sets)."""

    def __init__(self, pixels, empty, stamps):
        self.pixels, self.empty, self.stamps = pixels, empty, stamps

    def to(self, device):
        return _Inputs(self.pixels.to(device), self.empty, self.stamps.to(device))


class OlmoEarthEmbedder(PretrainedEmbedder):
    """OlmoEarth encoder on Sentinel-2 L2A (or Sentinel-1) frames, via olmoearth-pretrain-minimal."""

    name = "olmoearth"
    catalog = CATALOG
    requires = ("torch", "einops", "upath", _PKG)
    extra = "models-olmoearth"
    collection = S2_L2A
    input_ndim = (3, 4)
    batch_by_shape = True
    fills_nodata_itself = True  # the package's Normalizer fills per model version
    summary = ("OlmoEarth (Ai2) multimodal, multi-temporal ViT: Sentinel-2 L2A or Sentinel-1 "
               "time series at 10 m, via the official olmoearth-pretrain-minimal package.")

    @classmethod
    def _extra_config(cls) -> Dict[str, dict]:
        return {
            "patch_size": {"type": "int", "default": 4, "min": 1, "max": 8,
                           "help": "pixels per token side (the encoders are FlexiViT: 1-8)"},
            "frames": {"type": "int", "default": 12, "min": 1, "max": MAX_FRAMES,
                       "help": "frames the time window is binned into (one composite each)"},
        }

    @classmethod
    def _contract(cls, ckpt: W.Checkpoint) -> Dict[str, Any]:
        return {
            "preprocessing": ("package Normalizer of the checkpoint version (mean +- 2 std -> [0, 1]); "
                              "no resampling, centre crop to a multiple of patch_size"),
            "modalities": ["s2", "s2_l2a", "s1"],
            "inputs_by_modality": {"s2": {"collection": S2_L2A, "bands": list(OLMOEARTH_S2_BANDS),
                                          "units": "DN (reflectance x 10000)"},
                                   "s1": {"collection": S1_GRD, "bands": list(OLMOEARTH_S1_BANDS),
                                          "units": "backscatter dB"}},
            "frames": "(C, H, W) or (T, C, H, W), T <= 12; export fetches `frames` composites over the window",
            "context": "dates: one ISO date per frame (timestamps); center unused",
            "nodata": "v1: nearest-wavelength band copy; v1.1+: 0 after normalising; empty frames masked MISSING",
            "outputs": {"pooled": "mean/max over every encoded token (pool_unmasked_tokens)",
                        "grid": "tokens averaged over frames and band groups (D, H/patch, W/patch)"},
            "cls_handling": "no CLS token",
            "temporal": {"mode": "range", "frames": 12},
        }

    @classmethod
    def _describe(cls) -> dict:
        d = super()._describe()
        d["temporal"] = {"mode": "range", "frames_default": 12, "max_frames": MAX_FRAMES}
        d["defaults"].update({"frames": 12, "patch_size": 4, "image_size": 256})
        d["inputs"]["units"] = "Sentinel-2 L2A DN (reflectance x 10000); Sentinel-1 dB"
        return d

    # ------------------------------------------------------------------ inputs
    def default_sensor(self) -> SensorSpec:
        return SensorSpec(collection=S2_L2A, bands=OLMOEARTH_S2_BANDS, scale_m=INPUT_RES_M,
                          cloudy_pct=30, composite="median", frames=self.config["frames"])

    def sensor_for_modality(self, modality: str) -> SensorSpec:
        if modality == "s1":
            return SensorSpec(collection=S1_GRD, bands=OLMOEARTH_S1_BANDS, scale_m=INPUT_RES_M,
                              composite="median", modality="s1", frames=self.config["frames"])
        return self.default_sensor()

    @staticmethod
    def _modality(sensor: SensorSpec) -> str:
        if sensor.modality == "s1" or "S1" in sensor.collection.upper().split("/")[-1][:2]:
            return "s1"
        return "s2"

    def input_bands(self, sensor: SensorSpec) -> List[int]:
        want = OLMOEARTH_S1_BANDS if self._modality(sensor) == "s1" else OLMOEARTH_S2_BANDS
        pos = {canonical_band(b).upper(): i for i, b in enumerate(sensor.bands)}
        missing = [b for b in want if b.upper() not in pos]
        if missing:
            raise ModelError(f"model 'olmoearth' reads bands {list(want)} but the sensor lacks "
                             f"{missing} (it has {list(sensor.bands)})")
        return [pos[b.upper()] for b in want]

    # ----------------------------------------------------------------- weights
    def __init__(self, *, device: str = "auto", **model_config: Any):
        super().__init__(device=device, **model_config)
        self.config_path = self._find_config()

    def _find_config(self) -> Path:
        """``config.json`` lives beside ``weights.pth`` (a Hugging Face snapshot or a copy of it)."""
        ck = self.checkpoint
        beside = Path(self.weights_path).parent / "config.json"
        if beside.is_file():
            return beside
        if ck.hf_repo and not W.downloads_disabled():
            try:
                from huggingface_hub import hf_hub_download
                return Path(hf_hub_download(ck.hf_repo, "config.json"))
            except Exception as exc:  # network, permissions
                why = f"Download failed: {type(exc).__name__}: {exc}."
        else:
            why = "Downloads are disabled (HF_HUB_OFFLINE/RS_EMBED_OFFLINE)."
        raise ModelError(
            f"checkpoint for model 'olmoearth' variant {ck.variant!r} lacks its config.json: "
            f"it must sit beside {self.weights_path} (a few KB, from {ck.source}, file config.json). "
            f"{why} Download both config.json and weights.pth of {ck.hf_repo} into one folder.")

    def _load_network(self):
        from olmoearth_pretrain_minimal.model_loader import load_model_from_path
        wmeta = W.verify_checkpoint(self.checkpoint, self.weights_path)
        folder = Path(self.weights_path).parent
        if self.config_path.parent != folder or Path(self.weights_path).name != "weights.pth":
            # a Hugging Face cache keeps each file as its own symlink; give the loader one folder
            net = self._load_split(self.config_path, self.weights_path)
        else:
            try:
                net = load_model_from_path(folder, load_weights=True)
            except RuntimeError as exc:
                raise ModelError(f"checkpoint {self.weights_path} does not fit its config.json "
                                 f"({self.config_path}): {str(exc).splitlines()[0]}") from exc
        net.eval()
        net.to(self.device)
        return net, {**wmeta, "config": str(self.config_path), "version": self.checkpoint.arch["version"]}

    @staticmethod
    def _load_split(config_path: Path, weights_path: Path):
        import torch
        from olmoearth_pretrain_minimal import model_loader as ML
        cfg = ML._read_config(config_path)
        net = ML._build_model_from_config(cfg)
        ML._restrict_encoder_inputs(net, ML._encoder_input_modalities_from_config(cfg))
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith(ML._TRAINING_ONLY_STATE_DICT_PREFIXES)}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"checkpoint {weights_path} does not fit its config.json "
                             f"({config_path}): {str(exc).splitlines()[0]}") from exc
        return net

    # --------------------------------------------------------------- inference
    def _nodata_fill(self, sensor: SensorSpec):
        version = self.checkpoint.arch["version"]
        rule = ("each missing value copied from the present band nearest in wavelength (0 where none "
                "is)" if version == "v1" else "0 after normalising (band dropout)")
        return None, (f"olmoearth-pretrain-minimal Normalizer(model_type={version!r}), README 'Missing "
                      f"Bands': {rule}; frames without imagery masked MaskValue.MISSING")

    def _crop(self, h: int, w: int):
        """``(y0, x0, hh, ww)``: the centred window whose sides are multiples of ``patch_size``."""
        ps = int(self.config["patch_size"])
        hh, ww = h - h % ps, w - w % ps
        if hh == 0 or ww == 0:
            raise ModelError(f"model 'olmoearth' needs patches of at least {ps} x {ps} pixels "
                             f"(patch_size={ps}), got {h} x {w}")
        return (h - hh) // 2, (w - ww) // 2, hh, ww

    def grid_footprint(self, input_hw):
        y0, x0, hh, ww = self._crop(*input_hw)
        return (float(y0), float(x0), float(y0 + hh), float(x0 + ww))

    def normalise(self, arrays: List[np.ndarray], sensor: SensorSpec):
        """Band-selected DN (masked pixels NaN) -> the package's normalised ``(B, H, W, T, C)``
        (NaN filled per the checkpoint version), the frames without imagery ``(B, T)`` and
        the crop ``(y0, x0, hh, ww)``."""
        from olmoearth_pretrain_minimal import Normalizer
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.constants import Modality

        spec = Modality.get(_MOD[self._modality(sensor)])
        stacks = np.stack([a if a.ndim == 4 else a[None] for a in arrays]).astype(np.float32)  # B T C H W
        if stacks.shape[1] > MAX_FRAMES:
            raise ModelError(f"model 'olmoearth' takes at most {MAX_FRAMES} frames, got {stacks.shape[1]}")
        y0, x0, hh, ww = self._crop(*stacks.shape[-2:])
        stacks = stacks[..., y0:y0 + hh, x0:x0 + ww]
        valid = valid_mask(stacks, sensor.fill_value)                                  # B T H W
        data = np.where(valid[:, :, None], stacks, np.nan).transpose(0, 3, 4, 1, 2)   # B H W T C
        empty = ~valid.any(axis=(2, 3))  # (B, T): frames with no valid pixel
        if empty.all(axis=1).any():
            raise ModelError("model 'olmoearth' got a patch with no valid pixel in any frame")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # nodata is reported in meta instead
            norm = Normalizer(model_type=self.checkpoint.arch["version"]).normalize(spec, data)
        return np.nan_to_num(norm, nan=0.0).astype(np.float32), empty, (y0, x0, hh, ww)

    def _prepare(self, arrays: List[np.ndarray], sensor: SensorSpec, contexts: List[dict]):
        import torch

        mod = self._modality(sensor)
        norm, empty, (y0, x0, hh, ww) = self.normalise(arrays, sensor)
        b, _, _, t, _ = norm.shape
        stamps, dated = [], True
        for c in contexts:
            dates = list(c.get("dates") or [])
            if len(dates) != t:
                dated = False
                dates = ["2020-07-01"] * t
            stamps.append([frame_timestamp(d) for d in dates])
        if not dated:
            warnings.warn("olmoearth: frame dates unknown (no temporal window); timestamps set to "
                          "2020-07-01", stacklevel=4)
        inputs = _Inputs(torch.from_numpy(np.ascontiguousarray(norm)), empty,
                         torch.tensor(stamps, dtype=torch.long))
        info = {"image_size": hh if hh == ww else [hh, ww], "modality": _MOD[mod], "frames": t,
                "per_item": [{"frames_encoded": int(t - empty[i].sum()), "frames_missing": int(empty[i].sum()),
                              "frames_input": t, "timestamps": stamps[i],
                              "crop": [int(y0), int(x0), int(hh), int(ww)]} for i in range(b)],
                "dated": dated}
        return inputs, info

    def _forward(self, net, x, info) -> Features:
        import torch
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.nn.flexi_vit import PoolingType
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.constants import Modality
        from olmoearth_pretrain_minimal.olmoearth_pretrain_v1.utils.datatypes import (
            MaskedOlmoEarthSample, MaskValue)

        spec = Modality.get(info["modality"])
        b, hh, ww, t, _ = x.pixels.shape
        n_sets = net.encoder.patch_embeddings.tokenization_config.get_num_bandsets(spec.name)
        mask = np.where(x.empty[:, None, None, :, None], MaskValue.MISSING.value, MaskValue.ONLINE_ENCODER.value)
        mask = torch.from_numpy(np.broadcast_to(mask, (b, hh, ww, t, n_sets)).astype(np.int64))
        sample = MaskedOlmoEarthSample(timestamps=x.stamps, **{spec.name: x.pixels,
                                                               f"{spec.name}_mask": mask.to(x.pixels.device)})
        out = net.encoder(sample, patch_size=int(self.config["patch_size"]), input_res=INPUT_RES_M,
                          fast_pass=True)
        tm = out["tokens_and_masks"]
        tok = getattr(tm, spec.name)            # (B, h, w, T, S, D)
        seen = getattr(tm, spec.name + "_mask") == 0  # (B, h, w, T, S)
        info["tokens"], info["seen"] = tok, seen  # for pooling a ROI's cells
        w = seen.to(tok.dtype)[..., None]
        grid = (tok * w).sum(dim=(3, 4)) / w.sum(dim=(3, 4)).clamp(min=1)
        grid = grid.permute(0, 3, 1, 2)
        mean = tm.pool_unmasked_tokens(PoolingType.MEAN, spatial_pooling=False)
        mx = tm.pool_unmasked_tokens(PoolingType.MAX, spatial_pooling=False)
        info["max_pooled"] = mx
        return Features(grid=grid, pooled=mean,
                        meta={"cls_removed": True, "pooled_kind": "pool_unmasked_tokens_mean",
                              "grid_kind": "tokens_mean_over_frames_and_band_groups",
                              "grid_reduce": "mean_over_frames_and_band_groups",
                              "patch_size": int(self.config["patch_size"]), "input_res_m": INPUT_RES_M,
                              "modality": spec.name})

    def _pool_roi(self, feats, info, i, cells, pooling):
        """``pool_unmasked_tokens`` over the unmasked tokens of the ROI's cells only."""
        import torch
        keep = torch.from_numpy(np.asarray(cells)).to(info["tokens"].device)
        tok = info["tokens"][i][keep]          # (n, T, S, D)
        seen = info["seen"][i][keep]           # (n, T, S)
        tok = tok[seen]                        # (m, D)
        return tok.amax(dim=0) if pooling == "max" else tok.mean(dim=0)

    def _results(self, feats: Features, chunk, sensor: SensorSpec, output: OutputSpec,
                 info: Dict[str, Any], contexts=()) -> List[EmbedResult]:
        if output.mode == "pooled" and output.pooling == "max":
            feats = Features(grid=feats.grid, pooled=info["max_pooled"],
                             meta={**feats.meta, "pooled_kind": "pool_unmasked_tokens_max",
                                   "pooled_any_pooling": True})
        res = super()._results(feats, chunk, sensor, output, info, contexts)
        for r in res:
            r.meta["normalization"] = {"source": _NORM_SOURCE, "model_type": self.checkpoint.arch["version"]}
            if not info["dated"]:
                r.meta["timestamps_assumed"] = True
        return res


__all__ = ["OlmoEarthEmbedder", "CATALOG", "OLMOEARTH_S2_BANDS", "OLMOEARTH_S1_BANDS", "frame_timestamp"]
