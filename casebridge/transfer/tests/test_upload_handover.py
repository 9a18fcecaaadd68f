"""Uploads through the transfer server: the application still decides everything, the internal
key is required, and a browser on the application's origin (and only there) may send bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.core.testing import Personas
from casebridge.kernel.staging import FileStaging
from casebridge.kernel.tickets import ApplicationLedger, ticket_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import TRANSFER_URL, TransferAwareClient, application_call, call, file_staging
from casebridge.transfer.uploads import UploadDoor
from casebridge.vault import transfer
from casebridge.vault.config import blob_store
from casebridge.vault.models import StoredObject, Upload
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
APP_ORIGIN = "https://app.test"


@pytest.fixture
def server(vault_home: Path, settings: Any) -> Iterator[TransferApp]:
    transfer.use_transfer_server(TRANSFER_URL)
    door = UploadDoor(application_call(), file_staging(), APP_ORIGIN)
    app = TransferApp(
        ticket_key(settings.SECRET_KEY), blob_store(), spent=ApplicationLedger(application_call()), uploads=door
    )
    TransferAwareClient.transfer = app
    yield app
    TransferAwareClient.transfer = None
    transfer.use_transfer_server(None)


def _token(personas: Personas, org: str = "practice") -> str:
    user = personas.members["staff"] if org == "practice" else personas.outsider
    organization = personas.practice if org == "practice" else personas.other_practice
    _t, raw = create_api_token(
        organization=organization, name="t", scopes=["cases:read", "cases:write"], days=1, actor=user, user=user
    )
    return raw


def _created(client: Client, length: int) -> str:
    response = client.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH=str(length))
    assert response.status_code == 201
    return str(response["Location"])


def test_an_upload_through_the_transfer_server_is_audited_with_the_clients_address(
    server: TransferApp, personas: Personas
) -> None:
    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    content = binary_stl(2 * 1024 * 1024 + 99)
    url = _created(api, len(content))
    response = api.generic(
        "PATCH", url, content, content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET="0"
    )
    assert response.status_code == 204 and response["Upload-Offset"] == str(len(content))
    event = Event.objects.get(action="file.uploaded", target_id=response["CaseBridge-File-Id"])
    assert event.ip == "192.0.2.10"  # the client the transfer server served, not the loopback hop


@pytest.mark.parametrize("key", [None, "00" * 32, "not even hex"])
def test_the_handover_endpoints_answer_only_the_transfer_server(
    server: TransferApp, personas: Personas, key: str | None
) -> None:
    raw = _token(personas)
    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_TUS_RESUMABLE="1.0.0")
    upload_id = _created(api, 5000).rsplit("/", 1)[1]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_TUS_RESUMABLE": "1.0.0", "HTTP_UPLOAD_OFFSET": "0"}
    if key is not None:
        headers["HTTP_CASEBRIDGE_TRANSFER_KEY"] = key
    lease = Client().post(
        reverse("tus_upload_lease", args=[upload_id]),
        HTTP_CASEBRIDGE_BODY_TYPE="application/offset+octet-stream",
        HTTP_CASEBRIDGE_BODY_LENGTH="5000",
        **headers,
    )
    assert lease.status_code == 404 and b"dek" not in lease.content
    assert Upload.objects.get(pk=upload_id).lease_token == ""


def test_another_tenant_cannot_write_to_an_upload_through_the_transfer_server(
    server: TransferApp, personas: Personas
) -> None:
    owner = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    url = _created(owner, 5000)
    outsider = f"Bearer {_token(personas, org='other')}"
    answer = call(
        server,
        url,
        method="PATCH",
        body=binary_stl(5000),
        CONTENT_TYPE="application/offset+octet-stream",
        HTTP_AUTHORIZATION=outsider,
        HTTP_TUS_RESUMABLE="1.0.0",
        HTTP_UPLOAD_OFFSET="0",
    )
    assert answer.status == 404
    assert Upload.objects.get().offset == 0
    assert call(server, url, method="HEAD", HTTP_AUTHORIZATION=outsider, HTTP_TUS_RESUMABLE="1.0.0").status == 404
    assert call(server, url, method="PATCH", body=b"x", CONTENT_TYPE="application/offset+octet-stream").status == 401


def test_a_browser_on_the_applications_origin_may_upload_with_its_cookies(server: TransferApp) -> None:
    url = f"{TRANSFER_URL}/u/2b5f8a8e-0000-4000-8000-000000000000"
    preflight = call(
        server,
        url,
        method="OPTIONS",
        HTTP_ORIGIN=APP_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="tus-resumable,upload-offset,x-csrftoken,content-type",
    )
    assert preflight.status == 204
    assert preflight["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert preflight["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in preflight["Access-Control-Allow-Methods"]
    assert "X-CSRFToken" in preflight["Access-Control-Allow-Headers"]
    answer = call(server, url, method="HEAD", HTTP_ORIGIN=APP_ORIGIN, HTTP_TUS_RESUMABLE="1.0.0")
    assert answer["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Upload-Offset" in answer["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("origin", ["https://evil.test", "https://app.test.evil.test", "null"])
def test_no_other_origin_is_allowed(server: TransferApp, origin: str) -> None:
    url = f"{TRANSFER_URL}/u/2b5f8a8e-0000-4000-8000-000000000000"
    preflight = call(server, url, method="OPTIONS", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH")
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Origin" not in call(server, url, method="HEAD", HTTP_ORIGIN=origin)


def test_creation_with_upload_stays_with_the_application_and_continues_on_the_transfer_server(
    server: TransferApp, personas: Personas
) -> None:
    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    content = binary_stl(3000)
    created = api.post(
        reverse("tus_collection"),
        content[:1000],
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_LENGTH=str(len(content)),
        HTTP_UPLOAD_METADATA=f"organization {base64.b64encode(b'smile-dental').decode()}",
    )
    assert created.status_code == 201 and created["Upload-Offset"] == "1000"
    rest = api.generic(
        "PATCH",
        created["Location"],
        content[1000:],
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_OFFSET="1000",
    )
    assert rest.status_code == 204 and "CaseBridge-File-Id" in rest


@pytest.mark.parametrize("step", ["renew", "commit"])
def test_renew_and_commit_need_the_internal_key_and_a_lease_token_nobody_took_over(
    server: TransferApp,
    personas: Personas,
    settings: Any,
    step: str,
) -> None:
    from casebridge.kernel.tickets import internal_key
    from casebridge.vault import uploads

    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    upload = Upload.objects.get(pk=_created(api, 5000).rsplit("/", 1)[1])
    token, _cont = uploads.lease(upload, client_offset=0, content_length=5000)
    url = reverse("tus_upload_lease_step", args=[upload.pk, step])
    body = f'{{"token": "{token}", "outcome": "appended", "offset": 5000}}'
    key = internal_key(settings.SECRET_KEY).hex()
    assert Client().post(url, body, content_type="application/json").status_code == 404  # no key
    wrong = Client().post(
        url, body.replace(token, "0" * 16), content_type="application/json", HTTP_CASEBRIDGE_TRANSFER_KEY=key
    )
    assert wrong.status_code == 409  # a token that is not the lease's
    Upload.objects.filter(pk=upload.pk).update(lease_until=timezone.now())
    if step == "renew":  # ran out, but nobody took it: the request may go on
        revived = Client().post(url, body, content_type="application/json", HTTP_CASEBRIDGE_TRANSFER_KEY=key)
        assert revived.status_code == 204
        Upload.objects.filter(pk=upload.pk).update(lease_until=timezone.now())
        uploads.lease(upload, client_offset=0, content_length=5000)  # another request takes it
    stale = Client().post(url, body, content_type="application/json", HTTP_CASEBRIDGE_TRANSFER_KEY=key)
    assert stale.status_code == 409  # the lease ran out (commit) or was taken over (renew)
    upload.refresh_from_db()
    assert upload.offset == 0


def test_a_commit_claiming_a_complete_upload_that_does_not_add_up_makes_no_file(
    server: TransferApp, personas: Personas, settings: Any
) -> None:
    from casebridge.kernel.tickets import internal_key
    from casebridge.vault import uploads

    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    upload = Upload.objects.get(pk=_created(api, 5000).rsplit("/", 1)[1])
    token, _cont = uploads.lease(upload, client_offset=0, content_length=5000)
    claim = {"token": token, "outcome": "appended", "offset": 5000, "ciphertext_offset": 4000, "interrupted": False}
    claim |= {"file_type": "stl", "tail": "", "complete": True, "sha256": "0" * 64}
    response = Client().post(
        reverse("tus_upload_lease_step", args=[upload.pk, "commit"]),
        json.dumps(claim),
        content_type="application/json",
        HTTP_CASEBRIDGE_TRANSFER_KEY=internal_key(settings.SECRET_KEY).hex(),
    )
    assert response.status_code == 409
    assert not StoredObject.objects.exists()
    upload.refresh_from_db()
    assert upload.offset == 0 and upload.completed_at is None


def test_an_application_that_does_not_answer_gets_a_retryable_503(tmp_path: Path) -> None:
    from casebridge.kernel.backends.filesystem import FileSystemStore
    from casebridge.transfer.appclient import Reply

    def refused(method: str, path: str, headers: object, body: bytes = b"") -> Reply:
        raise ConnectionRefusedError("the application is restarting")

    store = FileSystemStore(tmp_path / "blobs")
    app = TransferApp(ticket_key("k"), store, uploads=UploadDoor(refused, FileStaging(store), APP_ORIGIN))
    url = f"{TRANSFER_URL}/u/2b5f8a8e-0000-4000-8000-000000000000"
    for method in ("PATCH", "HEAD", "DELETE"):
        answer = call(app, url, method=method, body=b"x" if method == "PATCH" else b"", HTTP_ORIGIN=APP_ORIGIN)
        assert answer.status == 503 and answer["Retry-After"] == "5"
        assert answer["Access-Control-Allow-Origin"] == APP_ORIGIN  # the browser may read it and retry


def test_a_client_cannot_name_itself_the_holder_of_someone_elses_lease(server: TransferApp, personas: Personas) -> None:
    """The holder the application weighs a lease against is the transfer server's own name, never
    a header the client sent: naming the live holder of a lease does not take it over."""
    import subprocess
    import sys

    from casebridge.kernel import holders
    from casebridge.vault import uploads

    api = TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {_token(personas)}", HTTP_TUS_RESUMABLE="1.0.0")
    content = binary_stl(5000)
    url = _created(api, len(content))
    upload = Upload.objects.get(pk=url.rsplit("/", 1)[1])
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        boot, namespace = holders._host()
        live = f"{boot}/{namespace}/{writer.pid}/{holders._start_time(writer.pid)}"
        token, _cont = uploads.lease(upload, client_offset=0, content_length=len(content), holder=live)
        answer = api.generic(
            "PATCH",
            url,
            content,
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET="0",
            HTTP_CASEBRIDGE_LEASE_HOLDER=live,
        )
    finally:
        writer.kill()
        writer.wait()
    assert answer.status_code == 423
    upload.refresh_from_db()
    assert (upload.offset, upload.lease_token, upload.lease_holder) == (0, token, live)
