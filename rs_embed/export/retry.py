"""Retrying what can succeed on a second try, and only that, in one layer.

A provider marks its errors ``transient`` (a timeout, a rate limit) or not (no
imagery covers the ROI, a bad band name). Timeouts and dropped connections raised by
lower layers count as transient; every other error fails at once, because repeating a
deterministic failure only wastes quota and time. An error that says it took more
than one attempt was retried by the provider itself (within its own budget): the
engine does not start that over, so retries never multiply.
"""

from __future__ import annotations

import errno
import time
from typing import Callable, Tuple, TypeVar

T = TypeVar("T")

_PERMANENT_OS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                 FileExistsError)


def is_transient_fetch_error(exc: BaseException) -> bool:
    flag = getattr(exc, "transient", None)
    if flag is not None:
        return bool(flag)
    return isinstance(exc, (TimeoutError, ConnectionError))


def retried_already(exc: BaseException) -> bool:
    """Whether the layer below already retried ``exc`` (it carries ``attempts > 1``)."""
    n = getattr(exc, "attempts", None)
    return isinstance(n, int) and n > 1


def is_transient_write_error(exc: BaseException) -> bool:
    """Disk-level hiccups (EIO, ENOSPC freed meanwhile, network file systems) are retried."""
    if isinstance(exc, _PERMANENT_OS):
        return False
    if isinstance(exc, OSError):
        return exc.errno not in (errno.EROFS, errno.ENAMETOOLONG, errno.EINVAL)
    return False


class RetryError(Exception):
    """Internal: carries how many attempts were made before giving up."""


def with_retries(fn: Callable[[], T], *, retries: int, backoff_s: float,
                 transient: Callable[[BaseException], bool]) -> Tuple[T, int]:
    """``(fn(), attempts)``; on failure the exception gets an ``attempts`` attribute."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(), attempt
        except Exception as exc:
            if attempt > retries or not transient(exc):
                try:
                    exc.attempts = attempt  # type: ignore[attr-defined]
                except Exception:  # pragma: no cover - exceptions with __slots__
                    pass
                raise
            if backoff_s > 0:
                time.sleep(backoff_s)


__all__ = ["with_retries", "is_transient_fetch_error", "is_transient_write_error", "retried_already"]
