"""A download ticket is honoured once by the whole installation: its use is recorded in the
application's database, so neither a restarted transfer server nor another one takes it again.
(The real processes, killed and restarted: vault/tests/test_tus_client.py.)"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.crypto.streaming import EncryptingWriter
from casebridge.kernel.tickets import ApplicationLedger, DownloadTicket, seal, ticket_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.appclient import Reply
from casebridge.transfer.tests.client import application_call, call
from casebridge.vault import transfer
from casebridge.vault.models import SpentTicket

pytestmark = pytest.mark.django_db
DEK = os.urandom(32)
AAD = b"object-1:1"


@pytest.fixture
def store(tmp_path: Path) -> FileSystemStore:
    return FileSystemStore(tmp_path / "blobs")


def _ticket(store: FileSystemStore, content: bytes) -> DownloadTicket:
    with store.open_writer("objects/1/v1-aa") as sink:
        writer = EncryptingWriter(sink, DEK, AAD)
        writer.write(content)
        writer.close()
    return DownloadTicket(
        blob="objects/1/v1-aa",
        ciphertext_size=writer.ciphertext_size,
        dek=DEK,
        associated=AAD,
        start=0,
        end=len(content),
        size=len(content),
        partial=False,
        content_type="model/stl",
        filename="file_1.stl",
        etag='"sha256-00"',
    )


def _transfer_server(settings: Any, store: FileSystemStore) -> TransferApp:
    """A transfer server as `serve` starts it: spending tickets through the application."""
    return TransferApp(ticket_key(settings.SECRET_KEY), store, spent=ApplicationLedger(application_call()))


def test_a_ticket_used_once_is_refused_by_a_restarted_or_another_transfer_server(
    settings: Any, store: FileSystemStore
) -> None:
    content = os.urandom(100_000)
    ticket = _ticket(store, content)
    url = f"/d/{seal(ticket_key(settings.SECRET_KEY), ticket)}"
    first = _transfer_server(settings, store)
    answer = call(first, url)
    assert (answer.status, answer.body()) == (200, content)
    # A new process (a restart, or the transfer server of another host) remembers nothing itself.
    for server in (_transfer_server(settings, store), first):
        again = call(server, url)
        assert again.status == 410 and content not in again.body()
    assert SpentTicket.objects.filter(pk=ticket.id).count() == 1


def test_a_ticket_is_not_honoured_when_its_use_cannot_be_recorded(settings: Any, store: FileSystemStore) -> None:
    content = os.urandom(10_000)
    ticket = _ticket(store, content)
    url = f"/d/{seal(ticket_key(settings.SECRET_KEY), ticket)}"

    def application_down(method: str, path: str, headers: Any, body: bytes = b"") -> Reply:
        raise ConnectionRefusedError("the application is restarting")

    answer = call(TransferApp(ticket_key(settings.SECRET_KEY), store, spent=ApplicationLedger(application_down)), url)
    assert answer.status == 503 and answer["Retry-After"] and content not in answer.body()
    # Nothing was spent: once the application answers, the ticket works (once).
    assert call(_transfer_server(settings, store), url).status == 200


def _redeem(body: dict[str, Any], **headers: str) -> int:
    response = Client().post(
        reverse("transfer_ticket_redeem"), json.dumps(body), content_type="application/json", **headers
    )
    return response.status_code


def test_only_the_transfer_server_may_spend_a_ticket(settings: Any) -> None:
    live = {"id": os.urandom(12).hex(), "expires": time.time() + 60}
    assert _redeem(live) == 404
    assert _redeem(live, HTTP_CASEBRIDGE_TRANSFER_KEY="00" * 32) == 404
    assert not SpentTicket.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"id": "../../etc", "expires": time.time() + 60},
        {"id": os.urandom(12).hex(), "expires": "soon"},
        {"id": os.urandom(12).hex(), "expires": time.time() + 86400},  # no ticket lives a day
        {"id": os.urandom(12).hex()},
    ],
)
def test_a_malformed_redemption_is_refused_and_records_nothing(settings: Any, body: dict[str, Any]) -> None:
    from casebridge.kernel.tickets import internal_key

    assert _redeem(body, HTTP_CASEBRIDGE_TRANSFER_KEY=internal_key(settings.SECRET_KEY).hex()) == 400
    assert not SpentTicket.objects.exists()


def test_spent_ids_are_purged_only_well_after_their_ticket_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    long_gone = SpentTicket.objects.create(id="a" * 24, expires_at=now - timedelta(hours=1))
    # Expired a moment ago: a transfer server whose clock lags might still accept the ticket.
    just_expired = SpentTicket.objects.create(id="b" * 24, expires_at=now - timedelta(seconds=30))
    monkeypatch.setattr(transfer, "_purged_at", 0.0)
    assert transfer.redeem("c" * 24, now + timedelta(seconds=60))
    assert not SpentTicket.objects.filter(pk=long_gone.pk).exists()
    assert SpentTicket.objects.filter(pk=just_expired.pk).exists()
    assert not transfer.redeem(just_expired.pk, now + timedelta(seconds=60))
