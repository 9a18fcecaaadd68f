"""How the transfer server asks the application, on a client's behalf.

Over HTTPS to the application's own listener on this host. The application's certificate is
pinned (the exact certificate `casebridge serve` gave both servers), so nothing else listening on
that port could receive the client's credentials; the internal key proves to the application that
the request comes from its transfer server.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

INTERNAL_KEY_HEADER = "CaseBridge-Transfer-Key"
CLIENT_ADDRESS_HEADER = "CaseBridge-Client-Address"
TIMEOUT_SECONDS = 120  # a commit that completes an upload scans it first
# A connection is used again only while it is this fresh: well inside the application's 5 s
# keep-alive, so a request never lands on a connection the application is closing.
REUSE_SECONDS = 2.0


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Call = Callable[[str, str, Mapping[str, str], bytes], Reply]
"""call(method, path, headers, body) -> the application's reply."""


_CLOSED_BY_PEER = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class AppClient:
    def __init__(self, url: str, host: str, key: bytes, pinned_der: bytes | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"the application URL must be https://host:port, not {url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("plain http to the application is only for loopback")
        self.scheme = parts.scheme
        self.address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self.host = host
        self.key = key.hex()
        self.pinned_der = pinned_der
        # Made once: a default context loads the system's CA store, ~30 ms each time. No CA is
        # needed: the pin below names the one certificate the application may present.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        # One kept-alive connection per server thread: a body's lease and commit (and the next
        # body's lease) share a TLS handshake and the pin check.
        self._local = threading.local()

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(*self.address, timeout=TIMEOUT_SECONDS)
        connection = http.client.HTTPSConnection(*self.address, timeout=TIMEOUT_SECONDS, context=self.context)
        connection.connect()
        assert isinstance(connection.sock, ssl.SSLSocket)
        if self.pinned_der is None or connection.sock.getpeercert(binary_form=True) != self.pinned_der:
            connection.close()
            raise ssl.SSLError("the application answered with another certificate than the pinned one")
        return connection

    def __call__(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply:
        kept: tuple[http.client.HTTPConnection, float] | None = getattr(self._local, "kept", None)
        self._local.kept = None
        if kept is not None and time.monotonic() - kept[1] < REUSE_SECONDS:
            try:
                return self._exchange(kept[0], method, path, headers, body)
            except _CLOSED_BY_PEER:
                pass  # closed before it answered (the application restarted): once more, anew
        elif kept is not None:
            kept[0].close()
        return self._exchange(self._connect(), method, path, headers, body)

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        try:
            connection.request(
                method, path, body=body, headers={**headers, "Host": self.host, INTERNAL_KEY_HEADER: self.key}
            )
            response = connection.getresponse()
            reply = Reply(response.status, response.getheaders(), response.read())
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._local.kept = (connection, time.monotonic())
        return reply
