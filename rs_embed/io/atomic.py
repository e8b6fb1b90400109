"""Write a file under a temporary name in its folder, then rename it into place.

A reader (or a resumed export) therefore sees either the previous file or the
complete new one, never a truncated file under the final name, even when the process
is killed mid-write. Temporary names are hidden (``.<name>.rs_embed-<pid>-<n>.tmp``)
so no reader mistakes them for an artifact.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from typing import Any, BinaryIO, Callable

#: fsync each file before the rename. Off by default: a killed process never leaves a
#: partial file either way, and after a power cut resume notices a truncated file by
#: the size its manifest records. Turn on for file systems where that is not enough.
FSYNC = False

_counter = itertools.count()
_TEMP = re.compile(r"^\..+\.rs_embed-(\d+)-\d+\.tmp$")


def temp_path(path: str) -> str:
    """A unique hidden temporary name beside ``path``."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.rs_embed-{os.getpid()}-{next(_counter)}.tmp")


def _sync(fh) -> None:
    if FSYNC:
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write(path: str, write: Callable[[BinaryIO], Any]) -> Any:
    """Call ``write(fileobj)`` on a temporary file, then rename it to ``path``."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            result = write(fh)
            _sync(fh)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return result


def atomic_write_path(path: str, write: Callable[[str], Any]) -> Any:
    """Like :func:`atomic_write` for libraries that need a file name (HDF5/netCDF)."""
    tmp = temp_path(path)
    try:
        result = write(tmp)
        if FSYNC:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return result


def dumps_json(obj: Any) -> bytes:
    """Strict JSON (no NaN/Infinity) of an already JSON-safe object, on one line.

    One line on purpose: ``json`` encodes indented output in pure Python, ~10x slower,
    which matters with one manifest per point (``python -m json.tool`` pretty-prints).
    """
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")


def write_json(path: str, obj: Any) -> None:
    """Atomically write ``obj`` as JSON."""
    data = dumps_json(obj)
    atomic_write(path, lambda fh: fh.write(data))


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str) -> int:
    """Delete temporary files left in ``folder`` by processes that no longer run."""
    removed = 0
    try:
        entries = os.scandir(folder)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            m = _TEMP.match(entry.name)
            if m and not _alive(int(m.group(1))):
                _remove_quietly(entry.path)
                removed += 1
    return removed


__all__ = ["atomic_write", "atomic_write_path", "write_json", "dumps_json", "temp_path",
           "remove_stale_temps"]
