"""The ROI map with 1,000 ROIs in a real browser: Voila + headless Chromium on 127.0.0.1.

Times, from the click on a button in the page to the map showing the result: adding
1,000 ROIs in one go, and redrawing after one ROI moves (one GeoJSON layer of 100 ROIs
is resent). Needs the test extras (voila, playwright) and Debian's chromium.
Run: ``python benchmarks/notebook_map_browser.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "widgets"))
from voila_server import VoilaServer  # noqa: E402

APP = '''
import ipywidgets as W
import numpy as np
from IPython.display import display
from rs_embed import PointBuffer, sample
from rs_embed.widgets import RoiPicker

picker = RoiPicker(buffer_m=200)
w, s, e, n = sample.BOUNDS
rng = np.random.default_rng(0)
pts = [(f"p{i:04d}", PointBuffer(float(x), float(y), 150.0))
       for i, (x, y) in enumerate(zip(rng.uniform(w, e, 1000), rng.uniform(s, n, 1000)))]
add = W.Button(description="add 1000"); add.add_class("bench-add")
move = W.Button(description="move one"); move.add_class("bench-move")
add.on_click(lambda _: picker.add_many(pts))
k = [0]
def move_one(_):
    k[0] += 1
    name = f"p{(97 * k[0]) % 1000:04d}"
    lon, lat = picker.rois[picker.names.index(name)].spatial.center
    picker.move(name, lon + 0.002, lat)
move.on_click(move_one)
display(W.HBox([add, move]), picker)
'''

COUNT = "document.querySelectorAll('.rs-roi-map path.leaflet-interactive').length"


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(APP)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp / "app.ipynb")
        server = VoilaServer(tmp / "app.ipynb", tmp).start()
        try:
            with sync_playwright() as pw:
                ctx = pw.chromium.launch_persistent_context(
                    str(tmp / "profile"), executable_path="/usr/bin/chromium", headless=True,
                    viewport={"width": 1280, "height": 1000},
                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
                ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                    (server.url, "data:", "blob:")) else r.abort())
                page = ctx.new_page()
                page.goto(server.url + "/", wait_until="domcontentloaded")
                page.wait_for_selector(".bench-add", timeout=120_000)
                page.wait_for_selector(".leaflet-image-layer", timeout=60_000)
                server.record_children()
                base = page.evaluate(COUNT)
                t0 = time.perf_counter()
                page.locator(".bench-add").click()
                page.wait_for_function(f"{COUNT} >= {base + 1000}", timeout=120_000)
                page.wait_for_function("document.querySelector('.rs-roi-status').innerText.includes('1000 ROIs')")
                t_add = time.perf_counter() - t0
                moves = []
                for _ in range(5):
                    before = page.evaluate("[...document.querySelectorAll('.rs-roi-map path.leaflet-interactive')]"
                                           ".map(p => p.getAttribute('d')).join('|')")
                    t0 = time.perf_counter()
                    page.locator(".bench-move").click()
                    page.wait_for_function(
                        "(b) => [...document.querySelectorAll('.rs-roi-map path.leaflet-interactive')]"
                        ".map(p => p.getAttribute('d')).join('|') !== b", arg=before, timeout=60_000)
                    moves.append(time.perf_counter() - t0)
                print(f"browser: 1,000 ROIs drawn {t_add * 1000:.0f} ms after the click; "
                      f"redraw after one move {statistics.median(moves) * 1000:.0f} ms (median of 5)")
                ctx.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
