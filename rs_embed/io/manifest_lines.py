"""The combined manifest as a line-structured JSON file: written streaming, read lazily.

A combined manifest holds per-point lists (``spatials``, each model's ``metas``,
``nodata_fractions``, ``inspections``) of N entries: building it as one dict costs
several KB per point, and so does reading it back. This module writes it member by
member, each on its own line, without holding more than one member in memory::

    {
    "manifest_layout": "lines/1",
    "created_at": "...",
    ...
    "models": [
    {
    "model": "rcf",
    ...
    "metas": [...]
    }
    ],
    "errors": []
    }

It is plain JSON (``json.load`` reads it; newlines are whitespace), and because a
member never spans lines, :func:`read_manifest` parses the small members and leaves
the large ones on disk as :class:`LazyList` objects, read when first used. Files
without the marker (the public rs-embed's, older ones) are parsed whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, BinaryIO, Callable, Iterable, List, Optional, Tuple

from .atomic import atomic_write, dumps_json

LAYOUT = "lines/1"
_MARK = b'{\n"manifest_layout": "' + LAYOUT.encode() + b'"'
#: members longer than this (bytes) are left on disk until used
LAZY_MIN_BYTES = 1 << 16

class Raw:
    """A member whose JSON text is written by ``write(fh)`` (streamed, never built whole)."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[BinaryIO], None]):
        self.write = write


def json_list(items: Iterable[Any], block: int = 4096) -> Raw:
    """A JSON array streamed from ``items`` (each JSON-safe), ``block`` items per write."""

    def write(fh):
        fh.write(b"[")
        buf: List[bytes] = []
        first = True
        for item in items:
            buf.append(dumps_json(item))
            if len(buf) >= block:
                fh.write((b"" if first else b",") + b",".join(buf))
                first, buf = False, []
        if buf:
            fh.write((b"" if first else b",") + b",".join(buf))
        fh.write(b"]")

    return Raw(write)


def _write_member(fh, key: str, value: Any, last: bool) -> None:
    fh.write(dumps_json(key) + b": ")
    if isinstance(value, Raw):
        value.write(fh)
    else:
        fh.write(dumps_json(value))
    fh.write(b"\n" if last else b",\n")


def write_manifest(path: str, members: List[Tuple[str, Any]], models_at: int,
                   models: List[List[Tuple[str, Any]]]) -> None:
    """Atomically write the manifest: top-level ``members`` with the ``models`` list (each
    a list of ``(key, value)``) inserted at position ``models_at``."""

    def write(fh):
        fh.write(_MARK + b",\n")
        total = len(members) + 1
        k = 0
        for j in range(total):
            last = j == total - 1
            if j == models_at:
                fh.write(b'"models": [\n')
                for e, entry in enumerate(models):
                    fh.write(b"{\n")
                    for m, (key, value) in enumerate(entry):
                        _write_member(fh, key, value, m == len(entry) - 1)
                    fh.write(b"}\n" if e == len(models) - 1 else b"},\n")
                fh.write(b"]\n" if last else b"],\n")
            else:
                key, value = members[k]
                k += 1
                _write_member(fh, key, value, last)
        fh.write(b"}\n")

    atomic_write(path, write)


#: top-level members written after the others (they grow with N or with failures)
LARGE = ("spatials", "errors", "warnings")


def write_manifest_dict(path: str, doc: dict) -> None:
    """Write a manifest given as a dict (small members first, so :func:`read_head` finds them)."""
    members = [(k, v) for k, v in doc.items() if k not in ("models", "manifest_layout") and k not in LARGE]
    at = len(members)
    members += [(k, doc[k]) for k in LARGE if k in doc]
    write_manifest(path, members, at, [list(e.items()) for e in doc.get("models") or []])


class LazyList(Sequence):
    """A JSON array member left in the file until first used (then parsed and kept)."""

    def __init__(self, path: str, offset: int, length: int, key: str, count: Optional[int] = None):
        self._path, self._offset, self._length, self._key = path, offset, length, key
        self._count = count
        self._items: Optional[list] = None

    def _load(self) -> list:
        if self._items is None:
            with open(self._path, "rb") as fh:
                fh.seek(self._offset)
                line = fh.read(self._length)
            value = _parse_member(line, self._path)[1]
            if not isinstance(value, list):
                raise ValueError(f"{self._path!r}: field {self._key!r} is not a list")
            if self._count is not None and len(value) != self._count:
                raise ValueError(f"{self._path!r}: field {self._key!r} lists {len(value)} entries for "
                                 f"n_items={self._count}")
            self._items = value
        return self._items

    @property
    def loaded(self) -> bool:
        return self._items is not None

    def __len__(self) -> int:
        return self._count if self._count is not None and self._items is None else len(self._load())

    def __getitem__(self, i):
        return self._load()[i]

    def __iter__(self):
        return iter(self._load())

    def __eq__(self, other) -> bool:
        if isinstance(other, LazyList):
            other = other._load()
        return self._load() == other

    def __repr__(self) -> str:
        state = "loaded" if self._items is not None else f"{self._length:,} bytes on disk"
        return f"LazyList({self._key!r}, {state})"

    def tolist(self) -> list:
        return list(self._load())


def _parse_member(line: bytes, path: str) -> Tuple[str, Any]:
    text = line.rstrip()
    if text.endswith(b","):
        text = text[:-1]
    try:
        doc = json.loads(b"{" + text + b"}")
    except ValueError as exc:
        raise ValueError(f"cannot read the manifest {path!r}: {exc}") from exc
    ((key, value),) = doc.items()
    return key, value


def _lines(fh) -> List[Tuple[int, int]]:
    """``(offset, length)`` of every line, found by scanning blocks (never a whole line in memory)."""
    out, start, pos = [], 0, 0
    while True:
        block = fh.read(1 << 20)
        if not block:
            break
        j = block.find(b"\n")
        while j >= 0:
            out.append((start, pos + j + 1 - start))
            start = pos + j + 1
            j = block.find(b"\n", j + 1)
        pos += len(block)
    if start < pos:
        out.append((start, pos - start))
    return out


def is_line_manifest(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_MARK)) == _MARK
    except OSError:
        return False


#: members with one entry per point (their length is checked against ``n_items`` when read)
PER_POINT = ("spatials", "metas", "nodata_fractions", "inspections")


def read_manifest(path: str, *, lazy: bool = True, lazy_min_bytes: Optional[int] = None) -> dict:
    """The manifest as a dict; with ``lazy``, list members longer than ``lazy_min_bytes``
    are :class:`LazyList` objects (files without the marker: parsed whole)."""
    lazy_min_bytes = LAZY_MIN_BYTES if lazy_min_bytes is None else lazy_min_bytes
    with open(path, "rb") as fh:
        if fh.read(len(_MARK)) != _MARK:
            fh.seek(0)
            return json.loads(fh.read())
        fh.seek(0)
        spans = _lines(fh)
        doc: dict = {}
        models: Optional[list] = None
        entry: Optional[dict] = None
        for offset, length in spans[1:]:
            head = _peek(fh, offset, min(length, 64)).strip()
            if head in (b"}", b"},"):
                if entry is not None:
                    models.append(entry)  # type: ignore[union-attr]
                    entry = None
                continue
            if head == b"{":
                entry = {}
                continue
            if head in (b"]", b"],"):
                doc["models"] = models
                models = None
                continue
            if head.startswith(b'"models": [') and head.rstrip(b",").endswith(b"["):
                models = []
                continue
            target = entry if entry is not None else doc
            if lazy and length > lazy_min_bytes and _peek_value_start(fh, offset) == b"[":
                key = json.loads(head[:head.index(b'":') + 1])
                n = doc.get("n_items")
                count = n if key in PER_POINT and isinstance(n, int) and not isinstance(n, bool) else None
                target[key] = LazyList(path, offset, length, key, count)
                continue
            key, value = _parse_member(_peek(fh, offset, length), path)
            target[key] = value
        return doc


def _peek(fh, offset: int, length: int) -> bytes:
    fh.seek(offset)
    return fh.read(length)


def _peek_value_start(fh, offset: int) -> bytes:
    head = _peek(fh, offset, 256)
    j = head.find(b'": ')
    return head[j + 3:j + 4] if j >= 0 else b""


def read_head(path: str, max_bytes: int = 1 << 20) -> Optional[dict]:
    """The small top-level members written before the first large one (status, checksums,
    fingerprint): what resume needs to recognise a finished export, without reading the
    per-point lists. None when the file is not a line manifest."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(_MARK)) != _MARK:
                return None
            fh.seek(0)
            data = fh.read(max_bytes)
    except OSError:
        return None
    doc: dict = {}
    for line in data.split(b"\n")[1:-1]:
        if not line.startswith(b'"') or line.startswith(b'"models": ['):
            break
        try:
            key, value = _parse_member(line, path)
        except ValueError:
            break
        doc[key] = value
    return doc


__all__ = ["write_manifest", "write_manifest_dict", "LARGE", "read_manifest", "read_head", "is_line_manifest", "json_list", "Raw",
           "LazyList", "LAYOUT"]
