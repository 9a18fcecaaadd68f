"""How the transfer server calls the application: over TLS with the certificate pinned, one
kept-alive connection per thread while it is fresh, a new one after the application restarted.
Against a real TLS HTTP server on loopback (the standard library's), counting connections."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import pytest

from casebridge.kernel.tls import ensure_self_signed
from casebridge.transfer import appclient
from casebridge.transfer.appclient import INTERNAL_KEY_HEADER, AppClient
from casebridge.transfer.testing import certificate, free_port

KEY = bytes(range(32))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a response says otherwise

    def setup(self) -> None:
        super().setup()
        self.app = cast(_Application, self.server)
        self.app.connections.append(self.connection)
        self.number = len(self.app.connections)

    def do_POST(self) -> None:
        self.app.seen.append((self.path, self.headers.get(INTERNAL_KEY_HEADER), self.number))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Application(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.seen: list[tuple[str, str | None, int]] = []  # path, internal key, connection number
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """As a process exit would: the listener and every open connection close."""
        self.shutdown()
        self.server_close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    return certificate(tmp_path)


@pytest.fixture
def application(tls: tuple[Path, Path]) -> Iterator[_Application]:
    app = _Application(free_port(), *tls)
    yield app
    app.stop()


def _client(port: int, cert: Path) -> AppClient:
    pinned = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return AppClient(f"https://127.0.0.1:{port}", "app.test", KEY, pinned)


def test_calls_in_a_row_share_one_connection_and_carry_the_internal_key(
    application: _Application, tls: tuple[Path, Path]
) -> None:
    client = _client(application.server_address[1], tls[0])
    assert client("POST", "/lease", {}, b"a").body == b"a"
    assert client("POST", "/commit", {}, b"b").body == b"b"
    assert [path for path, _, _ in application.seen] == ["/lease", "/commit"]
    assert {key for _, key, _ in application.seen} == {KEY.hex()}
    assert len({conn for _, _, conn in application.seen}) == 1


def test_a_connection_the_application_closes_or_that_went_stale_is_not_used_again(
    application: _Application, tls: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(application.server_address[1], tls[0])
    client("POST", "/close", {}, b"")
    client("POST", "/lease", {}, b"")
    monkeypatch.setattr(appclient, "REUSE_SECONDS", 0.0)  # as if the next body came much later
    client("POST", "/commit", {}, b"")
    assert len({conn for _, _, conn in application.seen}) == 3


def test_after_the_application_restarts_the_next_call_reconnects(
    application: _Application, tls: tuple[Path, Path]
) -> None:
    port = application.server_address[1]
    client = _client(port, tls[0])
    client("POST", "/lease", {}, b"")
    application.stop()
    restarted = _Application(port, *tls)
    try:
        assert client("POST", "/commit", {}, b"again").body == b"again"
        assert [path for path, _, _ in restarted.seen] == ["/commit"]
    finally:
        restarted.stop()


def test_an_application_with_another_certificate_is_refused(application: _Application, tmp_path: Path) -> None:
    other_cert, other_key = tmp_path / "other" / "cert.pem", tmp_path / "other" / "key.pem"
    ensure_self_signed(other_cert, other_key, ["localhost", "127.0.0.1"])
    client = _client(application.server_address[1], other_cert)  # pins a certificate it will not see
    with pytest.raises(ssl.SSLError):
        client("POST", "/lease", {}, b"")
    assert application.seen == []
