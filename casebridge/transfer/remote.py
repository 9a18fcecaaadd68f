"""Ranges of a blob read over HTTP(S) from a presigned URL (S3 and compatible stores).

decrypt_range asks for the header, then for every segment in order: one streaming GET serves a
contiguous run of requests, and a new one starts only where a request does not continue the last.
"""

from __future__ import annotations

import http.client
import ssl
from functools import cache
from urllib.parse import urlsplit

from casebridge.vault.backends import BlobNotFound, StorageError

TIMEOUT_SECONDS = 60


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # the system's CAs; made once (it loads them, ~30 ms)


class RemoteBlob:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise StorageError("a blob URL must be http(s)://host/...")
        self.parts = parts
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._connection: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self._position = -1

    def _open(self, start: int) -> http.client.HTTPResponse:
        self.close()
        host, port = self.parts.hostname or "", self.parts.port
        if self.parts.scheme == "https":
            self._connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_SECONDS, context=_tls())
        else:
            self._connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
        self._connection.request("GET", self.target, headers={"Range": f"bytes={start}-"})
        response = self._connection.getresponse()
        if response.status in (403, 404):  # expired or wrong signature look the same to a client
            raise BlobNotFound("the blob's URL")
        if response.status != 206 and not (response.status == 200 and start == 0):
            raise StorageError(f"reading a blob over HTTP answered {response.status}")
        self._response = response
        self._position = start
        return response

    def read_range(self, start: int, end: int) -> bytes:
        response = self._response if start == self._position and self._response else self._open(start)
        data = bytearray()
        while len(data) < end - start:
            chunk = response.read(end - start - len(data))
            if not chunk:
                break  # shorter than asked: the caller's length checks report it
            data += chunk
        self._position += len(data)
        return bytes(data)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._response, self._position = None, None, -1
