"""ExportPanel: the form is an export_batch call; the run is a background thread."""

import datetime as dt

import numpy as np
import pytest

import rs_embed
from rs_embed import BBox, OutputSpec, PointBuffer, TemporalSpec, load_export, sample
from rs_embed.widgets import ExportPanel, RoiPicker

T = sample.TEMPORAL
PTS = sample.points()


def make_picker(n=3):
    picker = RoiPicker(show_sample=False)
    for p in PTS[: 8 * n: 8]:
        picker.add(p.spatial, p.name)
    return picker


def test_form_builds_the_call_a_person_writes(tmp_path, monkeypatch):
    picker = make_picker(2)
    picker.add_bbox(-75.70, 37.60, -75.69, 37.61, name="box")
    panel = ExportPanel(picker, temporal=T, backend="local", out=str(tmp_path / "run"))
    panel.models_w.value = ("rcf", "spectral")
    panel.output_w.value = "grid"
    panel.format_w.value = "netcdf"
    panel.chunk_w.value = 4
    panel.workers_w.value = 2
    panel.resume_w.value = True
    panel.input_prep_w.value = "tile"
    panel.continue_w.value = False
    expected = dict(
        spatials=[PTS[0].spatial, PTS[8].spatial, BBox(-75.70, 37.60, -75.69, 37.61)],
        names=[PTS[0].name, PTS[8].name, "box"],
        temporal=TemporalSpec.range("2015-06-23", "2016-06-11"),
        models=["rcf", "spectral"],
        out=str(tmp_path / "run"), layout="per_item", format="netcdf",
        output=OutputSpec.grid(), backend="local", device="auto", input_prep="tile",
        save_inputs=True, chunk_size=4, num_workers=2, resume=True, continue_on_error=False,
    )
    assert panel.export_kwargs() == expected

    # the code shown to the user is that very call
    seen = {}
    monkeypatch.setattr(rs_embed, "export_batch", lambda **kw: seen.update(kw))
    exec(panel.code(), {})
    assert seen == expected


def test_year_no_time_and_one_file_layout(tmp_path):
    panel = ExportPanel(spatials=[PointBuffer(-75.62, 37.67, 300)], models=["spectral"],
                        temporal=TemporalSpec.year(2016), backend="local", layout="combined",
                        out=str(tmp_path / "one"))
    kw = panel.export_kwargs()
    assert kw["temporal"] == TemporalSpec.year(2016)
    assert kw["layout"] == "combined" and "names" not in kw  # names only name per-item files
    panel.time_mode_w.value = "none"
    assert panel.export_kwargs()["temporal"] is None
    assert panel.start_w.layout.display == "none" and panel.year_w.layout.display == "none"
    panel.time_mode_w.value = "range"
    panel.start_w.value, panel.end_w.value = dt.date(2016, 1, 1), dt.date(2016, 3, 1)
    assert panel.export_kwargs()["temporal"] == TemporalSpec.range("2016-01-01", "2016-03-01")


@pytest.mark.parametrize("setup,message", [
    (lambda p: p.picker.clear(), "no ROIs yet"),
    (lambda p: setattr(p.models_w, "value", ()), "select at least one model"),
    (lambda p: setattr(p.end_w, "value", dt.date(2015, 1, 1)), "start must be before end"),
    (lambda p: setattr(p.out_w, "value", "  "), "output path"),
])
def test_bad_settings_disable_export_and_say_why(tmp_path, setup, message):
    panel = ExportPanel(make_picker(1), temporal=T, backend="local", out=str(tmp_path / "r"))
    assert not panel.export_button.disabled and panel.disabled_reason.value == ""
    setup(panel)
    # before any press: the button is off and the panel says why
    assert panel.export_button.disabled
    assert message in panel.disabled_reason.value and message in panel.export_button.tooltip
    panel.export_button.click()  # a press anyway (e.g. from code) is refused the same way
    assert panel.status == "invalid" and not panel.running
    assert message in panel.message.value
    assert not (tmp_path / "r").exists()


def test_a_failing_export_ends_in_the_panel(tmp_path):
    # a ROI far outside the local catalog: the engine refuses it in the thread
    panel = ExportPanel(spatials=[PointBuffer(10.0, 50.0, 500)], temporal=T, backend="local",
                        out=str(tmp_path / "r"), layout="combined")
    panel.continue_w.value = False
    panel.export()
    panel.wait(60)
    assert panel.status == "failed" and panel.error.startswith("ProviderError")
    assert "export failed" in panel.message.value
    assert "nothing in the local catalog covers" in panel.message.value
    assert not panel.export_button.disabled and panel.cancel_button.disabled
    bar = panel.progress_box.children[0]
    assert "failed" in bar.children[0].value and "starting" not in bar.children[0].value
    assert bar.children[1].bar_style == "danger"
    # keeping going records the failure per point and says so in the summary
    panel.continue_w.value = True
    panel.export()
    panel.wait(60)
    assert panel.status == "failed" and panel.error == ""
    assert "<td>rcf</td><td>0</td><td>1</td>" in panel.summary.value
    assert "nothing in the local catalog covers" in panel.summary.value


def bar_of(panel):
    return panel.progress_box.children[0].children[1]


def test_every_roi_failing_is_red_with_one_error_per_cause(tmp_path):
    # eight ROIs off the imagery, each with its own coordinates in the error message
    picker = RoiPicker(show_sample=False)
    for k in range(8):
        picker.add_point(10.0 + 0.01 * k, 50.0, buffer_m=300)
    panel = ExportPanel(picker, temporal=T, backend="local", out=str(tmp_path / "all_bad"))
    # marked before the export: every ROI lies outside the imagery
    assert picker.outside == picker.names
    assert "8 ROI(s) lie partly or wholly outside the imagery" in panel.disabled_reason.value
    assert not panel.export_button.disabled  # a warning, not a blocker
    panel.export()
    panel.wait(60)
    assert panel.status == "failed"
    assert bar_of(panel).bar_style == "danger"  # not a green 8/8
    assert "8 failed" in panel.progress_box.children[0].children[0].value.replace("\u2007", " ")
    summary = panel.summary.value
    assert "0 of 8 ROI(s) exported" in summary
    assert summary.count("<details class='rs-error-cause'") == 1  # one cause, not eight copies
    assert "8 ROI(s), rcf" in summary
    assert set(picker.statuses.values()) == {"failed"}


def test_partial_export_is_amber_warns_of_nodata_and_offers_downloads(tmp_path):
    picker = RoiPicker(show_sample=False)
    picker.add(PTS[0].spatial, "inside")
    picker.add_point(-75.575, 37.65, buffer_m=500, name="edge")  # about 80 % off the scene
    picker.add_point(10.0, 50.0, buffer_m=300, name="far")
    panel = ExportPanel(picker, temporal=T, backend="local", out=str(tmp_path / "mixed"))
    assert picker.state("edge") == "partly outside" and picker.state("far") == "outside"
    panel.export()
    panel.wait(60)
    assert panel.status == "partial"
    assert bar_of(panel).bar_style == "warning"
    assert "2 of 3 ROI(s) exported" in panel.summary.value
    assert "mostly nodata" in panel.summary.value and "edge (rcf: 8" in panel.summary.value
    assert picker.statuses == {"inside": "ok", "edge": "nodata", "far": "failed"}
    # the download link carries the files themselves: no file server is needed
    import base64
    import io
    import re
    import zipfile

    html = panel.downloads.value
    href = re.search(r"class='rs-download rs-download-zip' download='mixed.zip' href='data:application/zip;base64,([^']+)'", html)
    assert href, html[:300]
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(href.group(1)))).namelist()
    assert {"mixed/inside.npz", "mixed/inside.json", "mixed/edge.npz", "mixed/far.json"} <= set(names)


def test_live_failures_turn_the_bar_amber_then_red(tmp_path):
    panel = ExportPanel(spatials=[PTS[0].spatial] * 1, names=["a"], temporal=T, backend="local",
                        out=str(tmp_path / "x"))
    from tqdm.notebook import tqdm

    panel._bar = tqdm(total=4, desc="starting", display=False)
    panel._on_progress(2, 4, "export", 1)
    assert bar_of_bar(panel._bar).bar_style == "warning" and "1 failed" in panel._bar.desc
    assert "1 of 2 point(s) so far" in panel.live.value
    panel._on_progress(3, 4, "export", 3)
    assert bar_of_bar(panel._bar).bar_style == "danger"


def bar_of_bar(bar):
    return bar.container.children[1]


def test_readiness_before_a_run(tmp_path):
    panel = ExportPanel(make_picker(1), temporal=T, backend="local", out=str(tmp_path / "r"))
    assert "rcf</b> on <code>local</code>: <span style='color:#2e7d32'>ready" in panel.readiness.value
    panel.models_w.value = ("rcf", "gse")  # an Earth Engine product on the local backend
    assert panel.export_button.disabled
    assert "gse: model &#x27;gse&#x27; cannot read from backend &#x27;local&#x27;" in panel.disabled_reason.value
    ready = {r.model: r.ready for r in panel.readiness_report()}
    assert ready == {"rcf": True, "gse": False}
    panel.export()
    assert panel.status == "invalid" and "not ready" in panel.message.value
    panel.models_w.value = ("rcf",)
    assert not panel.export_button.disabled and panel.disabled_reason.value == ""


def test_backends_come_from_the_registry():
    from rs_embed.providers import register_provider

    register_provider("toy_backend", "rs_embed.providers.local:LocalProvider")
    panel = ExportPanel(spatials=[PTS[0].spatial], temporal=T, backend="local")
    assert "toy_backend" in panel.backend_w.options and panel.backend_w.options[0] == "auto"


def test_export_runs_in_the_background_with_progress(tmp_path, gated):
    picker = make_picker(3)
    panel = ExportPanel(picker, models=["gated_rcf"], temporal=T, backend="local",
                        out=str(tmp_path / "bg"))
    panel.chunk_w.value = 1
    panel.export_button.click()
    assert gated.entered.wait(30)
    # the export is parked inside the model, and this thread carries on
    assert panel.running and panel.status == "running"
    assert panel.export_button.disabled and not panel.cancel_button.disabled
    panel.export_button.click()  # a second press does not start a second run
    gated.gate.set()
    panel.wait(60)
    assert panel.status == "done", panel.error
    bar = panel.progress_box.children[0]
    assert bar.children[1].value == bar.children[1].max == 3
    assert "100%" in bar.children[0].value
    assert "<td>gated_rcf</td><td>3</td><td>0</td><td>0</td>" in panel.summary.value
    assert bar_of(panel).bar_style == "success"
    res = panel.load()
    assert res.names == picker.names and res.status == "ok"
    assert np.isfinite(res.embedding("gated_rcf")).all()
    assert len(gated.embedded) == 3


@pytest.mark.parametrize("layout", ["per_item", "combined"])
def test_cancel_stops_after_the_chunk_and_resume_finishes(tmp_path, gated, layout):
    picker = make_picker(4)
    panel = ExportPanel(picker, models=["gated_rcf"], temporal=T, backend="local",
                        out=str(tmp_path / "c"), layout=layout)
    panel.chunk_w.value = 1
    panel.export()
    assert gated.entered.wait(30)
    panel.cancel_button.click()
    assert panel.status == "cancelling" and panel.cancel_button.disabled
    gated.gate.set()
    panel.wait(60)
    assert panel.status == "cancelled", panel.error
    assert "resume" in panel.summary.value.lower()
    assert len(gated.embedded) == 1  # the chunk in flight finished; no other started
    partial = load_export(panel.location)
    assert partial.status == "partial"

    panel.resume_w.value = True
    panel.export()
    panel.wait(60)
    assert panel.status == "done", panel.error
    assert len(gated.embedded) == 4  # only the three missing points were computed
    res = load_export(panel.location)
    assert res.status == "ok" and res.n_items == 4
    assert np.isfinite(res.embedding("gated_rcf")).all()
