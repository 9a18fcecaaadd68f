"""External links end to end through the recipient's pages: the happy path, then every way a
link or a code must fail, throttling, the audit trail and the accounting of disclosures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.cases.models import Case, Status
from casebridge.kernel.tickets import ticket_key
from casebridge.sharing import actions
from casebridge.sharing.models import Disclosure, ExternalLink, OneTimeCode
from casebridge.sharing.tests.conftest import PATIENT, RECIPIENT, SharedCase, last_code
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import call
from casebridge.vault import transfer
from casebridge.vault.config import blob_store

pytestmark = pytest.mark.django_db

MakeLink = Callable[..., tuple[ExternalLink, str]]
GONE = "This link is no longer available"


def _verified(client: Client, token: str) -> None:
    assert client.post(f"/s/{token}/code/").status_code == 302
    response = client.post(f"/s/{token}/verify/", {"code": last_code()})
    assert response.status_code == 302 and response["Location"] == f"/s/{token}/files/"


def _download(client: Client, token: str, file_id: str, **headers: str) -> object:
    return client.get(f"/s/{token}/files/{file_id}/", headers=headers)


def _events(link: ExternalLink, action: str) -> list[Event]:
    return list(Event.objects.filter(action=action, target_id=str(link.pk)).order_by("id"))


def _is_gone(response: object) -> bool:
    return response.status_code == 404 and GONE in response.content.decode()


def test_the_recipient_gets_the_files_after_proving_the_address(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link(max_downloads=3)
    invite = mail.outbox[-1]
    assert invite.to == [RECIPIENT]
    for text in (invite.subject, invite.body):
        assert PATIENT not in text and "Roe" not in text and shared.case.number not in text
    assert not OneTimeCode.objects.exists()  # the link mail carries no code: none exists yet

    client = Client()
    landing = client.get(f"/s/{token}/")
    page = landing.content.decode()
    assert landing.status_code == 200
    assert "j***@example.com" in page and RECIPIENT not in page
    assert PATIENT not in page and shared.case.number not in page and "file_" not in page

    assert client.post(f"/s/{token}/code/").status_code == 302
    code_mail = mail.outbox[-1]
    code = last_code()
    assert code_mail.to == [RECIPIENT] and token not in code_mail.body and PATIENT not in code_mail.body

    verified = client.post(f"/s/{token}/verify/", {"code": code})
    assert verified.status_code == 302
    listing = client.get(f"/s/{token}/files/")
    page = listing.content.decode()
    assert listing.status_code == 200 and PATIENT not in page
    shared_ids = sorted(str(a.stored_object_id) for a in link.attachments.all())
    for attachment in link.attachments.all():
        assert attachment.display_name in page
    not_shared = set(shared.contents) - set(shared_ids)
    assert all(file_id not in page for file_id in not_shared)

    response = _download(client, token, shared_ids[0])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == shared.contents[shared_ids[0]]
    assert response["Cache-Control"] == "no-store"
    assert response["ETag"].startswith('"sha256-') and response["Accept-Ranges"] == "bytes"
    named = next(a for a in link.attachments.all() if str(a.stored_object_id) == shared_ids[0])
    # Saved under the case's name of the file (which scan it is), never the uploaded name.
    assert response["Content-Disposition"] == f'attachment; filename="{named.display_name}"'
    partial = _download(client, token, shared_ids[1], Range="bytes=10-19")
    assert partial.status_code == 206 and b"".join(partial.streaming_content) == shared.contents[shared_ids[1]][10:20]
    link.refresh_from_db()
    assert link.downloads_used == 2

    for action in ("share.link.opened", "share.code.sent", "share.code.verified", "share.files.listed"):
        events = _events(link, action)
        assert events, action
        for event in events:
            assert event.actor_type == "recipient" and event.actor_label == RECIPIENT
            assert event.ip == "127.0.0.1" and event.details["link"] == str(link.pk)
            assert event.patient_ref == str(shared.case.patient_id)
    downloads = _events(link, "share.file.downloaded")
    assert [e.details["file"] for e in downloads] == shared_ids[:2]
    assert downloads[1].details["range"] == [10, 20] and all(e.ip == "127.0.0.1" for e in downloads)
    created = _events(link, "share.link.created")[0]
    assert created.actor_type == "user" and created.details["link"] == str(link.pk)


def test_each_share_is_recorded_for_the_patients_accounting(shared: SharedCase, make_link: MakeLink) -> None:
    link, _ = make_link()
    disclosure = Disclosure.objects.get(link=link)
    assert disclosure.patient_id == shared.case.patient_id and disclosure.case_id == shared.case.pk
    assert disclosure.recipient_email == RECIPIENT
    assert disclosure.purpose == "Second opinion requested by the patient"
    assert disclosure.disclosed_by == shared.access.actor
    names = sorted(a.display_name for a in link.attachments.all())
    assert sorted(f["name"] for f in disclosure.files) == names


def test_it_rejects_a_wrong_code(make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    client.post(f"/s/{token}/code/")
    code = last_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = client.post(f"/s/{token}/verify/", {"code": wrong})
    assert response.status_code == 400 and "not right" in response.content.decode()
    assert client.get(f"/s/{token}/files/").status_code == 302
    link.refresh_from_db()
    assert link.failed_attempts == 1
    failed = _events(link, "share.code.failed")
    assert failed[0].outcome == "failure" and failed[0].details["reason"] == "wrong" and failed[0].ip == "127.0.0.1"


def test_it_rejects_a_replayed_code(make_link: MakeLink) -> None:
    link, token = make_link()
    first = Client()
    first.post(f"/s/{token}/code/")
    code = last_code()
    assert first.post(f"/s/{token}/verify/", {"code": code}).status_code == 302
    other = Client()
    response = other.post(f"/s/{token}/verify/", {"code": code})
    assert response.status_code == 400 and "already used" in response.content.decode()
    assert other.get(f"/s/{token}/files/").status_code == 302
    assert _events(link, "share.code.failed")[0].details["reason"] == "replayed"


def test_it_rejects_an_expired_code(make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    client.post(f"/s/{token}/code/")
    OneTimeCode.objects.filter(link=link).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(f"/s/{token}/verify/", {"code": last_code()})
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert client.get(f"/s/{token}/files/").status_code == 302


def test_only_the_latest_code_works(make_link: MakeLink) -> None:
    _, token = make_link()
    client = Client()
    client.post(f"/s/{token}/code/")
    old = last_code()
    client.post(f"/s/{token}/code/")
    if old != last_code():
        assert client.post(f"/s/{token}/verify/", {"code": old}).status_code == 400


def test_the_link_locks_after_five_wrong_codes(make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    client.post(f"/s/{token}/code/")
    code = last_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(actions.MAX_FAILED_CODES - 1):
        assert client.post(f"/s/{token}/verify/", {"code": wrong}).status_code == 400
    assert _is_gone(client.post(f"/s/{token}/verify/", {"code": wrong}))
    link.refresh_from_db()
    assert link.locked_at is not None
    assert _is_gone(client.post(f"/s/{token}/verify/", {"code": code}))  # even the right one, now
    assert _is_gone(client.get(f"/s/{token}/"))
    assert _events(link, "share.link.locked")


def test_it_rejects_an_expired_link(make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    _verified(client, token)
    ExternalLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _is_gone(client.get(f"/s/{token}/"))
    assert _is_gone(client.get(f"/s/{token}/files/"))
    assert _is_gone(client.post(f"/s/{token}/code/"))
    refused = _events(link, "share.link.refused")
    assert {e.details["reason"] for e in refused} == {"expired"} and refused[0].outcome == "denied"


def test_it_rejects_a_revoked_link(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    _verified(client, token)
    file_id = str(link.attachments.first().stored_object_id)
    actions.revoke_link(shared.access, link)
    assert _is_gone(client.get(f"/s/{token}/"))
    assert _is_gone(_download(client, token, file_id))
    link.refresh_from_db()
    assert link.downloads_used == 0 and _events(link, "share.link.revoked")


@pytest.mark.parametrize("closing", ["completed", "archived"])
def test_a_link_dies_with_its_case(shared: SharedCase, make_link: MakeLink, closing: str) -> None:
    link, token = make_link()
    client = Client()
    _verified(client, token)
    if closing == "completed":
        Case.objects.filter(pk=shared.case.pk).update(status=Status.COMPLETED, completed_at=timezone.now())
    else:
        Case.objects.filter(pk=shared.case.pk).update(archived_at=timezone.now())
    file_id = str(link.attachments.first().stored_object_id)
    assert _is_gone(client.get(f"/s/{token}/files/"))
    assert _is_gone(_download(client, token, file_id))
    assert {e.details["reason"] for e in _events(link, "share.link.refused")} == {"case_closed"}


def test_it_stops_when_the_downloads_are_used_up(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link(max_downloads=1)
    client = Client()
    _verified(client, token)
    file_id = str(link.attachments.first().stored_object_id)
    assert _download(client, token, file_id).status_code == 200
    assert _is_gone(_download(client, token, file_id))
    assert _is_gone(client.get(f"/s/{token}/"))
    link.refresh_from_db()
    assert link.downloads_used == 1
    assert len(_events(link, "share.file.downloaded")) == 1


def test_a_recipient_download_is_counted_then_handed_to_the_transfer_server(
    shared: SharedCase, make_link: MakeLink, settings: Any
) -> None:
    link, token = make_link(max_downloads=1)
    client = Client()
    _verified(client, token)
    attachment = link.attachments.first()
    assert attachment is not None
    file_id = str(attachment.stored_object_id)
    transfer.use_transfer_server("https://transfer.test:8444")
    try:
        response = client.get(f"/s/{token}/files/{file_id}/")
        assert response.status_code == 307
        link.refresh_from_db()
        assert link.downloads_used == 1 and len(_events(link, "share.file.downloaded")) == 1
        server = TransferApp(ticket_key(settings.SECRET_KEY), blob_store())
        assert call(server, response["Location"]).body() == shared.contents[file_id]
        assert _is_gone(_download(client, token, file_id))
    finally:
        transfer.use_transfer_server(None)


def test_a_download_url_needs_verification_first(make_link: MakeLink) -> None:
    link, token = make_link()
    file_id = str(link.attachments.first().stored_object_id)
    response = _download(Client(), token, file_id)
    assert response.status_code == 302 and response["Location"] == f"/s/{token}/"
    link.refresh_from_db()
    assert link.downloads_used == 0 and not _events(link, "share.file.downloaded")
    assert _events(link, "share.link.refused")[0].details["reason"] == "not_verified"


def test_a_file_outside_the_link_is_not_served(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    _verified(client, token)
    chosen = {str(a.stored_object_id) for a in link.attachments.all()}
    other = next(f for f in shared.contents if f not in chosen)
    assert _is_gone(_download(client, token, other))


def test_one_links_verification_does_not_open_another(make_link: MakeLink) -> None:
    _, first_token = make_link()
    second, second_token = make_link(recipient_email="other@example.com")
    client = Client()
    _verified(client, first_token)
    file_id = str(second.attachments.first().stored_object_id)
    assert client.get(f"/s/{second_token}/files/").status_code == 302
    assert _download(client, second_token, file_id).status_code == 302
    assert client.get(f"/s/{first_token}/files/").status_code == 200


def test_verification_lasts_thirty_minutes(make_link: MakeLink, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as real_time

    _, token = make_link()
    client = Client()
    _verified(client, token)
    assert client.get(f"/s/{token}/files/").status_code == 200
    later = real_time.time() + 31 * 60
    monkeypatch.setattr("casebridge.sharing.recipient_views.time.time", lambda: later)
    assert client.get(f"/s/{token}/files/").status_code == 302


def test_code_requests_are_throttled_per_link(make_link: MakeLink) -> None:
    link, token = make_link()
    client = Client()
    limit = actions.CODE_SENDS_PER_LINK[0]
    for _ in range(limit):
        assert client.post(f"/s/{token}/code/").status_code == 302
    sent = len(mail.outbox)
    response = client.post(f"/s/{token}/code/")
    assert response.status_code == 429 and len(mail.outbox) == sent
    throttled = _events(link, "share.code.throttled")
    assert throttled[0].details["scope"] == "link" and throttled[0].ip == "127.0.0.1"


def test_code_requests_are_throttled_per_address(make_link: MakeLink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "CODE_SENDS_PER_IP", (2, 3600))
    _, first = make_link()
    second_link, second = make_link(recipient_email="other@example.com")
    client = Client()
    assert client.post(f"/s/{first}/code/").status_code == 302
    assert client.post(f"/s/{first}/code/").status_code == 302
    assert client.post(f"/s/{second}/code/").status_code == 429
    assert _events(second_link, "share.code.throttled")[0].details["scope"] == "ip"
    # Another address is not held back by this one.
    assert Client(REMOTE_ADDR="10.0.0.9").post(f"/s/{second}/code/").status_code == 302


def test_code_checks_are_throttled_per_address(make_link: MakeLink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "CODE_CHECKS_PER_IP", (1, 3600))
    link, token = make_link()
    client = Client()
    client.post(f"/s/{token}/code/")
    code = last_code()
    assert client.post(f"/s/{token}/verify/", {"code": f"{(int(code) + 1) % 10**6:06d}"}).status_code == 400
    assert client.post(f"/s/{token}/verify/", {"code": code}).status_code == 429
    assert client.get(f"/s/{token}/files/").status_code == 302
    assert _events(link, "share.code.throttled")[0].details["scope"] == "ip_checks"


def test_dead_links_all_look_the_same(shared: SharedCase, make_link: MakeLink) -> None:
    revoked, revoked_token = make_link()
    actions.revoke_link(shared.access, revoked)
    expired, expired_token = make_link()
    ExternalLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    client = Client()
    pages = [client.get(f"/s/{t}/") for t in (revoked_token, expired_token, "not-a-real-token")]
    assert all(_is_gone(p) for p in pages)
    bodies = {p.content.decode().split('name="csrfmiddlewaretoken"')[0] for p in pages}
    assert len(bodies) == 1


def test_the_files_page_does_not_query_per_file(shared: SharedCase, make_link: MakeLink) -> None:
    _, few = make_link(attachments=list(shared.case.attachments.all()[:1]))
    _, many = make_link(attachments=list(shared.case.attachments.all()))
    client = Client()
    _verified(client, few)
    _verified(client, many)
    counts = []
    for token in (few, many):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/s/{token}/files/").status_code == 200
        counts.append(len(queries))
    assert counts[1] == counts[0]
