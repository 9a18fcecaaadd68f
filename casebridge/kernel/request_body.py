"""Request bodies read straight into the caller's buffer (no Django: the transfer server uses it).

Over TLS every recv() returns one 16 KiB record; gunicorn's reader appends each to a BytesIO and
copies the result out again. recv_into() the vault's segment buffer decrypts each record where it
will be hashed and encrypted: no copy at all (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

Readinto = Callable[[memoryview], int]


def body_reader(environ: Mapping[str, Any], length: int, read: Callable[[int], bytes]) -> Readinto:
    """readinto() over a request body of `length` bytes: 0 at its end or when the client left.

    `read(n)` is the server's own body reader, used when the socket cannot be read directly."""
    direct = gunicorn_socket_body(environ, length)
    if direct is not None:
        return direct
    remaining = length

    def readinto(view: memoryview) -> int:
        nonlocal remaining
        if not remaining:
            return 0
        chunk = read(min(len(view), remaining))
        view[: len(chunk)] = chunk
        remaining -= len(chunk)
        return len(chunk)

    return readinto


def gunicorn_socket_body(environ: Mapping[str, Any], length: int) -> Readinto | None:
    """Read a known-length body straight from gunicorn's socket into the caller's buffer.

    Anything gunicorn already read ahead is taken first; with another server, or a body someone
    already started reading, this returns None.
    """
    from gunicorn.http.body import LengthReader
    from gunicorn.http.unreader import SocketUnreader

    stream = environ.get("wsgi.input")
    reader = getattr(stream, "reader", None)
    unreader = getattr(reader, "unreader", None)
    buffered = getattr(stream, "buf", None)
    if not isinstance(reader, LengthReader) or not isinstance(unreader, SocketUnreader) or buffered is None:
        return None
    if buffered.tell() or reader.length != length:
        return None
    sock = unreader.sock
    pending: memoryview | None = None  # what gunicorn read ahead, taken on the first read
    remaining = length

    def readinto(view: memoryview) -> int:
        nonlocal pending, remaining
        if pending is None:
            ahead = unreader.take_buffered()
            if len(ahead) > length:  # a pipelined next request: give it back
                unreader.unread(ahead[length:])
                ahead = ahead[:length]
            pending = memoryview(ahead)
        want = min(len(view), remaining)
        if not want:
            return 0
        if pending:
            got = min(want, len(pending))
            view[:got] = pending[:got]
            pending = pending[got:]
        else:
            got = sock.recv_into(view, want)  # 0: the client went away, keep what arrived
        remaining -= got
        reader.length -= got  # gunicorn must not wait for bytes we consumed
        return got

    return readinto


# --- answering before the body is read --------------------------------------------------------
# A request refused before its body was read (a wrong type after the first MiB, a size, quota,
# scope or lease refusal before any of it) is answered at once, but the client may still be
# sending: tus clients (tuspy through requests, Uppy through XMLHttpRequest) read the answer only
# once the whole body is out. gunicorn drains just 64 KiB before it closes the connection, and a
# close with unread data makes the kernel reset it: the client sees a broken connection instead
# of the 415 and retries. So, as nginx's lingering close does, the rest of the body is read and
# thrown away after the answer went out, within bounds: a body that does not end within them
# (a 2 GiB single PATCH) still meets a closed connection.
DRAIN_MAX_BYTES = 64 << 20  # twice the browser uploader's 32 MiB slices
DRAIN_SECONDS = 30.0  # nginx's lingering_time
DRAIN_IDLE_SECONDS = 5.0  # nginx's lingering_timeout: a client that stops sending is let go


def drain(environ: Mapping[str, Any], *, max_bytes: int = DRAIN_MAX_BYTES, seconds: float = DRAIN_SECONDS) -> bool:
    """Read and discard what is left of the request body; True if it ended within the bounds."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return True
    sock = environ.get("gunicorn.socket")
    saved = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + seconds
    drained = 0
    try:
        while drained < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if sock is not None:
                sock.settimeout(min(left, DRAIN_IDLE_SECONDS))
            chunk = stream.read(min(1 << 20, max_bytes - drained))
            if not chunk:
                return True
            drained += len(chunk)
        return not stream.read(1)
    except (OSError, ValueError):  # timed out, reset, or a malformed chunked body
        return False
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(saved)


def _has_body(environ: Mapping[str, Any]) -> bool:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return False


class DrainedBody:
    """WSGI middleware: once the answer to a request with a body is sent, what the application
    left unread of that body is drained (`drain`), so the client reads the answer."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = self.app(environ, start_response)
        if not _has_body(environ):
            return result  # untouched: a download's file wrapper keeps its sendfile path
        return _ThenDrain(result, environ)


class _ThenDrain:
    def __init__(self, result: Iterable[bytes], environ: Mapping[str, Any]) -> None:
        self.result = result
        self.environ = environ

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        # The server calls close() after the last byte of the answer went out.
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            drain(self.environ)
