"""Write a file under a temporary name in its folder, then rename it into place.

A reader (or a resumed export) therefore sees either the previous file or the
complete new one, never a truncated file under the final name, even when the process
is killed mid-write. Temporary files are created by :func:`tempfile.mkstemp` (exclusive
create, no symlink following, an unpredictable name) in the destination folder, so a
link planted there cannot redirect a write outside it; libraries that need a file
*name* (HDF5/netCDF) write inside a private temporary folder made the same way. The
names are hidden (``.<name>.rs_embed-<host>-<pid>-<random>.tmp``) so no reader mistakes
them for an artifact, and carry the writer's host and pid so leftovers of dead processes
can be removed. On a file system shared by several hosts a pid means nothing elsewhere:
a writer holds an advisory lock (``flock``) on its temporary file while it writes, and a
temporary file of another host is removed only when it is unlocked and untouched for
:data:`STALE_AGE_S` (see :func:`remove_stale_temps`).

Every write can record what it wrote (:class:`FileRecord`: size, SHA-1, and the
file's stat signature), computed while the bytes go out, and :func:`verify_file`
checks a file against such a record: quickly when the file's stat signature is
unchanged (nothing has written to it since), by re-hashing it otherwise.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional, Tuple

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: fsync each file before the rename. Off by default: a killed process never leaves a
#: partial file either way, and after a power cut resume notices a damaged file by the
#: checksum its manifest records. Turn on for file systems where that is not enough.
FSYNC = False

#: a temporary file of another host (or of an unknown one) counts as abandoned only when
#: nothing has written to it for this long and no process holds its lock
STALE_AGE_S = 6 * 3600.0

# .<name>.rs_embed-<host>-<pid>-<random>.tmp[dir]; files of older versions lack <host>
_TEMP = re.compile(r"^\..+\.rs_embed-(?:([A-Za-z0-9_.]+)-)?(\d+)-\w+\.(tmp|tmpdir)$")
#: the lock file inside a private temporary folder (HDF5 writes there by name)
_DIR_LOCK = ".rs_embed-writing"


def host_tag(name: Optional[str] = None) -> str:
    """This host's name as it appears in temporary names: ``[A-Za-z0-9_.]``, at most 40 chars."""
    name = socket.gethostname() if name is None else name
    return (re.sub(r"[^A-Za-z0-9_.]", "_", name) or "host")[:40]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would have given the file


def _temp_prefix(path: str) -> Tuple[str, str]:
    folder, base = os.path.split(os.path.abspath(path))
    return folder, f".{base}.rs_embed-{host_tag()}-{os.getpid()}-"


def _hold(fd: int) -> None:
    """Take the advisory lock that tells other hosts this temporary file is being written
    (released when the descriptor closes); best effort where ``flock`` is missing."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass


def _locked(path: str) -> bool:
    """Whether some process (on any host sharing the file system) holds ``path``'s lock."""
    if fcntl is None:  # pragma: no cover - Windows: no way to tell, assume it is live
        return True
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # also lets go of the lock if we got it
    return False


def temp_path(path: str) -> str:
    """A new, exclusively created, empty hidden temporary file beside ``path``."""
    folder, prefix = _temp_prefix(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    os.close(fd)
    return tmp


def _sync(fh) -> None:
    if FSYNC:
        fh.flush()
        os.fsync(fh.fileno())


def _name_the_file(exc: OSError, path: str) -> OSError:
    """Disk full, quota, I/O errors: make the message say which file (``[Errno 28] ...: 'x'``)."""
    if getattr(exc, "filename", None) in (None, ""):
        try:
            exc.filename = path
        except Exception:  # pragma: no cover
            pass
    return exc


@dataclass(frozen=True)
class FileRecord:
    """What was written: size, SHA-1 and the stat signature (mtime, ctime, inode) after the
    rename. Any later write to the file changes the signature (ctime cannot be set back)."""

    size: int
    sha1: str
    signature: Tuple[int, int, int]

    def to_dict(self) -> dict:
        return {"size": self.size, "sha1": self.sha1, "stat": list(self.signature)}

    @classmethod
    def from_dict(cls, d: Any) -> Optional["FileRecord"]:
        try:
            sig = d.get("stat") or [0, 0, 0]
            return cls(int(d["size"]), str(d["sha1"]), (int(sig[0]), int(sig[1]), int(sig[2])))
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            return None


def _signature(st: os.stat_result) -> Tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _record(path: str, size: int, sha1: str) -> FileRecord:
    return FileRecord(size, sha1, _signature(os.stat(path)))


class _HashingFile:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self._sha1 = hashlib.sha1()
        self.size = 0

    def write(self, data) -> int:
        n = self._fh.write(data)
        self._sha1.update(data)
        self.size += len(memoryview(data).cast("B"))
        return n

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()

    def fileno(self) -> int:
        return self._fh.fileno()

    # what stream writers (pyarrow's ParquetWriter) ask of a file object
    @property
    def closed(self) -> bool:
        return self._fh.closed

    def writable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()


def atomic_write_record(path: str, write: Callable[[BinaryIO], Any]) -> Tuple[Any, FileRecord]:
    """Call ``write(fileobj)`` on a new temporary file, rename it to ``path``; returns
    ``write``'s result and the :class:`FileRecord` of the file."""
    folder, prefix = _temp_prefix(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
        _hold(fd)
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as raw:
            fh = _HashingFile(raw)
            result = write(fh)  # type: ignore[arg-type]
            _sync(raw)
        os.replace(tmp, path)
        tmp = None
        return result, _record(path, fh.size, fh.hexdigest())
    except OSError as exc:
        raise _name_the_file(exc, path)
    finally:
        if tmp is not None:
            _remove_quietly(tmp)


def atomic_write(path: str, write: Callable[[BinaryIO], Any]) -> Any:
    """Call ``write(fileobj)`` on a new temporary file, then rename it to ``path``."""
    return atomic_write_record(path, write)[0]


def atomic_write_path_record(path: str, write: Callable[[str], Any]) -> Tuple[Any, FileRecord]:
    """Like :func:`atomic_write_record` for libraries that need a file name (HDF5/netCDF):
    ``write(name)`` creates the file inside a private folder (mode 0700) beside ``path``."""
    folder, prefix = _temp_prefix(path)
    tmpdir = None
    lock_fd = None
    try:
        tmpdir = tempfile.mkdtemp(prefix=prefix, suffix=".tmpdir", dir=folder)
        lock_fd = os.open(os.path.join(tmpdir, _DIR_LOCK), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        _hold(lock_fd)
        tmp = os.path.join(tmpdir, os.path.basename(path))
        result = write(tmp)
        os.chmod(tmp, _FILE_MODE)
        size, sha1 = _hash_file(tmp)
        if FSYNC:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        return result, _record(path, size, sha1)
    except OSError as exc:
        raise _name_the_file(exc, path)
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)


def atomic_write_path(path: str, write: Callable[[str], Any]) -> Any:
    return atomic_write_path_record(path, write)[0]


def _hash_file(path: str) -> Tuple[int, str]:
    h = hashlib.sha1()
    size = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            if not block:
                break
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def verify_file(path: str, record: Optional[FileRecord]) -> Optional[str]:
    """Whether ``path`` still holds what ``record`` describes.

    Returns ``"fast"`` (stat signature unchanged: nothing has written to it since),
    ``"hashed"`` (signature changed, SHA-1 re-computed and equal) or None (missing, not
    a regular file, another size or other content).
    """
    if record is None:
        return None
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size != record.size:
        return None
    if _signature(st) == record.signature:
        return "fast"
    try:
        size, sha1 = _hash_file(path)
    except OSError:
        return None
    return "hashed" if (size, sha1) == (record.size, record.sha1) else None


def refreshed(path: str, record: FileRecord) -> FileRecord:
    """``record`` with the file's current stat signature (after a full verification)."""
    return FileRecord(record.size, record.sha1, _signature(os.stat(path)))


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


def pid_alive(pid) -> bool:
    """Whether process ``pid`` runs on this machine (a process we may not signal counts)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, but is someone else's
        return True
    return True


def _last_write(entry: os.DirEntry) -> float:
    """The newest mtime of a temporary file, or of a temporary folder and its files."""
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        try:
            with os.scandir(entry.path) as inner:
                for e in inner:
                    newest = max(newest, e.stat(follow_symlinks=False).st_mtime)
        except OSError:
            pass
    return newest


def is_abandoned(entry: os.DirEntry, *, now: Optional[float] = None, host: Optional[str] = None) -> bool:
    """Whether a temporary file (or folder) named like ours was left by a writer that is gone.

    Of this host: its pid no longer runs. Of another host (or a name without a host, from an
    older version): the pid says nothing here, so only when nobody holds its lock and
    nothing has written to it for :data:`STALE_AGE_S`: a live export on another machine
    of a shared file system is never touched.
    """
    m = _TEMP.match(entry.name)
    if not m:
        return False
    tag, pid = m.group(1), int(m.group(2))
    if tag is not None and tag == (host or host_tag()):
        return not pid_alive(pid)
    try:
        age = (time.time() if now is None else now) - _last_write(entry)
    except OSError:
        return False
    if age < STALE_AGE_S:
        return False
    lock = os.path.join(entry.path, _DIR_LOCK) if m.group(3) == "tmpdir" else entry.path
    return not _locked(lock)


def remove_stale_temps(folder: str) -> int:
    """Delete temporary files (and folders) left in ``folder`` by rs_embed writers that are
    gone (see :func:`is_abandoned`); nothing else is touched, and links are never followed."""
    removed = 0
    try:
        entries = os.scandir(folder)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            m = _TEMP.match(entry.name)
            if not m:
                continue
            kind = m.group(3)
            if not ((kind == "tmpdir" and entry.is_dir(follow_symlinks=False))
                    or (kind == "tmp" and entry.is_file(follow_symlinks=False))):
                continue
            if not is_abandoned(entry):
                continue
            if kind == "tmpdir":
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                _remove_quietly(entry.path)
            removed += 1
    return removed


__all__ = ["atomic_write", "atomic_write_record", "atomic_write_path", "atomic_write_path_record",
           "write_json", "dumps_json", "temp_path", "remove_stale_temps", "FileRecord",
           "verify_file", "refreshed", "pid_alive", "host_tag", "is_abandoned", "STALE_AGE_S"]
