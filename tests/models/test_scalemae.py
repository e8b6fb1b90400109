"""scalemae: torchgeo-model parity with GSD conditioning, published constants."""

from __future__ import annotations

import inspect
from functools import partial

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="scalemae needs the 'models' extra (torch)")
pytest.importorskip("torchgeo", reason="scalemae needs the 'models' extra (torchgeo)")
from torchgeo.models import ScaleMAELarge16_Weights  # noqa: E402
from torchgeo.models.scale_mae import ScaleMAE  # noqa: E402

from rs_embed.models import scalemae  # noqa: E402

RGB = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"), scale_m=10)
TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture
def tiny(weights_dir, tiny_variant):
    torch.manual_seed(0)
    ref = ScaleMAE(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=0, **TINY).eval()
    torch.save(ref.state_dict(), weights_dir / "scalemae-tiny.pth")
    tiny_variant(scalemae, "vitl16_fmow_rgb", filename="scalemae-tiny.pth", arch=TINY, image_size=32)
    return ref, scalemae.ScaleMAEEmbedder(variant="tiny", device="cpu")


def _ref_tokens(ref, x, res):
    ref.res = res
    with torch.no_grad():
        return ref.forward_features(x)[:, 1:]


def test_parity_with_torchgeo_scalemae_and_the_official_relative_gsd(tiny):
    ref, emb = tiny
    xs = dn_patches(2, 3, 64, 64) + dn_patches(1, 3, 48, 48, seed=5)
    x, info = emb._prepare(xs, RGB, [{}] * 3)
    # the official evaluation's ratio: eval_base_resolution * 224 / eval_scale, with the
    # model's own input size as eval_scale (1.0 for the published 224 px model, whose
    # ratio torchgeo's ScaleMAE(res=1.0) defaults to)
    assert info["gsd"] == [224 / 32] * 3  # the tiny model takes 32 px
    assert inspect.signature(ScaleMAE.__init__).parameters["res"].default == 1.0
    published = scalemae.ScaleMAEEmbedder.__new__(scalemae.ScaleMAEEmbedder)
    published.config = {"base_resolution": 1.0}
    published.checkpoint = scalemae.CATALOG.get("vitl16_fmow_rgb")
    assert published.gsd_ratio() == 1.0
    got = emb.embed_batch(xs, sensor=RGB, output=OutputSpec.pooled())
    for i in range(3):
        want = _ref_tokens(ref, x[i:i + 1], info["gsd"][i])
        np.testing.assert_allclose(got[i].data, want.mean(1)[0].numpy(), atol=1e-5, rtol=1e-5)
        assert got[i].meta["gsd_ratio"] == 224 / 32
    grid = emb.embed(xs[0], sensor=RGB, output=OutputSpec.grid())
    want = _ref_tokens(ref, x[:1], 224 / 32).reshape(1, 2, 2, 32).permute(0, 3, 1, 2)[0]
    np.testing.assert_allclose(grid.data, want.numpy(), atol=1e-5, rtol=1e-5)


def test_base_resolution_changes_the_embedding(weights_dir, tiny_variant, tiny):
    ref, emb = tiny
    x = dn_patches(1, 3, 64, 64)[0]
    a = emb.embed(x, sensor=RGB, output=OutputSpec.pooled())
    coarse = scalemae.ScaleMAEEmbedder(variant="tiny", device="cpu", base_resolution=2.5)
    b = coarse.embed(x, sensor=RGB, output=OutputSpec.pooled())
    assert b.meta["gsd_ratio"] == 2.5 * 224 / 32 and not np.allclose(a.data, b.data)
    xt, info = coarse._prepare([x], RGB, [{}])
    np.testing.assert_allclose(b.data, _ref_tokens(ref, xt, info["gsd"][0]).mean(1)[0].numpy(), atol=1e-5)
    with pytest.raises(ModelError, match="base_resolution"):
        scalemae.ScaleMAEEmbedder.validate_config({"base_resolution": -3})


def test_published_constants():
    # torchgeo _scale_mae_transforms: /255 then ImageNet mean/std
    norm255, imnet = ScaleMAELarge16_Weights.FMOW_RGB.transforms
    assert list(norm255.std) == [255]
    assert tuple(imnet.mean) == scalemae.IMAGENET_MEAN
    assert tuple(imnet.std) == scalemae.IMAGENET_STD
    ck = scalemae.CATALOG.get("vitl16_fmow_rgb")
    assert ck.url == ScaleMAELarge16_Weights.FMOW_RGB.url
    assert ScaleMAELarge16_Weights.FMOW_RGB.meta["img_size"] == ck.image_size == 224


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        scalemae.ScaleMAEEmbedder(device="cpu")
    msg = str(err.value)
    assert "vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth" in msg and "1,220 MB" in msg
