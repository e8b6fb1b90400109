"""ssl4eo: records match torchgeo's weight enums, torchgeo's transform, torchgeo-model parity."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.sensors import canonical_band as canonical_s2_band
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="ssl4eo needs the 'models' extra (torch)")
tgm = pytest.importorskip("torchgeo.models", reason="ssl4eo needs the 'models' extra (torchgeo)")
from rs_embed.models import ssl4eo  # noqa: E402

L1C = SensorSpec("COPERNICUS/S2_HARMONIZED", ssl4eo.SSL4EO_BANDS)
VARIANTS = ["resnet50_moco", "resnet50_dino", "vits16_moco", "vits16_dino"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_records_match_torchgeo_weight_enums(variant):
    ck = ssl4eo.CATALOG.get(variant)
    enum_name, member = ck.arch["torchgeo_weights"].split(".")
    w = getattr(getattr(tgm, enum_name), member)
    assert ck.url == w.url and w.url.endswith(ck.filename)
    assert [canonical_s2_band(b) for b in w.meta["bands"]] == list(ck.bands)
    assert w.meta["in_chans"] == len(ck.bands) == 13
    assert w.meta["model"] == ck.arch["builder"] and w.meta["ssl_method"] == ck.extra["ssl_method"]
    assert w.meta["publication"] == "https://arxiv.org/abs/2211.07044"
    assert w.url.rsplit("-", 1)[1].startswith(ck.sha256_prefix)
    # preprocessing identical to the enum's transforms (resize 256, crop 224, /10000)
    x = torch.from_numpy(np.stack(dn_patches(2, 13, 61, 53)))
    np.testing.assert_allclose(ssl4eo.preprocess(x, 224, 256).numpy(), w.transforms(x.clone()).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_normalisation_constants_are_the_published_ones():
    # SSL4EO-S12 linear_BE_moco.py#L167 / eurosat_dataset.py#L97: S2 uint16 DN / 10000
    norm = tgm.ResNet50_Weights.SENTINEL2_ALL_MOCO.transforms[-1]
    assert list(norm.mean) == [0] and list(norm.std) == [10000] == [ssl4eo.DN_DIVISOR]
    assert ssl4eo.SSL4EO_BANDS == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10",
                                   "B11", "B12")


def _tiny(weights_dir, tiny_variant, builder, kwargs):
    torch.manual_seed(0)
    ref = getattr(tgm, builder)(None, in_chans=13, **kwargs).eval()
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith(("fc.", "head."))}
    torch.save(state, weights_dir / f"tiny-{builder}.pth")   # torchgeo files: bare timm state dicts
    base = "resnet50_moco" if builder.startswith("resnet") else "vits16_moco"
    size = 64 if builder.startswith("resnet") else 32   # both give a 2 x 2 grid
    tiny_variant(ssl4eo, base, filename=f"tiny-{builder}.pth", arch={"builder": builder, "kwargs": kwargs},
                 image_size=size, extra={"resize_to": size * 256 // 224, "ssl_method": "moco"})
    return ref, ssl4eo.SSL4EOEmbedder(variant="tiny", device="cpu")


@pytest.mark.parametrize("builder,kwargs", [
    ("resnet18", {}),
    ("vit_small_patch16_224", {"img_size": 32, "depth": 1, "embed_dim": 48, "num_heads": 2}),
])
def test_parity_with_the_torchgeo_model(weights_dir, tiny_variant, builder, kwargs):
    ref, emb = _tiny(weights_dir, tiny_variant, builder, kwargs)
    xs = dn_patches(3, 13, 45, 40)
    x, _ = emb._prepare(xs, L1C, [{}] * 3)
    with torch.no_grad():
        feats = ref.forward_features(x)
    if feats.ndim == 4:
        want_grid, want_pool = feats.numpy(), feats.mean((2, 3)).numpy()
    else:
        patches = feats[:, 1:]
        want_pool = patches.mean(1).numpy()
        want_grid = patches.reshape(3, 2, 2, -1).permute(0, 3, 1, 2).numpy()
    pooled = emb.embed_batch(xs, sensor=L1C, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([p.data for p in pooled]), want_pool, atol=1e-5, rtol=1e-5)
    one = emb.embed(xs[2], sensor=L1C, output=OutputSpec.pooled())
    np.testing.assert_allclose(one.data, want_pool[2], atol=1e-5, rtol=1e-5)
    grids = emb.embed_batch(xs, sensor=L1C, output=OutputSpec.grid())
    np.testing.assert_allclose(np.stack([g.data for g in grids]), want_grid, atol=1e-5, rtol=1e-5)
    mx = emb.embed(xs[0], sensor=L1C, output=OutputSpec.pooled("max"))
    np.testing.assert_allclose(mx.data, want_grid[0].reshape(want_grid.shape[1], -1).max(1), atol=1e-5)
    assert one.meta["cls_removed"] is (feats.ndim == 3) and one.meta["ssl_method"] == "moco"


def test_l2a_sensor_without_b10_is_refused(weights_dir, tiny_variant):
    _, emb = _tiny(weights_dir, tiny_variant, "resnet18", {})
    l2a = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", tuple(b for b in ssl4eo.SSL4EO_BANDS if b != "B10"))
    with pytest.raises(ModelError, match=r"lacks \['B10'\]"):
        emb.embed(dn_patches(1, 12)[0], sensor=l2a, output=OutputSpec.pooled())


def test_missing_checkpoint_message_and_checksum_source(weights_dir):
    with pytest.raises(ModelError) as err:
        ssl4eo.SSL4EOEmbedder(variant="vits16_dino", device="cpu")
    msg = str(err.value)
    assert "vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth" in msg and "88 MB" in msg
    assert "hf.co/torchgeo/vit_small_patch16_224_sentinel2_all_dino" in msg
    assert ssl4eo.CATALOG.get("vits16_dino").sha256_prefix == "36bcc127"
