"""The notebook layer stays thin: it imports rs_embed's public API only, and asks the core
for the grid instead of re-deriving UTM squares."""

import ast
from pathlib import Path

import rs_embed

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"
#: public modules of the core a widget may import from (besides ``rs_embed`` itself): the
#: search and probe API, the embedded sample and the sensor vocabulary
PUBLIC = {"rs_embed", "rs_embed.analysis", "rs_embed.sample", "rs_embed.sensors"}


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def test_widgets_import_the_public_api_only():
    bad = []
    for path in sorted(WIDGETS.glob("*.py")):
        for module, names in imports(path):
            if module.startswith("rs_embed") and module not in PUBLIC and not module.startswith("rs_embed.widgets"):
                bad.append(f"{path.name}: {module}")
            if module == "rs_embed":
                bad += [f"{path.name}: rs_embed.{n} is not public" for n in names
                        if n not in rs_embed.__all__ and n not in rs_embed.__dir__()]
    assert bad == []


def test_no_second_grid_rule_in_the_widgets():
    for path in WIDGETS.glob("*.py"):
        text = path.read_text()
        for rule in ("Transformer.from_crs", "utm_crs", "utm_epsg", "32600", "32700", "% 60"):
            assert rule not in text, f"{path.name} re-derives the grid ({rule})"
