"""Download all for an external recipient: every shared file in one ZIP, decrypted as it streams,
after proof of the address, counted once against the link's allowance, audited with its files."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.sharing.models import ExternalLink
from casebridge.sharing.tests.conftest import SharedCase, last_code

pytestmark = pytest.mark.django_db
MakeLink = Callable[..., tuple[ExternalLink, str]]


def unzip(response: Any) -> dict[str, bytes]:
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None  # every CRC-32 checks
        return {name: archive.read(name) for name in archive.namelist()}


def _verified(client: Client, token: str) -> None:
    assert client.post(f"/s/{token}/code/").status_code == 302
    assert client.post(f"/s/{token}/verify/", {"code": last_code()}).status_code == 302


def test_an_external_recipient_downloads_the_shared_files_as_one_download(
    shared: SharedCase, make_link: MakeLink
) -> None:
    link, token = make_link(max_downloads=2)
    client = Client()
    assert client.get(f"/s/{token}/files.zip").status_code == 302  # proof of the address first
    _verified(client, token)
    shared_ids = {str(a.stored_object_id) for a in link.attachments.all()}

    entries = unzip(client.get(f"/s/{token}/files.zip"))

    assert len(entries) == len(shared_ids) == 2
    assert sorted(entries.values()) == sorted(shared.contents[i] for i in shared_ids)
    link.refresh_from_db()
    assert link.downloads_used == 1
    event = Event.objects.get(action="share.files.downloaded", target_id=str(link.pk))
    assert set(event.details["files"]) == shared_ids


def test_an_expired_or_used_up_link_gives_no_archive(make_link: MakeLink) -> None:
    _link, token = make_link(max_downloads=1)
    client = Client()
    _verified(client, token)
    assert client.get(f"/s/{token}/files.zip").status_code == 200
    assert client.get(f"/s/{token}/files.zip").status_code == 404  # the one download is used
    other, other_token = make_link()
    _verified(client, other_token)
    ExternalLink.objects.filter(pk=other.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/s/{other_token}/files.zip").status_code == 404


def test_under_serve_the_archive_is_streamed_by_the_transfer_server_once(
    shared: SharedCase, make_link: MakeLink, settings: Any
) -> None:
    from casebridge.kernel.tickets import ticket_key
    from casebridge.transfer.app import TransferApp
    from casebridge.transfer.tests.client import call
    from casebridge.vault import transfer
    from casebridge.vault.config import blob_store

    link, token = make_link(max_downloads=3)
    client = Client()
    _verified(client, token)
    transfer.use_transfer_server("https://transfer.test:8444")
    try:
        response = client.get(f"/s/{token}/files.zip")
        assert response.status_code == 307 and "/z/" in response["Location"]
        link.refresh_from_db()
        assert link.downloads_used == 1  # counted by the application before the hand-over
        server = TransferApp(ticket_key(settings.SECRET_KEY), blob_store())
        answer = call(server, response["Location"])
        assert answer.status == 200 and answer["Content-Type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(answer.body())) as archive:
            assert archive.testzip() is None
            shared_ids = [str(a.stored_object_id) for a in link.attachments.all()]
            assert sorted(archive.read(n) for n in archive.namelist()) == sorted(shared.contents[i] for i in shared_ids)
        assert call(server, response["Location"]).status == 410  # single use
        forged = response["Location"][:-4] + ("AAAA" if not response["Location"].endswith("AAAA") else "BBBB")
        assert call(server, forged).status == 404
    finally:
        transfer.use_transfer_server(None)


def test_an_archive_ticket_too_long_for_a_url_is_streamed_by_the_application(
    shared: SharedCase, make_link: MakeLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casebridge.vault import transfer

    _link, token = make_link()
    client = Client()
    _verified(client, token)
    monkeypatch.setattr(transfer, "MAX_ARCHIVE_TICKET", 10)
    transfer.use_transfer_server("https://transfer.test:8444")
    try:
        response = client.get(f"/s/{token}/files.zip")
        assert response.status_code == 200 and len(unzip(response)) == 2
    finally:
        transfer.use_transfer_server(None)
