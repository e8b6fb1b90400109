"""Plots and map overlays read real exports: both layouts, both formats, failed points."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from rs_embed import OutputSpec, PointBuffer, export_batch, load_export, sample
from rs_embed.widgets import (embedding_overlay, most_similar, plot_embeddings, plot_inputs,
                              plot_similarity_search)
from rs_embed.widgets.analysis import cosine_similarity, pca_project, pca_rgb
from rs_embed.widgets.footprints import ground_bounds
from rs_embed.widgets.quicklook import rgb_image, rgb_limits

PTS = [sample.points()[i] for i in (0, 6, 12, 18, 24)]  # water, marsh, beach, forest, field
T = sample.TEMPORAL
OUTSIDE = PointBuffer(-75.0, 37.0, 500)  # no scene there: this point fails


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    common = dict(temporal=T, backend="local", show_progress=False)
    export_batch(spatials=[p.spatial for p in PTS], names=[p.name for p in PTS],
                 models=["rcf", "spectral"], out=str(root / "pooled"), layout="per_item", **common)
    export_batch(spatials=[p.spatial for p in PTS[:3]], models=["rcf"], output=OutputSpec.grid(),
                 format="netcdf", out=str(root / "grid"), layout="combined", **common)
    export_batch(spatials=[p.spatial for p in PTS[:3]], names=[p.name for p in PTS[:3]],
                 models=["rcf"], output=OutputSpec.grid(), out=str(root / "grid_dir"),
                 layout="per_item", **common)
    export_batch(spatials=[PTS[0].spatial, OUTSIDE, PTS[4].spatial], models=["rcf"],
                 out=str(root / "partial"), layout="combined", continue_on_error=True, **common)
    return {"pooled": root / "pooled", "grid": root / "grid.nc", "grid_dir": root / "grid_dir",
            "partial": root / "partial.npz"}


def images(fig):
    return [ax.images[0] for ax in fig.axes if ax.images]


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.images]


def test_rgb_inputs_one_panel_per_roi_named(exports):
    res = load_export(exports["pooled"], inputs=True)
    fig = plot_inputs(res, "rcf")
    assert [t.split()[0] for t in titles(fig)] == [p.name for p in PTS]
    arr = images(fig)[4].get_array()
    assert arr.shape == (100, 100, 3) and 0 <= arr.min() and arr.max() <= 1
    # one stretch for all panels (B4/B3/B2 percentiles over every ROI)...
    inputs = res.models["rcf"].inputs
    bands = res.models["rcf"].meta[0]["input"]["bands"]
    limits = rgb_limits(list(inputs), bands)
    np.testing.assert_allclose(arr, rgb_image(inputs[4], bands, limits=limits))
    # ... so brightness compares across ROIs: the sand beach is brighter than open water
    water, beach = (images(fig)[i].get_array() for i in (0, 2))
    assert beach.mean() > water.mean() + 0.1


def test_band_grid_titles_come_from_the_manifest(exports):
    fig = plot_inputs(exports["pooled"], "spectral", kind="bands", index=4)
    assert [t.split("\n")[0] for t in titles(fig)] == list(sample.BANDS)
    with pytest.raises(ValueError, match="kind"):
        plot_inputs(exports["pooled"], kind="hist")


def test_pooled_scatter_and_heatmap_are_the_data(exports):
    res = load_export(exports["pooled"])
    fig = plot_embeddings(exports["pooled"], "spectral")
    emb = res.embedding("spectral")
    scores, _ = pca_project(emb, 2)
    scatter = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(scatter), scores, rtol=1e-6)
    assert [t.get_text() for t in fig.axes[0].texts] == res.names
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), cosine_similarity(emb))
    grouped = plot_embeddings(res, "spectral", groups=[p.label for p in PTS])
    assert sorted(t.get_text() for t in grouped.axes[0].get_legend().get_texts()) == \
        sorted(p.label for p in PTS)


@pytest.mark.parametrize("key", ["grid", "grid_dir"])
def test_grid_maps_beside_inputs_in_both_layouts_and_formats(exports, key):
    res = load_export(exports[key])
    fig = plot_embeddings(exports[key], names=[p.name for p in PTS[:3]])
    ims = images(fig)
    assert len(ims) == 6
    expected = pca_rgb([res.embedding("rcf")[i] for i in range(3)])
    for i in range(3):
        np.testing.assert_allclose(ims[2 * i + 1].get_array(), expected[i], atol=1e-6)
        assert titles(fig)[2 * i].startswith(PTS[i].name)


def test_failed_points_are_left_out_not_plotted_as_zeros(exports):
    res = load_export(exports["partial"])
    assert res.status == "partial"
    fig = plot_embeddings(res)
    assert len(fig.axes[0].collections[0].get_offsets()) == 2
    assert [t.get_text() for t in fig.axes[0].texts] == ["#0", "#2"]
    fig = plot_inputs(res, names=["water", "nowhere", "field"])
    assert titles(fig)[0].startswith("water") and len(images(fig)) == 2
    assert any("no input" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_similarity_search_ranks_by_cosine(exports):
    res = load_export(exports["pooled"])
    emb = res.embedding("rcf")
    hits = most_similar(emb, 0, names=res.names)
    sims = cosine_similarity(emb)[0]
    assert [h[0] for h in hits] == sorted(range(1, 5), key=lambda i: -sims[i])
    fig = plot_similarity_search(res, "rcf", query=PTS[4].name, k=2)
    assert titles(fig)[0] == f"query: {PTS[4].name}" and len(images(fig)) == 3


def test_grid_overlay_sits_on_the_roi(exports):
    layer = embedding_overlay(exports["grid_dir"], "rcf", PTS[1].name)
    (s, w), (n, e) = layer.bounds
    minlon, minlat, maxlon, maxlat = ground_bounds(PTS[1].spatial)
    cell_deg = 1000 / 7 / 111_000  # one embedding cell, in degrees
    assert abs(w - minlon) < cell_deg and abs(e - maxlon) < 2 * cell_deg
    assert abs(s - minlat) < cell_deg and abs(n - maxlat) < cell_deg
    png = Image.open(io.BytesIO(base64.b64decode(layer.url.split(",", 1)[1])))
    assert png.mode == "RGBA" and max(png.size) >= 256
    with pytest.raises(ValueError, match="grid"):
        embedding_overlay(exports["pooled"], "rcf", 0)


def test_figures_are_readable_at_the_size_of_the_sample(sample_export):
    from matplotlib.text import Annotation

    from rs_embed import sample
    from rs_embed.widgets import plot_embeddings as embeddings_figure
    from rs_embed.widgets import plot_inputs as inputs_figure

    groups = list(sample.labels())
    figs = [embeddings_figure(sample_export, "spectral", groups=groups),
            embeddings_figure(sample_export, "rcf"), inputs_figure(sample_export, "rcf")]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in figs:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        if fig._suptitle is not None:
            assert fig._suptitle.get_fontsize() >= 10
        for ax in fig.axes:
            if ax.get_title():
                assert ax.title.get_fontsize() >= 10, ax.get_title()
            for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
                boxes = [t.get_window_extent(renderer) for t in ticks if t.get_text()]
                assert all(t.get_fontsize() >= 8 for t in ticks if t.get_text())
                assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), ax.get_title()
        notes = [a.get_window_extent(renderer) for a in fig.findobj(Annotation)]
        assert len(notes) <= 20  # 33 names on one scatter would overlap: the legend says it
