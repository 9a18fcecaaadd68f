"""Call the transfer server's WSGI application in-process, the way a server would, and let it
call the application in-process, the way it does over HTTPS."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client

from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.staging import FileStaging
from casebridge.kernel.tickets import internal_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.appclient import INTERNAL_KEY_HEADER, Call, Reply
from casebridge.vault.config import blob_store

TRANSFER_URL = "https://transfer.test:8444"


@dataclass
class Answer:
    """What the transfer server answered; reads like Django's test responses."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self.headers

    @property
    def status_code(self) -> int:
        return self.status

    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def content(self) -> bytes:
        return self.body()

    def json(self) -> Any:
        return json.loads(self.body())


def call(app: TransferApp, url: str, method: str = "GET", body: bytes = b"", **environ: str) -> Answer:
    """`environ` as Django's test client takes headers (HTTP_RANGE=..., CONTENT_TYPE=...)."""
    wsgi: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": urlsplit(url).path,
        "QUERY_STRING": "",
        "SERVER_NAME": "transfer.test",
        "SERVER_PORT": "8444",
        "REMOTE_ADDR": "192.0.2.10",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        **environ,
    }
    started: list[Any] = []

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        started.extend([status, response_headers])

    chunks = iter(app(wsgi, start_response))
    status, response_headers = started
    return Answer(int(status.split()[0]), {k.lower(): v for k, v in response_headers}, chunks)


def file_staging() -> FileStaging:
    """Staging in the test's own blob store (a filesystem one, as the transfer server needs)."""
    store = blob_store()
    assert isinstance(store, FileSystemStore)
    return FileStaging(store)


def application_call() -> Call:
    """What the transfer server's AppClient does, through Django's test client: only the headers
    the transfer server forwards reach the application (a fresh client, no defaults)."""
    client = Client()
    key = internal_key(settings.SECRET_KEY).hex()

    def forward(method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Reply:
        extra = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
        extra["HTTP_" + INTERNAL_KEY_HEADER.upper().replace("-", "_")] = key
        response = client.generic(method, path, body, content_type="application/json", **extra)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return Reply(response.status_code, list(response.items()), content)

    return forward


class TransferAwareClient(Client):
    """Django's test client that sends requests for the transfer server's URLs to `transfer`."""

    transfer: TransferApp | None = None

    def generic(  # type: ignore[override]  # forwards Django's keyword-only headers/query_params in **extra
        self, method: str, path: str, data: Any = "", content_type: str = "application/octet-stream", **extra: Any
    ) -> Any:
        if self.transfer is not None and str(path).startswith(TRANSFER_URL):
            body = data if isinstance(data, bytes) else str(data).encode()
            extra.pop("secure", None)
            extra.pop("query_params", None)
            named = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in (extra.pop("headers", None) or {}).items()}
            environ = {**self.defaults, **named, **extra, "CONTENT_TYPE": content_type}
            return call(self.transfer, str(path), method=method, body=body, **environ)
        return super().generic(method, path, data, content_type, **extra)
