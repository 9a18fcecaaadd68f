"""De-identification on receipt (issue 14, item 4): an organization that turns it on sees and
downloads de-identified copies of the files of cases another organization sent it (the same
deid/export.py path as Download de-identified), while the practice that sent them keeps getting
the originals and the vault keeps them untouched. Only an owner or administrator of the receiving
organization, re-authenticated, changes the setting; it is audited."""

from __future__ import annotations

import io
import json
import time

import pydicom
import pytest
from django.urls import reverse

from casebridge.access import policy
from casebridge.access.principal import Principal
from casebridge.access.roles import Role
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.api.tests.conftest import World, ready_case
from casebridge.api.tests.test_download_deidentified import PATIENT_NAME, _attach
from casebridge.audit.models import Event
from casebridge.cases.models import Case
from casebridge.core.testing import add_member, make_user, signed_in_client
from casebridge.deid import export
from casebridge.deid.dicom import new_uid
from casebridge.imaging import synthetic
from casebridge.imaging.models import Study
from casebridge.sharing.tests.test_download_all import unzip
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject

pytestmark = pytest.mark.django_db


def _sent_case(world: World) -> tuple[str, bytes, str]:
    """A case sent to the lab holding one DICOM image with the patient's name in it."""
    number = ready_case(world)
    original = synthetic.dicom_image("receipt", patient_name=PATIENT_NAME)
    file_id = _attach(world, number, original)
    assert world.api().post(f"cases/{number}/submit").status_code == 200
    return number, original, file_id


def _receive_deidentified(world: World, on: bool = True) -> None:
    world.lab.deidentify_on_receipt = on
    world.lab.save(update_fields=["deidentify_on_receipt"])


def _dicoms(response: object) -> dict[str, pydicom.Dataset]:
    entries = unzip(response)
    return {name: pydicom.dcmread(io.BytesIO(body)) for name, body in entries.items() if name.endswith(".dcm")}


def _lab_owner(world: World) -> object:
    owner = make_user("owner@lab.test")
    add_member(world.lab, owner, Role.OWNER)
    return owner


# --- downloads --------------------------------------------------------------------------------
def test_with_the_setting_on_the_labs_zip_holds_no_patient_name(world: World) -> None:
    number, original, file_id = _sent_case(world)
    _receive_deidentified(world)

    response = world.api("technician").client.get(f"/api/v1/cases/{number}/files.zip")  # not asked for

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{number}_deidentified.zip"'
    entries = unzip(response)
    assert export.REPORT_JSON in entries and export.REPORT_TXT in entries
    dicoms = {n: pydicom.dcmread(io.BytesIO(b)) for n, b in entries.items() if n.endswith(".dcm")}
    assert len(dicoms) == 1
    (ds,) = dicoms.values()
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != PATIENT_NAME
    assert all(PATIENT_NAME.encode() not in body for body in entries.values())
    event = Event.objects.get(action="case.files_downloaded")
    assert event.details["on_receipt"] is True and event.details["deidentified"] is True
    assert file_id in event.details["files"] and event.patient_ref
    # the original stays untouched in the vault
    stored = StoredObject.objects.get(pk=file_id)
    assert b"".join(bytes(p) for p in vault.read_version(vault.get_version(stored))) == original


def test_with_the_setting_on_a_single_download_is_the_de_identified_copy(world: World) -> None:
    number, original, file_id = _sent_case(world)
    _receive_deidentified(world)
    lab = world.api("technician")

    response = lab.client.get(f"/api/v1/files/{file_id}/content")

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    ds = pydicom.dcmread(io.BytesIO(body))
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) != PATIENT_NAME
    assert PATIENT_NAME.encode() not in body and body != original
    assert response["Content-Disposition"].startswith(f'attachment; filename="{number}_')
    event = Event.objects.get(action="file.downloaded")
    assert event.details["on_receipt"] is True and event.details["deidentified"] is True
    assert event.details["options"] == [] and event.details["case"] == number
    # a byte range cannot be asked of a copy: the whole copy comes back
    ranged = lab.client.get(f"/api/v1/files/{file_id}/content", HTTP_RANGE="bytes=0-9")
    assert ranged.status_code == 200 and b"".join(ranged.streaming_content) == body
    # HEAD: nothing sent, inspected as a de-identified copy
    head = lab.client.head(f"/api/v1/files/{file_id}/content")
    assert head.status_code == 200
    assert Event.objects.get(action="file.inspected").details["on_receipt"] is True
    # signed in on the web, the file link of the case page gives the same copy
    web = signed_in_client(world.technician).get(reverse("file_content", args=[file_id]))
    assert PATIENT_NAME.encode() not in b"".join(web.streaming_content)


def test_a_file_that_cannot_be_de_identified_is_refused_never_the_original(world: World) -> None:
    number = ready_case(world)
    good = synthetic.dicom_image("cut", patient_name=PATIENT_NAME)
    file_id = _attach(world, number, good[: len(good) - 300])  # truncated: refused by the engine
    world.api().post(f"cases/{number}/submit")
    _receive_deidentified(world)

    response = world.api("technician").client.get(f"/api/v1/files/{file_id}/content")

    assert response.status_code == 409
    assert PATIENT_NAME not in response.content.decode() and "de-identified" in response.content.decode()
    assert not Event.objects.filter(action="file.downloaded").exists()


def test_with_the_setting_off_the_lab_gets_the_originals(world: World) -> None:
    number, original, file_id = _sent_case(world)
    lab = world.api("technician")

    single = lab.client.get(f"/api/v1/files/{file_id}/content")
    archive = lab.client.get(f"/api/v1/cases/{number}/files.zip")

    assert b"".join(single.streaming_content) == original
    assert archive["Content-Disposition"] == f'attachment; filename="{number}.zip"'
    (ds,) = _dicoms(archive).values()
    assert str(ds.PatientName) == PATIENT_NAME
    assert "on_receipt" not in Event.objects.get(action="file.downloaded").details


def test_the_sending_practice_always_gets_the_originals(world: World) -> None:
    number, original, file_id = _sent_case(world)
    _receive_deidentified(world)
    world.practice.deidentify_on_receipt = True  # its own cases are not received: no effect
    world.practice.save(update_fields=["deidentify_on_receipt"])
    practice = world.api()

    single = practice.client.get(f"/api/v1/files/{file_id}/content")
    archive = practice.client.get(f"/api/v1/cases/{number}/files.zip")

    assert b"".join(single.streaming_content) == original
    (ds,) = _dicoms(archive).values()
    assert str(ds.PatientName) == PATIENT_NAME
    assert not any("on_receipt" in e.details for e in Event.objects.filter(action__startswith="file.downloaded"))
    page = signed_in_client(world.personas.members["clinician"]).get(
        reverse("case_detail", args=[world.practice.slug, number])
    )
    assert "data-received-deidentified" not in page.content.decode()


def test_the_labs_case_page_says_its_files_come_de_identified(world: World) -> None:
    number, _original, _file_id = _sent_case(world)
    url = reverse("case_detail", args=[world.lab.slug, number])
    client = signed_in_client(world.technician)
    assert "data-received-deidentified" not in client.get(url).content.decode()
    _receive_deidentified(world)
    assert "data-received-deidentified" in client.get(url).content.decode()


def test_dicomweb_serves_received_cases_de_identified_with_the_setting_on(world: World) -> None:
    number, _original, _file_id = _sent_case(world)
    case = Case.objects.get(number=number)
    Study.objects.create(case=case, study_uid="1.2.3.4", organization=world.practice)
    lab, practice = world.api("technician"), world.api()

    def studies(api: object) -> list[str]:
        response = api.client.get("/dicomweb/studies")
        assert response.status_code in (200, 204)
        return [] if response.status_code == 204 else [s["0020000D"]["Value"][0] for s in response.json()]

    assert studies(lab) == ["1.2.3.4"]
    _receive_deidentified(world)
    # by the case's de-identified UID only (imaging/tests/test_dicomweb_deidentified.py has the rest)
    assert studies(lab) == [new_uid("1.2.3.4", export.case_secret(case))]
    assert policy.deidentified_studies(Principal(world.technician)).count() == 1
    assert studies(practice) == ["1.2.3.4"]


# --- the setting ------------------------------------------------------------------------------
def test_an_owner_turns_it_on_with_re_authentication_and_it_is_audited(world: World) -> None:
    owner = _lab_owner(world)
    url = reverse("org_settings", args=[world.lab.slug])
    assert 'name="deidentify_on_receipt"' in signed_in_client(owner).get(url).content.decode()

    stale = signed_in_client(owner, reauthenticated=False)
    session = stale.session
    session[SESSION_AUTH_AT] = time.time() - 600  # signed in ten minutes ago
    session.save()
    response = stale.post(url, {"section": "receipt", "deidentify_on_receipt": "on"})
    world.lab.refresh_from_db()
    assert response.status_code == 302 and "/reauthenticate/" in response["Location"]
    assert not world.lab.deidentify_on_receipt

    client = signed_in_client(owner)
    assert client.post(url, {"section": "receipt", "deidentify_on_receipt": "on"}).status_code == 302
    world.lab.refresh_from_db()
    assert world.lab.deidentify_on_receipt
    event = Event.objects.get(action="org.setting.changed")
    assert event.details == {"deidentify_on_receipt": [False, True]} and event.organization_id == world.lab.pk
    assert client.post(url, {"section": "receipt"}).status_code == 302  # unticked: off again
    world.lab.refresh_from_db()
    assert not world.lab.deidentify_on_receipt
    assert Event.objects.filter(action="org.setting.changed").count() == 2


def test_only_owners_and_admins_of_the_organization_change_it(world: World) -> None:
    url = reverse("org_settings", args=[world.lab.slug])
    for user in (world.technician, world.personas.lab_manager):
        response = signed_in_client(user).post(url, {"section": "receipt", "deidentify_on_receipt": "on"})
        assert response.status_code == 403
    # another organization's owner (the sending practice's, an outsider's) cannot reach it
    for user in (world.personas.members["owner"], world.personas.outsider):
        response = signed_in_client(user).post(url, {"section": "receipt", "deidentify_on_receipt": "on"})
        assert response.status_code == 404
    world.lab.refresh_from_db()
    assert not world.lab.deidentify_on_receipt
    assert not Event.objects.filter(action="org.setting.changed").exists()


def test_the_setting_changes_nothing_else(world: World) -> None:
    owner = _lab_owner(world)
    before = (world.lab.idle_timeout_seconds, world.lab.lab_access_grace_days, world.lab.address)
    signed_in_client(owner).post(
        reverse("org_settings", args=[world.lab.slug]), {"section": "receipt", "deidentify_on_receipt": "on"}
    )
    world.lab.refresh_from_db()
    assert (world.lab.idle_timeout_seconds, world.lab.lab_access_grace_days, world.lab.address) == before
    assert json.dumps(Event.objects.get(action="org.setting.changed").details) == (
        '{"deidentify_on_receipt": [false, true]}'
    )
