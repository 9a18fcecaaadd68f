"""DICOMweb for an organization with De-identification on receipt (issue 14, item 4): the cases it
received are served de-identified (the on-receipt profile, the case's de-identified UIDs, pixel
data as stored), so its CBCT and X-ray viewers work; nothing it gets names the patient or carries
an original UID, and an original UID is no study for it. Everyone else gets what they got before."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.test import Client
from django.urls import reverse

from casebridge.access import policy
from casebridge.access.policy import resolve
from casebridge.access.principal import Principal
from casebridge.access.roles import Role
from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Case
from casebridge.core.testing import Personas, add_member, signed_in_client
from casebridge.deid import export
from casebridge.deid.dicom import new_uid
from casebridge.imaging.models import Series
from casebridge.imaging.synthetic import cbct_series, dicom_image, xray_set
from casebridge.imaging.tests.cases import (
    attach,
    attach_what_sending_needs,
    clinician_access,
    connect_lab,
    draft_case,
    zipped,
)
from casebridge.kernel.multipart import media_type_parameters

pytestmark = pytest.mark.django_db
SLICES = 4
NAME, PATIENT_ID, BIRTH_DATE = "CARTER^ROSA", "CHART-A77", "19610402"
STANDARD = "1.2.840.10008."  # SOP classes, transfer syntaxes: the standard's, nobody's identity


def _identified(files: list[bytes]) -> list[bytes]:
    out = []
    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PATIENT_ID, BIRTH_DATE
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _original_uids(files: list[bytes]) -> set[str]:
    """Every UID the files carry that is not one of the standard's (and not the writer's)."""
    found: set[str] = set()

    def walk(ds: pydicom.Dataset) -> None:
        for element in ds:
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)
            elif element.VR == "UI" and element.keyword != "ImplementationClassUID":
                values = element.value if isinstance(element.value, list) else [element.value]
                found.update(str(v) for v in values if v and not str(v).startswith(STANDARD))

    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        walk(ds.file_meta)
        walk(ds)
    return found


@pytest.fixture
def received(personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """A case the practice sent to the lab, with a CBCT series and an X-ray; the lab has
    De-identification on receipt on."""
    connect_lab(personas)
    access = clinician_access(personas)
    case = draft_case(access, patient_name="Rosa Carter", lab=personas.lab)
    slices = _identified(cbct_series("deid-web", slices=SLICES, size=32, patient_name=NAME))
    xray = _identified(xray_set("deid-web-x", images=1))
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, zipped({f"{i}.dcm": s for i, s in enumerate(slices)}), kind="cbct")
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, xray[0], kind="cbct", label="xray")
        attach_what_sending_needs(access, case)
    case_actions.submit_case(access, case)
    personas.lab.deidentify_on_receipt = True
    personas.lab.save(update_fields=["deidentify_on_receipt"])
    files = slices + xray
    return {"case": case, "slices": slices, "xray": xray, "uids": _original_uids(files)}


def _mapped(case: Case, uid: str) -> str:
    return new_uid(uid, export.case_secret(case))


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _parts(response: Any) -> list[bytes]:
    boundary = media_type_parameters(response["Content-Type"])[1]["boundary"].encode()
    body = _body(response)
    parts = body.split(b"--" + boundary)[1:-1]
    return [part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for part in parts]


def _config(page: bytes, name: str) -> dict[str, Any]:
    found = re.search(rb'<script id="' + name.encode() + rb'" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def _token(personas: Personas, user: Any, organization: Any, scopes: list[str]) -> Client:
    raw = create_api_token(organization=organization, name="viewer", scopes=scopes, days=1, actor=user, user=user)[1]
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _urls(study: str, series: str, sop: str) -> list[str]:
    base = f"/dicomweb/studies/{study}"
    instance = f"{base}/series/{series}/instances/{sop}"
    return [
        f"{base}/series",
        f"{base}/series/{series}/instances",
        f"{base}/series/{series}/metadata",
        f"{instance}/metadata",
        base,
        f"{base}/series/{series}",
        instance,
        f"{instance}/frames/1",
        f"{instance}/rendered",
        f"{instance}/frames/1/rendered",
    ]


def _forbidden_in(body: bytes, received: dict[str, Any]) -> list[str]:
    needles = [NAME, "Rosa Carter", "Carter", PATIENT_ID, BIRTH_DATE, "1961-04-02", *received["uids"]]
    return [n for n in needles if n.encode() in body]


def test_no_dicomweb_answer_to_the_lab_names_the_patient_or_an_original_uid(
    personas: Personas, received: dict[str, Any]
) -> None:
    case, slices = received["case"], received["slices"]
    first = pydicom.dcmread(io.BytesIO(slices[0]))
    study, series, sop = (
        _mapped(case, u) for u in (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    )
    for lab in (
        signed_in_client(personas.lab_manager),
        _token(personas, personas.lab_manager, personas.lab, ["cases:read"]),
    ):
        found = lab.get("/dicomweb/studies")
        assert found.status_code == 200 and not _forbidden_in(found.content, received)
        studies = found.json()
        assert len(studies) == 2  # the CBCT's study and the X-ray's
        assert study in [s["0020000D"]["Value"][0] for s in studies]
        assert all("Value" not in s["00100010"] and "Value" not in s["00080050"] for s in studies)
        for url in _urls(study, series, sop):
            response = lab.get(url, HTTP_ACCEPT="*/*")
            assert response.status_code == 200, url
            assert _forbidden_in(_body(response), received) == [], url

    # the instances are the de-identified copies, pixel data as stored
    lab = signed_in_client(personas.lab_manager)
    copies = [pydicom.dcmread(io.BytesIO(p)) for p in _parts(lab.get(f"/dicomweb/studies/{study}/series/{series}"))]
    assert len(copies) == SLICES
    originals = {_mapped(case, d.SOPInstanceUID): d for d in (pydicom.dcmread(io.BytesIO(s)) for s in slices)}
    for copy in copies:
        assert copy.PatientIdentityRemoved == "YES" and copy.StudyInstanceUID == study
        assert copy.PixelData == originals[copy.SOPInstanceUID].PixelData
    frames = _parts(lab.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1", HTTP_ACCEPT="*/*"))
    assert frames == [first.PixelData]
    # every event of the lab says it had the de-identified view
    events = Event.objects.filter(action__startswith="dicomweb.", actor_id=personas.lab_manager.pk)
    assert events.exists()
    assert all(e.details.get("on_receipt") is True and e.details.get("deidentified") is True for e in events)
    assert all(e.details.get("options") == [] for e in events)


def test_the_labs_viewers_open_the_case_by_de_identified_uids(personas: Personas, received: dict[str, Any]) -> None:
    case, slices = received["case"], received["slices"]
    lab = signed_in_client(personas.lab_manager)
    series = Series.objects.get(study__case=case, modality="CT")
    page = lab.get(reverse("study_viewer", args=[personas.lab.slug, case.number, series.pk]))
    assert page.status_code == 200
    config = _config(page.content, "cbct-config")
    assert config["study"] == _mapped(case, series.study.study_uid)
    assert config["series"] == _mapped(case, series.series_uid)
    assert not _forbidden_in(page.content, received)

    # what the CBCT viewer does: the series' metadata, then every frame by its BulkDataURI
    root = f"/dicomweb/studies/{config['study']}/series/{config['series']}"
    metadata = lab.get(f"{root}/metadata")
    assert metadata.status_code == 200
    entries = metadata.json()
    assert len(entries) == SLICES
    for entry in entries:
        assert entry["00100010"].get("Value") in (None, [{"Alphabetic": "DEIDENTIFIED"}])
        uri = entry["7FE00010"]["BulkDataURI"]
        assert uri.startswith(f"http://testserver{root}/instances/{entry['00080018']['Value'][0]}/frames/")
        frames = lab.get(uri.removeprefix("http://testserver"), HTTP_ACCEPT="*/*")
        assert frames.status_code == 200 and len(_parts(frames)) == 1
    # ... or the whole series in one request
    assert len(_parts(lab.get(root, HTTP_ACCEPT="*/*"))) == len(slices)

    # the X-ray viewer's strip names the X-ray by its de-identified UIDs, which answer
    xray_page = lab.get(reverse("xray_viewer", args=[personas.lab.slug, case.number]))
    assert xray_page.status_code == 200 and not _forbidden_in(xray_page.content, received)
    items = _config(xray_page.content, "xray-config")["items"]
    dicom = [i for i in items if i["kind"] == "dicom"]
    assert dicom
    for item in dicom:
        url = f"/dicomweb/studies/{item['study']}/series/{item['series']}/instances/{item['instance']}/frames/1"
        assert lab.get(url, HTTP_ACCEPT="*/*").status_code == 200


def test_an_original_uid_is_no_study_for_the_lab(personas: Personas, received: dict[str, Any]) -> None:
    case, slices = received["case"], received["slices"]
    first = pydicom.dcmread(io.BytesIO(slices[0]))
    lab = signed_in_client(personas.lab_manager)
    for url in _urls(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID):
        assert lab.get(url, HTTP_ACCEPT="*/*").status_code == 404, url
    # a de-identified study with an original series or instance UID: no such series either
    study = _mapped(case, first.StudyInstanceUID)
    assert lab.get(f"/dicomweb/studies/{study}/series/{first.SeriesInstanceUID}/metadata").status_code == 404
    series = _mapped(case, first.SeriesInstanceUID)
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{first.SOPInstanceUID}/frames/1"
    assert lab.get(instance, HTTP_ACCEPT="*/*").status_code == 404
    # searches match the de-identified attributes only
    assert lab.get("/dicomweb/studies", {"StudyInstanceUID": first.StudyInstanceUID}).json() == []
    assert [s["0020000D"]["Value"][0] for s in lab.get("/dicomweb/studies", {"StudyInstanceUID": study}).json()] == [
        study
    ]
    assert lab.get("/dicomweb/studies", {"AccessionNumber": case.number}).json() == []
    assert lab.get("/dicomweb/studies", {"StudyDate": "19000101-20991231"}).json() == []
    assert lab.get(f"/dicomweb/studies/{study}/series", {"SeriesInstanceUID": first.SeriesInstanceUID}).json() == []
    assert len(lab.get(f"/dicomweb/studies/{study}/series", {"SeriesInstanceUID": series}).json()) == 1


def test_other_credentials_and_organizations_get_what_they_got_before(
    personas: Personas, received: dict[str, Any]
) -> None:
    case, slices = received["case"], received["slices"]
    first = pydicom.dcmread(io.BytesIO(slices[0]))
    original = (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    mapped = tuple(_mapped(case, u) for u in original)

    # a lab token without cases:read, and other tenants (session and token): nothing, either way
    for client in (
        _token(personas, personas.lab_manager, personas.lab, ["org:read"]),
        signed_in_client(personas.outsider),
        _token(personas, personas.outsider, personas.other_practice, ["cases:read"]),
    ):
        assert client.get("/dicomweb/studies").json() == []
        for uids in (original, mapped):
            for url in _urls(*uids):
                assert client.get(url, HTTP_ACCEPT="*/*").status_code in (403, 404), url
    # the practice that sent the case: the originals, by the original UIDs only
    practice = signed_in_client(personas.members["clinician"])
    found = practice.get("/dicomweb/studies", {"StudyInstanceUID": first.StudyInstanceUID}).json()
    assert found[0]["00100010"]["Value"] == [{"Alphabetic": "Rosa Carter"}]
    metadata = practice.get(f"/dicomweb/studies/{original[0]}/series/{original[1]}/metadata").json()
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {NAME}
    assert practice.get(f"/dicomweb/studies/{mapped[0]}/series").status_code == 404
    # the lab with the setting off: originals as before, and the de-identified UIDs are nothing
    personas.lab.deidentify_on_receipt = False
    personas.lab.save(update_fields=["deidentify_on_receipt"])
    lab = signed_in_client(personas.lab_manager)
    metadata = lab.get(f"/dicomweb/studies/{original[0]}/series/{original[1]}/metadata").json()
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in metadata} == {NAME}
    assert lab.get(f"/dicomweb/studies/{mapped[0]}/series").status_code == 404
    assert Event.objects.filter(action__startswith="dicomweb.", details__on_receipt=True).count() == 0


def test_a_person_who_also_sees_the_case_through_the_practice_gets_the_originals(
    personas: Personas, received: dict[str, Any]
) -> None:
    lab_manager = personas.lab_manager
    assert policy.deidentified_studies(Principal(lab_manager)).count() == 2
    add_member(personas.practice, lab_manager, Role.CLINICIAN)
    assert not policy.deidentified_studies(Principal(lab_manager)).exists()
    first = pydicom.dcmread(io.BytesIO(received["slices"][0]))
    url = f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/metadata"
    assert signed_in_client(lab_manager).get(url).status_code == 200


def test_what_the_lab_stores_into_the_case_it_retrieves_by_de_identified_uids(
    personas: Personas, received: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    case = received["case"]
    lab_access = resolve(personas.lab_manager, personas.lab)
    assert lab_access is not None
    case_actions.confirm_receipt(lab_access, Case.objects.get(pk=case.pk))
    design = dicom_image("lab-design", patient_name=NAME)
    sent = pydicom.dcmread(io.BytesIO(design))
    boundary = "deid-stow"
    body = f"\r\n--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + design
    body += f"\r\n--{boundary}--".encode()
    lab = _token(personas, personas.lab_manager, personas.lab, ["cases:read", "cases:write"])

    with django_capture_on_commit_callbacks(execute=True):
        response = lab.post(
            f"/dicomweb/cases/{case.number}/studies",
            body,
            content_type=f'multipart/related; type="application/dicom"; boundary="{boundary}"',
        )

    assert response.status_code == 200
    answer = response.json()
    (stored,) = answer["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [sent.SOPInstanceUID]  # what it sent, as the standard has it
    url = stored["00081190"]["Value"][0]
    uids = (sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.SOPInstanceUID)
    assert all(uid not in url for uid in uids) and all(_mapped(case, uid) in url for uid in uids)
    assert sent.StudyInstanceUID not in answer["00081190"]["Value"][0]
    retrieved = lab.get(url.removeprefix("http://testserver"), HTTP_ACCEPT="*/*")
    assert retrieved.status_code == 200
    (copy,) = (pydicom.dcmread(io.BytesIO(p)) for p in _parts(retrieved))
    assert copy.SOPInstanceUID == _mapped(case, sent.SOPInstanceUID) and str(copy.PatientName) != NAME
