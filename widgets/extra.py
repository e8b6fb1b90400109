"""Optional dependencies of the notebook layer, imported with a message naming the extra."""

from __future__ import annotations

import importlib


def require(module: str, feature: str):
    """Import ``module`` or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs {module!r}, which is not installed; "
            "install the notebook extra: pip install 'rs_embed[notebook]'") from exc
