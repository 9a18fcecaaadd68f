"""Cancelling a case: the practice withdraws a draft, or a sent case before the lab received it;
audited, the lab is told (case number only) and loses access at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import Forbidden, case_for, resolve
from casebridge.accounts.actions import create_api_token
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case, CaseEvent, Status
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis

pytestmark = pytest.mark.django_db

REASON = "The patient moved away and will be treated elsewhere."


@pytest.fixture
def world(personas: Personas, vault_home: Path) -> Personas:
    """The practice connected to the lab under a BAA, as in test_workflow.py."""
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug="precision-lab", basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    org_actions.accept_connection(_lab(personas), connection)
    return personas


def _sent(p: Personas) -> Case:
    case = _ready_crown(p)
    actions.submit_case(_access(p), case)
    return case


def test_the_practice_cancels_a_draft_without_telling_the_lab(
    world: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    case = _ready_crown(world)
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_case(_access(world, "staff"), case, reason=REASON)
    case.refresh_from_db()
    assert case.status == Status.CANCELLED and case.lab_access_revoked_at is None
    event = Event.objects.get(action="case.cancelled")
    assert event.details == {"case": case.number, "previous_status": "draft", "lab_access_ended": False}
    assert event.patient_ref == str(case.patient_id) and REASON not in json.dumps(event.details)
    assert CaseEvent.objects.filter(case=case, status=Status.CANCELLED, note=REASON).exists()
    assert mail.outbox == []


def test_cancelling_a_sent_case_ends_the_labs_access_and_tells_the_lab(
    world: Personas,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = _sent(world)
    lab = _lab(world)
    assert case_for(lab, case.number) == case
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_case(_access(world), case, reason=REASON)
    case.refresh_from_db()
    assert case.status == Status.CANCELLED and case.lab_access_revoked_at is not None
    with pytest.raises(Http404):
        case_for(lab, case.number)
    [message] = mail.outbox
    assert message.to == ["manager@lab.test"] and case.number in message.subject
    assert "Jane" not in message.subject + message.body and "Roe" not in message.body
    assert Event.objects.get(action="case.cancelled").details["lab_access_ended"] is True


def test_a_case_the_lab_received_cannot_be_cancelled_and_nothing_changes(world: Personas) -> None:
    case = _sent(world)
    actions.confirm_receipt(_lab(world), case)
    with pytest.raises(ValidationError, match="not yet received"):
        actions.cancel_case(_access(world), case, reason=REASON)
    case.refresh_from_db()
    assert case.status == Status.RECEIVED and case.lab_access_revoked_at is None
    assert not Event.objects.filter(action="case.cancelled").exists()


def test_the_lab_cannot_receive_a_case_the_practice_cancelled_meanwhile(world: Personas) -> None:
    case = _sent(world)
    stale = Case.objects.get(pk=case.pk)  # the lab's page, loaded before the practice cancelled
    actions.cancel_case(_access(world), case, reason=REASON)
    with pytest.raises(ValidationError, match="changed meanwhile"):
        actions.confirm_receipt(_lab(world), stale)
    case.refresh_from_db()
    assert case.status == Status.CANCELLED and case.received_at is None


def test_only_the_practice_with_case_editing_cancels(world: Personas) -> None:
    case = _sent(world)
    lab_manager = _lab(world)
    with pytest.raises(Forbidden):  # lab managers work on cases; they do not edit them
        actions.cancel_case(lab_manager, case, reason=REASON)
    auditor = resolve(world.members["auditor"], world.practice)
    assert auditor is not None
    with pytest.raises(Forbidden):
        actions.cancel_case(auditor, case, reason=REASON)
    with pytest.raises(ValidationError, match="Say why"):
        actions.cancel_case(_access(world), case, reason="   ")
    case.refresh_from_db()
    assert case.status == Status.SUBMITTED


def test_a_cancelled_case_can_be_archived_and_not_cancelled_again(world: Personas) -> None:
    case = _ready_crown(world)
    actions.cancel_case(_access(world), case, reason=REASON)
    with pytest.raises(ValidationError):
        actions.cancel_case(_access(world), case, reason=REASON)
    actions.archive_case(_access(world), case)
    assert Event.objects.filter(action="case.cancelled").count() == 1


def test_cancelling_over_the_api(world: Personas) -> None:
    case = _sent(world)
    clinician = world.members["clinician"]
    _t, raw = create_api_token(
        organization=world.practice,
        name="pms",
        scopes=["cases:read", "cases:write"],
        days=1,
        actor=clinician,
        user=clinician,
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = f"/api/v1/cases/{case.number}/cancel"
    assert client.post(url, "{}", content_type="application/json").status_code == 422
    response = client.post(url, json.dumps({"reason": REASON}), content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(url, json.dumps({"reason": REASON}), content_type="application/json")
    assert again.status_code == 422 and again["Content-Type"] == "application/problem+json"


def test_a_read_only_token_cannot_cancel(world: Personas) -> None:
    case = _sent(world)
    clinician = world.members["clinician"]
    _t, raw = create_api_token(
        organization=world.practice, name="ro", scopes=["cases:read"], days=1, actor=clinician, user=clinician
    )
    response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        f"/api/v1/cases/{case.number}/cancel", json.dumps({"reason": REASON}), content_type="application/json"
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == Status.SUBMITTED


def test_the_case_page_offers_cancel_and_does_it(world: Personas) -> None:
    case = _sent(world)
    client = signed_in_client(world.members["clinician"])
    page = reverse("case_detail", args=[world.practice.slug, case.number])
    assert 'value="cancel"' in client.get(page).content.decode()
    action = reverse("case_action", args=[world.practice.slug, case.number])
    response = client.post(action, {"operation": "cancel", "text": REASON})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == Status.CANCELLED
    assert 'value="cancel"' not in client.get(page).content.decode()


def test_the_practice_starts_a_remake_from_the_case_page(world: Personas) -> None:
    case = _ready_crown(world)
    Case.objects.filter(pk=case.pk).update(status=Status.DELIVERED)  # the lab's steps: test_workflow.py
    client = signed_in_client(world.members["clinician"])
    url = reverse("case_action", args=[world.practice.slug, case.number])
    page = client.get(reverse("case_detail", args=[world.practice.slug, case.number])).content.decode()
    assert 'value="remake"' in page

    refused = client.post(url, {"operation": "remake", "text": ""}, follow=True)
    assert "Say why the case is remade." in refused.content.decode()
    assert not Case.objects.filter(remake_of=case).exists()

    started = client.post(url, {"operation": "remake", "text": "open margin distal"})
    remake = Case.objects.get(remake_of=case)
    assert started.status_code == 302 and started["Location"].endswith(f"/cases/{remake.number}/")
    assert remake.status == Status.DRAFT and "open margin distal" in remake.notes
