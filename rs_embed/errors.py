"""Errors raised by rs_embed.

One base class so callers can catch everything the toolkit raises on purpose, and
one subclass per layer so a message says where things went wrong.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


class RsEmbedError(Exception):
    """Base class of every error rs_embed raises deliberately."""


class SpecError(RsEmbedError, ValueError):
    """A spec (spatial, temporal, sensor, output, ...) or an argument is invalid."""


class ModelError(RsEmbedError):
    """A model name, model option, checkpoint or model input is unusable."""


class ProviderError(RsEmbedError):
    """Imagery could not be fetched.

    ``transient`` tells the retry logic whether trying again can help (a timeout or a
    rate limit) or not (nothing covers the ROI, a bad band name).
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def warn(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` pointing at the user's line, not at rs_embed's internals."""
    pkg = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)


@contextlib.contextmanager
def keep_warning_settings():
    """Give the caller's warning settings back after a block that runs library code in threads.

    ``warnings.catch_warnings`` is not thread-safe: when two worker threads overlap in it
    (rasterio enters it around its in-memory datasets), the later one to leave restores
    the other's temporary filters, e.g. "ignore everything", for the whole process, and
    every warning after that, ours included, is silently dropped.
    """
    filters, show = warnings.filters, warnings.showwarning
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    try:
        yield
    finally:
        changed = warnings.filters is not filters or warnings.showwarning is not show
        warnings.filters, warnings.showwarning = filters, show
        if impl is not None and getattr(warnings, "_showwarnmsg_impl", None) is not impl:
            warnings._showwarnmsg_impl = impl  # type: ignore[attr-defined]
            changed = True
        if changed:
            warnings._filters_mutated()  # type: ignore[attr-defined]


__all__ = ["RsEmbedError", "SpecError", "ModelError", "ProviderError", "warn", "keep_warning_settings"]
