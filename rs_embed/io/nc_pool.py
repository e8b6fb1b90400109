"""NetCDF files written by a small pool of writer processes.

netCDF4 (HDF5 underneath) is not thread-safe: within one process every NetCDF file is
written under :data:`rs_embed.io.netcdf.NC_LOCK`, so the writer threads of a per-item
export take turns, and a file costs milliseconds of HDF5 calls (each variable,
dimension and attribute is its own HDF5 operation). Each writer process has its own
HDF5 library, so points are written in parallel, while the exporting process goes on
fetching and embedding.

The workers are plain ``python -m rs_embed.io.nc_pool`` children that read pickled
requests on stdin and answer on a pipe: no ``multiprocessing``, so nothing re-imports
the user's ``__main__`` script. A worker ignores Ctrl-C (the export handles it) and
ends when its stdin closes: when the pool closes, or when the exporting process dies.
Each file is written under a temporary name and renamed (:mod:`rs_embed.io.atomic`),
as in one process.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .atomic import FileRecord, atomic_write_path_record
from .netcdf import NcVar, write_netcdf

#: a per-item NetCDF export writes through the pool when it has at least this many points
#: to write (below, starting the processes costs more than it saves)
POOL_MIN_POINTS = 200


class WorkerDied(OSError):
    """A writer process ended before answering (killed, out of memory)."""


class _Worker:
    def __init__(self):
        import rs_embed

        root = os.path.dirname(os.path.dirname(os.path.abspath(rs_embed.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen([sys.executable, "-m", "rs_embed.io.nc_pool"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)

    def call(self, request: Tuple[str, Sequence[Tuple[NcVar, Any]], Mapping[str, Any]]) -> FileRecord:
        try:
            pickle.dump(request, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
            kind, value = pickle.load(self.proc.stdout)
        except (EOFError, BrokenPipeError, OSError, pickle.UnpicklingError) as exc:
            raise WorkerDied(f"a NetCDF writer process ended (exit code {self.proc.poll()}) while writing "
                             f"{request[0]!r}: {type(exc).__name__}") from None
        if kind == "ok":
            return value
        raise value

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a write that never ends
            self.proc.kill()
            self.proc.wait()
        try:
            self.proc.stdout.close()
        except OSError:
            pass


class NetCDFPool:
    """``write(path, variables, attrs)`` from any thread; at most ``workers`` files at once."""

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._idle: "queue.Queue[_Worker]" = queue.Queue()
        self._all: List[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _checkout(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise RuntimeError("the NetCDF writer pool is closed")
            if len(self._all) < self.workers:
                w = _Worker()
                self._all.append(w)
                return w
        return self._idle.get()

    def write(self, path: str, variables: Sequence[Tuple[NcVar, Any]], attrs: Mapping[str, Any]) -> FileRecord:
        w = self._checkout()
        try:
            return w.call((path, list(variables), dict(attrs)))
        finally:
            if w.alive():
                self._idle.put(w)
            else:  # replaced on the next checkout
                with self._lock:
                    self._all.remove(w)
                w.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for w in workers:
            w.close()


def write_netcdf_record(path: str, variables: Sequence[Tuple[NcVar, Any]], attrs: Mapping[str, Any],
                        pool: Optional[NetCDFPool] = None) -> FileRecord:
    """Write ``path`` atomically (in ``pool`` when given, else here, under the lock)."""
    if pool is not None:
        return pool.write(path, variables, attrs)
    return atomic_write_path_record(path, lambda tmp: write_netcdf(tmp, variables, attrs))[1]


def _serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not enter the answers
    while True:
        try:
            path, variables, attrs = pickle.load(inp)
        except EOFError:
            return
        try:
            answer: Tuple[str, Any] = ("ok", write_netcdf_record(path, variables, attrs))
        except BaseException as exc:  # sent back, raised in the exporting process
            answer = ("error", exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            data = pickle.dumps(("error", OSError(f"{type(answer[1]).__name__}: {answer[1]}")))
        out.write(data)
        out.flush()


if __name__ == "__main__":
    _serve()


__all__ = ["NetCDFPool", "write_netcdf_record", "POOL_MIN_POINTS", "WorkerDied"]
