"""The research bench in a real browser: Voila on 127.0.0.1, Debian's headless Chromium.

The journey a user makes: click the map twice (two ROIs join the labelled places
already on it), press Export (the bar reaches 100 % and turns green), open the
similarity explorer and click a query place (the ranked table fills and the best
matches light up on the map), open the probe panel, label three places by clicking
and run a k-NN probe (the accuracy table and confusion matrix appear), and download
the export through its link (a zip that holds the files). Screenshots are kept in the
test's folder; with RS_EMBED_DOCS_SCREENSHOTS=<dir> they are also copied there (the
docs use them: ``RS_EMBED_DOCS_SCREENSHOTS=docs/pages/img pytest tests/widgets/test_browser.py``).
"""

import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from rs_embed import PointBuffer, load_export, sample
from voila_server import VoilaServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
#: the labelled places on the map before the user clicks: water, forest and cropland
PLACES = [p.name for p in sample.points(300, labels=["water", "forest", "cropland"])]

APP = '''
from IPython.display import display
from rs_embed import sample
from rs_embed.widgets import ExportPanel, RoiPicker

picker = RoiPicker(buffer_m=300)
picker.add_many([(p.name, p.spatial) for p in sample.points(300, labels=["water", "forest", "cropland"])])
panel = ExportPanel(picker, models=["rcf"], temporal=sample.TEMPORAL, backend="local",
                    out="exports/browser_run", chunk_size=4)
display(picker, panel)
'''


@pytest.fixture
def voila(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(APP)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "app.ipynb")
    server = VoilaServer(tmp_path / "app.ipynb", tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def only_local(url_prefix):
    def route(r):
        url = r.request.url
        if url.startswith(url_prefix) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:  # CDN fonts, web tiles: nothing may wait on the network
            r.abort()
    return route


def rows(page) -> int:
    return page.locator(".rs-roi-row").count()


def click_place(page, name):
    """Click inside ROI ``name``'s square, just below its drag handle (not on it)."""
    m = page.locator(".rs-roi-map .leaflet-container").first
    m.scroll_into_view_if_needed()
    icon = page.locator(".leaflet-marker-icon", has=page.locator(".rs-roi-label", has_text=name)).first
    box, mbox = icon.bounding_box(), m.bounding_box()
    m.click(position={"x": box["x"] + box["width"] / 2 - mbox["x"],
                      "y": box["y"] + box["height"] / 2 + 7 - mbox["y"]})


def test_the_research_journey_in_the_browser(voila, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    timings = {}
    t0 = time.monotonic()
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            viewport={"width": 1280, "height": 1100}, accept_downloads=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run"])
        ctx.tracing.start(screenshots=True, snapshots=True)
        ctx.route("**/*", only_local(voila.url))
        page = ctx.new_page()
        try:
            page.goto(voila.url + "/", wait_until="domcontentloaded")
            page.wait_for_selector(".rs-roi-map .leaflet-container, .leaflet-container", timeout=90_000)
            page.wait_for_selector(".leaflet-tile-loaded", timeout=60_000)
            page.wait_for_selector(".leaflet-image-layer", timeout=60_000)  # the sample quicklook
            page.wait_for_function(f"document.querySelectorAll('.rs-roi-label').length == {len(PLACES)}",
                                   timeout=30_000)
            timings["page ready"] = time.monotonic() - t0
            voila.record_children()
            # one row per layer group in the layer control
            groups = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
            assert [g.strip() for g in groups] == ["Imagery", "Scene footprints", "ROIs"], groups

            # 1. two clicks, two new ROIs (the table shows the first page of 21)
            m = page.locator(".leaflet-container").first
            box = m.bounding_box()
            for k, fx in enumerate((0.42, 0.58), start=1):
                m.click(position={"x": box["width"] * fx, "y": box["height"] * 0.62})
                page.wait_for_function(
                    f"document.querySelectorAll('.rs-roi-label').length == {len(PLACES) + k}", timeout=20_000)
            assert "21 ROIs" in page.locator(".rs-roi-status").inner_text()
            page.locator(".rs-roi-picker").screenshot(path=str(shots / "roi_picker.jpg"), quality=85)

            # 2. export: readiness is shown, the bar reaches 100 % and is green
            assert "ready" in page.locator(".rs-readiness").inner_text()
            page.locator(".rs-export-button").click()
            page.wait_for_function(
                "(() => { const s = document.querySelector('.rs-export-summary');"
                " return s && s.innerText.includes('Export done'); })()", timeout=120_000)
            timings["export"] = time.monotonic() - t0 - timings["page ready"]
            progress = page.locator(".rs-export-progress").inner_text()
            assert "100%" in progress and "21/21" in progress, progress
            bar = page.locator(".rs-export-progress .progress-bar").first
            assert bar.evaluate("e => e.style.width") == "100%"
            page.wait_for_function("document.querySelector('.rs-export-progress .progress-bar')"
                                   ".classList.contains('progress-bar-success')", timeout=20_000)  # green
            page.locator(".rs-export-panel").screenshot(path=str(shots / "export_panel.png"))

            # 3. similarity explorer: a click on a place is the query
            page.locator(".rs-explore-button").click()
            page.wait_for_selector(".rs-similarity-explorer", timeout=30_000)
            lit_before = page.evaluate("document.querySelectorAll('path[stroke-width=\"3\"]').length")
            click_place(page, "field_1")
            page.wait_for_selector(".rs-similarity-table tr.rs-hit", timeout=30_000)
            hits = page.locator(".rs-similarity-table tr.rs-hit").all_inner_texts()
            assert len(hits) == 10 and hits[0].split("\t")[0].strip() == "1", hits
            page.wait_for_function("document.querySelector('.rs-similarity-status').innerText"
                                   ".includes('most similar to query field_1')", timeout=20_000)
            page.wait_for_function(
                f"document.querySelectorAll('path[stroke-width=\"3\"]').length >= {lit_before + 10}",
                timeout=20_000)  # the ten best matches are drawn, coloured by similarity
            fills = set(page.evaluate("[...document.querySelectorAll('path[stroke-width=\"3\"]')]"
                                      ".map(p => p.getAttribute('fill'))"))
            assert len(fills) >= 3, fills
            assert "cosine similarity" in page.locator(".rs-layer-panel").inner_text()
            page.locator(".rs-similarity-explorer").screenshot(path=str(shots / "similarity_explorer.png"))
            page.locator(".rs-roi-map").screenshot(path=str(shots / "similarity_map.jpg"), quality=85)
            page.locator(".rs-similarity-explorer .widget-toggle-button", has_text="Off").click()

            # 4. label three places by clicking and run a k-NN probe
            page.locator(".rs-probe-button").click()
            page.wait_for_selector(".rs-probe-panel", timeout=30_000)
            label = page.locator(".rs-probe-label input")
            label.fill("water")
            label.press("Enter")
            page.locator(".rs-probe-click").click()
            for name in ("atlantic_1", "lagoon_1", "wachapreague_bay"):
                click_place(page, name)
                page.wait_for_function(
                    "(() => [...document.querySelectorAll('.rs-probe-counts')].some("
                    f"e => /water \\(\\d+\\)/.test(e.innerText) && e.innerText.includes('{name}') === false))()",
                    timeout=20_000)
            page.wait_for_function(
                "[...document.querySelectorAll('.rs-probe-counts')].some(e => e.innerText.includes('water (3)'))",
                timeout=20_000)
            page.locator(".rs-probe-run").click()
            page.wait_for_selector(".rs-probe-results table", timeout=60_000)
            result = page.locator(".rs-probe-results").inner_text()
            assert "rcf" in result and "knn" in result and "%" in result, result
            page.wait_for_selector(".rs-probe-results img.rs-probe-confusion", timeout=20_000)
            page.locator(".rs-probe-panel").screenshot(path=str(shots / "probe_panel.png"))

            # 5. the download link carries the export itself
            with page.expect_download(timeout=30_000) as dl:
                page.locator("a.rs-download-zip").click()
            download = dl.value
            assert download.suggested_filename == "browser_run.zip"
            saved = tmp_path / "downloaded.zip"
            download.save_as(saved)
            timings["journey"] = time.monotonic() - t0
            page.screenshot(path=str(shots / "page.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            ctx.tracing.stop(path=str(tmp_path / "trace.zip"))
            ctx.close()
            raise AssertionError(f"browser test failed; screenshot and trace in {tmp_path}\n"
                                 f"--- voila log ---\n{voila.log()[-4000:]}")
        ctx.tracing.stop()
        ctx.close()
    print("browser journey timings (s):", {k: round(v, 1) for k, v in timings.items()})

    names = set(zipfile.ZipFile(saved).namelist())
    assert {"browser_run/roi_01.npz", "browser_run/roi_02.json", "browser_run/field_1.npz"} <= names
    res = load_export(tmp_path / "exports" / "browser_run")
    assert res.status == "ok" and res.names == PLACES + ["roi_01", "roi_02"]
    w, s, e, n = sample.BOUNDS
    clicked = [PointBuffer(d["lon"], d["lat"], d["buffer_m"]) for d in res.spatials[-2:]]
    for spatial in clicked:
        assert spatial.buffer_m == 300 and w < spatial.lon < e and s < spatial.lat < n
    assert clicked[0].lon < clicked[1].lon  # left click, then right click
    with zipfile.ZipFile(saved) as zf:  # the downloaded file is the file on disk
        assert zf.read("browser_run/roi_01.npz") == (tmp_path / "exports/browser_run/roi_01.npz").read_bytes()
    assert (shots / "roi_picker.jpg").stat().st_size > 10_000

    docs = os.environ.get("RS_EMBED_DOCS_SCREENSHOTS")
    if docs:
        Path(docs).mkdir(parents=True, exist_ok=True)
        for name in ("roi_picker.jpg", "export_panel.png", "similarity_map.jpg", "probe_panel.png"):
            shutil.copy(shots / name, Path(docs) / name)
