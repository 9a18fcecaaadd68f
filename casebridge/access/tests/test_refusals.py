"""Refusals are answered in one way and audited in one place (access/middleware.py): an action's
policy.Forbidden is a 403 on web pages, and every 403 or 404 of a signed-in person or a token on a
protected route is an `access.denied` event, folded per actor and reason so a scanner cannot
flood the log. Pages that list patients leave one `patient.viewed` event naming them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from casebridge.access.policy import resolve
from casebridge.accounts import actions as account_actions
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.tests.test_personas_cases import _connect
from casebridge.cases.tests.test_workflow import _file
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

PATIENTS = ("Jane Roe", "John Poe")


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Folding counters live in the shared cache; each test starts with none.
    cache.clear()


def _draft(personas: Personas, patient: str = PATIENTS[0]) -> Case:
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    return actions.create_case(
        access, patient_name=patient, case_type="digital_crown", lab=personas.lab, items=[ItemInput("crown", tooth=36)]
    )


def _denied(**details: object) -> list[Event]:
    events = Event.objects.filter(action="access.denied", outcome="denied")
    return list(events.filter(**{f"details__{k}": v for k, v in details.items()}).order_by("id"))


# --- 13(a): an action's Forbidden is a 403 page, not a 500 ---------------------------------
def test_an_action_the_role_may_not_take_is_a_403_on_the_case_page(personas: Personas) -> None:
    _connect(personas, personas.lab)
    case = _draft(personas)
    # The practice's technician may see cases but not submit them (cases.edit).
    client = signed_in_client(personas.members["technician"])
    response = client.post(reverse("case_action", args=[personas.practice.slug, case.number]), {"operation": "submit"})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == Status.DRAFT and case.submitted_at is None
    [event] = _denied(status=403)
    assert event.actor_id == str(personas.members["technician"].pk)
    assert event.organization_id == personas.practice.pk
    assert event.details["route"] == "o/<slug:org>/cases/<str:number>/action/"
    assert event.details["number"] == case.number


def test_attaching_without_the_permission_is_a_403_from_the_same_place(personas: Personas, vault_home: Path) -> None:
    _connect(personas, personas.lab)
    case = _draft(personas)
    technician = personas.members["technician"]
    access = resolve(technician, personas.practice)
    assert access is not None
    upload = _file(access)  # technicians may upload, but attaching to a draft is the practice's edit
    response = signed_in_client(technician).post(
        reverse("case_attach", args=[personas.practice.slug, case.number]), {"file": str(upload.pk), "kind": "scan"}
    )
    assert response.status_code == 403 and not case.attachments.exists()


# --- item 9: refusals are audited ------------------------------------------------------------
def test_a_front_desk_member_opening_the_audit_log_is_recorded(personas: Personas) -> None:
    staff = personas.members["staff"]
    response = signed_in_client(staff).get(reverse("audit_log", args=[personas.practice.slug]))
    assert response.status_code == 403
    [event] = _denied(status=403, route="o/<slug:org>/audit/")
    assert (event.actor_id, event.organization_id, event.details["folded"]) == (str(staff.pk), personas.practice.pk, 0)


def test_another_organizations_case_and_file_and_an_unknown_number_are_recorded(
    personas: Personas, vault_home: Path
) -> None:
    _connect(personas, personas.lab)
    case = _draft(personas)
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    stored = _file(access)
    actions.attach_file(access, case, stored, kind="scan", label="upper")
    outsider, other = personas.outsider, personas.other_practice
    client = signed_in_client(outsider)
    _token, raw = account_actions.create_api_token(
        organization=other, name="probe", scopes=["cases:read"], days=1, actor=outsider, user=outsider
    )
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    probes = [
        lambda: client.get(reverse("case_detail", args=[other.slug, case.number])),
        lambda: client.get(reverse("case_detail", args=[personas.practice.slug, case.number])),
        lambda: client.get(reverse("case_detail", args=[other.slug, "CB-2026-999999"])),
        lambda: bearer.get(reverse("file_content", args=[stored.pk])),
        lambda: bearer.get(f"/api/v1/cases/{case.number}"),
    ]
    statuses = []
    for probe in probes:
        cache.clear()  # each one recorded on its own: folding is the scanner test's subject
        statuses.append(probe().status_code)
    assert statuses == [404] * 5
    mine = [e for e in _denied(status=404) if e.actor_id == str(outsider.pk)]
    assert len(mine) == 5
    # Every refusal lands in the prober's own organization, never in the one probed.
    assert {e.organization_id for e in mine} == {other.pk}
    routes = {e.details["route"] for e in mine}
    assert routes == {
        "o/<slug:org>/cases/<str:number>/",
        "api/v1/files/<uuid:file_id>/content",
        "api/v1/cases/<number>",
    }
    assert {e.details.get("number") for e in mine} >= {case.number, "CB-2026-999999"}
    assert any(e.details.get("file_id") == str(stored.pk) for e in mine)
    # The bearer token's refusal names the token, like every event it causes.
    assert any(e.details.get("token") for e in mine)


def test_what_the_caller_typed_into_the_url_never_reaches_the_log(personas: Personas) -> None:
    client = signed_in_client(personas.members["clinician"])
    response = client.get(reverse("case_detail", args=[personas.practice.slug, "Jane Roe 1961-04-02"]))
    assert response.status_code == 404
    [event] = _denied(status=404)
    assert "Jane" not in str(event.details) and "1961" not in str(event.details)
    assert "number" not in event.details


def test_anonymous_and_public_refusals_are_not_access_events(personas: Personas) -> None:
    # Anonymous callers are sent to sign in; a public route audits its own refusals.
    Client().get(reverse("case_detail", args=[personas.practice.slug, "CB-2026-000001"]))
    signed_in_client(personas.members["clinician"]).get("/s/not-a-link/")
    assert _denied() == []


def test_a_scanner_is_folded_into_one_event_per_window_which_counts_the_rest(
    personas: Personas, settings: Settings
) -> None:
    # Long enough for the probes below to fall into one window even on a loaded machine.
    settings.AUDIT_REFUSAL_WINDOW_SECONDS = 2
    clinician = personas.members["clinician"]
    client = signed_in_client(clinician)
    numbers = [f"CB-2026-{n:06d}" for n in range(900000, 900012)]
    for number in numbers:
        assert client.get(reverse("case_detail", args=[personas.practice.slug, number])).status_code == 404
    [first] = _denied(status=404)
    assert first.details["folded"] == 0 and first.details["number"] == numbers[0]
    # Another reason (a 403) and another actor are not folded into that one.
    staff = signed_in_client(personas.members["staff"])
    assert staff.get(reverse("case_detail", args=[personas.practice.slug, numbers[0]])).status_code == 404
    assert client.get(reverse("audit_log", args=[personas.practice.slug])).status_code == 403
    assert len(_denied(status=404)) == 2 and len(_denied(status=403)) == 1
    # The window ends (the database cache keeps expiry times in whole seconds, so a 2 s entry can
    # live almost 3 s): the next refusal is recorded and reports the folded ones.
    time.sleep(3.1)
    client.get(reverse("case_detail", args=[personas.practice.slug, "CB-2026-123456"]))
    mine = [e for e in _denied(status=404) if e.actor_id == str(clinician.pk)]
    assert [e.details["folded"] for e in mine] == [0, len(numbers) - 1]


# --- item 9: pages listing patients are audited ---------------------------------------------
def test_the_case_list_and_its_search_record_the_patients_shown(personas: Personas) -> None:
    _connect(personas, personas.lab)
    cases = [_draft(personas, patient) for patient in PATIENTS]
    client = signed_in_client(personas.members["staff"])
    page = client.get(reverse("case_list", args=[personas.practice.slug]))
    assert page.status_code == 200 and PATIENTS[0] in page.content.decode()
    [listed] = Event.objects.filter(action="patient.viewed")
    assert listed.details["via"] == "web.case_list" and listed.details["searched"] is False
    assert sorted(listed.details["patients"]) == sorted(str(c.patient_id) for c in cases)
    assert sorted(listed.details["cases"]) == sorted(c.number for c in cases)
    assert listed.patient_ref == ""  # two patients: the references are in details

    found = client.post(
        reverse("case_list", args=[personas.practice.slug]), {"q": "Jane", "view": "Jane Roe"}, follow=True
    )
    assert found.status_code == 200
    searched = Event.objects.filter(action="patient.viewed").latest("id")
    assert searched.details["searched"] is True and searched.details["view"] == "open"
    assert searched.patient_ref == str(cases[0].patient_id) and searched.details["cases"] == [cases[0].number]
    assert "Jane" not in str(searched.details)

    # A page showing no patient writes nothing.
    client.post(reverse("case_list", args=[personas.practice.slug]), {"q": "nobody"}, follow=True)
    assert Event.objects.filter(action="patient.viewed").count() == 2


def test_the_api_list_is_one_event_per_page_not_one_per_case(personas: Personas) -> None:
    _connect(personas, personas.lab)
    cases = [_draft(personas, patient) for patient in PATIENTS]
    user = personas.members["clinician"]
    _token, raw = account_actions.create_api_token(
        organization=personas.practice, name="list", scopes=["cases:read"], days=1, actor=user, user=user
    )
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/cases")
    assert response.status_code == 200 and len(response.json()["results"]) == 2
    assert not Event.objects.filter(action="case.viewed").exists()
    [listed] = Event.objects.filter(action="patient.viewed")
    assert listed.details["via"] == "api.list"
    assert sorted(listed.details["patients"]) == sorted(str(c.patient_id) for c in cases)


def test_head_on_a_file_is_audited(personas: Personas, vault_home: Path) -> None:
    _connect(personas, personas.lab)
    case = _draft(personas)
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    stored = _file(access)
    actions.attach_file(access, case, stored, kind="scan", label="upper")
    stored.refresh_from_db()
    current = stored.versions.get(version=stored.current_version)
    response = signed_in_client(personas.members["clinician"]).head(reverse("file_content", args=[stored.pk]))
    assert response.status_code == 200 and response["Content-Length"] == str(current.size)
    [event] = Event.objects.filter(action="file.inspected")
    assert event.patient_ref == str(case.patient_id) and event.details["case"] == case.number
    assert not Event.objects.filter(action="file.downloaded").exists()


def test_the_draft_form_which_shows_the_patient_is_an_opened_case(personas: Personas) -> None:
    _connect(personas, personas.lab)
    case = _draft(personas)
    page = signed_in_client(personas.members["clinician"]).get(
        reverse("case_edit", args=[personas.practice.slug, case.number])
    )
    assert page.status_code == 200 and PATIENTS[0] in page.content.decode()
    [event] = Event.objects.filter(action="case.viewed")
    assert event.patient_ref == str(case.patient_id) and event.details["via"] == "web.edit"
