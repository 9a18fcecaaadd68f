"""The same tus upload path with ciphertext staged and stored in S3 (moto's server over HTTP on
loopback): parts per request, resumption on another process, range reads, destruction."""

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

from casebridge.core.testing import Personas
from casebridge.transfer.app import TransferApp
from casebridge.transfer.tests.client import TRANSFER_URL, TransferAwareClient
from casebridge.transfer.tickets import ticket_key
from casebridge.vault import config, hashing, keystore, transfer
from casebridge.vault.models import ObjectVersion, Upload
from casebridge.vault.tests.samples import binary_stl
from casebridge.vault.tests.test_uploads import _client, _create, _download, _patch

pytestmark = pytest.mark.django_db
MiB = 1 << 20


@pytest.fixture
def s3_vault(moto_endpoint: str, vault_home: Path, settings: pytest.FixtureRequest) -> Iterator[str]:
    bucket = f"cb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    settings.VAULT_STORAGE_URL = f"s3://{bucket}/vault?endpoint={moto_endpoint}&region=us-east-1"  # type: ignore[attr-defined]
    config.reset_caches()
    keystore.forget_cached_keys()
    yield bucket
    config.reset_caches()


def _keys(bucket: str, endpoint: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_s3_moto_server_http_loopback_upload_resume_range_and_destroy(
    personas: Personas, s3_vault: str, moto_endpoint: str
) -> None:
    api = _client(personas, "staff")
    content = binary_stl(3 * MiB + 4321)
    url = _create(api, len(content))
    assert _patch(api, url, 0, content[: MiB + 10]).status_code == 204
    assert _patch(api, url, MiB + 10, content[MiB + 10 : 2 * MiB]).status_code == 204
    upload = Upload.objects.get()
    assert len(upload.staged_parts) == 3  # the header, then one part per request that filled segments
    hashing.forget(str(upload.pk))  # resumed by another app server
    response = _patch(api, url, 2 * MiB, content[2 * MiB :])
    assert response.status_code == 204
    file_id = response["CaseBridge-File-Id"]
    assert _download(api, file_id)[1] == content
    status, body, _ = _download(api, file_id, HTTP_RANGE=f"bytes={MiB - 5}-{MiB + 5}")
    assert status == 206 and body == content[MiB - 5 : MiB + 6]
    version = ObjectVersion.objects.get(stored_object_id=file_id)
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    keys = _keys(s3_vault, moto_endpoint)
    assert not any("staging" in key for key in keys)  # staged parts are gone once promoted
    assert any(version.blob_name in key for key in keys)
    response = api.generic(
        "DELETE",
        reverse("file_detail", args=[file_id]),
        b'{"reason": "duplicate scan"}',
        content_type="application/json",
    )
    assert response.status_code == 204
    assert not any(version.blob_name in key for key in _keys(s3_vault, moto_endpoint))


def test_s3_moto_server_http_loopback_termination_removes_staged_parts(
    personas: Personas, s3_vault: str, moto_endpoint: str
) -> None:
    api: Client = _client(personas, "staff")
    content = binary_stl(2 * MiB)
    url = _create(api, len(content))
    _patch(api, url, 0, content[: MiB + 1])
    assert any("staging" in key for key in _keys(s3_vault, moto_endpoint))
    assert api.delete(url).status_code == 204
    assert _keys(s3_vault, moto_endpoint) == []


def test_s3_moto_server_http_loopback_downloads_through_the_transfer_server_by_presigned_url(
    personas: Personas, s3_vault: str, settings: Any
) -> None:
    """The transfer server holds no S3 client and no credentials: the ticket carries a presigned
    GET, and ranges of it are read over HTTP. Uploads to S3 stay with the application."""
    api = _client(personas, "staff")
    transfer.use_transfer_server(TRANSFER_URL)
    TransferAwareClient.transfer = TransferApp(ticket_key(settings.SECRET_KEY), None)
    try:
        content = binary_stl(3 * MiB + 99)
        url = _create(api, len(content))
        assert url.startswith("/api/v1/uploads/")  # S3 staging: the bodies come here
        file_id = _patch(api, url, 0, content)["CaseBridge-File-Id"]
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
