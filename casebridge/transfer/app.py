"""The transfer server's WSGI application: GET /d/<ticket> streams the range the ticket names;
GET /z/<ticket> streams several whole files as one ZIP; /u/<upload id> takes tus request bodies
(transfer/uploads.py).

Every answer carries the same protective headers as the application's own downloads. An expired
or already used ticket gets 410 (start the download again from CaseBridge); anything that is not a
ticket this installation sealed gets 404, with no hint of why.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from casebridge.kernel import zipstream
from casebridge.kernel.backends import BlobNotFound, BlobStore, StorageError
from casebridge.kernel.crypto.streaming import CiphertextIntegrityError, decrypt_range
from casebridge.kernel.tickets import (
    ArchiveTicket,
    DownloadTicket,
    SpentTickets,
    TicketLedger,
    TicketRefused,
    unseal,
    unseal_archive,
)
from casebridge.transfer.remote import RemoteBlob
from casebridge.transfer.uploads import UPLOAD_PATH, UploadDoor

log = logging.getLogger("casebridge.transfer")

StartResponse = Callable[..., Any]

PROTECTIVE_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
]


class TransferApp:
    def __init__(
        self,
        key: bytes,
        store: BlobStore | None,
        spent: TicketLedger | None = None,
        uploads: UploadDoor | None = None,
    ) -> None:
        """`store`: where the ciphertext is, when this process can read it directly (a
        filesystem); None: tickets carry a presigned URL of their blob. `spent`: where used
        tickets are recorded (the application's ledger under `serve`)."""
        self.key = key
        self.store = store
        self.spent = spent or SpentTickets()
        self.uploads = uploads

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _plain(start_response, "200 OK", "ok")
        upload = UPLOAD_PATH.match(path)
        if upload is not None and self.uploads is not None:
            return self.uploads(environ, start_response, upload.group(1))
        if not path.startswith(("/d/", "/z/")):
            return _plain(start_response, "404 Not Found", "Nothing here.")
        if method != "GET":
            return _plain(start_response, "405 Method Not Allowed", "Use GET.", [("Allow", "GET")])
        ticket: DownloadTicket | ArchiveTicket
        try:
            ticket = unseal(self.key, path[3:]) if path.startswith("/d/") else unseal_archive(self.key, path[3:])
        except TicketRefused as exc:
            if exc.expired:
                return _plain(start_response, "410 Gone", _START_AGAIN)
            return _plain(start_response, "404 Not Found", "No such download.")
        try:
            first_use = self.spent.spend(ticket)
        except (OSError, http.client.HTTPException) as exc:
            # Unrecorded means unspendable: a ticket is never honoured without its use on record.
            log.warning("ticket %s: its use could not be recorded: %s", ticket.id, exc)
            return _plain(start_response, "503 Service Unavailable", _TRY_AGAIN, [("Retry-After", "5")])
        if not first_use:
            return _plain(start_response, "410 Gone", _START_AGAIN)
        if isinstance(ticket, ArchiveTicket):
            return self._archive(ticket, start_response)
        return self._stream(ticket, start_response)

    def _plaintext(self, ticket: DownloadTicket) -> Iterator[bytes]:
        """What the ticket names of one file (the whole of it, or its range), decrypted segment by segment."""
        remote = RemoteBlob(ticket.source) if ticket.source else None
        store = self.store

        def read_range(lo: int, hi: int) -> bytes:
            if remote is not None:
                return remote.read_range(lo, hi)
            assert store is not None
            return store.read_range(ticket.blob, lo, hi)

        segments = decrypt_range(
            read_range,
            ticket.ciphertext_size,
            ticket.dek,
            ticket.associated,
            ticket.offset + ticket.start,
            ticket.offset + ticket.end,
            reuse_buffer=True,
        )
        return _bytes(segments, remote)

    def _archive(self, ticket: ArchiveTicket, start_response: StartResponse) -> Iterable[bytes]:
        """Every file of the ticket in one ZIP (kernel/zipstream.py), decrypted as it streams. The
        length is not known up front: chunked. A file failing its integrity check mid-way drops
        the connection, and the archive is visibly cut short (no central directory)."""
        if self.store is None and any(not t.source for _, t in ticket.entries):
            return _plain(start_response, "404 Not Found", "No such download.")
        entries = [(name, t.size, lambda t=t: self._plaintext(t)) for name, t in ticket.entries]
        body = zipstream.archive(entries)
        try:
            first = next(body, b"")
        except (BlobNotFound, StorageError):
            return _plain(start_response, "404 Not Found", "No such download.")
        except CiphertextIntegrityError:
            log.error("ticket %s: a blob failed its integrity check before any byte was sent", ticket.id)
            return _plain(start_response, "500 Internal Server Error", "A stored file failed its integrity check.")
        headers = [
            ("Content-Type", "application/zip"),
            ("Content-Disposition", f'attachment; filename="{ticket.filename}"'),
            *PROTECTIVE_HEADERS,
        ]
        start_response("200 OK", headers)
        return _chain(first, body)

    def _stream(self, ticket: DownloadTicket, start_response: StartResponse) -> Iterable[bytes]:
        headers = [
            ("Content-Type", ticket.content_type),
            ("Content-Length", str(ticket.end - ticket.start)),
            ("Accept-Ranges", "bytes"),
            ("ETag", ticket.etag),
            ("Content-Disposition", f'attachment; filename="{ticket.filename}"'),
            *PROTECTIVE_HEADERS,
        ]
        if ticket.partial:
            headers.append(("Content-Range", f"bytes {ticket.start}-{ticket.end - 1}/{ticket.size}"))
        if not ticket.source and self.store is None:
            return _plain(start_response, "404 Not Found", "No such download.")
        # The first segment is read and authenticated before the status line goes out, so a
        # missing blob or a broken header is a 500, not a 200 with a body that stops short.
        body = self._plaintext(ticket)
        try:
            first = next(body, b"")
        except (BlobNotFound, StorageError):
            return _plain(start_response, "404 Not Found", "No such download.")
        except CiphertextIntegrityError:
            log.error("ticket %s: blob failed its integrity check before any byte was sent", ticket.id)
            return _plain(start_response, "500 Internal Server Error", "The stored file failed its integrity check.")
        start_response("206 Partial Content" if ticket.partial else "200 OK", headers)
        return _chain(first, body)


_TRY_AGAIN = "CaseBridge is not answering right now. Start the download again from CaseBridge in a moment."
_START_AGAIN = "This download link has expired or was already used. Start the download again from CaseBridge."


def _bytes(segments: Iterator[memoryview], remote: RemoteBlob | None) -> Iterator[bytes]:
    # WSGI wants bytes; each segment is copied once out of the decryptor's reused buffer. An
    # integrity failure raises mid-body and the server drops the connection: a client never
    # mistakes a cut-off body for the whole file (Content-Length tells it so).
    try:
        for segment in segments:
            yield bytes(segment)
    finally:
        if remote is not None:
            remote.close()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _plain(
    start_response: StartResponse, status: str, text: str, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = (text + "\n").encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *PROTECTIVE_HEADERS,
        *(extra or []),
    ]
    start_response(status, headers)
    return [body]
