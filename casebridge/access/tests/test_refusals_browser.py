"""The refusals and list audit in a real browser: a front-desk member searches the case list and
tries the audit log; a practice technician forges the case page's "send to lab" form."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.tests.test_personas_cases import _connect
from casebridge.core.browser_testing import sign_in
from casebridge.core.testing import Personas, build_personas

pytestmark = pytest.mark.browser

PATIENT = "Jane Roe"


@pytest.fixture
def draft(transactional_db: None, vault_home: Path) -> tuple[Personas, Case]:
    personas = build_personas()
    _connect(personas, personas.lab)
    access = resolve(personas.members["clinician"], personas.practice)
    assert access is not None
    case = actions.create_case(
        access, patient_name=PATIENT, case_type="digital_crown", lab=personas.lab, items=[ItemInput("crown", tooth=36)]
    )
    return personas, case


def test_front_desk_search_and_audit_log_attempt_are_recorded(page: Page, draft: tuple[Personas, Case]) -> None:
    personas, case = draft
    staff = personas.members["staff"]
    sign_in(page, staff)
    page.goto(f"/o/{personas.practice.slug}/cases/")
    page.get_by_label("Search").fill("Jane")
    page.get_by_label("Search").press("Enter")
    expect(page.get_by_role("cell", name=PATIENT)).to_be_visible()
    shown = Event.objects.filter(action="patient.viewed", actor_id=str(staff.pk))
    assert shown.filter(details__searched=True, patient_ref=str(case.patient_id)).exists()
    assert "Jane" not in str([e.details for e in shown])

    response = page.goto(f"/o/{personas.practice.slug}/audit/")
    assert response is not None and response.status == 403
    [refused] = Event.objects.filter(action="access.denied", actor_id=str(staff.pk))
    assert refused.outcome == "denied" and refused.organization_id == personas.practice.pk


def test_a_forged_send_to_lab_by_a_technician_is_a_403_page(page: Page, draft: tuple[Personas, Case]) -> None:
    personas, case = draft
    technician = personas.members["technician"]
    sign_in(page, technician)
    page.goto(f"/o/{personas.practice.slug}/cases/{case.number}/")
    expect(page.get_by_role("button", name="Send to lab")).to_have_count(0)  # not offered to this role
    # The page's own CSRF token in a form the page does not offer.
    page.evaluate(
        """(url) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = url;
            const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
            for (const [name, value] of [["csrfmiddlewaretoken", token], ["operation", "submit"]]) {
                const input = document.createElement("input");
                input.type = "hidden";
                input.name = name;
                input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""",
        f"/o/{personas.practice.slug}/cases/{case.number}/action/",
    )
    expect(page.get_by_role("heading", name="You are not allowed to do this")).to_be_visible()
    case.refresh_from_db()
    assert case.status == Status.DRAFT and case.submitted_at is None
    assert Event.objects.filter(action="access.denied", actor_id=str(technician.pk), details__status=403).exists()
