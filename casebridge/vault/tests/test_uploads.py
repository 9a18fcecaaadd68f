"""tus uploads into the vault and downloads out of it, through the real HTTP views."""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import os
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
from casebridge.kernel import hashing
from casebridge.kernel.backends import filesystem
from casebridge.kernel.crypto.streaming import CiphertextIntegrityError
from casebridge.kernel.tickets import ApplicationLedger, ticket_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import TRANSFER_URL, TransferAwareClient, application_call, call, file_staging
from casebridge.transfer.uploads import UploadDoor
from casebridge.vault import api as vault
from casebridge.vault import transfer
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject, Upload
from casebridge.vault.scanning import ScannerUnavailable
from casebridge.vault.tests.conftest import MARKER, MARKER_SIGNATURE, Clamd
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
MiB = 1 << 20


@pytest.fixture
def api(personas: Personas, vault_home: Path) -> Client:
    return _client(personas, "staff")


def _client(personas: Personas, role: str, scopes: list[str] | None = None, org: str = "practice") -> Client:
    user = personas.members[role] if org == "practice" else personas.outsider
    organization = personas.practice if org == "practice" else personas.other_practice
    _token, raw = create_api_token(
        organization=organization,
        name="test",
        scopes=scopes or ["cases:read", "cases:write"],
        days=1,
        actor=user,
        user=user,
    )
    return TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_TUS_RESUMABLE="1.0.0")


def _create(client: Client, length: int, **meta: str) -> str:
    headers = {"HTTP_UPLOAD_LENGTH": str(length)}
    if meta:
        headers["HTTP_UPLOAD_METADATA"] = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items()
        )
    response = client.post(reverse("tus_collection"), **headers)
    assert response.status_code == 201, response.content
    # With a transfer server (and file storage) the bodies go there; the creation stays here.
    handed_over = transfer.upload_location("any") is not None
    assert response["Location"].startswith(f"{TRANSFER_URL}/u/" if handed_over else "/api/v1/")
    return str(response["Location"])


def _patch(client: Client, url: str, offset: int, data: bytes, **headers: str):
    return client.generic(
        "PATCH", url, data, content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET=str(offset), **headers
    )


def _upload(client: Client, content: bytes, chunk: int = 700_000, **meta: str) -> str:
    url = _create(client, len(content), **meta)
    offset = 0
    response = None
    while offset < len(content):
        response = _patch(client, url, offset, content[offset : offset + chunk])
        assert response.status_code == 204, response.content
        offset = int(response["Upload-Offset"])
    assert response is not None
    return str(response["CaseBridge-File-Id"])


@pytest.fixture(params=["by the application", "by the transfer server"], autouse=True)
def handover(request: pytest.FixtureRequest, vault_home: Path, settings: Any) -> Iterator[TransferApp | None]:
    """Every test here runs twice: the application moves the bytes itself, or hands them to a
    transfer server (downloads: 307 and a ticket; uploads: tus Location on the transfer server,
    which leases and commits through the application with the client's own headers)."""
    if request.param == "by the application":
        yield None
        return
    transfer.use_transfer_server(TRANSFER_URL)
    door = UploadDoor(application_call(), file_staging(), "https://app.test")
    server = TransferApp(
        ticket_key(settings.SECRET_KEY), blob_store(), spent=ApplicationLedger(application_call()), uploads=door
    )
    TransferAwareClient.transfer = server
    yield server
    TransferAwareClient.transfer = None
    transfer.use_transfer_server(None)


def _download(client: Client, file_id: str, query: str = "", **headers: str) -> tuple[int, bytes, Any]:
    response = client.get(reverse("file_content", args=[file_id]) + query, **headers)
    if response.status_code == 307:  # handed over: the client follows, Range and all
        assert response["Location"].startswith(f"{TRANSFER_URL}/d/")
        answer = client.get(response["Location"], **headers)
        return answer.status_code, answer.body(), answer
    body = b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content
    return response.status_code, body, response


def test_options_advertises_the_tus_capabilities(api: Client) -> None:
    response = Client().options(reverse("tus_collection"))
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert response["Tus-Checksum-Algorithm"] == "sha256"


@pytest.mark.parametrize("chunk", [65_536, 1 * MiB - 56, 1 * MiB, 3 * MiB + 7])
def test_chunks_of_any_size_round_trip_and_the_sha256_is_recorded(api: Client, chunk: int) -> None:
    content = binary_stl(3 * MiB + 12_345)
    file_id = _upload(api, content, chunk=chunk)
    status, body, response = _download(api, file_id)
    assert status == 200 and body == content
    version = ObjectVersion.objects.get(stored_object_id=file_id)
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert response["ETag"] == f'"sha256-{version.sha256}"'
    assert response["Cache-Control"] == "no-store" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == f'attachment; filename="file_{file_id[:8]}.stl"'
    assert Event.objects.filter(action="file.uploaded", target_id=file_id).exists()
    assert Event.objects.filter(action="file.downloaded", target_id=file_id).exists()


def test_resuming_on_another_server_rebuilds_the_hash(api: Client) -> None:
    content = binary_stl(2 * MiB + 999)
    url = _create(api, len(content))
    _patch(api, url, 0, content[: MiB + 500])
    upload = Upload.objects.get()
    hashing.forget(str(upload.pk))  # what a different process (or a restart) would see
    response = _patch(api, url, MiB + 500, content[MiB + 500 :])
    assert response.status_code == 204
    version = ObjectVersion.objects.get(stored_object_id=response["CaseBridge-File-Id"])
    assert version.sha256 == hashlib.sha256(content).hexdigest()


def test_no_plaintext_reaches_the_disk_or_the_database(api: Client, vault_home: Path) -> None:
    marker = b"PATIENT-JANE-ROE-1970"
    content = binary_stl(2 * MiB, header=marker)
    url = _create(api, len(content))
    _patch(api, url, 0, content[: MiB + 3])  # a full segment staged, a partial one in the row
    for path in vault_home.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path
    upload = Upload.objects.get()
    assert marker not in bytes(upload.tail) and len(upload.tail) > 0


def test_a_wrong_offset_is_a_conflict_and_changes_nothing(api: Client) -> None:
    content = binary_stl(200_000)
    url = _create(api, len(content))
    _patch(api, url, 0, content[:1000])
    response = _patch(api, url, 500, content[500:1500])
    assert response.status_code == 409
    assert api.head(url)["Upload-Offset"] == "1000"


def test_checksums_are_verified_per_request(api: Client) -> None:
    content = binary_stl(100_000)
    url = _create(api, len(content))
    part = content[:40_000]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    response = _patch(api, url, 0, part, HTTP_UPLOAD_CHECKSUM=f"sha256 {wrong}")
    assert response.status_code == 460
    assert api.head(url)["Upload-Offset"] == "0"
    right = base64.b64encode(hashlib.sha256(part).digest()).decode()
    assert _patch(api, url, 0, part, HTTP_UPLOAD_CHECKSUM=f"sha256 {right}").status_code == 204
    assert _patch(api, url, 40_000, content[40_000:], HTTP_UPLOAD_CHECKSUM="md5 AAAA").status_code == 400


@pytest.mark.parametrize(
    "content",
    [b"\x7fELF" + os.urandom(5000), b"<html><script>alert(1)</script></html>" * 50, os.urandom(9000), b""],
    ids=["executable", "html", "random", "empty"],
)
def test_unrecognised_content_is_refused_whatever_its_name(api: Client, content: bytes) -> None:
    name = base64.b64encode(b"scan.stl").decode()
    response = api.post(
        reverse("tus_collection"), HTTP_UPLOAD_LENGTH=str(len(content)), HTTP_UPLOAD_METADATA=f"filename {name}"
    )
    if content:  # an empty upload is complete, and judged, the moment it is created
        response = _patch(api, response["Location"], 0, content)
    assert response.status_code == 415
    assert "accepts STL, PLY and OBJ" in response.json()["detail"]
    assert not Upload.objects.exists() and not StoredObject.objects.exists()
    assert Event.objects.filter(action="file.upload.rejected", outcome="denied").exists()


def test_oversized_uploads_are_refused_up_front(api: Client, settings) -> None:
    settings.VAULT_MAX_UPLOAD_BYTES = 1000
    response = api.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH="1001")
    assert response.status_code == 413 and not Upload.objects.exists()


def test_a_disk_without_room_for_the_upload_refuses_it_at_creation(
    api: Client, vault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casebridge.vault import uploads as upload_service

    monkeypatch.setattr(upload_service, "free_bytes", lambda path: 2 * MiB)
    response = api.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH=str(3 * MiB))
    assert response.status_code == 507 and "no room" in response.json()["detail"]
    assert not Upload.objects.exists()
    staging = vault_home / "blobs" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_an_announced_upload_reserves_no_disk_until_its_bytes_come(api: Client, vault_home: Path) -> None:
    url = _create(api, 5 * 1024 * MiB)  # 5 GiB announced, nothing sent
    staging = next((vault_home / "blobs" / ".staging").iterdir())
    assert staging.stat().st_blocks * 512 < MiB
    content = binary_stl(3 * MiB)
    url = _create(api, len(content))
    assert _patch(api, url, 0, content[: 2 * MiB]).status_code == 204
    [*_, newest] = sorted((vault_home / "blobs" / ".staging").iterdir(), key=lambda p: p.stat().st_mtime)
    assert newest.stat().st_blocks * 512 >= 2 * MiB  # the body reserved (and filled) what it brought


def test_a_body_that_finds_the_disk_full_is_refused_with_507_and_changes_nothing(
    api: Client, vault_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = binary_stl(3 * MiB)
    url = _create(api, len(content))

    def no_space(fd: int, mode: int, offset: int, length: int) -> int:
        ctypes.set_errno(errno.ENOSPC)
        return -1

    monkeypatch.setattr(filesystem, "_fallocate", no_space)
    response = _patch(api, url, 0, content)
    assert response.status_code == 507 and "no room" in response.json()["detail"]
    assert api.head(url)["Upload-Offset"] == "0"


def test_more_data_than_declared_is_refused(api: Client) -> None:
    url = _create(api, 1000)
    assert _patch(api, url, 0, binary_stl(2000)).status_code == 413


def test_missing_or_wrong_tus_version_is_refused(api: Client) -> None:
    response = api.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH="10", HTTP_TUS_RESUMABLE="0.2.2")
    assert response.status_code == 412 and response["Tus-Version"] == "1.0.0"


def test_creation_with_upload(api: Client) -> None:
    content = binary_stl(50_000)
    response = api.post(
        reverse("tus_collection"),
        content,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_LENGTH=str(len(content)),
    )
    assert response.status_code == 201 and response["Upload-Offset"] == str(len(content))
    assert _download(api, response["CaseBridge-File-Id"])[1] == content


def test_termination_removes_everything(api: Client, vault_home: Path) -> None:
    content = binary_stl(MiB * 2)
    url = _create(api, len(content))
    _patch(api, url, 0, content[: MiB + 100])
    assert api.delete(url).status_code == 204
    assert api.head(url).status_code == 404
    staged = [p for p in (vault_home / "blobs" / ".staging").iterdir()]
    assert staged == []


def test_an_upload_whose_staging_file_is_gone_ends_with_410(api: Client, vault_home: Path) -> None:
    content = binary_stl(3 * MiB)
    url = _create(api, len(content))
    assert _patch(api, url, 0, content[:MiB]).status_code == 204
    (vault_home / "blobs" / ".staging" / str(Upload.objects.get().pk)).unlink()  # a disk lost, a bad restore
    response = _patch(api, url, MiB, content[MiB:])
    assert response.status_code == 410  # never a blob with a hole where the first MiB was
    assert not Upload.objects.exists() and not StoredObject.objects.exists()
    assert Event.objects.filter(action="file.upload.rejected", details__reason="staging lost").exists()


def test_expired_uploads_are_refused_and_cleaned_up(api: Client) -> None:
    from casebridge.vault.uploads import expire_uploads

    url = _create(api, 5000)
    Upload.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert _patch(api, url, 0, binary_stl(5000)[:100]).status_code == 410
    assert expire_uploads() == 1 and not Upload.objects.exists()


def test_a_busy_upload_is_locked_for_other_requests(api: Client) -> None:
    url = _create(api, 5000)
    Upload.objects.update(lease_until=timezone.now() + timezone.timedelta(seconds=60), lease_token="x")
    assert _patch(api, url, 0, binary_stl(5000)[:100]).status_code == 423


def test_uploads_and_files_are_private_to_their_uploader(personas: Personas, vault_home: Path) -> None:
    owner_api, colleague, outsider = (
        _client(personas, "staff"),
        _client(personas, "clinician"),
        _client(personas, "owner", org="other"),
    )
    content = binary_stl(10_000)
    url = _create(owner_api, len(content))
    assert colleague.head(url).status_code == 404
    assert _patch(colleague, url, 0, content).status_code == 404
    file_id = _upload(owner_api, content)
    for other in (colleague, outsider):
        assert _download(other, file_id)[0] == 404
        assert other.get(reverse("file_detail", args=[file_id])).status_code == 404


def test_roles_and_scopes_without_upload_rights_are_refused(personas: Personas, vault_home: Path) -> None:
    auditor = _client(personas, "auditor", scopes=["org:read"])
    response = auditor.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH="10")
    assert response.status_code == 403
    read_only = _client(personas, "staff", scopes=["cases:read"])
    assert read_only.post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH="10").status_code == 403
    assert not Upload.objects.exists()


def test_anonymous_callers_get_401(vault_home: Path, db: None) -> None:
    response = Client().post(reverse("tus_collection"), HTTP_UPLOAD_LENGTH="10", HTTP_TUS_RESUMABLE="1.0.0")
    assert response.status_code == 401


# --- downloads ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        (f"bytes={MiB - 100}-{MiB + 100}", (MiB - 100, MiB + 101)),  # spans a segment boundary
        ("bytes=-500", None),  # suffix
        (f"bytes={2 * MiB}-", None),  # open end
    ],
)
def test_single_range_requests(
    api: Client, handover: TransferApp | None, header: str, expected: tuple[int, int] | None
) -> None:
    content = binary_stl(3 * MiB)
    file_id = _upload(api, content)
    status, body, response = _download(api, file_id, HTTP_RANGE=header)
    assert status == 206
    start, end = expected or ((len(content) - 500, len(content)) if "-500" in header else (2 * MiB, len(content)))
    assert body == content[start:end]
    assert response["Content-Range"] == f"bytes {start}-{end - 1}/{len(content)}"
    event = Event.objects.filter(action="file.downloaded").latest("id")
    assert event.details["range"] == [start, end]


def test_a_handed_over_download_is_audited_first_and_its_link_works_once(api: Client, settings: Any) -> None:
    content = binary_stl(2 * MiB)
    file_id = _upload(api, content)
    transfer.use_transfer_server("https://transfer.test:8444")
    try:
        response = api.get(reverse("file_content", args=[file_id]), HTTP_RANGE="bytes=100-199")
        assert response.status_code == 307 and response["Cache-Control"] == "no-store"
        event = Event.objects.get(action="file.downloaded", target_id=file_id)
        assert event.details["range"] == [100, 200]
        assert file_id not in response["Location"]  # the ticket is sealed: no ids, keys or names
        server = TransferApp(ticket_key(settings.SECRET_KEY), blob_store())
        assert call(server, response["Location"]).body() == content[100:200]
        assert call(server, response["Location"]).status == 410
        head = api.head(reverse("file_content", args=[file_id]))
        assert head.status_code == 200 and head["Content-Length"] == str(len(content))  # no body, no hand-over
    finally:
        transfer.use_transfer_server(None)


def test_no_ticket_for_anyone_who_may_not_see_the_file(personas: Personas, vault_home: Path) -> None:
    file_id = _upload(_client(personas, "staff"), binary_stl(5000))
    transfer.use_transfer_server("https://transfer.test:8444")
    try:
        outsider = _client(personas, "staff", org="other")
        response = outsider.get(reverse("file_content", args=[file_id]))
        assert response.status_code == 404 and "Location" not in response
        assert Client().get(reverse("file_content", args=[file_id])).status_code == 401
    finally:
        transfer.use_transfer_server(None)


def test_unsatisfiable_ranges_get_416(api: Client, handover: TransferApp | None) -> None:
    content = binary_stl(10_000)
    file_id = _upload(api, content)
    status, _body, response = _download(api, file_id, HTTP_RANGE="bytes=20000-")
    assert status == 416 and response["Content-Range"] == f"bytes */{len(content)}"
    assert not Event.objects.filter(action="file.downloaded").exists()


def test_a_stale_if_range_gets_the_whole_file(api: Client, handover: TransferApp | None) -> None:
    content = binary_stl(10_000)
    file_id = _upload(api, content)
    status, body, _ = _download(api, file_id, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"sha256-stale"')
    assert status == 200 and body == content


def test_a_tampered_byte_fails_the_download_instead_of_returning_wrong_data(
    api: Client, handover: TransferApp | None
) -> None:
    content = binary_stl(3 * MiB)
    file_id = _upload(api, content)
    version = ObjectVersion.objects.get(stored_object_id=file_id)
    path = blob_store().path_for(version.blob_name)
    data = bytearray(path.read_bytes())
    data[2 * MiB + 17] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CiphertextIntegrityError):
        _download(api, file_id)


def test_ciphertext_moved_to_another_record_does_not_decrypt(api: Client, handover: TransferApp | None) -> None:
    first = _upload(api, binary_stl(20_000))
    second = _upload(api, binary_stl(20_000))
    a = ObjectVersion.objects.get(stored_object_id=first)
    b = ObjectVersion.objects.get(stored_object_id=second)
    ObjectVersion.objects.filter(pk=a.pk).update(blob_name=b.blob_name, ciphertext_size=b.ciphertext_size)
    if handover is None:
        with pytest.raises(CiphertextIntegrityError):
            _download(api, first)
    else:  # the transfer server checks the first segment before it sends a status line
        assert _download(api, first)[:2] == (500, b"The stored file failed its integrity check.\n")


# --- versions and destruction -------------------------------------------------------------
def test_writing_to_an_existing_file_makes_a_new_version(api: Client, handover: TransferApp | None) -> None:
    v1, v2 = binary_stl(20_000), binary_stl(30_000)
    file_id = _upload(api, v1)
    assert _upload(api, v2, file=file_id) == file_id
    assert _download(api, file_id)[1] == v2
    assert _download(api, file_id, query="?version=1")[1] == v1
    history = api.get(reverse("file_detail", args=[file_id])).json()
    assert [v["version"] for v in history["versions"]] == [2, 1]
    assert history["versions"][1]["sha256"] == hashlib.sha256(v1).hexdigest()
    assert history["versions"][0]["created_by"] == "staff@smile.test"
    assert Event.objects.filter(action="file.version_added", target_id=file_id).exists()


def test_destroying_a_file_leaves_no_path_to_its_content(api: Client, handover: TransferApp | None) -> None:
    content = binary_stl(2 * MiB)
    file_id = _upload(api, content)
    _upload(api, binary_stl(3000), file=file_id)
    # A download the application handed over just before the destruction, not yet started:
    issued = api.get(reverse("file_content", args=[file_id]) + "?version=1")
    versions = list(ObjectVersion.objects.filter(stored_object_id=file_id))
    refused = api.generic("DELETE", reverse("file_detail", args=[file_id]), b"{}", content_type="application/json")
    assert refused.status_code == 400  # a reason is required
    response = api.generic(
        "DELETE",
        reverse("file_detail", args=[file_id]),
        b'{"reason": "sent to the wrong lab"}',
        content_type="application/json",
    )
    assert response.status_code == 204
    # Every way content could come back:
    if handover is not None:
        assert call(handover, issued["Location"]).status == 404  # its ciphertext is gone
    assert _download(api, file_id)[0] == 404
    assert api.get(reverse("file_content", args=[file_id]) + "?version=1").status_code == 404
    assert api.get(reverse("file_content", args=[file_id]), HTTP_RANGE="bytes=0-9").status_code == 404
    assert api.get(reverse("file_detail", args=[file_id])).status_code == 404
    stored = StoredObject.objects.get(pk=file_id)
    for version in ObjectVersion.objects.filter(stored_object_id=file_id):
        assert version.wrapped_dek is None
        with pytest.raises(vault.ObjectUnavailable):
            vault.read_version(version)
    with pytest.raises(vault.ObjectUnavailable):
        vault.get_version(stored)
    assert not any(blob_store().exists(v.blob_name) for v in versions)
    new_version = api.post(
        reverse("tus_collection"),
        HTTP_UPLOAD_LENGTH="100",
        HTTP_UPLOAD_METADATA=f"file {base64.b64encode(file_id.encode()).decode()}",
    )
    assert new_version.status_code == 404
    event = Event.objects.get(action="file.destroyed")
    assert event.details["reason"] == "sent to the wrong lab"
    assert {v["sha256"] for v in event.details["versions"]} == {v.sha256 for v in versions}


def test_only_the_uploader_or_an_administrator_can_destroy(personas: Personas, vault_home: Path) -> None:
    staff = _client(personas, "staff")
    file_id = _upload(staff, binary_stl(5000))
    from casebridge.access.policy import destroyable_files
    from casebridge.access.principal import Principal

    assert destroyable_files(Principal(personas.members["clinician"])).filter(pk=file_id).count() == 0
    assert destroyable_files(Principal(personas.members["admin"])).filter(pk=file_id).count() == 1
    assert destroyable_files(Principal(personas.outsider)).filter(pk=file_id).count() == 0


def test_malware_is_refused_before_anyone_can_see_it(api: Client, clamd: Clamd, settings) -> None:
    settings.VAULT_CLAMD = clamd.unix_url
    clean = binary_stl(2 * MiB)
    assert _download(api, _upload(api, clean))[1] == clean
    infected = binary_stl(2 * MiB, header=b"x" * 10 + MARKER)
    url = _create(api, len(infected))
    _patch(api, url, 0, infected[:MiB])
    response = _patch(api, url, MiB, infected[MiB:])
    assert response.status_code == 422 and MARKER_SIGNATURE in response.json()["detail"]
    assert StoredObject.objects.count() == 1  # only the clean file
    assert not Upload.objects.filter(completed_at__isnull=True).exists()
    event = Event.objects.get(action="file.upload.rejected")
    assert event.details["reason"] == "malware" and event.details["signature"].startswith(MARKER_SIGNATURE)


def test_content_stored_by_the_server_itself_is_scanned_too(personas: Personas, clamd: Clamd, settings) -> None:
    """put_stream (demo data, SFTP, metadata removal) is no way around the scanner."""
    settings.VAULT_CLAMD = clamd.unix_url
    staff = personas.members["staff"]
    infected = binary_stl(MiB, header=b"x" * 10 + MARKER)
    with pytest.raises(vault.MalwareFound) as found:
        vault.put_stream(organization=personas.practice, actor=staff, chunks=[infected], length=len(infected))
    assert found.value.signature.startswith(MARKER_SIGNATURE)
    settings.VAULT_CLAMD = "unix:///nonexistent/clamd.sock"
    clean = binary_stl(500)
    with pytest.raises(ScannerUnavailable):  # fail closed: unscanned content is not stored
        vault.put_stream(organization=personas.practice, actor=staff, chunks=[clean], length=len(clean))
    assert not StoredObject.objects.exists() and not ObjectVersion.objects.exists()
    root = blob_store().root
    assert not [p for p in root.rglob("*") if p.is_file()], "refused content was left in the blob store"


def test_an_unreachable_scanner_refuses_the_file_rather_than_letting_it_through(
    api: Client, settings, tmp_path: Path
) -> None:
    settings.VAULT_CLAMD = f"unix://{tmp_path / 'no-clamd.sock'}"
    content = binary_stl(100_000)
    url = _create(api, len(content))
    response = _patch(api, url, 0, content)
    assert response.status_code == 503 and "scanner is unavailable" in response.json()["detail"]
    assert not StoredObject.objects.exists()
