"""The examples of docs/pages/export.md run as written, on the embedded sample, and say the truth."""

from __future__ import annotations

import ast
import os
import re


DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "pages", "export.md")


def _blocks():
    text = open(DOC, encoding="utf-8").read()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if not b.lstrip().startswith("export_batch(\n    *")
            and not b.lstrip().startswith("load_export(path")]


def _checks(block: str):
    """``expr   # literal`` lines: the expression must evaluate to the literal."""
    for line in block.splitlines():
        m = re.match(r"^([^#=]+?)\s+#\s*(\(.*\)|\[.*\]|'.*'|True|False|\d+)\s*$", line)
        if m and "(" not in m.group(1)[:1]:
            try:
                yield m.group(1).strip(), ast.literal_eval(m.group(2))
            except (ValueError, SyntaxError):
                continue


def test_examples_run_and_their_comments_hold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    checked = 0
    for block in _blocks():
        exec(compile(block, DOC, "exec"), ns)
        for expr, expected in _checks(block):
            got = eval(expr, ns)
            if isinstance(expected, list) and expected and expected[-1] is Ellipsis:
                expected = expected[:-1]
            if hasattr(got, "tolist"):
                got = got.tolist()
            if isinstance(expected, list) and isinstance(got, list) and len(expected) < len(got):
                got = got[:len(expected)]
            if isinstance(got, tuple) and isinstance(expected, tuple) and any(isinstance(g, list) for g in got):
                got = tuple(g[:len(e)] if isinstance(g, list) else g for g, e in zip(got, expected))
            assert got == expected or list(got) == list(expected), f"{expr}: {got!r} != {expected!r}"
            checked += 1
    assert checked >= 8
    assert os.path.exists("exports/sample_run.npz") and os.path.exists("exports/run_nc.nc")
