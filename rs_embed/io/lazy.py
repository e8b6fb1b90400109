"""A read-only sequence whose items are read on demand (from disk), with a small cache.

What ``export_batch`` returns in the per-item layout and the per-point ``meta`` of a
loaded per-item export: a million points must not mean a million dicts in memory.
It behaves like a list for reading: ``len``, indexing (negative too), slicing (a
lazy view), iteration, ``in``, and ``==`` against any sequence (item by item).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Callable, Iterator, Optional

#: items kept after reading (the most recently used)
CACHE_ITEMS = 256


class LazySequence(Sequence):
    def __init__(self, n: int, get: Callable[[int], Any], *, what: str = "item",
                 _range: Optional[range] = None, _cache: Optional["_Cache"] = None):
        self._n = n
        self._get = get
        self._what = what
        self._range = _range if _range is not None else range(n)
        self._cache = _cache if _cache is not None else _Cache(CACHE_ITEMS)

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazySequence(self._n, self._get, what=self._what, _range=self._range[i], _cache=self._cache)
        if isinstance(i, bool) or not hasattr(i, "__index__"):
            raise TypeError(f"{self._what} indices must be integers or slices, not {type(i).__name__}")
        try:
            j = self._range[i]
        except IndexError:
            raise IndexError(f"{self._what} index {i} out of range (0..{len(self) - 1})") from None
        return self._cache.get(j, self._get)

    def __iter__(self) -> Iterator[Any]:
        for j in self._range:
            yield self._cache.get(j, self._get)

    def __eq__(self, other) -> bool:
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} {self._what}s, read on demand>"


class _Cache:
    def __init__(self, size: int):
        self.size = size
        self._items: "OrderedDict[int, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, j: int, load: Callable[[int], Any]) -> Any:
        with self._lock:
            if j in self._items:
                self._items.move_to_end(j)
                return self._items[j]
        value = load(j)
        with self._lock:
            self._items[j] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


__all__ = ["LazySequence", "CACHE_ITEMS"]
