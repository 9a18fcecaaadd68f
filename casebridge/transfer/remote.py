"""Blobs of S3 and compatible stores over HTTP(S), through URLs the application presigned: the
transfer server holds neither a client library nor credentials.

RemoteBlob reads ranges: decrypt_range asks for the header, then for every segment in order; one
streaming GET serves a contiguous run of requests, and a new one starts only where a request does
not continue the last. PresignedParts stores and reads an upload's staged parts (kernel/staging.py).
"""

from __future__ import annotations

import http.client
import ssl
from functools import cache
from typing import Any
from urllib.parse import SplitResult, urlsplit

from casebridge.kernel.backends import BlobNotFound, StorageError

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
        self._connection = _connect(self.parts)
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


def _connect(parts: SplitResult) -> http.client.HTTPConnection:
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=TIMEOUT_SECONDS, context=_tls())
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)


class PresignedParts:
    """One upload's staged parts through the URLs its lease carried: a PUT URL for every part the
    request may write, a GET URL for every part it may have to read back (kernel/staging.PartSink).
    The PUTs share one keep-alive connection."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.write_urls = {int(index): str(url) for index, url in plan.get("write", {}).items()}
        self.read_urls = {int(index): str(url) for index, url in plan.get("read", {}).items()}
        self._connection: http.client.HTTPConnection | None = None
        self._netloc = ""
        self._reading: tuple[int, RemoteBlob] | None = None  # reads in order continue one GET

    def put(self, index: int, data: memoryview, /) -> None:
        url = self.write_urls.get(index)
        if url is None:
            raise StorageError(f"the lease carried no URL to store part {index}")
        parts = urlsplit(url)
        if self._connection is None or self._netloc != parts.netloc:
            self.close()
            self._connection, self._netloc = _connect(parts), parts.netloc
        try:
            self._connection.request("PUT", parts.path + f"?{parts.query}", body=data)
            response = self._connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise StorageError(f"storing part {index} failed: {type(exc).__name__}") from None  # no URL in logs
        if response.status != 200:
            raise StorageError(f"storing part {index} answered {response.status}")

    def read(self, index: int, start: int, end: int, /) -> bytes:
        url = self.read_urls.get(index)
        if url is None:
            raise StorageError(f"the lease carried no URL to read part {index}")
        if end <= start:
            return b""
        if self._reading is None or self._reading[0] != index:
            if self._reading is not None:
                self._reading[1].close()
            self._reading = (index, RemoteBlob(url))
        return self._reading[1].read_range(start, end)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._reading is not None:
            self._reading[1].close()
        self._connection, self._reading = None, None
