"""Malware scanning of upload content through a ClamAV daemon (clamd), streamed in constant memory.

The clamd protocol is small enough to speak directly (the PyPI clients are unmaintained):
connect, send ``zINSTREAM\\0``, then chunks framed as a 4-byte big-endian length and the data,
then a zero-length chunk; clamd answers one NUL-terminated line:

    stream: OK
    stream: Eicar-Signature FOUND
    INSTREAM size limit exceeded. ERROR

Anything that is not a verdict raises ``ScannerUnavailable``: callers must fail closed and never
store unscanned content as if it were clean.

clamd settings that matter for CaseBridge's multi-gigabyte uploads: ``StreamMaxLength`` (default
25M, at most 4G) must exceed the largest upload or every big file fails with a size-limit error;
files beyond ``MaxFileSize``/``MaxScanSize`` are only partly scanned and reported OK unless
``AlertExceedsMax yes`` is set.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

DEFAULT_TCP_PORT = 3310
# Caller chunks larger than this are sent as several frames (memoryview slices, no copy), so one
# huge chunk cannot trip clamd's per-chunk length check or hold the socket in one giant write.
MAX_FRAME_BYTES = 1 << 20
# A verdict is one short line; a longer reply is not clamd.
_MAX_REPLY_BYTES = 4096


@dataclass(frozen=True)
class ScanResult:
    """clamd's verdict: ``signature`` names what was found when ``clean`` is false."""

    clean: bool
    signature: str | None = None


class ScannerUnavailable(RuntimeError):
    """clamd gave no verdict (unreachable, refused the stream, or answered nonsense)."""


class ClamdScanner:
    """A clamd at ``unix:///path/to/clamd.ctl`` or ``tcp://host[:port]`` (port 3310 by default).

    ``connect_timeout`` bounds reaching the daemon; ``timeout`` bounds each later socket
    operation, including the wait for the verdict, so it must outlast clamd's own MaxScanTime
    (120 s by default) on the largest files.
    """

    def __init__(self, url: str, *, connect_timeout: float = 5.0, timeout: float = 300.0) -> None:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            if parts.netloc or not parts.path.startswith("/"):
                raise ValueError(f"clamd URL must be unix:///absolute/path, got {url!r}")
            self._family = socket.AF_UNIX
            self._address: str | tuple[str, int] = parts.path
        elif parts.scheme == "tcp":
            if not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"clamd URL must be tcp://host[:port], got {url!r}")
            try:
                port = parts.port or DEFAULT_TCP_PORT
            except ValueError as error:  # a non-numeric or out-of-range port
                raise ValueError(f"clamd URL has an invalid port: {url!r}") from error
            self._family = socket.AF_INET  # only a marker: create_connection picks v4 or v6
            self._address = (parts.hostname, port)
        else:
            raise ValueError(f"clamd URL must start with unix:// or tcp://, got {url!r}")
        self.url = url
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ClamdScanner({self.url!r})"

    def ping(self) -> None:
        """Check that clamd answers; raises ScannerUnavailable otherwise (use at start-up)."""
        with self._connect() as sock:
            self._send(sock, b"zPING\0")
            reply = self._read_reply(sock)
        if reply != "PONG":
            raise ScannerUnavailable(f"clamd at {self.url} answered PING with {reply!r}")

    def scan(self, chunks: Iterable[bytes]) -> ScanResult:
        """Stream ``chunks`` to clamd and return its verdict, holding at most one chunk at a time.

        Errors raised by ``chunks`` itself (a failing disk, a decryption error) propagate as they
        are: they are the caller's, not the scanner's.
        """
        with self._connect() as sock:
            self._send(sock, b"zINSTREAM\0")
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                # Skipping empty chunks matters: a zero length is the end-of-stream marker.
                for start in range(0, len(view), MAX_FRAME_BYTES):
                    frame = view[start : start + MAX_FRAME_BYTES]
                    self._send(sock, struct.pack(">I", len(frame)), frame)
            self._send(sock, struct.pack(">I", 0))
            reply = self._read_reply(sock)
        return _parse_verdict(reply, self.url)

    def _connect(self) -> socket.socket:
        try:
            if self._family == socket.AF_UNIX:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.connect_timeout)
                    sock.connect(self._address)
                except BaseException:
                    sock.close()
                    raise
            else:
                assert isinstance(self._address, tuple)
                sock = socket.create_connection(self._address, timeout=self.connect_timeout)
        except OSError as error:
            raise ScannerUnavailable(f"cannot reach clamd at {self.url}: {error}") from error
        sock.settimeout(self.timeout)
        return sock

    def _send(self, sock: socket.socket, *parts: bytes | memoryview) -> None:
        try:
            for part in parts:
                sock.sendall(part)
        except OSError as error:
            # clamd hangs up mid-stream when the stream exceeds StreamMaxLength, after writing
            # why; report that reason when it is still readable.
            try:
                sock.settimeout(1.0)
                reason = self._read_reply(sock)
            except ScannerUnavailable:
                raise ScannerUnavailable(f"clamd at {self.url} dropped the connection: {error}") from error
            _raise_for_error_reply(reason, self.url)

    def _read_reply(self, sock: socket.socket) -> str:
        received = bytearray()
        try:
            while b"\0" not in received and len(received) < _MAX_REPLY_BYTES:
                data = sock.recv(_MAX_REPLY_BYTES)
                if not data:
                    break
                received += data
        except OSError as error:
            raise ScannerUnavailable(f"clamd at {self.url} gave no verdict: {error}") from error
        reply = bytes(received).partition(b"\0")[0].decode("utf-8", "replace").strip()
        if not reply:
            raise ScannerUnavailable(f"clamd at {self.url} closed the connection without a verdict")
        return reply


def scan(url: str, chunks: Iterable[bytes]) -> ScanResult:
    """Scan ``chunks`` with the clamd at ``url``: the one-call form of ``ClamdScanner(url).scan``."""
    return ClamdScanner(url).scan(chunks)


def _parse_verdict(reply: str, url: str) -> ScanResult:
    if reply == "stream: OK":
        return ScanResult(clean=True)
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        signature = reply.removeprefix("stream: ").removesuffix(" FOUND").strip()
        if signature:
            return ScanResult(clean=False, signature=signature)
    _raise_for_error_reply(reply, url)


def _raise_for_error_reply(reply: str, url: str) -> NoReturn:
    if "size limit" in reply:
        raise ScannerUnavailable(
            f"clamd at {url} refused the stream as too large ({reply}); raise StreamMaxLength in clamd.conf"
        )
    if reply.endswith("ERROR"):
        raise ScannerUnavailable(f"clamd at {url} could not scan the stream: {reply}")
    raise ScannerUnavailable(f"clamd at {url} answered with something other than a verdict: {reply!r}")
