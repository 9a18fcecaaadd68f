"""STOW-RS as a scanner or an outside tool sees it: dicomweb-client's store_instances (and bodies
framed by hand) against the running server. Instances sent to a case's DICOMweb address join
the case through its attach pipeline and become its studies; sent to /dicomweb/studies they
become the sender's own uploads. Each instance is accepted or refused on its own, and whoever
may not add files to the case is refused before a byte of the body is read."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlsplit

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from django.test import Client
from pytest_django.fixtures import Settings

from casebridge.access.policy import resolve
from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Attachment, Case
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging.models import Instance, Series
from casebridge.imaging.stow import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, STUDY_MISMATCH
from casebridge.imaging.synthetic import cbct_series, dicom_image
from casebridge.imaging.tests.cases import attach, clinician_access, connect_lab, draft_case
from casebridge.vault.models import StoredObject
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db(transaction=True)
SLICES = 4
BOUNDARY = "stow-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'
REFERENCED, FAILED, RETRIEVE_URL, FAILURE_REASON = "00081199", "00081198", "00081190", "00081197"


@pytest.fixture
def case(personas: Personas, vault_home: Any) -> Case:
    connect_lab(personas)
    return draft_case(clinician_access(personas), patient_name="Rosa Carter", lab=personas.lab)


def _token(user: Any, organization: Any, scopes: list[str]) -> str:
    _token, raw = create_api_token(
        organization=organization, name="scanner", scopes=scopes, days=1, actor=user, user=user
    )
    return raw


def _clinician_token(personas: Personas, scopes: list[str] | None = None) -> str:
    return _token(personas.members["clinician"], personas.practice, scopes or ["cases:read", "cases:write"])


def _client(live_server: Any, base: str, raw: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{live_server.url}{base}", headers={"Authorization": f"Bearer {raw}"})


def _datasets(seed: str, slices: int = SLICES) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(s)) for s in cbct_series(seed, slices=slices, size=32)]


def _part(content: bytes, content_type: str = "application/dicom") -> bytes:
    return f"\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + content


def _body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"\r\n--{BOUNDARY}--".encode()


def _encoded(dataset: pydicom.Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _post(live_server: Any, path: str, raw: str, body: bytes, content_type: str = CONTENT_TYPE) -> requests.Response:
    return requests.post(
        f"{live_server.url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {raw}", "Content-Type": content_type},
        timeout=30,
    )


def _answer(response: requests.Response) -> pydicom.Dataset:
    assert response.headers["Content-Type"] == "application/dicom+json"
    return pydicom.Dataset.from_json(response.json())


def test_a_scanner_stores_a_series_into_a_draft_and_it_is_indexed_as_the_case_study(
    live_server: Any, personas: Personas, case: Case
) -> None:
    datasets = _datasets("stow-case")
    raw = _clinician_token(personas)

    answer = _client(live_server, f"/dicomweb/cases/{case.number}", raw).store_instances(datasets)

    sop_uids = sorted(d.SOPInstanceUID for d in datasets)
    study_uid, series_uid = datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID
    assert sorted(item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence) == sop_uids
    assert "FailedSOPSequence" not in answer
    # (dicomweb-client sends its Host header without the port: the URLs name the host it gave.)
    assert urlsplit(answer.RetrieveURL).path == f"/dicomweb/studies/{study_uid}"
    first = answer.ReferencedSOPSequence[0]
    assert first.ReferencedSOPClassUID == datasets[0].SOPClassUID
    assert urlsplit(first.RetrieveURL).path == (
        f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{first.ReferencedSOPInstanceUID}"
    )
    # Each instance went through the attach pipeline: an attachment of the case, indexed into its study.
    attachments = Attachment.objects.filter(case=case)
    assert attachments.count() == SLICES and {a.kind for a in attachments} == {"cbct"}
    assert {a.label for a in attachments} == {"cbct"}
    series = Series.objects.get(study__case=case, series_uid=series_uid)
    assert series.instance_count == SLICES
    # ... and reads back over DICOMweb like any study of the case, byte for byte.
    reader = _client(live_server, "/dicomweb", raw)
    assert [s["0020000E"]["Value"][0] for s in reader.search_for_series(study_uid)] == [series_uid]
    back = reader.retrieve_instance(study_uid, series_uid, datasets[2].SOPInstanceUID)
    assert _encoded(back) == _encoded(datasets[2])
    assert sorted(i.SOPInstanceUID for i in reader.retrieve_study(study_uid)) == sop_uids
    # Audited like attaching: each instance, and the request once, naming the case and patient.
    assert Event.objects.filter(action="case.attachment.added", details__case=case.number).count() == SLICES
    event = Event.objects.get(action="dicomweb.stored")
    assert event.patient_ref == str(case.patient_id) and event.details["case"] == case.number
    assert event.details["stored"] == SLICES and event.details["failed"] == []
    assert "Rosa" not in json.dumps(event.details)


def test_sending_the_study_again_stores_nothing_twice(live_server: Any, personas: Personas, case: Case) -> None:
    datasets = _datasets("stow-again")
    client = _client(live_server, f"/dicomweb/cases/{case.number}", _clinician_token(personas))
    client.store_instances(datasets)
    files = StoredObject.objects.filter(file_type="dicom").count()

    again = client.store_instances(datasets)

    assert len(again.ReferencedSOPSequence) == SLICES and "FailedSOPSequence" not in again
    assert StoredObject.objects.filter(file_type="dicom").count() == files == SLICES
    assert Instance.objects.filter(series__study__case=case).count() == SLICES
    assert Event.objects.filter(action="dicomweb.stored").last().details["duplicates"] == SLICES


def test_one_malformed_part_fails_alone(live_server: Any, personas: Personas, case: Case) -> None:
    datasets = _datasets("stow-partial", slices=3)
    good = [_encoded(d) for d in datasets]
    not_dicom = binary_stl(3000)  # an accepted file type, but no DICOM instance
    truncated = good[0][:200]  # 'DICM' and the start of a header
    body = _body(_part(good[0]), _part(not_dicom), _part(good[1]), _part(truncated), _part(good[2]))
    response = _post(live_server, f"/dicomweb/cases/{case.number}/studies", _clinician_token(personas), body)

    assert response.status_code == 202
    answer = _answer(response)
    assert sorted(i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence) == sorted(
        d.SOPInstanceUID for d in datasets
    )
    assert [i.FailureReason for i in answer.FailedSOPSequence] == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND]
    # What failed was never kept: only the three instances became files (of the case).
    assert StoredObject.objects.filter(file_type__in=["dicom", "stl"]).count() == 3
    assert Attachment.objects.filter(case=case).count() == 3
    failed = Event.objects.get(action="dicomweb.stored").details["failed"]
    assert [(f["part"], f["reason"]) for f in failed] == [(2, "C000"), (4, "C000")]


def test_nothing_stored_answers_409_with_every_failure(live_server: Any, personas: Personas, case: Case) -> None:
    objects = StoredObject.objects.count()
    body = _body(_part(b"\0" * 128 + b"DICM" + b"\x02\x00garbage"), _part(b"plain text", "text/plain"))

    response = _post(live_server, f"/dicomweb/cases/{case.number}/studies", _clinician_token(personas), body)

    assert response.status_code == 409
    answer = _answer(response)
    assert [i.FailureReason for i in answer.FailedSOPSequence] == [CANNOT_UNDERSTAND, CANNOT_UNDERSTAND]
    assert "ReferencedSOPSequence" not in answer
    assert StoredObject.objects.count() == objects


def test_instances_of_another_study_fail_when_the_request_names_one(
    live_server: Any, personas: Personas, case: Case
) -> None:
    mine, other = _datasets("stow-mine", slices=2), _datasets("stow-other", slices=1)
    study_uid = mine[0].StudyInstanceUID
    client = _client(live_server, f"/dicomweb/cases/{case.number}", _clinician_token(personas))

    answer = client.store_instances([mine[0], other[0], mine[1]], study_instance_uid=study_uid)

    assert [i.ReferencedSOPInstanceUID for i in answer.ReferencedSOPSequence] == [d.SOPInstanceUID for d in mine]
    assert [(i.ReferencedSOPInstanceUID, i.FailureReason) for i in answer.FailedSOPSequence] == [
        (other[0].SOPInstanceUID, STUDY_MISMATCH)
    ]
    assert not Instance.objects.filter(sop_instance_uid=other[0].SOPInstanceUID).exists()


def test_without_a_case_the_instances_become_the_senders_own_uploads(live_server: Any, personas: Personas) -> None:
    datasets = _datasets("stow-inbox", slices=2)
    clinician = personas.members["clinician"]

    answer = _client(live_server, "/dicomweb", _clinician_token(personas)).store_instances(datasets)

    assert len(answer.ReferencedSOPSequence) == 2 and "FailedSOPSequence" not in answer
    assert "Value" not in answer.to_json_dict()[RETRIEVE_URL]  # not retrievable before it joins a case
    files = StoredObject.objects.filter(created_by=clinician, attached_at__isnull=True, file_type="dicom")
    assert files.count() == 2
    assert not Instance.objects.exists()  # indexed once attached to a case, as any upload
    event = Event.objects.get(action="dicomweb.stored")
    assert event.details["into"] == "files" and sorted(event.details["files"]) == sorted(str(f.pk) for f in files)
    # From the inbox, through the case's own attach rules, they become its study.
    case = draft_case(clinician_access(personas))
    access = clinician_access(personas)
    for stored_file in files:
        actions.attach_file(access, case, stored_file, kind="cbct", label="cbct")
    assert Instance.objects.filter(series__study__case=case).count() == 2


def test_limits_refuse_what_is_past_them(live_server: Any, personas: Personas, case: Case, settings: Settings) -> None:
    raw = _clinician_token(personas)
    settings.DICOMWEB_STOW_MAX_INSTANCES = 2
    datasets = _datasets("stow-limits", slices=3)
    body = _body(*(_part(_encoded(d)) for d in datasets))

    response = _post(live_server, f"/dicomweb/cases/{case.number}/studies", raw, body)

    assert response.status_code == 202
    answer = _answer(response)
    assert len(answer.ReferencedSOPSequence) == 2
    assert [i.FailureReason for i in answer.FailedSOPSequence] == [OUT_OF_RESOURCES]
    settings.DICOMWEB_STOW_MAX_BYTES = len(body) - 1
    too_large = _post(live_server, f"/dicomweb/cases/{case.number}/studies", raw, body)
    assert too_large.status_code == 413
    assert Attachment.objects.filter(case=case).count() == 2


def test_framing_and_media_type_are_checked(live_server: Any, personas: Personas, case: Case) -> None:
    raw = _clinician_token(personas)
    path = f"/dicomweb/cases/{case.number}/studies"
    instance = dicom_image("stow-framing")
    assert _post(live_server, path, raw, instance, "application/dicom").status_code == 415
    metadata_type = f'multipart/related; type="application/dicom+json"; boundary="{BOUNDARY}"'
    assert _post(live_server, path, raw, _body(_part(instance)), metadata_type).status_code == 415
    assert (
        _post(live_server, path, raw, _body(_part(instance)), 'multipart/related; type="application/dicom"').status_code
        == 400
    )
    assert _post(live_server, path, raw, b"no parts in here").status_code == 400
    cut = _post(live_server, path, raw, _body(_part(instance))[:-30])
    assert cut.status_code == 409 and [i.FailureReason for i in _answer(cut).FailedSOPSequence] == [CANNOT_UNDERSTAND]
    # A chunked body needs a server that de-chunks it (casebridge serve does: test_stow_serve.py);
    # Django's development server does not, and says so instead of storing an empty body.
    chunked = requests.post(
        f"{live_server.url}{path}",
        data=iter([_body(_part(instance))]),
        headers={"Authorization": f"Bearer {raw}", "Content-Type": CONTENT_TYPE},
        timeout=30,
    )
    assert chunked.status_code == 411
    assert not Attachment.objects.filter(case=case).exists()


# --- who may store -------------------------------------------------------------------------------
def _refused(live_server: Any, path: str, raw: str, status: int) -> None:
    objects = StoredObject.objects.count()
    response = _post(live_server, path, raw, _body(_part(dicom_image("stow-refused"))))
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"] == "application/problem+json"
    assert StoredObject.objects.count() == objects


def test_another_organization_gets_404_and_a_read_only_token_403(
    live_server: Any, personas: Personas, case: Case
) -> None:
    path = f"/dicomweb/cases/{case.number}/studies"
    outsider = _token(personas.outsider, personas.other_practice, ["cases:read", "cases:write"])
    _refused(live_server, path, outsider, 404)
    _refused(live_server, "/dicomweb/cases/CB-2026-999999/studies", _clinician_token(personas), 404)
    read_only = _clinician_token(personas, ["cases:read"])
    _refused(live_server, path, read_only, 403)
    _refused(live_server, "/dicomweb/studies", read_only, 403)
    # No credential at all: refused as a write without a CSRF token would be, before anything else.
    anonymous = requests.post(f"{live_server.url}{path}", data=b"", timeout=10)
    assert anonymous.status_code == 403 and "API token" in anonymous.json()["detail"]


def _received_by_the_lab(personas: Personas, case: Case) -> None:
    access = clinician_access(personas)
    for kind, label in (("scan", "upper"), ("scan", "lower"), ("scan", "bite"), ("photo", "shade"), ("photo", "shade")):
        attach(access, case, binary_stl(3000), kind=kind, label=label)
    actions.submit_case(access, case)
    lab = resolve(personas.lab_manager, personas.lab)
    assert lab is not None
    actions.confirm_receipt(lab, Case.objects.get(pk=case.pk))


def test_the_lab_stores_while_it_works_on_the_case_and_not_once_its_access_is_revoked(
    live_server: Any, personas: Personas, case: Case
) -> None:
    _received_by_the_lab(personas, case)
    lab = _token(personas.lab_manager, personas.lab, ["cases:read", "cases:write"])
    path = f"/dicomweb/cases/{case.number}/studies"
    stored_by_lab = _post(live_server, path, lab, _body(_part(dicom_image("stow-lab"))))
    assert stored_by_lab.status_code == 200
    # The practice sent the case: it takes no more files from the practice (409, not stored).
    _refused(live_server, path, _clinician_token(personas), 409)
    actions.revoke_lab_access(clinician_access(personas, "owner"), Case.objects.get(pk=case.pk))
    _refused(live_server, path, lab, 404)


def test_a_person_signed_in_with_mfa_stores_with_the_csrf_token(
    transactional_db: None, personas: Personas, case: Case
) -> None:
    body = _body(_part(dicom_image("stow-session")))
    path = f"/dicomweb/cases/{case.number}/studies"
    assert (
        signed_in_client(personas.members["clinician"]).post(path, body, content_type=CONTENT_TYPE).status_code == 200
    )
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(personas.members["clinician"])
    assert strict.post(path, body, content_type=CONTENT_TYPE).status_code == 403
    assert strict.get("/account/security/", secure=True).status_code == 200  # a form page sets the cookie
    made = strict.post(
        path,
        _body(_part(dicom_image("stow-session-2"))),
        content_type=CONTENT_TYPE,
        secure=True,
        HTTP_REFERER="https://testserver/account/security/",
        HTTP_X_CSRFTOKEN=strict.cookies[settings.CSRF_COOKIE_NAME].value,
    )
    assert made.status_code == 200, made.content
    assert Attachment.objects.filter(case=case).count() == 2
    # Someone whose membership was deactivated is refused, with a session as with a token.
    gone = signed_in_client(personas.deactivated).post(path, body, content_type=CONTENT_TYPE)
    assert gone.status_code == 404
