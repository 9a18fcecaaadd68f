"""External links default to de-identified copies (issue 14, item 4): the recipient's ZIP and single
downloads are de-identified as they stream by the link's recorded options, with the report in the
ZIP; sending originals or keeping more than the Basic Profile needs a written reason, recorded in
the audit log; the sender previews what will be removed; dead links give nothing."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Attachment
from casebridge.core.testing import Personas, signed_in_client
from casebridge.deid import export
from casebridge.deid.tests import photos
from casebridge.imaging import actions as imaging_actions
from casebridge.imaging import studies, synthetic
from casebridge.imaging.models import IngestJob, Instance
from casebridge.sharing import actions
from casebridge.sharing.models import ExternalLink
from casebridge.sharing.tests.conftest import RECIPIENT, SharedCase, build_case, last_token
from casebridge.sharing.tests.test_download_all import MakeLink, _verified, unzip
from casebridge.vault import api as vault

pytestmark = pytest.mark.django_db
NAME = "ROE^JANE"


@pytest.fixture
def shared(connected: Personas) -> SharedCase:
    """The sharing tests' case, with a DICOM image and a damaged TIFF photo (cut short: it cannot be
    decoded, so its metadata cannot be removed) attached before it was sent."""
    case = build_case(connected, submit=False)
    for content, kind in ((synthetic.dicom_image("link", patient_name=NAME), "cbct"), (TIFF, "photo")):
        stored = vault.put_stream(
            organization=case.access.organization, actor=case.access.actor, chunks=[content], length=len(content)
        ).stored_object
        case_actions.attach_file(case.access, case.case, stored, kind=kind, label="")
    case_actions.submit_case(case.access, case.case)
    return case


TIFF = photos.tiff()[:3000]


@pytest.fixture
def make_link(shared: SharedCase) -> MakeLink:
    """Links as a practice creates them: de-identified unless the test says otherwise."""

    def make(**overrides: Any) -> tuple[ExternalLink, str]:
        options: dict[str, Any] = {
            "attachments": list(shared.case.attachments.filter(kind="scan")[:2]),
            "recipient_email": RECIPIENT,
            "purpose": "Second opinion",
            **overrides,
        }
        link = actions.create_link(shared.access, shared.case, **options)
        return link, last_token()

    return make


def _of_type(shared: SharedCase, file_type: str) -> Attachment:
    attachment: Attachment = shared.case.attachments.get(stored_object__file_type=file_type)
    return attachment


def _with_dicom(shared: SharedCase) -> tuple[Attachment, bytes]:
    attachment = _of_type(shared, "dicom")
    version = vault.get_version(attachment.stored_object)
    return attachment, b"".join(bytes(piece) for piece in vault.read_version(version))


def test_a_new_link_sends_de_identified_copies_with_the_report(shared: SharedCase, make_link: MakeLink) -> None:
    attachment, original = _with_dicom(shared)
    scan = shared.case.attachments.filter(kind="scan").first()
    link, token = make_link(attachments=[attachment, scan])
    assert link.deidentify and link.deid_options == [] and link.originals_reason == ""
    created = Event.objects.get(action="share.link.created", target_id=str(link.pk))
    assert created.details["deidentified"] is True and created.details["deid_options"] == []
    client = Client()
    _verified(client, token)

    assert b"de-identified copies" in client.get(f"/s/{token}/files/").content
    response = client.get(f"/s/{token}/files.zip")

    entries = unzip(response)
    report = json.loads(entries.pop(export.REPORT_JSON))
    entries.pop(export.REPORT_TXT)
    (dicom_name,) = [name for name in entries if name.endswith(".dcm")]
    ds = pydicom.dcmread(io.BytesIO(entries[dicom_name]))
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != NAME
    assert ds.SOPInstanceUID != pydicom.dcmread(io.BytesIO(original)).SOPInstanceUID
    assert NAME not in json.dumps(report) and len(report["files"]) == 2
    event = Event.objects.get(action="share.files.downloaded", target_id=str(link.pk))
    assert event.details["deidentified"] is True and len(event.details["files"]) == 2
    link.refresh_from_db()
    assert link.downloads_used == 1

    assert client.head(f"/s/{token}/files/{attachment.stored_object_id}/").status_code == 200
    link.refresh_from_db()
    assert link.downloads_used == 1  # a HEAD sends nothing and counts nothing
    single = client.get(f"/s/{token}/files/{attachment.stored_object_id}/")
    assert single.status_code == 200
    ds = pydicom.dcmread(io.BytesIO(b"".join(single.streaming_content)))
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != NAME
    assert Event.objects.get(action="share.file.downloaded", target_id=str(link.pk)).details["deidentified"]


def test_a_file_that_cannot_be_de_identified_is_never_sent(shared: SharedCase, make_link: MakeLink) -> None:
    tiff = _of_type(shared, "tiff")
    scan = shared.case.attachments.filter(kind="scan").first()
    _link, token = make_link(attachments=[tiff, scan])
    client = Client()
    _verified(client, token)

    refused = client.get(f"/s/{token}/files/{tiff.stored_object_id}/")
    assert refused.status_code == 409 and b"cannot be decoded" in refused.content
    entries = unzip(client.get(f"/s/{token}/files.zip"))
    report = json.loads(entries[export.REPORT_JSON])
    assert [entry["file"] for entry in report["left_out"]] == [str(tiff.stored_object_id)]
    assert not any(name.endswith(".tif") or name.endswith(".tiff") for name in entries)


def test_originals_and_less_strict_options_need_a_written_reason(shared: SharedCase, make_link: MakeLink) -> None:
    with pytest.raises(ValidationError, match="Say why"):
        make_link(deidentify=False)
    with pytest.raises(ValidationError, match="Say why"):
        make_link(deid_options=["retain_patient_characteristics"])
    with pytest.raises(ValidationError, match="unknown"):
        make_link(deid_options=["retain_everything"], reason="because")
    with pytest.raises(ValidationError, match="not both"):
        make_link(deid_options=["dates=full", "dates=modified"], reason="because")
    assert not ExternalLink.objects.exists()

    kept, _token = make_link(deid_options=["retain_patient_characteristics"], reason="Orthodontist needs the age")
    assert kept.deid_options == ["retain_patient_characteristics"] and kept.originals_reason
    scans = list(shared.case.attachments.filter(kind="scan")[:2])
    link, token = make_link(attachments=scans, deidentify=False, reason="Surgeon must match the hospital record")
    event = Event.objects.get(action="share.link.created", target_id=str(link.pk))
    assert event.details["deidentified"] is False
    assert event.details["less_strict_reason"] == "Surgeon must match the hospital record"
    client = Client()
    _verified(client, token)
    entries = unzip(client.get(f"/s/{token}/files.zip"))
    assert sorted(entries.values()) == sorted(shared.contents[str(a.stored_object_id)] for a in link.attachments.all())


def test_a_dead_link_gives_no_de_identified_copy(shared: SharedCase, make_link: MakeLink) -> None:
    attachment, _ = _with_dicom(shared)
    expired, expired_token = make_link(attachments=[attachment])
    revoked, revoked_token = make_link(attachments=[attachment])
    client = Client()
    _verified(client, expired_token)
    _verified(client, revoked_token)
    ExternalLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    actions.revoke_link(shared.access, revoked)
    for token in (expired_token, revoked_token):
        assert client.get(f"/s/{token}/files.zip").status_code == 404
        assert client.get(f"/s/{token}/files/{attachment.stored_object_id}/").status_code == 404
    assert not Event.objects.filter(action__in=["share.files.downloaded", "share.file.downloaded"]).exists()


def test_the_sender_previews_what_will_be_removed(shared: SharedCase) -> None:
    _with_dicom(shared)
    personas = shared.personas
    url = reverse("share_preview", args=[personas.practice.slug, shared.case.number])
    page = signed_in_client(personas.members["clinician"]).get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "PatientName" in body and "Basic Profile" in body and NAME not in body
    assert Event.objects.filter(action="case.deid_previewed").exists()
    # the lab that holds the case does not share it, and cannot preview it
    lab = signed_in_client(personas.lab_manager).get(
        reverse("share_preview", args=[personas.lab.slug, shared.case.number])
    )
    assert lab.status_code in (403, 404)
    outsider = signed_in_client(personas.outsider).get(
        reverse("share_preview", args=[personas.other_practice.slug, shared.case.number])
    )
    assert outsider.status_code == 404


def test_the_sharing_form_warns_of_images_that_may_show_the_name(shared: SharedCase) -> None:
    dicom = _of_type(shared, "dicom")
    job = IngestJob.objects.filter(source_id=dicom.stored_object_id).first()
    studies.run(job or imaging_actions.start_ingest(shared.access, shared.case, dicom.stored_object))
    assert Instance.objects.filter(stored_object_id=dicom.stored_object_id).exists()
    ordinary = signed_in_client(shared.personas.members["clinician"]).get(
        reverse("case_detail", args=[shared.personas.practice.slug, shared.case.number])
    )
    assert "burned-in text?" not in ordinary.content.decode()  # a CT slice
    Instance.objects.filter(stored_object_id=dicom.stored_object_id).update(sop_class_uid="1.2.840.10008.5.1.4.1.1.7")
    page = signed_in_client(shared.personas.members["clinician"]).get(
        reverse("case_detail", args=[shared.personas.practice.slug, shared.case.number])
    )
    body = page.content.decode()
    assert "burned-in text?" in body and dicom.display_name in body and "secondary capture" in body
