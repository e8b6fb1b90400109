"""terramind: a checkpoint with terratorch's TerraMindViT layout loads; parity with
terratorch's own TerraMindViT (its files, loaded without the package's heavy __init__) for
Sentinel-2 L2A, L1C and Sentinel-1, pooled, batch and grid; constants read from terratorch."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches, import_skipping_package_inits

torch = pytest.importorskip("torch", reason="terramind needs the 'models-terramind' extra (torch)")
from rs_embed.models import terramind  # noqa: E402

TT = "terratorch.models.backbones.terramind.model"
DIMS = {"dim": 32, "encoder_depth": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def ref():
    pytest.importorskip("einops")
    vit = import_skipping_package_inits(f"{TT}.terramind_vit", "terratorch")
    utils = import_skipping_package_inits(f"{TT}.tm_utils", "terratorch")
    reg_src = import_skipping_package_inits(f"{TT}.modality_info", "terratorch")
    return vit, utils, reg_src


def _reference_model(ref, modalities):
    vit, utils, _ = ref
    torch.manual_seed(0)
    # terratorch terramind_v1_* settings, small dims
    model = vit.TerraMindViT(img_size=32, modalities=modalities, merge_method="mean", patch_size=16, mlp_ratio=4,
                             qkv_bias=False, proj_bias=False, mlp_bias=False,
                             norm_layer=partial(utils.LayerNorm, eps=1e-6, bias=False),
                             act_layer=torch.nn.SiLU, gated_mlp=True, **DIMS).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "mod_emb" in name:
                p.normal_(0, 0.5)
    return model


def _embedder(ref, weights_dir, tiny_variant):
    model = _reference_model(ref, ["S2L2A", "S2L1C", "S1GRD"])
    state = dict(model.state_dict())
    state["decoder.0.norm1.weight"] = torch.ones(4)        # the any-to-any parts are ignored
    torch.save(state, weights_dir / "TerraMind-tiny.pt")
    tiny_variant(terramind, "base", filename="TerraMind-tiny.pt", image_size=32,
                 arch={"dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.0, "patch_size": 16, "img_size": 32})
    return model, terramind.TerraMindEmbedder(variant="tiny", device="cpu")


def _standardised(xs, m):
    mean = np.asarray(m["mean"], np.float32)[:, None, None]
    std = np.asarray(m["std"], np.float32)[:, None, None]
    return torch.from_numpy(np.stack([(a - mean) / std for a in xs]))


@pytest.mark.parametrize("mod,key,name,collection", [
    ("s2_l2a", "untok_sen2l2a@224", "S2L2A", "COPERNICUS/S2_SR_HARMONIZED"),
    ("s2", "untok_sen2l1c@224", "S2L1C", "COPERNICUS/S2_HARMONIZED"),
    ("s1", "untok_sen1grd@224", "S1GRD", "COPERNICUS/S1_GRD")])
def test_parity_with_terratorch(ref, weights_dir, tiny_variant, mod, key, name, collection):
    model, emb = _embedder(ref, weights_dir, tiny_variant)
    m = terramind.MODALITIES[mod]
    sensor = SensorSpec(collection, m["bands"], modality=None if mod == "s2_l2a" else mod)
    xs = [a * (0.01 if mod == "s1" else 1.0) - (15.0 if mod == "s1" else 0.0)
          for a in dn_patches(3, len(m["bands"]), 32, 32)]
    with torch.no_grad():
        want = model({name: _standardised(xs, m)})[-1]
    got = emb.embed_batch(xs, sensor=sensor, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), want.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    mx = emb.embed(xs[1], sensor=sensor, output=OutputSpec.pooled("max"))
    np.testing.assert_allclose(mx.data, want[1].max(0).values.numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[2], sensor=sensor, output=OutputSpec.grid())
    np.testing.assert_allclose(grid.data, want[2].reshape(2, 2, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    assert got[0].meta["terramind_input"] == key and got[0].meta["normalization"]["mean"] == list(m["mean"])


def test_constants_and_shapes_come_from_terratorch(ref):
    src = (ref[0].__file__.rsplit("/", 1)[0]) + "/terramind_register.py"
    text = open(src).read()
    ns: dict = {}
    # the statistics and band lists are plain literals: evaluate them from terratorch's source
    import ast
    tree = ast.parse(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in (
                "PRETRAINED_BANDS", "v1_pretraining_mean", "v1_pretraining_std"):
            ns[node.targets[0].id] = ast.literal_eval(node.value)
    for mod, m in terramind.MODALITIES.items():
        assert list(m["mean"]) == ns["v1_pretraining_mean"][m["key"]]
        assert list(m["std"]) == ns["v1_pretraining_std"][m["key"]]
        assert list(m["bands"]) == [terramind.TERRAMIND_BAND_NAMES[b] for b in ns["PRETRAINED_BANDS"][m["key"]]]
    for size, (dim, depth, heads) in terramind.SHAPES.items():
        block = text.split(f"def terramind_v1_{size}(**kwargs):")[1].split("return model")[0]
        assert f"encoder_depth={depth}," in block and f"dim={dim}," in block and f"num_heads={heads}," in block
    for b in ("B1", "B8A", "B12"):   # terratorch's band names match the vocabulary's common names
        from rs_embed import sensors
        assert sensors.band_info(b).wavelength_um > 0
    np.testing.assert_allclose(terramind.sincos_posemb(14, 14, 64).numpy(),
                               ref[1].build_2d_sincos_posemb(14, 14, 64).numpy(), atol=1e-7)


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        terramind.TerraMindEmbedder(variant="large", device="cpu")
    msg = str(err.value)
    assert "TerraMind_v1_large.pt" in msg and "ibm-esa-geospatial/TerraMind-1.0-large" in msg


def test_describe_lists_the_modalities():
    d = terramind.TerraMindEmbedder.describe()
    assert d["modalities"] == ["s2_l2a", "s2", "s1"] and d["inputs"]["bands"][0] == "B1"


def test_rectangle_crop_and_nodata_fill(ref, weights_dir, tiny_variant):
    """The square in, the ROI's tokens out; masked pixels get the modality's pretraining
    mean (0 after standardising), as meta["nodata_fill"] records."""
    from rs_embed.inference import embed_inputs
    model, emb = _embedder(ref, weights_dir, tiny_variant)
    m = terramind.MODALITIES["s2_l2a"]
    sensor = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", m["bands"])
    x = dn_patches(1, 12, 32, 32, seed=3)[0]
    valid = np.ones((32, 32), bool)
    valid[-5:] = False
    holed = x.copy()
    holed[:, ~valid] = 0.0
    filled = x.copy()
    filled[:, ~valid] = np.asarray(m["mean"], np.float32)[:, None]
    with torch.no_grad():
        want = model({"S2L2A": _standardised([filled], m)})[-1][0].reshape(2, 2, 32)
    ctx = {"roi": (16, 0, 16, 32), "valid": valid}                                  # the lower token row
    grid = embed_inputs(emb, [holed], sensor=sensor, output=OutputSpec.grid(), input_prep=None, contexts=[ctx])[0]
    np.testing.assert_allclose(grid.data, want.permute(2, 0, 1).numpy()[:, 1:2, :], atol=1e-5)
    pooled = embed_inputs(emb, [holed], sensor=sensor, output=OutputSpec.pooled("max"), input_prep=None,
                          contexts=[ctx])[0]
    np.testing.assert_allclose(pooled.data, want[1].max(0).values.numpy(), atol=1e-5)
    assert pooled.meta["nodata_fill"]["pixels"] == 160 and pooled.meta["nodata_fill"]["values"] == list(m["mean"])
