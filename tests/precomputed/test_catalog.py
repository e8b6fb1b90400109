"""Every id of the public rs-embed 0.3.1 catalog is registered here: it runs, or it says
why it cannot, before any imagery is fetched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rs_embed
from rs_embed.models import model_status
from rs_embed.models.unavailable import REASONS

PUBLIC = ["tessera", "gse", "copernicus", "remoteclip", "prithvi", "ssl4eo", "dofa", "scalemae", "satmae",
          "olmoearth", "clay", "galileo", "anysat", "terramind", "terrafm", "thor", "agrifm", "fomo",
          "wildsat", "satvision", "satmaepp"]


def test_every_public_id_is_known():
    assert set(PUBLIC) <= set(rs_embed.list_models())


@pytest.mark.parametrize("name", sorted(REASONS))
def test_unavailable_ids_explain_themselves_before_any_fetch(name):
    d = rs_embed.describe_model(name)
    assert d["type"] == "unavailable" and d["reason"] == REASONS[name]["reason"]
    with pytest.raises(rs_embed.ModelError, match="not available in this release") as err:
        rs_embed.get_embedding(name, spatial=rs_embed.PointBuffer(0.0, 0.0, 100), backend="local")
    assert REASONS[name]["reference"] in str(err.value)


def test_each_reason_names_the_official_code_and_why_pypi_cannot_serve_it():
    """The error, describe() and the docs page give one reason: where the official code
    lives and why it cannot be installed from PyPI; never another project's copy."""
    from pathlib import Path
    page = (Path(__file__).parents[2] / "docs" / "pages" / "models" / "unavailable.md").read_text()
    for name, info in REASONS.items():
        assert info["reason"].startswith(f"official code at {info['code']}") and "PyPI" in info["reason"]
        assert "rs-embed" not in info["reason"] and "vendored" not in info["reason"]
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert info["reason"] in row and info["reference"].replace("https://", "") in row


def test_status_and_cli_show_readiness_of_products():
    st = {s["model"]: s for s in model_status()}
    for name in ("tessera", "copernicus", "majortom", "earthindex"):
        assert st[name]["ready"] is True and st[name]["backend"]
    assert st["anysat"]["ready"] is False and "not available" in st["anysat"]["note"]
    out = subprocess.run([sys.executable, "-m", "rs_embed.cli", "models", "--json"], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:  # the CLI may not offer --json; the plain table must still list them
        out = subprocess.run([sys.executable, "-m", "rs_embed.cli", "models"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "tessera" in out.stdout and "anysat" in out.stdout
    else:
        rows = {r["model"]: r for r in json.loads(out.stdout)}
        # readiness follows the export's routing: tessera is read by its own provider
        # whatever the imagery backend; an unavailable id says why
        tessera = {c["name"]: c for c in rows["tessera"]["checks"]}
        assert rows["tessera"]["backend"] == "tessera" and rows["tessera"]["ready"]
        assert tessera["installed"]["ok"] and tessera["backend"]["detail"] == "reads from backend 'tessera'"
        assert tessera["sensor"]["ok"]
        anysat = {c["name"]: c for c in rows["anysat"]["checks"]}
        assert not rows["anysat"]["ready"] and "not available in this release" in anysat["available"]["detail"]


def test_readiness_of_a_mixed_request_checks_each_model_on_its_routed_backend():
    from rs_embed.readiness import check_models
    ok = {r.model: r for r in check_models(["rcf", "tessera"], backend="local")}
    assert {r.backend for r in ok.values()} == {"local+tessera"}
    assert all(r.ready for r in ok.values())
    detail = {m: next(c.detail for c in r.checks if c.name == "backend") for m, r in ok.items()}
    assert detail == {"rcf": "reads from backend 'local'", "tessera": "reads from backend 'tessera'"}
    bad = {r.model: r for r in check_models(["gse", "tessera"], backend="local")}
    assert not bad["gse"].ready and "'gse' cannot read from backend 'local'" in " ".join(bad["gse"].problems)
    assert bad["tessera"].ready
