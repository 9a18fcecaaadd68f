"""Call the transfer server's WSGI application in-process, the way a server would."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from casebridge.transfer.app import TransferApp


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def body(self) -> bytes:
        return b"".join(self.chunks)


def call(app: TransferApp, url: str, method: str = "GET", **headers: str) -> Answer:
    """`headers` as Django's test client takes them (HTTP_RANGE=...)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": urlsplit(url).path,
        "QUERY_STRING": "",
        "SERVER_NAME": "transfer.test",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(),
        **headers,
    }
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        started.extend([status, response_headers])

    chunks = iter(app(environ, start_response))
    status, response_headers = started
    return Answer(int(status.split()[0]), {k.lower(): v for k, v in response_headers}, chunks)
