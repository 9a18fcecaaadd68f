"""The transfer server streams exactly what a ticket names, authenticated, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.crypto.streaming import CiphertextIntegrityError, EncryptingWriter
from casebridge.kernel.tickets import DownloadTicket, seal, ticket_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import call

MiB = 1 << 20
KEY = ticket_key("the installation's secret")
DEK = os.urandom(32)
AAD = b"object-1:1"


@pytest.fixture
def store(tmp_path: Path) -> FileSystemStore:
    return FileSystemStore(tmp_path / "blobs")


@pytest.fixture
def app(store: FileSystemStore) -> TransferApp:
    return TransferApp(KEY, store)


def _put(store: FileSystemStore, content: bytes, name: str = "objects/1/v1-aa") -> DownloadTicket:
    with store.open_writer(name) as sink:
        writer = EncryptingWriter(sink, DEK, AAD)
        writer.write(content)
        writer.close()
    return _ticket(name, writer.ciphertext_size, len(content))


def _ticket(name: str, ciphertext_size: int, size: int, **overrides: object) -> DownloadTicket:
    fields: dict[str, Any] = {
        "blob": name,
        "ciphertext_size": ciphertext_size,
        "dek": DEK,
        "associated": AAD,
        "start": 0,
        "end": size,
        "size": size,
        "partial": False,
        "content_type": "model/stl",
        "filename": "file_1.stl",
        "etag": '"sha256-00"',
        **overrides,
    }
    return DownloadTicket(**fields)


def test_a_ticket_gets_the_whole_file_with_the_protective_headers(app: TransferApp, store: FileSystemStore) -> None:
    content = os.urandom(3 * MiB + 123)
    answer = call(app, "/d/" + seal(KEY, _put(store, content)))
    assert answer.status == 200
    assert answer.body() == content
    assert answer["Content-Length"] == str(len(content))
    assert answer["Content-Type"] == "model/stl"
    assert answer["Content-Disposition"] == 'attachment; filename="file_1.stl"'
    assert answer["Cache-Control"] == "no-store"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["ETag"] == '"sha256-00"'


def test_a_range_ticket_gets_that_range_and_a_content_range(app: TransferApp, store: FileSystemStore) -> None:
    content = os.urandom(3 * MiB)
    whole = _put(store, content)
    ticket = _ticket(whole.blob, whole.ciphertext_size, len(content), start=MiB - 5, end=2 * MiB + 5, partial=True)
    answer = call(app, "/d/" + seal(KEY, ticket))
    assert answer.status == 206
    assert answer.body() == content[MiB - 5 : 2 * MiB + 5]
    assert answer["Content-Range"] == f"bytes {MiB - 5}-{2 * MiB + 4}/{3 * MiB}"


def test_the_range_sent_by_the_client_is_ignored_only_the_ticket_counts(
    app: TransferApp, store: FileSystemStore
) -> None:
    content = os.urandom(10_000)
    answer = call(app, "/d/" + seal(KEY, _put(store, content)), HTTP_RANGE="bytes=0-0")
    assert answer.status == 200 and answer.body() == content


def test_a_ticket_works_once(app: TransferApp, store: FileSystemStore) -> None:
    url = "/d/" + seal(KEY, _put(store, b"solid\n" * 100))
    assert call(app, url).status == 200
    replay = call(app, url)
    assert replay.status == 410
    assert b"Start the download again" in replay.body()


def test_an_expired_ticket_gets_410(app: TransferApp, store: FileSystemStore) -> None:
    ticket = _put(store, b"solid\n" * 100)
    stale = _ticket(ticket.blob, ticket.ciphertext_size, ticket.size, expires=ticket.expires - 3600)
    assert call(app, "/d/" + seal(KEY, stale)).status == 410


def test_a_forged_or_altered_ticket_gets_404_without_a_reason(app: TransferApp, store: FileSystemStore) -> None:
    ticket = _put(store, b"solid\n" * 100)
    other_key = ticket_key("someone else")
    assert call(app, "/d/" + seal(other_key, ticket)).status == 404
    token = seal(KEY, ticket)
    altered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    answer = call(app, "/d/" + altered)
    assert answer.status == 404 and answer.body() == b"No such download.\n"


def test_a_tampered_byte_in_the_first_segment_sends_no_content(app: TransferApp, store: FileSystemStore) -> None:
    ticket = _put(store, os.urandom(2 * MiB))
    path = store.path_for(ticket.blob)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    answer = call(app, "/d/" + seal(KEY, ticket))
    assert answer.status == 500
    assert answer.body() == b"The stored file failed its integrity check.\n"


def test_a_tampered_byte_later_breaks_the_body_instead_of_returning_wrong_data(
    app: TransferApp, store: FileSystemStore
) -> None:
    ticket = _put(store, os.urandom(3 * MiB))
    path = store.path_for(ticket.blob)
    data = bytearray(path.read_bytes())
    data[2 * MiB + 17] ^= 1
    path.write_bytes(bytes(data))
    answer = call(app, "/d/" + seal(KEY, ticket))
    assert answer.status == 200  # the status line went out with the first, good segment
    with pytest.raises(CiphertextIntegrityError):
        answer.body()  # the server drops the connection: short of Content-Length


def test_a_blob_destroyed_after_the_ticket_was_issued_is_gone(app: TransferApp, store: FileSystemStore) -> None:
    ticket = _put(store, b"solid\n" * 100)
    store.delete(ticket.blob)
    assert call(app, "/d/" + seal(KEY, ticket)).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_only_get_is_served(app: TransferApp, store: FileSystemStore, method: str) -> None:
    answer = call(app, "/d/" + seal(KEY, _put(store, b"solid\n")), method=method)
    assert answer.status == 405 and answer["Allow"] == "GET"


@pytest.mark.parametrize("path", ["/", "/api/v1/files/x/content", "/admin/", "/d"])
def test_nothing_else_is_there(app: TransferApp, path: str) -> None:
    assert call(app, path).status == 404


def test_health_answers(app: TransferApp) -> None:
    assert call(app, "/healthz").body() == b"ok\n"
