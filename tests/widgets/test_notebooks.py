"""The notebooks run top to bottom in a real kernel, offline, and their exports load.

Also: an export started from the panel leaves the kernel free to run other cells.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rs_embed import load_export, sample
from rs_embed.widgets import load_rois

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# The kernel is a separate process: the suite's socket guard does not reach it, so
# the first cell of every run installs the same rule there.
OFFLINE_CELL = '''
import ipaddress, socket
def _local(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def _guarded_connect(self, address):
    if isinstance(address, tuple) and not _local(address[0]):
        raise OSError(f"offline notebook test: connection to {address!r} refused")
    return _connect(self, address)
def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        raise OSError(f"offline notebook test: lookup of {host!r} refused")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = _guarded_connect, _guarded_getaddrinfo
'''

NOTEBOOKS = {
    "01_quickstart.ipynb": {"exports": ["exports/quickstart", "exports/quickstart_grid.nc"], "figures": 4},
    "02_map_export.ipynb": {"exports": ["exports/map_run"], "figures": 0},
    "03_inspect.ipynb": {"exports": ["exports/inspect"], "figures": 5},
    "05_search_and_probe.ipynb": {"exports": ["exports/search_probe"], "figures": 2},
}


def kernel_env():
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # let the kernel pick its inline backend, as Jupyter does
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(nb, cwd: Path, timeout: int = 240):
    nb.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=kernel_env())
    return nb


def outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if kind in o.get("data", {})]


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_offline_and_its_exports_load(name, tmp_path):
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    run(nb, tmp_path)
    for rel in NOTEBOOKS[name]["exports"]:
        res = load_export(tmp_path / rel)
        assert res.status == "ok" and res.n_items > 0, rel
    assert len(outputs(nb, "image/png")) >= NOTEBOOKS[name]["figures"]
    if name == "02_map_export.ipynb":  # the panel exported the picker's ROIs, by name, as grids
        res = load_export(tmp_path / "exports/map_run")
        assert res.names == [p.name for p in sample.points()[::9]]
        assert res.embedding("rcf").ndim == 4
        assert [r.name for r in load_rois(tmp_path / "exports/my_rois.geojson")] == res.names
        assert outputs(nb, "application/vnd.jupyter.widget-view+json")
    if name == "05_search_and_probe.ipynb":  # the k-NN probe accuracy of each model is printed
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
        for model in ("rcf", "spectral"):
            line = next(ln for ln in text.splitlines() if ln.startswith(f"k-NN probe accuracy, {model}:"))
            assert float(line.split(": ")[1].split("%")[0]) > 60, line
        many = next(c for c in nb.cells if "points_view(lons" in c.source)
        assert "('lonboard._map', 'Map')" in str(many.outputs)  # 20,000 points went to lonboard


def test_kernel_runs_other_cells_while_the_panel_exports(tmp_path):
    cells = [
        """from gated_model import register
from rs_embed import sample
from rs_embed.widgets import ExportPanel
Gated = register()
Gated.reset(open_gate=False)
panel = ExportPanel(spatials=sample.spatials()[:3], models=["gated_rcf"], temporal=sample.TEMPORAL,
                    backend="local", out="exports/bg")
panel
""",
        "panel.export_button.click()  # what pressing Export does\n"
        "assert Gated.entered.wait(30), 'the export never reached the model'",
        # this cell runs while the export thread is parked inside the model
        """assert panel.running and panel.status == "running" and panel.export_button.disabled
squares = sum(i * i for i in range(100_000))
print("another cell ran during the export:", panel.status, squares)""",
        """Gated.gate.set()
panel.wait(60)
print(panel.status)""",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    run(nb, tmp_path, timeout=90)
    texts = [o.get("text", "") for c in nb.cells for o in c.outputs if o.get("output_type") == "stream"]
    assert any(t.startswith("another cell ran during the export: running") for t in texts), texts
    assert texts[-1].strip() == "done"
    assert load_export(tmp_path / "exports/bg").status == "ok"
