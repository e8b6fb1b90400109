"""One writer at a time per export target: an exclusive lock file held for the run.

The lock is a hidden file beside the export (see :mod:`rs_embed.io.keys`) holding who
took it: pid, host, start time, package version. Where the OS offers ``flock`` (Linux,
macOS, NFSv4) the lock is the kernel's: it dies with its process, so a crashed export
never blocks the next one, and the file's content only names the holder. Elsewhere
(Windows, file systems without ``flock``) the file itself is the lock, created
exclusively; one left by a process of this host that no longer runs is stale and taken
over. A second export of the same target fails at once with :class:`ExportLocked`.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Optional

from ..errors import RsEmbedError, SpecError
from .atomic import pid_alive

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class ExportLocked(RsEmbedError, RuntimeError):
    """Another export is writing to this target; ``holder`` says who (pid, host, since)."""

    def __init__(self, message: str, *, path: str, holder: Optional[dict]):
        super().__init__(message)
        self.path = path
        self.holder = holder or {}


def _holder_text(holder: Optional[dict]) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r} since {holder.get('started_at')} "
            f"(rs_embed {holder.get('version')})")


def _read_holder(fd: int) -> Optional[dict]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)
        doc = json.loads(data.decode("utf-8")) if data else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


class ExportLock:
    """``with ExportLock(path, target): ...`` holds the lock for the block (every exit path)."""

    def __init__(self, path: str, target: str):
        self.path = path
        self.target = target
        self.fd: Optional[int] = None
        #: the holder recorded by a crashed run whose lock this one took over, if any
        self.took_over: Optional[dict] = None

    def _me(self) -> bytes:
        from .. import __version__

        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "version": __version__, "target": self.target}).encode("utf-8")

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags | _NOFOLLOW | _CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SpecError(f"the lock file {self.path!r} is a symbolic link; rs_embed does not "
                                "follow links it did not make (remove it)") from None
            raise

    def _locked(self, holder: Optional[dict]) -> ExportLocked:
        return ExportLocked(
            f"{self.target!r} is being written by another export: {_holder_text(holder)}. Wait for it "
            f"to finish or stop it; if no export runs there any more, remove {self.path!r}",
            path=self.path, holder=holder)

    def acquire(self) -> "ExportLock":
        for _ in range(20):  # retried only when a releasing holder unlinks the file meanwhile
            if fcntl is not None:
                fd = self._open(os.O_RDWR | os.O_CREAT)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        holder = _read_holder(fd)
                        os.close(fd)
                        raise self._locked(holder) from None
                    os.close(fd)
                    if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        raise
                    return self._acquire_exclusive()
                try:  # the file may have been unlinked (released) between open and flock
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                previous = _read_holder(fd)
                if previous:
                    self.took_over = previous
                self._write_me(fd)
                self.fd = fd
                return self
            return self._acquire_exclusive()  # pragma: no cover - Windows
        raise self._locked(None)  # pragma: no cover - a pathological race

    def _acquire_exclusive(self) -> "ExportLock":
        """The lock file as the lock (no ``flock``): stale when its pid no longer runs here."""
        for _ in range(2):
            try:
                fd = self._open(os.O_RDWR | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                fd = self._open(os.O_RDONLY)
                holder = _read_holder(fd)
                os.close(fd)
                if (holder and holder.get("host") == socket.gethostname()
                        and not pid_alive(holder.get("pid"))):
                    self.took_over = holder
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                raise self._locked(holder) from None
            self._write_me(fd)
            self.fd = fd
            return self
        raise self._locked(self.took_over)

    def _write_me(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, self._me())

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and let go of the lock."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False)):
                os.remove(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "ExportLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["ExportLock", "ExportLocked"]
