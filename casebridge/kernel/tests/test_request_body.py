"""The upload body reader takes bytes straight from gunicorn's socket: exactly the body, what
gunicorn already read ahead first, a pipelined next request left in place, a drop kept short."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from casebridge.kernel import request_body
from casebridge.kernel.request_body import DrainedBody, body_reader, drain, gunicorn_socket_body


def _drain(request: SimpleNamespace, length: int) -> bytes:
    """Everything the body reader gives, read in odd-sized pieces as the pipeline's buffers would."""
    readinto = body_reader(request.META, length, request.read)
    buffer = bytearray(700_001)
    out = bytearray()
    while got := readinto(memoryview(buffer)):
        out += buffer[:got]
    return bytes(out)


def _request_over(
    data: bytes, length: int, read_ahead: bytes = b"", close: bool = True
) -> tuple[SimpleNamespace, object]:
    server, client = socket.socketpair()

    def send() -> None:
        try:
            client.sendall(data)
        except BrokenPipeError:  # the reading end was already closed: nothing left to prove
            return
        if close:
            client.close()

    threading.Thread(target=send, daemon=True).start()
    unreader = SocketUnreader(server)
    if read_ahead:
        unreader.unread(read_ahead)  # what gunicorn buffered while parsing the headers
    body = Body(LengthReader(unreader, length))
    return SimpleNamespace(META={"wsgi.input": body}, read=body.read), unreader


def test_it_reads_exactly_the_body_taking_read_ahead_first() -> None:
    payload = bytes(range(256)) * 12_000  # ~3 MiB, several 1 MiB pieces
    head, rest = payload[:5000], payload[5000:]
    request, _ = _request_over(rest, len(payload), read_ahead=head)
    assert gunicorn_socket_body(request.META, len(payload)) is not None  # the direct path is taken
    assert _drain(request, len(payload)) == payload


def test_a_pipelined_next_request_stays_for_gunicorn() -> None:
    payload, following = b"x" * 1000, b"GET /healthz HTTP/1.1\r\n\r\n"
    request, unreader = _request_over(b"", len(payload), read_ahead=payload + following, close=False)
    assert _drain(request, len(payload)) == payload
    assert unreader.take_buffered() == following


def test_a_dropped_connection_keeps_what_arrived() -> None:
    request, _ = _request_over(b"y" * 300_000, 1_000_000)
    assert _drain(request, 1_000_000) == b"y" * 300_000


def test_other_servers_use_the_plain_reader() -> None:
    class Stream:
        def read(self, size: int) -> bytes:
            return b""

    assert gunicorn_socket_body({"wsgi.input": Stream()}, 10) is None


# --- draining what a refused request left unread --------------------------------------------
def _refused_after(sent: bytes, length: int, *, close: bool = True) -> tuple[dict[str, object], socket.socket]:
    """A request whose application read 1000 bytes of its body and answered; the client sends
    `sent` in all (and hangs up afterwards when `close`)."""
    server, client = socket.socketpair()

    def send() -> None:
        try:
            client.sendall(sent)
        except OSError:  # the server stopped draining: the rest meets a closed socket
            return
        if close:
            client.shutdown(socket.SHUT_WR)

    threading.Thread(target=send, daemon=True).start()
    body = Body(LengthReader(SocketUnreader(server), length))
    environ: dict[str, object] = {"wsgi.input": body, "gunicorn.socket": server, "CONTENT_LENGTH": str(length)}
    assert len(body.read(1000)) == 1000
    return environ, client


def test_the_unread_rest_of_a_refused_body_is_drained_after_the_answer() -> None:
    environ, _client = _refused_after(b"z" * (9 << 20), 9 << 20)
    assert drain(environ)  # the whole body: the connection can even be kept alive
    assert environ["wsgi.input"].read(1) == b""


def test_draining_stops_at_its_byte_bound() -> None:
    environ, client = _refused_after(b"z" * (9 << 20), 9 << 20, close=False)
    assert not drain(environ, max_bytes=2 << 20)  # the connection must then close
    client.close()


def test_a_client_that_stops_sending_is_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_body, "DRAIN_IDLE_SECONDS", 0.3)
    environ, client = _refused_after(b"z" * 5000, 1 << 20, close=False)  # promises 1 MiB, sends 5000 bytes
    started = time.monotonic()
    assert not drain(environ)
    assert time.monotonic() - started < 3
    client.close()


def test_only_requests_with_a_body_are_wrapped() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        return [b"ok"]

    assert DrainedBody(app)({"CONTENT_LENGTH": ""}, None) == [b"ok"]
    assert DrainedBody(app)({"CONTENT_LENGTH": "10"}, None) != [b"ok"]
