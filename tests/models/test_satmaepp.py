"""satmaepp: rshf's SatMAE++ (the MVRL hub layout: model.safetensors) loads through the real
loader; parity with rshf's forward_encoder (mask ratio 0) fed by the official eval transform
on BGR images, pooled, batch and grid."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches, load_file_module

torch = pytest.importorskip("torch", reason="satmaepp needs the 'models' extra (torch)")
pytest.importorskip("timm", reason="satmaepp needs the 'models' extra (timm)")
from rs_embed.models import satmaepp  # noqa: E402

BGR = SensorSpec("COPERNICUS/S2_SR_HARMONIZED", ("B4", "B3", "B2", "B8"))  # any order: picked by name


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("transformers", reason="the rshf reference needs transformers")
    return load_file_module("rshf_satmaepp_model", "rshf", "satmaepp/model.py")


def test_parity_with_rshf(reference, weights_dir, tiny_variant):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    cfg = reference.SatMAEPPConfig(in_chans=3, img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                                   decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    ref = reference.MaskedAutoencoderViT(cfg).eval()
    for m in ref.modules():   # the official models_mae.py builds LayerNorm(eps=1e-6); rshf keeps the default
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-6
    (weights_dir / "satmaepp-tiny").mkdir()
    save_file(ref.state_dict(), str(weights_dir / "satmaepp-tiny" / "model.safetensors"))  # PyTorchModelHubMixin layout
    tiny_variant(satmaepp, "vitl16_rgb", filename="satmaepp-tiny/model.safetensors", image_size=32,
                 arch={"kind": "rgb", "img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2})
    emb = satmaepp.SatMAEPPEmbedder(variant="tiny", device="cpu")
    xs = dn_patches(3, 4, 40, 44)
    # the eval transform on the BGR 8-bit image: ToTensor, Normalize, resize 32/0.875, centre crop
    from torchvision.transforms.v2 import functional as TF

    from rs_embed.models.pretrained import rgb_uint8
    want_in = []
    for a in xs:
        bgr = rgb_uint8(a[[2, 1, 0]], 0.3)            # B2 B3 B4 of (B4, B3, B2, B8)
        x = TF.normalize(torch.from_numpy(bgr).permute(2, 0, 1).float() / 255.0,
                         list(satmaepp.FMOW_RGB_MEAN), list(satmaepp.FMOW_RGB_STD))
        x = TF.resize(x[None], [int(32 / 0.875)], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        want_in.append(TF.center_crop(x, [32, 32])[0])
    with torch.no_grad():
        tok, _, restore = ref.forward_encoder(torch.stack(want_in), mask_ratio=0.0)
    body = torch.gather(tok[:, 1:], 1, restore.unsqueeze(-1).expand(-1, -1, 32))
    got = emb.embed_batch(xs, sensor=BGR, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), body.mean(1).numpy(), atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[1], sensor=BGR, output=OutputSpec.grid())
    np.testing.assert_allclose(grid.data, body[1].reshape(2, 2, 32).permute(2, 0, 1).numpy(), atol=1e-5)
    mx = emb.embed(xs[2], sensor=BGR, output=OutputSpec.pooled("max"))
    np.testing.assert_allclose(mx.data, body[2].max(0).values.numpy(), atol=1e-5)
    assert got[0].meta["model_bands"] == ["B2", "B3", "B4"]


def test_constants():
    from rs_embed.models import satmae
    assert satmaepp.CATALOG.get("vitl16_rgb").mean == satmae.FMOW_RGB_MEAN
    assert satmaepp.SATMAEPP_RGB_BANDS == ("B2", "B3", "B4")


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        satmaepp.SatMAEPPEmbedder(device="cpu")
    assert "MVRL/satmaepp_ViT-L_pretrain_fmow_rgb" in str(err.value) and "model.safetensors" in str(err.value)


def test_grid_georeferencing_carries_the_centre_crop():
    """SatMAE++'s eval transform (resize 256, centre crop 224, as SatMAE's): its grid covers
    the middle 224/256 of the patch, and a rectangle's cells are those of that crop."""
    from rs_embed.models.pretrained import roi_cells
    emb = satmaepp.SatMAEPPEmbedder.__new__(satmaepp.SatMAEPPEmbedder)
    emb.checkpoint = satmaepp.CATALOG.get("vitl16_rgb")
    y0, x0, y1, x1 = emb.grid_footprint((256, 256))
    assert (y0, x0, y1, x1) == (16.0, 16.0, 240.0, 240.0)
    rows, cols, mask = roi_cells((0, 64, 256, 128), (y0, x0, y1, x1), (14, 14))
    assert (rows.start, rows.stop) == (0, 14) and (cols.start, cols.stop) == (3, 11)
