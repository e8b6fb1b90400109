import socket

import pytest


def test_outside_connections_are_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(RuntimeError, match="offline"):
            s.connect(("93.184.216.34", 80))
    finally:
        s.close()


def test_loopback_is_allowed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.socket()
    try:
        cli.connect(srv.getsockname())
    finally:
        cli.close()
        srv.close()
