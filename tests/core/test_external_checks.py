"""The weight-free models against independent implementations, on the embedded real scene:
``rcf`` against TorchGeo's ``RCF``, ``spectral`` against the spyndex catalogue's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from rs_embed import sample
from rs_embed.models import get_embedder
from rs_embed.models.rcf import RCF_BANDS
from rs_embed.models.spectral import INDICES
from rs_embed.providers.local import LocalProvider
from rs_embed.specs import OutputSpec, SensorSpec

#: the sample's most varied kilometre: forest, fields, marsh edge
SPOT = sample.points(500)[20].spatial


def _scene(bands):
    sensor = SensorSpec(sample.COLLECTION, tuple(bands))
    return LocalProvider().fetch(SPOT, sample.TEMPORAL, sensor).data, sensor


def test_rcf_equals_torchgeo_rcf_with_the_same_kernels():
    torch = pytest.importorskip("torch", reason="needs torch")
    tg = pytest.importorskip("torchgeo.models", reason="needs the 'models' extra (torchgeo)")
    x, sensor = _scene(RCF_BANDS)
    for bias in (0.0, 0.25):
        emb = get_embedder("rcf", dim=64, seed=3, bias=bias, grid_cell=1, device="cpu")
        per_pixel = emb.embed(x, sensor=sensor, output=OutputSpec.grid()).data    # (64, H, W)
        z, _ = emb._standardise(x[None], sensor)
        ref = tg.RCF(in_channels=len(RCF_BANDS), features=64, kernel_size=3, bias=0.0)
        with torch.no_grad():
            ref.weights.copy_(torch.from_numpy(emb.kernels(len(RCF_BANDS))))
            # TorchGeo: y = conv(x) + b, features relu(y) and relu(-y), valid convolution.
            # rs_embed: relu(z - bias) and relu(-z - bias) with edge-replicated padding. They
            # coincide on interior pixels for the first half with b = -bias, and for the
            # second half with b = +bias.
            ref.biases.fill_(-bias)
            first = ref(torch.from_numpy(z)).numpy()[0, :32]
            ref.biases.fill_(bias)
            second = ref(torch.from_numpy(z)).numpy()[0, 32:]
        interior = per_pixel[:, 1:-1, 1:-1].reshape(64, -1).mean(axis=1)
        np.testing.assert_allclose(interior, np.concatenate([first, second]), rtol=1e-4, atol=1e-6)


def test_spectral_indices_equal_the_spyndex_catalogue_on_the_real_scene():
    spyndex = pytest.importorskip("spyndex", reason="the 'dev' extra installs spyndex")
    bands = sample.BANDS
    x, sensor = _scene(bands)
    emb = get_embedder("spectral", grid_cell=1)
    grid = emb.embed(x, sensor=sensor, output=OutputSpec.grid())
    names = grid.meta["dim_names"]
    refl = {b: x[bands.index(b)].astype(np.float64) / 10000.0 for b in bands}
    for idx in INDICES:
        name, symbols = idx.catalogue
        entry = spyndex.indices[name]
        assert set(entry.bands) == set(symbols), name  # every symbol of the formula is bound
        params = {k: (refl[v] if isinstance(v, str) else v) for k, v in symbols.items()}
        want = spyndex.computeIndex(name, params)
        got = grid.data[names.index(idx.name)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=idx.name)
    # the band each catalogue symbol stands for on Sentinel-2, except NDMI's documented
    # narrow NIR (B8A): with broad NIR it would be exactly -NDBI
    for idx in INDICES:
        name, symbols = idx.catalogue
        for sym, band in symbols.items():
            if isinstance(band, str) and (name, sym) != ("NDMI", "N"):
                assert spyndex.bands[sym].sentinel2a.band == band, (name, sym)
    assert spyndex.bands["N2"].sentinel2a.band == "B8A"
