"""The same point gives the same embedding via get_embedding, get_embeddings_batch and export_batch."""

from __future__ import annotations

import numpy as np
import pytest

import rs_embed
from rs_embed import OutputSpec, get_embedding, get_embeddings_batch, load_export

import fakes
from fakes import T, ex


def _cases():
    yield pytest.param("fake_stats", OutputSpec.pooled(), id="fake")
    yield pytest.param("rcf", OutputSpec.pooled(), id="rcf-pooled")
    yield pytest.param("spectral", OutputSpec.pooled(), id="spectral-pooled")
    yield pytest.param("rcf", OutputSpec.grid(), id="rcf-grid")


@pytest.mark.parametrize("model,output", list(_cases()))
def test_same_embedding_through_every_path(model, output, tmp_path):
    if model.startswith("fake"):
        backend, pts, temporal = fakes.FakeProvider(), fakes.points(5, buffer_m=80), T
    else:
        backend, temporal = "local", rs_embed.sample.TEMPORAL
        pts = [p.spatial for p in rs_embed.sample.points(buffer_m=150)[:5]]
    single = [get_embedding(model, spatial=p, temporal=temporal, backend=backend, output=output).data for p in pts]
    batch = [e.data for e in get_embeddings_batch(model, spatials=pts, temporal=temporal, backend=backend, output=output)]
    kw = dict(spatials=pts, temporal=temporal, models=[model], backend=backend, output=output, show_progress=False,
              chunk_size=3)
    ex(kw, out=str(tmp_path / "i"), layout="per_item")
    ex(kw, out=str(tmp_path / "c"), layout="combined")
    ex(kw, out=str(tmp_path / "n"), layout="combined", format="netcdf")
    per_item = load_export(tmp_path / "i").embedding(model)
    combined = load_export(tmp_path / "c.npz").embedding(model)
    netcdf = load_export(tmp_path / "n.nc").embedding(model)
    for i in range(len(pts)):
        np.testing.assert_allclose(batch[i], single[i], rtol=1e-5, atol=1e-6)
        for got in (per_item, combined, netcdf):
            np.testing.assert_allclose(got[i], single[i], rtol=1e-5, atol=1e-6, equal_nan=True)
    # and the metadata says the same thing
    meta = get_embedding(model, spatial=pts[1], temporal=temporal, backend=backend, output=output).meta
    exported = load_export(tmp_path / "c.npz").models[model].meta[1]
    for k in ("model", "type", "backend", "sensor", "temporal", "output", "input_prep", "grid_hw", "model_config"):
        assert exported[k] == meta[k], k
