"""A real HTTP server on 127.0.0.1 (Range requests, as object stores answer them) over a
folder the test fills with files in a product's published format; it logs every
request so tests can check that only what an ROI needs is read."""

from __future__ import annotations

import functools
import threading
from http.server import ThreadingHTTPServer

import pytest

RangeHTTPServer = pytest.importorskip("RangeHTTPServer", reason="tests need rangehttpserver (dev extra)")


class _Logged(RangeHTTPServer.RangeRequestHandler):
    def log_message(self, fmt, *args):  # quiet, but remember what was asked
        pass

    def send_head(self):
        self.server.requests.append((self.command, self.path, self.headers.get("Range")))
        return super().send_head()


class Served:
    def __init__(self, root, server):
        self.root, self.server = root, server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def requests(self):
        return self.server.requests

    def paths(self):
        return [p for _, p, _ in self.server.requests]


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Logged, directory=str(root)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Served(root, server)
    server.shutdown()
    server.server_close()
