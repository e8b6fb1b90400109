"""Fetch workers that can be walked away from.

A provider that stops answering must not stop the export. Each fetch is a
:class:`Task` run by a pool of daemon threads: every attempt has a deadline, and a
watchdog (:meth:`WorkerPool.reap`, called by whoever waits for results) abandons an
attempt that is still running past it. The abandoned thread is left to finish (or
not) on its own and its result is dropped; a fresh thread takes its place, and the
task is tried again when it has attempts left. Nothing ever joins a worker, so
closing the pool, a cancel and Ctrl-C return at once, and daemon threads never hold
up the interpreter's exit (``concurrent.futures`` joins its threads at exit, which is
why it is not used here).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Optional, Set

from ..providers.base import FetchContext, FetchTimeout

#: how often a waiting caller looks at the cancel event and the deadlines (seconds)
POLL_S = 0.1


def grace_s(timeout_s: float) -> float:
    """How long past its deadline an attempt may run before it is abandoned: time for a
    provider that honours the deadline to notice it and raise on its own."""
    return min(5.0, max(0.5, 0.05 * timeout_s))


class Task:
    """One fetch: up to ``attempts`` calls of ``fn(ctx)``, each within ``timeout_s``.

    ``retry(exc, attempt)`` says whether a failed attempt is tried again (after
    ``backoff_s``). The outcome is ``value`` or ``error`` once ``done`` is set;
    ``attempts_made`` counts the attempts.
    """

    def __init__(self, fn: Callable[[FetchContext], Any], *, attempts: int, timeout_s: float,
                 backoff_s: float, retry: Callable[[BaseException, int], bool],
                 cancel: Optional[threading.Event], what: str):
        self.fn = fn
        self.max_attempts = max(1, int(attempts))
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        self.retry = retry
        self.cancel = cancel
        self.what = what
        self.done = threading.Event()
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.attempts_made = 0
        self.started: Optional[float] = None
        self.finished: Optional[float] = None
        self._lock = threading.Lock()
        self._epoch = 0  # bumped when an attempt is abandoned: its result is then dropped
        self._deadline: Optional[float] = None  # of the attempt running now
        self._owner: Optional["_Worker"] = None

    # -- worker side -------------------------------------------------------------
    def _run(self, worker: "_Worker", pool: "WorkerPool") -> None:
        while True:
            with self._lock:
                if self.done.is_set() or self._owner is not None:
                    return
                self.attempts_made += 1
                attempt, epoch = self.attempts_made, self._epoch
                now = time.monotonic()
                self.started = self.started or now
                self._deadline = now + self.timeout_s
                self._owner = worker
                ctx = FetchContext(timeout_s=self.timeout_s, deadline=self._deadline,
                                   cancel=self.cancel, what=self.what)
            try:
                value, error = self.fn(ctx), None
            except BaseException as exc:  # reported through the task, never lost in a thread
                value, error = None, exc
            with self._lock:
                if epoch != self._epoch or self.done.is_set():
                    return  # abandoned meanwhile: someone else carries on
                self._owner = None
                self._deadline = None
                if error is None:
                    self._finish(value, None)
                    return
                again = (attempt < self.max_attempts and isinstance(error, Exception)
                         and self.retry(error, attempt))
                if not again:
                    self._finish(None, error)
                    return
            if self.backoff_s > 0:
                if self.cancel is not None:
                    if self.cancel.wait(self.backoff_s):
                        return
                else:
                    time.sleep(self.backoff_s)
            if pool.closed:
                return

    def _finish(self, value: Any, error: Optional[BaseException]) -> None:
        """Called with the lock held."""
        self.value, self.error = value, error
        if error is not None and getattr(error, "attempts", None) is None:
            try:
                error.attempts = self.attempts_made  # type: ignore[attr-defined]
            except Exception:  # pragma: no cover - exceptions with __slots__
                pass
        self.finished = time.monotonic()
        self.done.set()

    # -- watchdog side -----------------------------------------------------------
    def _overdue(self, now: float) -> bool:
        d = self._deadline
        return d is not None and self._owner is not None and now > d + grace_s(self.timeout_s)

    def _abandon(self) -> Optional["_Worker"]:
        """Give up the attempt running now; returns its worker, or None if it just ended."""
        with self._lock:
            if self.done.is_set() or self._owner is None or not self._overdue(time.monotonic()):
                return None
            worker, self._owner, self._deadline = self._owner, None, None
            self._epoch += 1
            if self.attempts_made >= self.max_attempts:
                self._finish(None, FetchTimeout(
                    f"{self.what} did not answer within fetch_timeout_s={self.timeout_s:g} s "
                    f"(attempt {self.attempts_made} of {self.max_attempts}; the stuck request "
                    "was abandoned)"))
            return worker

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.done.wait(timeout)


class _Worker:
    __slots__ = ("thread", "abandoned", "task")

    def __init__(self):
        self.thread: Optional[threading.Thread] = None
        self.abandoned = False
        self.task: Optional[Task] = None


class WorkerPool:
    """``workers`` daemon threads running :class:`Task` s in submission order."""

    def __init__(self, workers: int, name: str = "rs_embed-fetch"):
        self.size = max(1, int(workers))
        self.name = name
        self.closed = False
        self._cond = threading.Condition()
        self._queue: Deque[Task] = collections.deque()
        self._live: Set[_Worker] = set()
        self._stuck: Set[_Worker] = set()
        self._n = 0
        with self._cond:
            for _ in range(self.size):
                self._spawn()

    def _spawn(self) -> None:
        """Start one worker (called with the condition held)."""
        w = _Worker()
        self._n += 1
        w.thread = threading.Thread(target=self._loop, args=(w,), daemon=True,
                                    name=f"{self.name}-{self._n}")
        self._live.add(w)
        w.thread.start()

    def _loop(self, w: _Worker) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self.closed and not w.abandoned:
                        self._cond.wait()
                    if self.closed or w.abandoned:
                        return
                    task = self._queue.popleft()
                    w.task = task
                task._run(w, self)
                with self._cond:
                    w.task = None
                    if w.abandoned:
                        return
        finally:
            with self._cond:
                self._live.discard(w)
                self._stuck.discard(w)

    def submit(self, task: Task, *, front: bool = False) -> Task:
        with self._cond:
            if self.closed:
                raise RuntimeError("the fetch pool is closed")
            if front:
                self._queue.appendleft(task)
            else:
                self._queue.append(task)
            self._cond.notify()
        return task

    def reap(self) -> int:
        """Abandon every attempt running past its deadline; returns how many."""
        now = time.monotonic()
        with self._cond:
            candidates = [w for w in self._live if w.task is not None and not w.abandoned
                          and w.task._overdue(now)]
        n = 0
        for w in candidates:
            task = w.task
            if task is None or task._abandon() is not w:
                continue
            n += 1
            with self._cond:
                w.abandoned = True
                self._stuck.add(w)
                if not self.closed:
                    self._spawn()  # keep the pool at full strength
                    if not task.done.is_set():
                        self._queue.appendleft(task)  # its next attempt goes first
                        self._cond.notify()
        return n

    @property
    def stuck(self) -> int:
        """Abandoned threads still running (their requests never returned)."""
        with self._cond:
            return len(self._stuck)

    def close(self) -> None:
        """Stop taking tasks; never waits for a thread (stuck ones are left behind)."""
        with self._cond:
            self.closed = True
            self._queue.clear()
            self._cond.notify_all()


__all__ = ["Task", "WorkerPool", "POLL_S", "grace_s"]
