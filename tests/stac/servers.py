"""Real servers on 127.0.0.1 for the STAC tests: a STAC API and a COG host.

``StacApiServer`` runs ``rustac serve`` (installed from PyPI by ``make test``) on a
free port with collections and items written by the tests. ``CogServer`` is a static
HTTP server with single-range support that logs every byte range it serves (so tests
can assert windowed reads), can be told to answer some requests with 429/503 first
(or every one: a storm), to delay answers (replayed latency), to accept requests and
never answer them (a hung server), and plays two Azure roles for Planetary
Computer tests: the SAS token endpoint, and blob storage reached through it as an
HTTP proxy (GDAL's ``GDAL_HTTP_PROXY``), refusing unsigned reads like Azure does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Sequence

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
#: provider settings for local servers: quick retries, short timeouts
FAST = dict(max_retries=3, retry_base_s=0.01, retry_cap_s=0.05, fetch_timeout_s=10)
BLOB_DOMAIN = ".blob.core.windows.net"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """One request the COG server answered."""

    method: str
    path: str
    start: Optional[int]
    end: Optional[int]  # inclusive
    status: int
    nbytes: int
    signed: bool = False


class _Hang:
    """Requests held without an answer: ``hold(path)`` blocks while ``path`` matches a
    registered part (a substring, or a suffix) until :meth:`release`."""

    def __init__(self, suffix: bool = False):
        self.suffix = suffix
        self.parts: List[str] = []
        self.held: List[str] = []
        self._lock = threading.Lock()
        self._gate = threading.Event()

    def add(self, part: str) -> None:
        with self._lock:
            self.parts.append(part)

    def release(self) -> None:
        with self._lock:
            self.parts.clear()
            gate, self._gate = self._gate, threading.Event()
        gate.set()

    def matches(self, path: str) -> bool:
        with self._lock:
            return any(path.endswith(p) if self.suffix else p in path for p in self.parts)

    def hold(self, path: str) -> bool:
        with self._lock:
            hit = any(path.endswith(p) if self.suffix else p in path for p in self.parts)
            if not hit:
                return False
            self.held.append(path)
            gate = self._gate
        gate.wait(600)
        return True


class CogServer:
    """Serves files under ``root`` on 127.0.0.1 with HTTP Range support."""

    def __init__(self, root: Path, *, latency_s: float = 0.0):
        self.root = Path(root)
        self.latency_s = float(latency_s)
        self.log: List[Served] = []
        self.faults: Dict[str, List[int]] = {}
        self.token_requests: List[str] = []
        self.token_ttl_s = 3600.0
        self._lock = threading.Lock()
        self._hang = _Hang()
        self._storms: Dict[str, int] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    # -- scripting ---------------------------------------------------------------
    def fail_next(self, path_suffix: str, *statuses: int) -> None:
        """Answer the next requests for a path ending in ``path_suffix`` with these statuses."""
        with self._lock:
            self.faults.setdefault(path_suffix, []).extend(statuses)

    def storm(self, part: str, status: int = 503) -> None:
        """Answer every request whose path contains ``part`` with ``status`` (until reset)."""
        with self._lock:
            self._storms[part] = status

    def hang(self, part: str) -> None:
        """Accept every request whose path contains ``part`` and never answer it (until
        :meth:`release` or reset): a server that stopped answering."""
        self._hang.add(part)

    def release(self) -> None:
        """Let the hung requests go (their connections close without an answer)."""
        self._hang.release()

    @property
    def hung(self) -> List[str]:
        """Paths of the requests held by :meth:`hang` so far."""
        return list(self._hang.held)

    def served(self, name: str) -> List[Served]:
        with self._lock:
            return [s for s in self.log if s.path.endswith(name)]

    def bytes_served(self, name: str) -> int:
        return sum(s.nbytes for s in self.served(name) if s.status in (200, 206))

    def reset(self) -> None:
        self._hang.release()
        self._hang.held.clear()
        with self._lock:
            self.log.clear()
            self.faults.clear()
            self._storms.clear()
            self.token_requests.clear()

    def close(self) -> None:
        self._hang.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- handler -----------------------------------------------------------------
    def _fault(self, path: str) -> Optional[int]:
        with self._lock:
            for suffix, statuses in self.faults.items():
                if path.endswith(suffix) and statuses:
                    return statuses.pop(0)
            for part, status in self._storms.items():
                if part in path:
                    return status
        return None

    def _record(self, entry: Served) -> None:
        with self._lock:
            self.log.append(entry)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, ctype: str = "text/plain",
                      extra: Optional[dict] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _token(self, path: str) -> None:
                server.token_requests.append(path)
                now = datetime.now(timezone.utc)
                expiry = now + timedelta(seconds=server.token_ttl_s)
                fmt = "%Y-%m-%dT%H:%M:%SZ"
                token = (f"st={now.strftime(fmt)}&se={expiry.strftime(fmt)}&sp=rl&sv=2024-05-04"
                         f"&sr=c&skoid=test&sig=c2lnbmVk{len(server.token_requests)}")
                body = json.dumps({"msft:expiry": expiry.strftime(fmt), "token": token}).encode()
                self._send(200, body, "application/json")

            def _resolve(self):
                """(file path, logical path, signed) of the request, or an error answer."""
                raw = self.path
                parsed = urllib.parse.urlsplit(raw)
                query = urllib.parse.parse_qs(parsed.query)
                signed = bool({"sig", "se"} <= set(query))
                if parsed.scheme in ("http", "https") and parsed.netloc:
                    host = parsed.netloc.split(":")[0]
                    if host.endswith(BLOB_DOMAIN):  # Azure blob storage, reached as a proxy
                        account = host[: -len(BLOB_DOMAIN)]
                        rel = f"blob/{account}{parsed.path}"
                        return server.root / rel, "/" + rel, signed, True
                    return None, raw, signed, False
                rel = urllib.parse.unquote(parsed.path).lstrip("/")
                return server.root / rel, "/" + rel, signed, False

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                if server.latency_s:
                    time.sleep(server.latency_s)
                if self.path.startswith("/api/sas/v1/token/"):
                    return self._token(self.path)
                file, logical, signed, blob = self._resolve()
                if server._hang.hold(logical):
                    self.close_connection = True
                    return
                fault = server._fault(logical)
                if fault is not None:
                    server._record(Served(self.command, logical, None, None, fault, 0, signed))
                    extra = {"Retry-After": "0"} if fault == 429 else None
                    return self._send(fault, f"injected {fault}".encode(), extra=extra)
                if blob and not signed:
                    msg = (b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"
                           b"PublicAccessNotPermitted</Code><Message>Public access is not "
                           b"permitted on this storage account.</Message></Error>")
                    server._record(Served(self.command, logical, None, None, 409, 0, signed))
                    return self._send(409, msg, "application/xml")
                if file is None or not file.is_file():
                    server._record(Served(self.command, logical, None, None, 404, 0, signed))
                    return self._send(404, f"no such file: {logical}".encode())
                size = file.stat().st_size
                rng = self.headers.get("Range")
                m = _RANGE.match(rng.strip()) if rng else None
                if m:
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                    if start >= size:
                        server._record(Served(self.command, logical, start, end, 416, 0, signed))
                        return self._send(416, b"", extra={"Content-Range": f"bytes */{size}"})
                    with open(file, "rb") as fh:
                        fh.seek(start)
                        body = fh.read(end - start + 1)
                    n = len(body) if self.command != "HEAD" else 0
                    server._record(Served(self.command, logical, start, end, 206, n, signed))
                    return self._send(206, body, "image/tiff",
                                      {"Content-Range": f"bytes {start}-{end}/{size}",
                                       "Accept-Ranges": "bytes"})
                body = file.read_bytes()
                n = len(body) if self.command != "HEAD" else 0
                server._record(Served(self.command, logical, None, None, 200, n, signed))
                ctype = "application/json" if file.suffix == ".json" else "application/octet-stream"
                return self._send(200, body, ctype, {"Accept-Ranges": "bytes"})

        return Handler


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of a STAC API, answering chosen requests itself.

    ``fail_next(path_suffix, *statuses)`` makes the next requests whose path ends so get
    those statuses (with a JSON error body), ``storm(path_suffix, status)`` every one;
    ``delay_next(path_suffix, seconds)`` holds the next one back (a slow server),
    ``hang(path_suffix)`` holds every one for ever (a server that accepts and never
    answers). Every forwarded, refused or held request is logged.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.log: List[tuple] = []
        self.faults: Dict[str, List[int]] = {}
        self.delays: Dict[str, List[float]] = {}
        self.storms: Dict[str, int] = {}
        self._hang = _Hang(suffix=True)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def fail_next(self, suffix: str, *statuses: int) -> None:
        with self._lock:
            self.faults.setdefault(suffix, []).extend(statuses)

    def delay_next(self, suffix: str, *seconds: float) -> None:
        with self._lock:
            self.delays.setdefault(suffix, []).extend(seconds)

    def storm(self, suffix: str, status: int = 503) -> None:
        with self._lock:
            self.storms[suffix] = status

    def hang(self, suffix: str) -> None:
        self._hang.add(suffix)

    def release(self) -> None:
        self._hang.release()

    def requests_to(self, suffix: str) -> List[tuple]:
        with self._lock:
            return [r for r in self.log if r[1].split("?")[0].endswith(suffix)]

    def reset(self) -> None:
        self._hang.release()
        self._hang.held.clear()
        with self._lock:
            self.log.clear()
            self.faults.clear()
            self.delays.clear()
            self.storms.clear()

    def close(self) -> None:
        self._hang.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _pop(self, table, path):
        with self._lock:
            for suffix, queue in table.items():
                if path.split("?")[0].endswith(suffix) and queue:
                    return queue.pop(0)
            if table is self.faults:
                for suffix, status in self.storms.items():
                    if path.split("?")[0].endswith(suffix):
                        return status
        return None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self, method: str):
                import requests

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy._hang.matches(self.path.split("?")[0]):
                    with proxy._lock:
                        proxy.log.append((method, self.path, None))
                    proxy._hang.hold(self.path.split("?")[0])
                    self.close_connection = True
                    return
                delay = proxy._pop(proxy.delays, self.path)
                if delay:
                    time.sleep(delay)
                fault = proxy._pop(proxy.faults, self.path)
                if fault is not None:
                    with proxy._lock:
                        proxy.log.append((method, self.path, fault))
                    msg = json.dumps({"code": "InjectedFault",
                                      "description": f"injected {fault} for {self.path}"}).encode()
                    self.send_response(fault)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    if fault == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept")}
                r = requests.request(method, proxy.upstream + self.path, data=body, headers=headers,
                                     timeout=30)
                with proxy._lock:
                    proxy.log.append((method, self.path, r.status_code))
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self):
                self._relay("GET")

            def do_POST(self):
                self._relay("POST")

        return Handler


class StacApiServer:
    """``rustac serve`` on a free 127.0.0.1 port, holding ``hrefs`` (collections, items)."""

    def __init__(self, hrefs: Sequence[Path], *, timeout_s: float = 30.0,
                 public_url: Optional[str] = None):
        exe = shutil.which("rustac") or str(Path(os.sys.executable).with_name("rustac"))
        if not Path(exe).exists():
            raise RuntimeError("rustac is not installed: run `make test` (it installs the 'stac-test' "
                               "pins) or pip install rustac")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(Path(hrefs[0]).parent / f"rustac-{self.port}.log", "wb")
        # links in the answers point at public_url (a proxy in front) when given
        addr = ["--addr", public_url, "--bind", f"127.0.0.1:{self.port}"] if public_url \
            else ["--addr", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen([exe, "serve", *addr, *map(str, hrefs)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        import requests

        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rustac serve exited with {self.proc.returncode}; see {self._log.name}")
            try:
                if requests.get(self.url + "/", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"rustac serve did not answer within {timeout_s} s")
            time.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


__all__ = ["CogServer", "StacApiServer", "FaultProxy", "Served", "free_port", "BLOB_DOMAIN", "FAST"]
