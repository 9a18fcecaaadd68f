"""The same tus upload path with ciphertext staged and stored in S3 (moto's server over HTTP on
loopback): parts of 8 MiB staged per request, resumption on another process, range reads,
destruction. Every test runs twice: the application moves the bytes itself, or the transfer
server does, through the presigned URLs each lease carries (it holds no S3 client and no
credentials)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.test import Client
from django.urls import reverse

from casebridge.audit.models import Event
from casebridge.core.testing import Personas
from casebridge.kernel import hashing
from casebridge.kernel.crypto.streaming import HEADER_SIZE
from casebridge.kernel.staging import part_name
from casebridge.kernel.tickets import ticket_key
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import TRANSFER_URL, TransferAwareClient, application_call
from casebridge.transfer.uploads import UploadDoor
from casebridge.vault import config, keystore, transfer
from casebridge.vault.models import ObjectVersion, Upload
from casebridge.vault.tests.samples import binary_stl
from casebridge.vault.tests.test_uploads import _client, _create, _download, _patch
from casebridge.vault.uploads import STAGING_PART_SIZE

pytestmark = pytest.mark.django_db
MiB = 1 << 20


def _s3(endpoint: str) -> Any:
    """A boto3 client of the test's moto server: what the tests look at S3 with, beside the vault."""
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def s3_vault(moto_endpoint: str, vault_home: Path, settings: pytest.FixtureRequest) -> Iterator[str]:
    bucket = f"cb-{uuid.uuid4().hex[:12]}"
    _s3(moto_endpoint).create_bucket(Bucket=bucket)
    settings.VAULT_STORAGE_URL = f"s3://{bucket}/vault?endpoint={moto_endpoint}&region=us-east-1"
    config.reset_caches()
    keystore.forget_cached_keys()
    yield bucket
    config.reset_caches()


@pytest.fixture(params=["by the application", "by the transfer server"])
def handover(request: pytest.FixtureRequest, s3_vault: str, settings: Any) -> Iterator[TransferApp | None]:
    if request.param == "by the application":
        yield None
        return
    transfer.use_transfer_server(TRANSFER_URL)
    door = UploadDoor(application_call(), None, "https://app.test")  # no filesystem: URLs only
    TransferAwareClient.transfer = TransferApp(ticket_key(settings.SECRET_KEY), None, uploads=door)
    yield TransferAwareClient.transfer
    TransferAwareClient.transfer = None
    transfer.use_transfer_server(None)


def _objects(bucket: str, endpoint: str) -> dict[str, int]:
    listing = _s3(endpoint).list_objects_v2(Bucket=bucket)
    return {item["Key"]: item["Size"] for item in listing.get("Contents", [])}


def _staged(bucket: str, endpoint: str) -> dict[str, int]:
    return {key: size for key, size in _objects(bucket, endpoint).items() if "/staging/" in key}


def test_s3_moto_server_http_loopback_upload_in_parts_resume_range_and_destroy(
    personas: Personas, handover: TransferApp | None, s3_vault: str, moto_endpoint: str
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(19 * MiB + 4321)
    url = _create(api, len(content))
    assert url.startswith(TRANSFER_URL if handover else "/api/v1/uploads/")
    upload = Upload.objects.get()
    assert upload.part_size == STAGING_PART_SIZE
    first_part = f"vault/{part_name(str(upload.pk), 0)}"
    assert _staged(s3_vault, moto_endpoint) == {first_part: HEADER_SIZE}  # the stream's header
    cut = 5 * MiB + 10  # each request ends inside a part: the next one rewrites that part
    assert _patch(api, url, 0, content[:cut]).status_code == 204
    assert _patch(api, url, cut, content[cut : 2 * cut]).status_code == 204
    upload.refresh_from_db()
    staged = _staged(s3_vault, moto_endpoint)
    assert sorted(staged.values()) == [upload.ciphertext_offset - STAGING_PART_SIZE, STAGING_PART_SIZE]
    hashing.forget(str(upload.pk))  # resumed by another process: the hash is rebuilt from the parts
    response = _patch(api, url, 2 * cut, content[2 * cut :])
    assert response.status_code == 204
    file_id = response["CaseBridge-File-Id"]
    version = ObjectVersion.objects.get(stored_object_id=file_id)
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert _download(api, file_id)[1] == content
    across = f"bytes={8 * MiB - 5}-{8 * MiB + 5}"  # plaintext either side of the first part's end
    status, body, _ = _download(api, file_id, HTTP_RANGE=across)
    assert status == 206 and body == content[8 * MiB - 5 : 8 * MiB + 6]
    keys = _objects(s3_vault, moto_endpoint)
    assert _staged(s3_vault, moto_endpoint) == {}  # composed inside S3, then the parts were removed
    assert keys == {f"vault/{version.blob_name}": version.ciphertext_size}
    response = api.generic(
        "DELETE",
        reverse("file_detail", args=[file_id]),
        b'{"reason": "duplicate scan"}',
        content_type="application/json",
    )
    assert response.status_code == 204
    assert _objects(s3_vault, moto_endpoint) == {}


def test_s3_moto_server_http_loopback_a_small_file_is_one_part(
    personas: Personas, handover: TransferApp | None
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(40_000)
    url = _create(api, len(content))
    file_id = _patch(api, url, 0, content)["CaseBridge-File-Id"]
    assert _download(api, file_id)[1] == content


def test_s3_moto_server_http_loopback_what_a_crashed_request_staged_past_the_offset_never_counts(
    personas: Personas, handover: TransferApp | None, s3_vault: str, moto_endpoint: str
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(10 * MiB)
    url = _create(api, len(content))
    assert _patch(api, url, 0, content[: 3 * MiB]).status_code == 204
    upload = Upload.objects.get()
    s3 = _s3(moto_endpoint)
    key = f"vault/{part_name(str(upload.pk), 0)}"
    committed = s3.get_object(Bucket=s3_vault, Key=key)["Body"].read()
    assert len(committed) == upload.ciphertext_offset
    # A request that died after staging more than it committed: junk after the offset, a part after.
    s3.put_object(Bucket=s3_vault, Key=key, Body=committed + b"\xa5" * (2 * MiB))
    s3.put_object(Bucket=s3_vault, Key=f"vault/{part_name(str(upload.pk), 1)}", Body=b"\x5a" * STAGING_PART_SIZE)
    file_id = _patch(api, url, 3 * MiB, content[3 * MiB :])["CaseBridge-File-Id"]
    assert _download(api, file_id)[1] == content


def test_s3_moto_server_http_loopback_a_lost_part_ends_the_upload_with_410(
    personas: Personas, handover: TransferApp | None, s3_vault: str, moto_endpoint: str
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(3 * MiB)
    url = _create(api, len(content))
    assert _patch(api, url, 0, content[:MiB]).status_code == 204
    upload = Upload.objects.get()
    s3 = _s3(moto_endpoint)
    s3.delete_object(Bucket=s3_vault, Key=f"vault/{part_name(str(upload.pk), 0)}")
    response = _patch(api, url, MiB, content[MiB:])
    assert response.status_code == 410
    assert "start it again" in response.json()["detail"]
    assert not Upload.objects.exists()
    assert Event.objects.filter(action="file.upload.rejected", details__reason="staging lost").exists()


def test_s3_moto_server_http_loopback_a_store_that_refuses_a_part_leaves_the_offset_where_it_was(
    personas: Personas,
    handover: TransferApp | None,
    s3_vault: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(3 * MiB)
    url = _create(api, len(content))
    upload = Upload.objects.get()
    store = config.blob_store()
    refused = "http://127.0.0.1:9/refused?X-Amz-Signature=presigned-secret"
    monkeypatch.setattr(type(store), "open_writer", _refusing_writer)
    monkeypatch.setattr(type(store), "upload_url", lambda self, name, expires: refused)
    response = _patch(api, url, 0, content)
    assert response.status_code in (500, 503)  # tus clients retry both, after asking for the offset
    assert "presigned-secret" not in caplog.text  # a URL that writes to the bucket never reaches a log
    upload.refresh_from_db()
    assert upload.offset == 0 and upload.completed_at is None
    monkeypatch.undo()
    config.reset_caches()
    file_id = _patch(api, url, 0, content)["CaseBridge-File-Id"]
    assert _download(api, file_id)[1] == content


def _refusing_writer(self: Any, name: str, size_hint: int = 0) -> Any:
    from casebridge.kernel.backends import StorageError

    raise StorageError("the store is refusing writes")


def test_s3_moto_server_http_loopback_termination_removes_staged_parts(
    personas: Personas, handover: TransferApp | None, s3_vault: str, moto_endpoint: str
) -> None:
    api: Client = _client(personas, "staff")
    content = binary_stl(12 * MiB)
    url = _create(api, len(content))
    _patch(api, url, 0, content[: 9 * MiB])
    assert len(_staged(s3_vault, moto_endpoint)) == 2
    assert api.delete(url).status_code == 204
    assert _objects(s3_vault, moto_endpoint) == {}


def test_s3_moto_server_http_loopback_downloads_through_the_transfer_server_by_presigned_url(
    personas: Personas, s3_vault: str, settings: Any
) -> None:
    """The transfer server holds no S3 client and no credentials: the ticket carries a presigned
    GET, and ranges of it are read over HTTP."""
    api = _client(personas, "staff")
    transfer.use_transfer_server(TRANSFER_URL)
    TransferAwareClient.transfer = TransferApp(ticket_key(settings.SECRET_KEY), None)
    try:
        content = binary_stl(3 * MiB + 99)
        transfer.use_transfer_server(None)  # bodies to the application: this test is about downloads
        url = _create(api, len(content))
        file_id = _patch(api, url, 0, content)["CaseBridge-File-Id"]
        transfer.use_transfer_server(TRANSFER_URL)
        handed = api.get(reverse("file_content", args=[file_id]))
        assert handed.status_code == 307 and "X-Amz" not in handed["Location"]  # sealed inside
        assert _download(api, file_id)[1] == content
        status, body, _ = _download(api, file_id, HTTP_RANGE=f"bytes={2 * MiB - 3}-{2 * MiB + 3}")
        assert status == 206 and body == content[2 * MiB - 3 : 2 * MiB + 4]
        issued = api.get(reverse("file_content", args=[file_id]))["Location"]
        version = ObjectVersion.objects.get(stored_object_id=file_id)
        config.blob_store().delete(version.blob_name)
        assert api.get(issued).status_code == 404  # the presigned GET finds nothing any more
    finally:
        TransferAwareClient.transfer = None
        transfer.use_transfer_server(None)
