"""notebooks/04_stac.ipynb runs top to bottom in a real kernel against the local servers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "widgets"))
from test_notebooks import outputs, run  # noqa: E402  (the offline kernel runner)


def test_stac_notebook_runs_against_local_servers(es_api, tmp_path, monkeypatch):
    from rs_embed import load_export

    monkeypatch.setenv("RS_EMBED_STAC_URL", es_api.url)
    nb = nbformat.read(REPO / "notebooks" / "04_stac.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    run(nb, tmp_path)
    res = load_export(tmp_path / "exports" / "stac_run.npz")
    assert res.status == "ok" and res.n_items == 3
    assert len(outputs(nb, "image/png")) >= 2
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "item footprints drawn" in text and "S2A_18SVG_20200615_0_L2A_pre" in text
