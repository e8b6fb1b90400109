"""remoteclip: official checkpoint format, open_clip parity, published preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.models import get_embedder
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="remoteclip needs the 'models' extra (torch)")
open_clip = pytest.importorskip("open_clip", reason="remoteclip needs the 'models' extra (open_clip_torch)")
from rs_embed.models import remoteclip  # noqa: E402
from rs_embed.models.pretrained import rgb_uint8  # noqa: E402

RGB = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2"))
TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}


@pytest.fixture
def tiny(weights_dir, tiny_variant):
    torch.manual_seed(0)
    ref = open_clip.CLIP(**TINY).eval()
    # RemoteCLIP releases are plain state dicts of the open_clip CLIP model.
    torch.save(ref.state_dict(), weights_dir / "RemoteCLIP-tiny.pt")
    tiny_variant(remoteclip, "vit_b32", filename="RemoteCLIP-tiny.pt",
                 arch={"open_clip": "tiny", **TINY}, image_size=32)
    return ref, remoteclip.RemoteCLIPEmbedder(variant="tiny", device="cpu")


def test_pooled_equals_open_clip_encode_image_single_and_batch(tiny):
    ref, emb = tiny
    xs = dn_patches(3, 3, 40, 48)
    got = emb.embed_batch(xs, sensor=RGB, output=OutputSpec.pooled())
    x, _ = emb._prepare(xs, RGB, [{}] * 3)
    with torch.no_grad():
        want = ref.encode_image(x).numpy()
    np.testing.assert_allclose(np.stack([g.data for g in got]), want, atol=1e-5, rtol=1e-5)
    one = emb.embed(xs[1], sensor=RGB, output=OutputSpec.pooled())
    np.testing.assert_allclose(one.data, want[1], atol=1e-5, rtol=1e-5)
    assert one.data.shape == (16,) and one.meta["pooling"] == "clip_projected_cls"
    assert one.meta["cls_removed"] is False and one.meta["variant"] == "tiny"


def test_grid_is_projected_patch_tokens(tiny):
    ref, emb = tiny
    xs = dn_patches(2, 3, 32, 32, seed=1)
    grids = emb.embed_batch(xs, sensor=RGB, output=OutputSpec.grid())
    x, _ = emb._prepare(xs, RGB, [{}] * 2)
    vis = ref.visual
    captured = {}
    h = vis.transformer.register_forward_hook(lambda m, i, o: captured.setdefault("t", o))
    with torch.no_grad():
        pooled = ref.encode_image(x)
        tokens = vis.ln_post(captured["t"]) @ vis.proj      # (B, 1 + 4, 16)
    h.remove()
    np.testing.assert_allclose(tokens[:, 0].numpy(), pooled.numpy(), atol=1e-5)  # CLS = encode_image
    want = tokens[:, 1:].reshape(2, 2, 2, 16).permute(0, 3, 1, 2).numpy()
    np.testing.assert_allclose(np.stack([g.data for g in grids]), want, atol=1e-5, rtol=1e-5)
    assert grids[0].meta["grid_hw"] == (2, 2) and grids[0].meta["cls_removed"] is True


def test_bands_are_picked_by_name_from_any_sensor(tiny):
    _, emb = tiny
    x = dn_patches(1, 3, seed=2)[0]
    wide = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B2", "B8", "B4", "B3"))
    xw = np.stack([x[2], np.full_like(x[0], 999.0), x[0], x[1]])
    a = emb.embed(x, sensor=RGB, output=OutputSpec.pooled()).data
    b = emb.embed(xw, sensor=wide, output=OutputSpec.pooled()).data
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="lacks"):
        emb.embed(x[:2], sensor=SensorSpec("C", ("B4", "B3")), output=OutputSpec.pooled())


def test_preprocessing_constants_and_pipeline():
    # OpenAI CLIP normalisation (Radford et al. 2021), as shipped by open_clip.
    assert remoteclip.CLIP_MEAN == tuple(open_clip.OPENAI_DATASET_MEAN)
    assert remoteclip.CLIP_STD == tuple(open_clip.OPENAI_DATASET_STD)
    # the architectures are open_clip's own configs of the same names
    for v, name in (("vit_b32", "ViT-B-32"), ("vit_l14", "ViT-L-14")):
        ck = remoteclip.CATALOG.get(v)
        arch = {k: val for k, val in ck.arch.items() if k != "open_clip"}
        assert arch == open_clip.get_model_config(name)
        assert ck.hf_repo == "chendelong/RemoteCLIP" and ck.filename == f"RemoteCLIP-{name}.pt"
        assert ck.bands == ("B4", "B3", "B2") and ck.image_size == 224
    # 8-bit stretch: reflectance 0.3 -> 255, 0.15 -> 128 (rounded), negative/NaN -> 0
    px = np.array([[[3000.0, 1500.0, -5.0, np.nan]]] * 3, dtype=np.float32)
    assert rgb_uint8(px, 0.3)[0, :, 0].tolist() == [255, 128, 0, 0]


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        get_embedder("remoteclip", device="cpu")
    msg = str(err.value)
    assert "RemoteCLIP-ViT-B-32.pt" in msg and "605 MB" in msg and "chendelong/RemoteCLIP" in msg
    assert str(weights_dir) in msg


def test_a_checkpoint_of_another_size_is_refused(weights_dir, tiny_variant):
    bad = dict(TINY, embed_dim=8)
    torch.save(open_clip.CLIP(**bad).state_dict(), weights_dir / "RemoteCLIP-tiny.pt")
    tiny_variant(remoteclip, "vit_b32", filename="RemoteCLIP-tiny.pt", arch={"open_clip": "t", **TINY},
                 image_size=32)
    emb = remoteclip.RemoteCLIPEmbedder(variant="tiny", device="cpu")
    with pytest.raises(ModelError, match="does not fit"):
        emb.embed(dn_patches(1, 3)[0], sensor=RGB, output=OutputSpec.pooled())


def test_describe_contract():
    d = remoteclip.RemoteCLIPEmbedder.describe()
    assert d["inputs"]["bands"] == ["B4", "B3", "B2"]
    assert set(d["model_config"]) == {"variant", "weights", "rgb_max"}
    assert d["model_config"]["variant"]["choices"][:2] == ["vit_b32", "vit_l14"]
    assert d["defaults"]["image_size"] == 224 and d["install"] == "pip install 'rs_embed[models]'"
    with pytest.raises(ModelError, match="rgb_max"):
        remoteclip.RemoteCLIPEmbedder.validate_config({"rgb_max": 0})
