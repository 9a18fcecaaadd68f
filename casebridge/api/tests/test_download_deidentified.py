"""Download de-identified (issue 14, item 4): the case's files in one ZIP, DICOM de-identified by the
Basic Profile with UIDs from a per-case secret, photos and scans cleaned of metadata, files that
cannot be de-identified left out with the reason, a report of what was done to each file and no
PHI in it; one audit event naming every file and the patient; the same credential path as
Download all, so the other organization, a token without the scope and the revoked lab get nothing."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from django.urls import reverse
from PIL import Image
from pydicom.data import get_testdata_file
from pypdf import PdfReader, PdfWriter

from casebridge.api.tests.conftest import World, ready_case
from casebridge.audit.models import Event
from casebridge.cases.models import Case
from casebridge.core.testing import signed_in_client
from casebridge.deid import export, new_uid
from casebridge.deid.tests import photos
from casebridge.imaging import synthetic
from casebridge.sharing.tests.test_download_all import unzip
from casebridge.vault import api as vault

pytestmark = pytest.mark.django_db
PATIENT_NAME = "ROENTGEN^WILHELM"


def _attach(world: World, number: str, content: bytes, kind: str = "cbct") -> str:
    user, org = world.user_and_org("clinician")
    stored = vault.put_stream(organization=org, actor=user, chunks=[content], length=len(content)).stored_object
    added = world.api().post(f"cases/{number}/attachments", {"file_id": str(stored.pk), "kind": kind, "label": ""})
    assert added.status_code == 201, added.content
    return str(stored.pk)


def _case_with_dicom(world: World) -> tuple[str, list[bytes]]:
    number = ready_case(world)
    series = synthetic.cbct_series("deid2", slices=3, size=16, patient_name=PATIENT_NAME)
    for instance in series:
        _attach(world, number, instance)
    with open(get_testdata_file("CT_small.dcm"), "rb") as pydicom_file:  # a real scanner's file, with private tags
        _attach(world, number, pydicom_file.read())
    return number, series


def test_the_lab_downloads_the_case_de_identified_with_a_report(world: World) -> None:
    number, series = _case_with_dicom(world)
    world.api().post(f"cases/{number}/submit")
    lab = world.api("technician")

    response = lab.client.get(f"/api/v1/cases/{number}/files.zip?deidentified=1")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{number}_deidentified.zip"'
    entries = unzip(response)
    report = json.loads(entries.pop(export.REPORT_JSON))
    text = entries.pop(export.REPORT_TXT).decode()
    dicoms = {name: pydicom.dcmread(io.BytesIO(body)) for name, body in entries.items() if name.endswith(".dcm")}
    assert len(dicoms) == 4 and len(entries) == 9  # 4 DICOM, 3 scans and 2 photos of the ready case
    originals = [pydicom.dcmread(io.BytesIO(instance)) for instance in series]
    for ds in dicoms.values():
        assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != PATIENT_NAME
        assert str(ds.PatientName) != "CompressedSamples^CT1" and not ds.get("PatientBirthDate")
        assert not any(elem.tag.is_private for elem in ds)
    # the series stays together under new UIDs, from the case's secret
    series_uids = {ds.SeriesInstanceUID for name, ds in dicoms.items() if ds.Rows == 16}
    assert len(series_uids) == 1 and series_uids != {originals[0].SeriesInstanceUID}
    secret = export.case_secret(Case.objects.get(number=number))
    assert series_uids == {new_uid(originals[0].SeriesInstanceUID, secret)}
    # the report: every file, what was done, no value of the original
    assert report["profile"].startswith("CaseBridge PS3.15") and report["options"] == []
    assert sorted(f["name"] for f in report["files"]) == sorted(entries)
    assert all(f["report"]["counts"] for f in report["files"] if f["type"] == "dicom")
    assert report["left_out"] == []
    raw = json.dumps(report) + text
    for phi in (PATIENT_NAME, "ROENTGEN", "CompressedSamples", originals[0].SeriesInstanceUID, "date_shift"):
        assert phi not in raw
    # one audit event naming every file, the patient, that it was de-identified and how
    event = Event.objects.get(action="case.files_downloaded")
    assert event.details["deidentified"] is True and event.details["options"] == []
    assert len(event.details["files"]) == 9 and event.patient_ref


def test_files_that_cannot_be_de_identified_are_left_out_with_the_reason(world: World) -> None:
    number = ready_case(world)
    good = synthetic.dicom_image("good", patient_name=PATIENT_NAME)
    truncated_id = _attach(world, number, good[: len(good) - 300])  # DICOM, cut inside its pixel data
    damaged = photos.tiff()[:3000]  # cut short: it cannot be decoded, so nobody can say it is clean
    tiff_id = _attach(world, number, damaged, kind="photo")

    entries = unzip(world.api().client.get(f"/api/v1/cases/{number}/files.zip?deidentified=1"))

    report = json.loads(entries[export.REPORT_JSON])
    left_out = {entry["file"]: entry["reason"] for entry in report["left_out"]}
    assert set(left_out) == {truncated_id, tiff_id}
    assert "cannot be decoded" in left_out[tiff_id] and left_out[truncated_id]
    names = {entry["name"] for entry in report["left_out"]}
    assert not names & set(entries)  # never passed through
    assert "Left out" in entries[export.REPORT_TXT].decode()
    assert PATIENT_NAME not in entries[export.REPORT_JSON].decode()


def test_tiff_and_heic_photos_go_out_without_their_metadata(world: World) -> None:
    number = ready_case(world)
    tiff_id = _attach(world, number, photos.tiff(), kind="photo")
    heic_id = _attach(world, number, photos.heic(), kind="photo")

    entries = unzip(world.api().client.get(f"/api/v1/cases/{number}/files.zip?deidentified=1"))

    report = json.loads(entries.pop(export.REPORT_JSON))
    assert report["left_out"] == []
    by_type = {entry["type"]: entry for entry in report["files"] if entry["type"] in ("tiff", "heic")}
    assert by_type["tiff"]["removed"]["GPS"] == 1 and by_type["tiff"]["removed"]["maker notes"] == 1
    assert by_type["heic"]["name"].endswith(".png") and by_type["heic"]["orientation_applied"] == 6
    for entry in by_type.values():
        body = entries[entry["name"]]
        assert photos.MARKER.encode() not in body
        image = Image.open(io.BytesIO(body))
        assert image.size == (48, 64) and not image.getexif().get_ifd(0x8825)
    event = Event.objects.get(action="case.files_downloaded")
    assert {tiff_id, heic_id} <= set(event.details["files"]) and event.details["left_out"] == []


def test_the_per_case_secret_is_stable_and_differs_between_cases(world: World) -> None:
    first, second = Case.objects.get(number=ready_case(world)), Case.objects.get(number=ready_case(world))
    assert export.case_secret(first) == export.case_secret(first)
    assert export.case_secret(first) != export.case_secret(second) and len(export.case_secret(first)) == 32


def test_nobody_else_gets_the_de_identified_archive(world: World) -> None:
    number = ready_case(world)
    url = f"/api/v1/cases/{number}/files.zip?deidentified=1"
    assert world.api("technician").client.get(url).status_code == 404  # a draft
    world.api().post(f"cases/{number}/submit")
    assert world.api("outsider").client.get(url).status_code == 404
    assert world.api("technician", ["org:read"]).client.get(url).status_code == 403
    world.api("owner").post(f"cases/{number}/revoke-lab-access")
    assert world.api("technician").client.get(url).status_code == 404
    assert not Event.objects.filter(action="case.files_downloaded").exists()


def test_the_case_page_offers_the_de_identified_download(world: World) -> None:
    number = ready_case(world)
    client = signed_in_client(world.personas.members["clinician"])
    page = client.get(reverse("case_detail", args=[world.practice.slug, number]))
    assert page.status_code == 200
    assert f"/api/v1/cases/{number}/files.zip?deidentified=1" in page.content.decode()
    assert b"Download de-identified" in page.content


def test_an_api_link_is_de_identified_unless_a_reason_says_otherwise(world: World) -> None:
    number, _ = _case_with_dicom(world)
    world.api().post(f"cases/{number}/submit")
    files = [a["file_id"] for a in world.api().get(f"cases/{number}/attachments").json()][:2]
    body = {"files": files, "recipient_email": "pt@example.test", "purpose": "second opinion"}

    created = world.api().post(f"cases/{number}/links", body)
    assert created.status_code == 201 and created.json()["deidentified"] is True
    assert created.json()["deid_options"] == []
    refused = world.api().post(f"cases/{number}/links", {**body, "deidentified": False})
    assert refused.status_code in (400, 422) and "Say why" in refused.content.decode()
    originals = world.api().post(f"cases/{number}/links", {**body, "deidentified": False, "reason": "surgeon"})
    assert originals.status_code == 201 and originals.json()["deidentified"] is False
    event = Event.objects.filter(action="share.link.created").order_by("-occurred_at").first()
    assert event is not None and event.details["less_strict_reason"] == "surgeon"


def test_the_practice_previews_what_a_link_removes_and_nobody_else_can(world: World) -> None:
    number, _ = _case_with_dicom(world)
    world.api().post(f"cases/{number}/submit")
    url = f"cases/{number}/links/preview"

    preview = world.api().get(url + "?deid_options=retain_patient_characteristics")

    assert preview.status_code == 200
    report = preview.json()
    assert report["options"] == ["retain_patient_characteristics"] and len(report["files"]) == 9
    assert PATIENT_NAME not in preview.content.decode() and "CompressedSamples" not in preview.content.decode()
    assert Event.objects.filter(action="case.deid_previewed").count() == 1
    assert world.api().get(url + "?deid_options=retain_everything").status_code in (400, 422)
    assert world.api("outsider").get(url).status_code == 404
    assert world.api(scopes=["cases:read"]).get(url).status_code == 403
    assert world.api("technician").get(url).status_code in (403, 404)  # the lab does not share the case
    assert Event.objects.filter(action="case.deid_previewed").count() == 1


def test_images_that_may_show_the_name_in_their_pixels_are_flagged(world: World) -> None:
    number = ready_case(world)
    ds = pydicom.dcmread(io.BytesIO(synthetic.dicom_image("burned", patient_name=PATIENT_NAME)))
    ds.BurnedInAnnotation = "YES"
    burned = io.BytesIO()
    ds.save_as(burned)
    burned_id = _attach(world, number, burned.getvalue())
    plain_id = _attach(world, number, synthetic.dicom_image("plain"))

    entries = unzip(world.api().client.get(f"/api/v1/cases/{number}/files.zip?deidentified=1"))

    report = json.loads(entries[export.REPORT_JSON])
    flagged = {f["name"] for f in report["files"] if f.get("burned_in_warning")}
    names = {a["file_id"]: a["name"] for a in world.api().get(f"cases/{number}/attachments").json()}
    assert flagged == {names[burned_id]} and names[plain_id] not in flagged
    assert "WARNING: check before sharing: Burned In Annotation is YES" in entries[export.REPORT_TXT].decode()
    preview = world.api().get(f"cases/{number}/links/preview?files={burned_id}").json()
    assert "Burned In Annotation" in preview["files"][0]["burned_in_warning"]


def _pdf_with_metadata() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.add_metadata({"/Author": PATIENT_NAME, "/Title": "Chart of the patient"})
    writer.xmp_metadata = (
        b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>'
        + PATIENT_NAME.encode()
        + b'</dc:creator></x:xmpmeta><?xpacket end="w"?>'
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_document_info_and_xmp_are_removed_and_a_damaged_pdf_left_out(world: World) -> None:
    number = ready_case(world)
    pdf_id = _attach(world, number, _pdf_with_metadata(), kind="other")
    damaged_id = _attach(world, number, b"%PDF-1.7\n1 0 obj << /Type /Catalog", kind="other")

    entries = unzip(world.api().client.get(f"/api/v1/cases/{number}/files.zip?deidentified=1"))

    report = json.loads(entries[export.REPORT_JSON])
    (pdf,) = [f for f in report["files"] if f["type"] == "pdf"]
    assert pdf["removed"] == {"XMP metadata streams": 1, "document info fields": 3}  # Author, Title, Producer
    cleaned = PdfReader(io.BytesIO(entries[pdf["name"]]))
    assert len(cleaned.pages) == 1 and cleaned.metadata is None and cleaned.xmp_metadata is None
    assert PATIENT_NAME.encode() not in entries[pdf["name"]]
    assert [f["file"] for f in report["left_out"]] == [damaged_id] and pdf_id not in str(report["left_out"])
