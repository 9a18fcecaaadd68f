"""The incident register: record, assess with the four factors, decide, follow the clocks;
compliance managers only; free text stays out of the audit log; the patients affected come
from the audit evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.compliance import incidents
from casebridge.compliance.models import Decision, Incident
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client

pytestmark = pytest.mark.django_db

FACTORS = {
    "factor_nature": "Names and dates of birth of 3 patients on a case list.",
    "factor_recipient": "A former employee.",
    "factor_acquired": "The list was displayed; no export.",
    "factor_mitigation": "Account removed within the hour; attestation of non-retention.",
}


def _officer(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    return access


def _incident(personas: Personas) -> Incident:
    return incidents.record_incident(
        _officer(personas),
        title="Former employee opened case list",
        description="Jane Roe's case list seen by a removed account.",
        discovered_at=timezone.now() - timedelta(days=2),
    )


def _assess(personas: Personas, incident: Incident, **changes: object) -> Incident:
    values: dict = {
        **FACTORS,
        "individuals_affected": 3,
        "most_in_one_state": 3,
        "under_gdpr": False,
        "contract_deadline_days": None,
        "decision": Decision.BREACH,
        "decision_rationale": "Viewed by an unauthorized person; cannot show low probability.",
    }
    values.update(changes)
    return incidents.assess(_officer(personas), incident, **values)


def test_a_decided_breach_gets_its_clocks_and_notices_are_marked(personas: Personas) -> None:
    incident = _incident(personas)
    assert incidents.clocks(incident) == []  # undecided: the clocks show once decided
    _assess(personas, incident)
    keys = [d.key for d in incidents.clocks(incident)]
    assert keys == ["individuals", "hhs"]
    incidents.mark_notice_sent(_officer(personas), incident, "individuals")
    incident.refresh_from_db()
    assert "individuals" in incident.notices
    with pytest.raises(ValidationError):
        incidents.mark_notice_sent(_officer(personas), incident, "media")
    logged = Event.objects.filter(action__startswith="compliance.incident.")
    assert logged.count() == 3 and all("Roe" not in str(e.details) for e in logged)


def test_not_a_breach_needs_every_factor_and_a_rationale(personas: Personas) -> None:
    incident = _incident(personas)
    with pytest.raises(ValidationError) as refused:
        _assess(personas, incident, factor_acquired="", decision=Decision.NOT_BREACH, decision_rationale="")
    assert {"factor_acquired", "decision_rationale"} <= set(refused.value.message_dict)
    incident.refresh_from_db()
    assert incident.decision == Decision.UNDECIDED
    _assess(personas, incident, decision=Decision.NOT_BREACH, decision_rationale="Encrypted; key not exposed.")
    assert incidents.clocks(incident) == []


def test_a_lab_is_a_business_associate_that_tells_the_practice(personas: Personas) -> None:
    manager = resolve(personas.lab_manager, personas.lab)
    assert manager is not None
    with pytest.raises(Forbidden):  # a lab manager does not manage compliance records
        incidents.record_incident(manager, title="x", description="y", discovered_at=timezone.now())
    owner = make_user("owner@lab.test")
    add_member(personas.lab, owner, "owner")
    lab = resolve(owner, personas.lab)
    assert lab is not None
    incident = incidents.record_incident(lab, title="Misdirected scan", description="y", discovered_at=timezone.now())
    values = {**FACTORS, "individuals_affected": 1, "most_in_one_state": 1, "under_gdpr": False}
    incidents.assess(
        lab,
        incident,
        **values,
        contract_deadline_days=5,
        decision=Decision.BREACH,
        decision_rationale="Sent to the wrong practice.",
    )
    [clock] = incidents.clocks(incident)
    assert clock.key == "covered_entity" and (clock.due - incident.discovered_at).days == 5


def test_the_patients_affected_come_from_the_audit_log(personas: Personas) -> None:
    staff = personas.members["staff"]
    record("case.viewed", actor=staff, organization=personas.practice, patient_ref="p-1")
    record("patient.viewed", actor=staff, organization=personas.practice, details={"patients": ["p-1", "p-2"]})
    record("case.viewed", actor=personas.members["clinician"], organization=personas.practice, patient_ref="p-3")
    found = incidents.affected_patients(
        _officer(personas),
        person=staff.email,
        since=timezone.now() - timedelta(hours=1),
        until=timezone.now() + timedelta(minutes=1),
    )
    assert found == ["p-1", "p-2"]


def test_the_pages_for_compliance_managers_only(personas: Personas) -> None:
    url = reverse("incidents", args=[personas.practice.slug])
    officer = signed_in_client(personas.members["compliance_officer"])
    created = officer.post(
        url,
        {
            "title": "Lost laptop",
            "description": "Encrypted laptop left in a taxi.",
            "discovered_at": (timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert created.status_code == 302
    incident = Incident.objects.get()
    future = officer.post(url, {"title": "x", "description": "y", "discovered_at": "2999-01-01T00:00"})
    assert future.status_code == 400 and 'id="id_discovered_at_errors"' in future.content.decode()
    detail = reverse("incident_detail", args=[personas.practice.slug, incident.pk])
    assert signed_in_client(personas.members["staff"]).get(detail).status_code == 403
    other = reverse("incident_detail", args=[personas.other_practice.slug, incident.pk])
    assert signed_in_client(personas.outsider).get(other).status_code == 404
    assert Incident.objects.count() == 1
