"""Request bodies read straight into the caller's buffer (no Django: the transfer server uses it).

Over TLS every recv() returns one 16 KiB record; gunicorn's reader appends each to a BytesIO and
copies the result out again. recv_into() the vault's segment buffer decrypts each record where it
will be hashed and encrypted: no copy at all (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
