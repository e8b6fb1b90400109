"""The map and the panel in a real browser: Voila on 127.0.0.1, Debian's headless Chromium.

Click the map twice -> two ROIs in the table; press Export -> the progress bar reaches
100 % in the page -> the files exist and load. Screenshots are kept in the test's
folder; with RS_EMBED_DOCS_SCREENSHOTS=<dir> they are also copied there (the docs use
them: ``RS_EMBED_DOCS_SCREENSHOTS=docs/pages/img pytest tests/widgets/test_browser.py``).
"""

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from rs_embed import PointBuffer, load_export, sample
from voila_server import VoilaServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")

APP = '''
from IPython.display import display
from rs_embed import sample
from rs_embed.widgets import ExportPanel, RoiPicker

picker = RoiPicker(buffer_m=300)
panel = ExportPanel(picker, models=["rcf"], temporal=sample.TEMPORAL, backend="local",
                    out="exports/browser_run", chunk_size=1)
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


def test_click_twice_then_export_in_the_browser(voila, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
            viewport={"width": 1280, "height": 1100},
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
            voila.record_children()
            m = page.locator(".leaflet-container").first
            box = m.bounding_box()
            for k, fx in enumerate((0.42, 0.58), start=1):
                m.click(position={"x": box["width"] * fx, "y": box["height"] * 0.5})
                page.wait_for_function(f"document.querySelectorAll('.rs-roi-row').length == {k}",
                                       timeout=20_000)
            assert rows(page) == 2
            page.locator(".rs-roi-picker").screenshot(path=str(shots / "roi_picker.jpg"), quality=85)

            page.locator(".rs-export-button").click()
            page.wait_for_function(
                "(() => { const s = document.querySelector('.rs-export-summary');"
                " return s && s.innerText.includes('Export done'); })()", timeout=120_000)
            progress = page.locator(".rs-export-progress").inner_text()
            assert "100%" in progress and "2/2" in progress, progress
            bar = page.locator(".rs-export-progress .progress-bar").first
            assert bar.evaluate("e => e.style.width") == "100%"
            assert not page.locator(".rs-export-button").is_disabled()
            page.locator(".rs-export-panel").screenshot(path=str(shots / "export_panel.png"))
            page.screenshot(path=str(shots / "page.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            ctx.tracing.stop(path=str(tmp_path / "trace.zip"))
            ctx.close()
            raise AssertionError(f"browser test failed; screenshot and trace in {tmp_path}\n"
                                 f"--- voila log ---\n{voila.log()[-4000:]}")
        ctx.tracing.stop()
        ctx.close()

    res = load_export(tmp_path / "exports" / "browser_run")
    assert res.status == "ok" and res.names == ["roi_01", "roi_02"]
    w, s, e, n = sample.BOUNDS
    for d in res.spatials:
        spatial = PointBuffer(d["lon"], d["lat"], d["buffer_m"])
        assert spatial.buffer_m == 300 and w < spatial.lon < e and s < spatial.lat < n
    assert res.spatials[0]["lon"] < res.spatials[1]["lon"]  # left click, then right click
    assert (shots / "roi_picker.jpg").stat().st_size > 10_000

    docs = os.environ.get("RS_EMBED_DOCS_SCREENSHOTS")
    if docs:
        Path(docs).mkdir(parents=True, exist_ok=True)
        for name in ("roi_picker.jpg", "export_panel.png"):
            shutil.copy(shots / name, Path(docs) / name)
