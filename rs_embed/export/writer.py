"""The write stage: writer threads behind a bounded queue, or inline writes.

The queue bound keeps memory flat when the disk is the slowest stage: the producer
waits for a free slot instead of piling up payloads. Every write is retried on
transient OS errors; its outcome goes to the caller's ``on_done`` callback.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from .retry import is_transient_write_error, with_retries

Done = Callable[[Optional[BaseException]], None]


class Writer:
    def __init__(self, *, async_write: bool, workers: int, bound: int, retries: int, backoff_s: float):
        self.async_write = async_write
        self.retries, self.backoff_s = retries, backoff_s
        self._pool = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rs_embed-write")
                      if async_write else None)
        self._slots = threading.BoundedSemaphore(max(1, bound))
        self._idle = threading.Condition()
        self._pending = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def _run(self, fn: Callable[[], None], on_done: Done) -> None:
        import time

        t0 = time.perf_counter()
        err: Optional[BaseException] = None
        try:
            with_retries(fn, retries=self.retries, backoff_s=self.backoff_s,
                         transient=is_transient_write_error)
        except BaseException as exc:  # reported, never lost in a thread
            err = exc
        with self._lock:
            self.seconds += time.perf_counter() - t0
        try:
            on_done(err)
        finally:
            if self._pool is not None:
                self._slots.release()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def submit(self, fn: Callable[[], None], on_done: Done) -> None:
        """Write now (inline) or in a writer thread once a queue slot is free."""
        if self._pool is None:
            self._run(fn, on_done)
            return
        self._slots.acquire()
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run, fn, on_done)

    def drain(self) -> None:
        """Wait until every submitted write has finished."""
        with self._idle:
            while self._pending:
                self._idle.wait()

    def close(self) -> None:
        self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


__all__ = ["Writer"]
