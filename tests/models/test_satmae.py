"""satmae: the official pretraining checkpoint layout loads; parity with the SatMAE encoders
as packaged by rshf (the MAE forward_encoder with mask ratio 0); published constants."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches, load_file_module

torch = pytest.importorskip("torch", reason="satmae needs the 'models' extra (torch)")
pytest.importorskip("timm", reason="satmae needs the 'models' extra (timm)")
from rs_embed.models import satmae  # noqa: E402

RGB = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"))
L1C = SensorSpec("COPERNICUS/S2_HARMONIZED", ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                                "B10", "B11", "B12"))


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("transformers", reason="the rshf reference needs transformers")
    # rshf's package __init__ changes process-wide SSL settings; load only its SatMAE file.
    return load_file_module("rshf_satmae_model", "rshf", "satmae/model.py")


def _eps_1e6(model):
    # The official SatMAE encoder uses LayerNorm(eps=1e-6); rshf's RGB class uses the default.
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-6
    return model


def _save_official(path, model):
    # SatMAE main_pretrain.py save_model: {"model", "optimizer", "epoch", "scaler", "args"}
    torch.save({"model": model.state_dict(), "epoch": 199, "args": argparse.Namespace(model="mae")}, path)


def _unshuffled_tokens(ref, x):
    """forward_encoder(mask_ratio=0) keeps every token but in a random order; undo it."""
    with torch.no_grad():
        tok, _, restore = ref.forward_encoder(x, mask_ratio=0.0)
    body = tok[:, 1:]
    return torch.gather(body, 1, restore.unsqueeze(-1).expand(-1, -1, body.shape[-1]))


def test_rgb_parity_and_checkpoint_format(reference, weights_dir, tiny_variant):
    torch.manual_seed(0)
    cfg = SimpleNamespace(img_size=32, patch_size=16, in_chans=3, embed_dim=32, depth=2, num_heads=2,
                          mlp_ratio=4, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
                          norm_pix_loss=False, img_mean=list(satmae.FMOW_RGB_MEAN), img_std=list(satmae.FMOW_RGB_STD))
    ref = _eps_1e6(reference.MaskedAutoencoderViT(cfg)).eval()
    _save_official(weights_dir / "fmow-tiny.pth", ref)
    tiny_variant(satmae, "vitl16_rgb", filename="fmow-tiny.pth", image_size=32,
                 arch={"kind": "rgb", "img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2})
    emb = satmae.SatMAEEmbedder(variant="tiny", device="cpu")
    xs = dn_patches(3, 3, 40, 44)
    x, _ = emb._prepare(xs, RGB, [{}] * 3)
    want = _unshuffled_tokens(ref, x)
    got = emb.embed_batch(xs, sensor=RGB, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), want.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[2], sensor=RGB, output=OutputSpec.grid())
    np.testing.assert_allclose(grid.data, want[2].reshape(2, 2, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    # the eval transform: ToTensor -> Normalize -> bicubic resize shorter side to 32/0.875 -> crop 32
    assert x.shape == (3, 3, 32, 32)


def test_multispectral_group_channel_parity(reference, weights_dir, tiny_variant):
    torch.manual_seed(0)
    cfg = {"img_size": 16, "patch_size": 8, "in_chans": 10, "channel_groups": satmae.CHANNEL_GROUPS,
           "channel_embed": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4,
           "decoder_embed_dim": 16, "decoder_channel_embed": 4, "decoder_depth": 1,
           "decoder_num_heads": 2, "norm_pix_loss": False}
    ref = reference.MaskedAutoencoderGroupChannelViT(cfg).eval()
    elsewhere = weights_dir.parent / "elsewhere"          # found only through weights=
    elsewhere.mkdir()
    _save_official(elsewhere / "ms-tiny.pth", ref)
    tiny_variant(satmae, "vitl8_multispectral", filename="ms-tiny.pth", image_size=16,
                 arch={"kind": "group_channels", "img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 2,
                       "num_heads": 2, "channel_embed": 8, "channel_groups": satmae.CHANNEL_GROUPS},
                 extra={"crop_pct": 16 / 18})
    with pytest.raises(ModelError, match="ms-tiny.pth"):
        satmae.SatMAEEmbedder(variant="tiny", device="cpu")
    emb = satmae.SatMAEEmbedder(variant="tiny", device="cpu", weights=str(elsewhere))
    sensor = emb.default_sensor()
    assert sensor.collection == "COPERNICUS/S2_HARMONIZED" and sensor.bands == satmae.SATMAE_MS_BANDS
    assert emb.image_size == 16
    xs = dn_patches(2, 13, 30, 30)                        # all 13 L1C bands; B1, B9, B10 are dropped
    x, _ = emb._prepare([a[[1, 2, 3, 4, 5, 6, 7, 8, 11, 12]] for a in xs], L1C, [{}] * 2)
    want = _unshuffled_tokens(ref, x)                     # (B, G*L, D), group-major
    got = emb.embed_batch(xs, sensor=L1C, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), want.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[0], sensor=L1C, output=OutputSpec.grid())
    per_cell = want[0].reshape(3, 4, 32).mean(0).reshape(2, 2, 32).permute(2, 0, 1)
    np.testing.assert_allclose(grid.data, per_cell.numpy(), atol=1e-5)
    assert grid.meta["channel_groups"] == [["B2", "B3", "B4", "B8"], ["B5", "B6", "B7", "B8A"], ["B11", "B12"]]
    # SentinelNormalize as rshf/SatMAE define it, on the ten kept bands, then ToTensor
    norm = reference.SentinelNormalize(list(satmae._MS_MEAN), list(satmae._MS_STD))
    u8 = norm(xs[0][[1, 2, 3, 4, 5, 6, 7, 8, 11, 12]].transpose(1, 2, 0))
    from torchvision.transforms import v2 as T
    want_x = T.functional.center_crop(T.functional.resize(
        torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255, [18],
        interpolation=T.InterpolationMode.BICUBIC, antialias=True), [16, 16])
    np.testing.assert_allclose(x[:1].numpy(), want_x.numpy(), atol=1e-6)


def test_published_constants(reference):
    # SatMAE util/datasets.py (fMoW RGB and fMoW-Sentinel statistics), as rshf packages them
    cfg = reference.SatMAEConfig()
    assert tuple(cfg.img_mean) == satmae.FMOW_RGB_MEAN
    src = Path(reference.__file__).read_text()
    for v in satmae.FMOW_S2_MEAN13[:3] + satmae.FMOW_S2_STD13[-2:]:
        assert repr(v)[:10] in src
    assert satmae.SATMAE_MS_BANDS == ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    assert satmae.CHANNEL_GROUPS == ((0, 1, 2, 6), (3, 4, 5, 7), (8, 9))


def test_multispectral_default_sensor_and_missing_checkpoint(weights_dir):
    with pytest.raises(ModelError) as err:
        satmae.SatMAEEmbedder(variant="vitl8_multispectral", device="cpu")
    msg = str(err.value)
    assert "pretrain-vit-large-e199.pth" in msg and "zenodo.org/record/7338613" in msg
