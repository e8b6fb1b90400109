"""Suite-wide guards: no test may reach the internet, and model hubs stay offline."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkBlocked(RuntimeError):
    """Raised when a test tries to open a connection outside this machine."""


def _guard(address):
    if not _is_local(address):
        raise NetworkBlocked(f"test tried to connect to {address!r}; tests must stay offline")


def _connect(self, address):
    _guard(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    _guard(address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not _is_local((host,)):
        raise NetworkBlocked(f"test tried to resolve {host!r}; tests must stay offline")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_internet():
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.getaddrinfo = _getaddrinfo
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(scope="session")
def sample_export(tmp_path_factory):
    """The embedded sample's 33 labelled points exported once with rcf and spectral
    (pooled, a file per point), loaded back; shared by the analysis and widget tests."""
    from rs_embed import export_batch, load_export, sample

    out = tmp_path_factory.mktemp("sample_export") / "sample"
    export_batch(spatials=sample.spatials(), names=sample.names(), temporal=sample.TEMPORAL,
                 models=["rcf", "spectral"], out=str(out), layout="per_item", backend="local",
                 show_progress=False)
    return load_export(out)
