"""dofa: torchgeo-model parity, any band set, published statistics and wavelengths."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed.errors import ModelError
from rs_embed.specs import OutputSpec, SensorSpec

from .conftest import dn_patches

torch = pytest.importorskip("torch", reason="dofa needs the 'models' extra (torch)")
pytest.importorskip("torchgeo", reason="dofa needs the 'models' extra (torchgeo)")
from torchgeo.models import DOFABase16_Weights, DOFALarge16_Weights  # noqa: E402
from torchgeo.models.dofa import DOFA  # noqa: E402

from rs_embed.models import dofa  # noqa: E402

S2 = SensorSpec("COPERNICUS/S2_HARMONIZED", dofa.DOFA_S2_BANDS)
TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture
def tiny(weights_dir, tiny_variant):
    torch.manual_seed(0)
    ref = DOFA(num_classes=0, **TINY).eval()
    # the released MAE checkpoints carry neither fc_norm nor a head
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith(("fc_norm.", "head."))}
    torch.save(state, weights_dir / "dofa-tiny.pth")
    tiny_variant(dofa, "base", filename="dofa-tiny.pth", arch=TINY, image_size=32)
    return ref, dofa.DOFAEmbedder(variant="tiny", device="cpu")


def test_pooled_equals_torchgeo_forward_features(tiny):
    ref, emb = tiny
    xs = dn_patches(3, 9, 40, 40)
    x, info = emb._prepare(xs, S2, [{}] * 3)
    with torch.no_grad():
        want = ref.forward_features(x, list(dofa.DOFA_S2_WAVELENGTHS_UM)).numpy()
    got = emb.embed_batch(xs, sensor=S2, output=OutputSpec.pooled())
    np.testing.assert_allclose(np.stack([g.data for g in got]), want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(emb.embed(xs[1], sensor=S2, output=OutputSpec.pooled()).data, want[1],
                               atol=1e-5, rtol=1e-5)
    grid = emb.embed(xs[0], sensor=S2, output=OutputSpec.grid())
    assert grid.data.shape == (32, 2, 2) and grid.meta["wavelengths_um"] == list(dofa.DOFA_S2_WAVELENGTHS_UM)
    # the grid is what the pooled vector summarises: fc_norm(mean of the grid tokens)
    with torch.no_grad():
        again = ref.fc_norm(torch.from_numpy(grid.data).flatten(1).mean(1)).numpy()
    np.testing.assert_allclose(again, want[0], atol=1e-5)


def test_any_subset_and_order_of_bands(tiny):
    _, emb = tiny
    x = dn_patches(1, 9, seed=3)[0]
    perm = [8, 2, 0, 5, 1, 7, 3, 6, 4]
    shuffled = SensorSpec(S2.collection, tuple(dofa.DOFA_S2_BANDS[i] for i in perm))
    a = emb.embed(x, sensor=S2, output=OutputSpec.pooled()).data
    b = emb.embed(x[perm], sensor=shuffled, output=OutputSpec.pooled()).data
    np.testing.assert_allclose(a, b, atol=1e-4)      # the dynamic embedding ignores band order
    rgb = emb.embed(x[:3], sensor=SensorSpec("C", ("B4", "B3", "B2")), output=OutputSpec.pooled())
    assert rgb.meta["bands_used"] == ["B4", "B3", "B2"] and rgb.meta["wavelengths_um"] == [0.665, 0.56, 0.49]
    with pytest.raises(ModelError, match="B9"):
        emb.embed(x[:2], sensor=SensorSpec("C", ("B4", "B9")), output=OutputSpec.pooled())


def test_published_records_match_torchgeo():
    # constants are checked against the reference libraries in test_encodings.py
    for v, enum in (("base", DOFABase16_Weights.DOFA_MAE), ("large", DOFALarge16_Weights.DOFA_MAE)):
        ck = dofa.CATALOG.get(v)
        assert ck.url == enum.url and enum.meta["model"] == f"dofa_{v}_patch16_224"
        assert enum.meta["publication"] == "https://arxiv.org/abs/2403.15356"


def test_missing_checkpoint_message(weights_dir):
    with pytest.raises(ModelError) as err:
        dofa.DOFAEmbedder(variant="large", device="cpu")
    msg = str(err.value)
    assert "dofa_large_patch16_224-0ff904d3.pth" in msg and "1,360 MB" in msg and "torchgeo/dofa" in msg
