"""Earth Engine without a network: a transport that answers like the service.

``ReplayTransport`` is an ``httplib2``-compatible object for
``ee.Initialize(http_transport=...)``. It serves the API discovery document and the
algorithm list that ship with ``earthengine-api`` (in ``ee/tests/``), records every
request, and answers ``computePixels`` from a queue of scripted replies or from a
handler (by default :class:`SyntheticPixels`, which makes valid NPY answers for any
grid). Use it to see exactly what rs_embed sends, to test, and to benchmark.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from .plan import IW_SCENES_BAND, SCENES_BAND, VALID_PREFIX


@dataclass
class Reply:
    """One HTTP answer: status, body bytes and headers."""

    status: int
    content: bytes
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request the transport received."""

    method: str
    uri: str
    body: Optional[dict]
    headers: Dict[str, str]
    started: float


def npy_reply(array: np.ndarray, headers: Optional[dict] = None) -> Reply:
    """A 200 answer carrying ``array`` as NPY bytes (what NUMPY_NDARRAY requests get)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return Reply(200, buf.getvalue(), dict(headers or {}, **{"content-type": "application/octet-stream"}))


def error_reply(status: int, message: str, headers: Optional[dict] = None) -> Reply:
    """An error answer with the JSON body Google APIs send."""
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    body = json.dumps({"error": {"code": status, "message": message,
                                 "status": names.get(status, "UNKNOWN")}}).encode()
    return Reply(status, body, dict(headers or {}, **{"content-type": "application/json"}))


def client_fixture_dir() -> str:
    """Folder of the discovery document and algorithm list inside earthengine-api."""
    import ee

    path = os.path.join(os.path.dirname(os.path.realpath(ee.__file__)), "tests")
    for name in ("cloud_api_discovery_document.json", "algorithms.json"):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(
                f"earthengine-api {getattr(ee, '__version__', '?')} does not ship ee/tests/{name}; "
                "install the version pinned by rs_embed's 'gee' extra")
    return path


_fixture_cache: Dict[str, bytes] = {}


def _fixture(name: str) -> bytes:
    data = _fixture_cache.get(name)
    if data is None:
        with open(os.path.join(client_fixture_dir(), name), "rb") as f:
            data = _fixture_cache[name] = f.read()
    return data


class SyntheticPixels:
    """Answers any ``computePixels`` body with deterministic, checkable pixels.

    Band ``i`` of the request holds ``1000 * i + row + col / 1000`` where row/col are
    the pixel's position on the lattice of the request's scale (so tiles of one grid
    stitch back to one ramp); validity bands are 1 (or 0 where ``masked``), and the
    scene counts are ``scenes``.
    """

    def __init__(self, scenes: int = 3, masked: bool = False):
        self.scenes = scenes
        self.masked = masked

    def array(self, body: dict) -> np.ndarray:
        grid = body["grid"]
        w, h = grid["dimensions"]["width"], grid["dimensions"]["height"]
        at = grid["affineTransform"]
        col0 = round(at["translateX"] / at["scaleX"])
        row0 = round(at["translateY"] / at["scaleY"])
        rows = (row0 + np.arange(h, dtype=np.float64))[:, None]
        cols = (col0 + np.arange(w, dtype=np.float64))[None, :]
        names = body["bandIds"]
        dtype = []
        for n in names:
            if n.startswith(VALID_PREFIX):
                dtype.append((n, "u1"))
            elif n in (SCENES_BAND, IW_SCENES_BAND):
                dtype.append((n, "<u2"))
            else:
                dtype.append((n, "<f4"))
        out = np.zeros((h, w), dtype=dtype)
        for i, n in enumerate(names):
            if n.startswith(VALID_PREFIX):
                out[n] = 0 if self.masked else 1
            elif n in (SCENES_BAND, IW_SCENES_BAND):
                out[n] = self.scenes
            elif not self.masked:
                out[n] = (1000.0 * i + (rows % 1000) + (cols % 1000) / 1000.0).astype(np.float32)
        return out

    def __call__(self, body: dict) -> Reply:
        return npy_reply(self.array(body))


class ReplayTransport:
    """An offline stand-in for Earth Engine's HTTP endpoint (thread-safe).

    ``latency_s`` delays every ``computePixels`` answer (benchmarks); ``handler`` makes
    answers that are not queued with :meth:`queue`.
    """

    def __init__(self, handler: Optional[Callable[[dict], Reply]] = None, *, latency_s: float = 0.0):
        self.handler = handler or SyntheticPixels()
        self.latency_s = float(latency_s)
        self.calls: List[Call] = []
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0

    # -- scripting -----------------------------------------------------------------
    def queue(self, *replies) -> None:
        """Answer the next computePixels requests with these (a Reply, exception or callable)."""
        with self._lock:
            self._queue.extend(replies)

    def compute_pixels_calls(self) -> List[Call]:
        with self._lock:
            return [c for c in self.calls if c.uri.split("?")[0].endswith(":computePixels")]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._queue.clear()
            self.peak_in_flight = 0

    # -- httplib2 interface ------------------------------------------------------------
    def request(self, uri, method="GET", body=None, headers=None, redirections=None,
                connection_type=None):
        import httplib2

        path = uri.split("?")[0]
        parsed = None
        if body:
            try:
                parsed = json.loads(body.decode() if isinstance(body, bytes) else body)
            except ValueError:
                parsed = None
        call = Call(method, uri, parsed, dict(headers or {}), time.perf_counter())
        with self._lock:
            self.calls.append(call)

        if "$discovery/rest" in path:
            reply = Reply(200, _fixture("cloud_api_discovery_document.json"),
                          {"content-type": "application/json"})
        elif path.endswith("/algorithms"):
            reply = Reply(200, _fixture("algorithms.json"), {"content-type": "application/json"})
        elif path.endswith(":computePixels"):
            reply = self._compute_pixels(parsed or {})
        else:
            reply = error_reply(404, f"the replay transport does not serve {method} {path}")
        headers = {"status": str(reply.status), **reply.headers}
        return httplib2.Response(headers), reply.content

    def _compute_pixels(self, body: dict) -> Reply:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            scripted = self._queue.popleft() if self._queue else None
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            answer = scripted if scripted is not None else self.handler
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer) and not isinstance(answer, Reply):
                answer = answer(body)
            return answer
        finally:
            with self._lock:
                self._in_flight -= 1


__all__ = ["ReplayTransport", "SyntheticPixels", "Reply", "Call", "npy_reply", "error_reply",
           "client_fixture_dir"]
