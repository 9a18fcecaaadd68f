"""New versions of a file of a case: exactly the attach pipeline (who may add files to the case
now, the file's type, metadata removal before anyone sees it, the patient's audit trail),
whether the bytes are taken by the application or by the transfer server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case, Status
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas
from casebridge.imaging.tests.test_sanitize import PHI, identifying_jpeg
from casebridge.kernel.tests.test_filetypes import pdf
from casebridge.vault import api as vault
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject, Upload
from casebridge.vault.tests import test_uploads
from casebridge.vault.tests.samples import binary_stl
from casebridge.vault.tests.test_uploads import _client, _create, _download, _patch, _upload

pytestmark = pytest.mark.django_db
world = test_workflow.world  # a practice connected to its lab under a BAA
handover = test_uploads.handover  # every test twice: bytes taken by the application, or by the transfer server


def _attach(world: Personas, content: bytes, kind: str, label: str, case: Case | None = None) -> tuple[Case, str]:
    access = _access(world)
    case = case or actions.create_case(access, patient_name="Jane Roe", case_type="digital_crown")
    stored = vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    )
    actions.attach_file(access, case, stored.stored_object, kind=kind, label=label)
    return case, str(stored.stored_object_id)


def _version_of(file_id: str) -> str:
    """Upload-Metadata naming the file a new version is for."""
    return f"file {base64.b64encode(file_id.encode()).decode()}"


def _blobs(file_id: str) -> set[str]:
    folder = blob_store().path_for(f"objects/{file_id}/x").parent
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _assert_clean_photo(data: bytes, orientation: int) -> None:
    exif = Image.open(io.BytesIO(data)).getexif()
    assert exif.get(0x0112) == orientation  # kept: the photo shows as taken
    assert not exif.get_ifd(0x8825), "GPS survived"
    assert 0x010F not in exif and 0x013B not in exif, "camera make or artist survived"
    assert PHI not in data and b"SecretCam" not in data


def test_a_new_version_of_an_attached_photo_loses_its_gps_camera_and_artist(world: Personas) -> None:
    case, file_id = _attach(world, identifying_jpeg(), "photo", "shade")
    api = _client(world, "clinician")
    assert _upload(api, identifying_jpeg(orientation=3), file=file_id) == file_id
    status, body, _ = _download(api, file_id)
    assert status == 200
    _assert_clean_photo(body, orientation=3)
    # The uncleaned upload never became a version: every version that can still be read is clean.
    readable = ObjectVersion.objects.filter(stored_object_id=file_id, wrapped_dek__isnull=False).order_by("version")
    assert [v.version for v in readable] == [2, 3]  # attach cleaned v1 into v2; the upload came in as v3
    for version, orientation in zip(readable, (6, 3), strict=True):
        _assert_clean_photo(b"".join(bytes(p) for p in vault.read_version(version)), orientation)
    event = Event.objects.get(action="case.attachment.version_added")
    assert event.patient_ref == str(case.patient_id) and event.organization_id == world.practice.pk
    assert event.details["case"] == case.number and event.details["file"] == file_id
    assert event.details["metadata"]["removed"]["EXIF field GPSLatitude"] == 1
    assert "Jane" not in repr(event.details) and "SecretCam" not in repr(event.details)


def test_a_pdf_is_refused_as_a_new_version_of_an_stl_at_its_first_bytes(world: Personas) -> None:
    _case, file_id = _attach(world, binary_stl(3000), "scan", "upper")
    before, current = _blobs(file_id), StoredObject.objects.get(pk=file_id).current_version
    api = _client(world, "clinician")
    document = pdf() + b"\n" * 400_000
    url = _create(api, len(document), file=file_id)
    response = _patch(api, url, 0, document[:200_000])
    assert response.status_code == 415
    detail = response.json()["detail"]  # read once: a transfer server's answer streams
    assert "STL scan" in detail and "PDF document" in detail
    stored = StoredObject.objects.get(pk=file_id)
    assert stored.current_version == current and stored.mime_type == "model/stl"
    assert not Upload.objects.filter(object_id=file_id).exists() and _blobs(file_id) == before
    assert _download(api, file_id)[1][:5] != b"%PDF-"


def test_no_version_is_taken_for_a_completed_case_not_even_its_first_byte(world: Personas) -> None:
    case = _ready_crown(world)
    practice, lab = _access(world), _lab(world)
    actions.submit_case(practice, case)
    actions.confirm_receipt(lab, case)
    for status in (Status.IN_PRODUCTION, Status.QUALITY_CHECK):
        actions.change_status(lab, case, status)
    actions.change_status(lab, case, Status.SHIPPED, tracking_number="1Z999")
    actions.change_status(lab, case, Status.DELIVERED)
    actions.complete_case(lab, case)
    file_id = str(case.attachments.filter(kind="scan").first().stored_object_id)
    api = _client(world, "clinician")
    response = api.post(
        reverse("tus_collection"),
        HTTP_UPLOAD_LENGTH="3084",
        HTTP_UPLOAD_METADATA=_version_of(file_id),
    )
    assert response.status_code == 409 and "closed case" in response.json()["detail"]
    assert not Upload.objects.exists()


def test_a_version_finished_after_the_case_was_sent_is_refused_and_leaves_nothing(world: Personas) -> None:
    case = _ready_crown(world)
    file_id = str(case.attachments.filter(kind="scan").first().stored_object_id)
    before = _blobs(file_id)
    api = _client(world, "clinician")
    content = binary_stl(2_000_000)
    url = _create(api, len(content), file=file_id)  # a draft: allowed when the upload begins
    assert _patch(api, url, 0, content[:1_000_000]).status_code == 204
    actions.submit_case(_access(world), case)  # meanwhile someone sends the case
    response = _patch(api, url, 1_000_000, content[1_000_000:])
    assert response.status_code == 409 and "already sent" in response.json()["detail"]
    assert StoredObject.objects.get(pk=file_id).current_version == 2  # the attach's cleaned version
    assert _blobs(file_id) == before, "the refused content was left in the blob store"
    assert not Upload.objects.filter(object_id=file_id).exists()
    assert Event.objects.filter(action="file.upload.rejected", details__reason="version refused").exists()


def test_only_the_organization_that_added_a_file_adds_its_versions(world: Personas) -> None:
    case = _ready_crown(world)
    actions.submit_case(_access(world), case)
    actions.confirm_receipt(_lab(world), case)
    practice_file = str(case.attachments.filter(kind="scan").first().stored_object_id)
    lab = _lab(world)
    content = binary_stl(500)
    design = vault.put_stream(organization=world.lab, actor=world.lab_manager, chunks=[content], length=len(content))
    actions.attach_file(lab, case, design.stored_object, kind="design")
    _token, raw = create_api_token(
        organization=world.lab,
        name="t",
        scopes=["cases:read", "cases:write"],
        days=1,
        actor=world.lab_manager,
        user=world.lab_manager,
    )
    lab_api = test_uploads.TransferAwareClient(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_TUS_RESUMABLE="1.0.0")

    def new_version(client: Client, file_id: str) -> int:
        return int(
            client.post(
                reverse("tus_collection"), HTTP_UPLOAD_LENGTH="584", HTTP_UPLOAD_METADATA=_version_of(file_id)
            ).status_code
        )

    assert new_version(lab_api, practice_file) == 404
    # The lab revises its own design while it works on the case; the practice cannot.
    design_id = str(design.stored_object_id)
    assert _upload(lab_api, binary_stl(700), file=design_id) == design_id
    assert new_version(_client(world, "clinician"), design_id) == 404
    assert not Upload.objects.filter(completed_at__isnull=True).exists()


def test_attaching_shreds_every_uncleaned_version_not_only_the_last(world: Personas, vault_home: Path) -> None:
    api = _client(world, "clinician")
    file_id = _upload(api, identifying_jpeg())
    assert _upload(api, identifying_jpeg(orientation=8), file=file_id) == file_id  # still the uploader's own
    stored = StoredObject.objects.get(pk=file_id)
    access = _access(world)
    case = actions.create_case(access, patient_name="Jane Roe", case_type="digital_crown")
    actions.attach_file(access, case, stored, kind="photo", label="smile")
    readable = list(ObjectVersion.objects.filter(stored_object_id=file_id, wrapped_dek__isnull=False))
    assert [v.version for v in readable] == [3]
    _assert_clean_photo(b"".join(bytes(p) for p in vault.read_version(readable[0])), orientation=8)
    for number in (1, 2):
        assert _download(api, file_id, query=f"?version={number}")[0] == 404
