"""Progress bars of an export (``tqdm.auto``: notebook widgets in Jupyter, text elsewhere)."""

from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional


class _Null:
    def update(self, n: int = 1, failed: int = 0) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _takes_failed(callback) -> bool:
    """Whether ``callback`` accepts a fourth argument (the count of failed points)."""
    import inspect

    try:
        params = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params) or any(p.name == "failed" for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 4


class _Callback:
    """Forwards overall progress to a ``callback(done, total, desc)`` (thread-safe count);
    a callback with a fourth parameter also gets ``failed``, the points so far with a
    failed model, so a display can say so while the run goes on."""

    def __init__(self, bar, callback: Callable[..., None], total: int, desc: str):
        self.bar, self.callback, self.total, self.desc = bar, callback, total, desc
        self.done = 0
        self.failed = 0
        self._with_failed = _takes_failed(callback)
        self._lock = threading.Lock()

    def update(self, n: int = 1, failed: int = 0) -> None:
        self.bar.update(n)
        with self._lock:
            self.done += n
            self.failed += failed
            done, n_failed = self.done, self.failed
        try:
            if self._with_failed:
                self.callback(done, self.total, self.desc, n_failed)
            else:
                self.callback(done, self.total, self.desc)
        except Exception:  # a broken display must not break the export
            pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.bar.set_postfix_str(s, refresh)

    def close(self) -> None:
        self.bar.close()


class Progress:
    """One overall bar (points exported) and one bar per model (points embedded).

    ``callback(done, total, desc)``, when given, receives every overall update too
    (used by the notebook export panel).
    """

    def __init__(self, enabled: bool, total: int, models: List[str], *, desc: str = "export",
                 callback: Optional[Callable[[int, int, str], None]] = None):
        self.enabled = enabled and total > 0
        self.overall = _Null()
        self.models: Dict[str, object] = {m: _Null() for m in models}
        if callback is not None:
            self.overall = _Callback(self.overall, callback, total, desc)
        if not self.enabled:
            return
        import sys

        from tqdm.auto import tqdm

        notebook = any(c.__module__.startswith("tqdm.notebook") for c in tqdm.__mro__)
        if notebook or getattr(sys.stderr, "isatty", lambda: False)():
            bar = tqdm(total=total, desc=desc, unit="pt", position=0, dynamic_ncols=True)
            for pos, m in enumerate(models, start=1):
                self.models[m] = tqdm(total=total, desc=f"infer {m}", unit="pt", position=pos,
                                      leave=False, dynamic_ncols=True)
        else:
            # a log file: stacked bars would write cursor moves, so one calm overall line
            bar = tqdm(total=total, desc=desc, unit="pt", mininterval=2.0)
        self.overall = _Callback(bar, callback, total, desc) if callback is not None else bar

    def model(self, name: str):
        return self.models[name]

    def advance(self, n: int, failed: int = 0) -> None:
        """``n`` more points exported, ``failed`` of them with a failed model."""
        if isinstance(self.overall, _Callback):
            self.overall.update(n, failed)
        else:
            self.overall.update(n)

    def close(self) -> None:
        for bar in self.models.values():
            bar.close()
        self.overall.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Progress"]
