"""Past 5,000 exported places the explorer draws its scores with lonboard, and keeps the
query and the examples on the ipyleaflet map."""

import numpy as np

from rs_embed import ExportResult, PointBuffer, sample
from rs_embed.io.load import ModelResult
from rs_embed.widgets import SimilarityExplorer
from rs_embed.widgets.points import LONBOARD_THRESHOLD


def big_result(n):
    rng = np.random.default_rng(0)
    w, s, e, nn = sample.BOUNDS
    spatials = [PointBuffer(float(x), float(y), 30.0).to_dict()
                for x, y in zip(rng.uniform(w, e, n), rng.uniform(s, nn, n))]
    emb = rng.normal(size=(n, 32)).astype(np.float32)
    model = ModelResult("toy", "ok", emb, None, [{} for _ in range(n)])
    return ExportResult(layout="combined", spatials=spatials, temporal=None, n_items=n, status="ok",
                        models={"toy": model}, manifest={}), emb


def test_many_places_go_to_lonboard():
    import lonboard

    n = LONBOARD_THRESHOLD + 500
    res, emb = big_result(n)
    ex = SimilarityExplorer(res, k=5)
    ex.pick(0)
    assert len(ex.hits) == 5
    (view,) = ex.view.children
    assert isinstance(view, lonboard.Map) and len(view.layers[0].table) == n
    assert [f["properties"]["index"] for f in ex._layer.data["features"]] == [0]  # the query only
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    best = np.argsort(-(unit @ unit[0]))[1:6]
    assert ex.hits.indices.tolist() == best.tolist()
