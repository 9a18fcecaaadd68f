"""Compliance records under their retention policy: each is due only once it has been out of
effect for the policy's period (never less than six years, 164.316(b)(2)(i)), counted from when
it stopped being in effect; what is still in effect, and a held patient's requests, are kept."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.audit.models import Event
from casebridge.cases.models import Patient
from casebridge.compliance.models import (
    AccessReview,
    Incident,
    Policy,
    PolicyAcknowledgement,
    PolicyKind,
    PolicyVersion,
    RequestKind,
    RequestStatus,
    RiskAssessment,
    RiskEvidence,
    SubjectRequest,
    TrainingCompletion,
    TrainingModule,
    Vendor,
    VendorReassessment,
)
from casebridge.core.testing import Personas
from casebridge.imaging.tests.cases import clinician_access
from casebridge.retention import compliance_records, policies
from casebridge.retention.models import DestructionCertificate, RecordType
from casebridge.vault import api as vault
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
YEAR = timedelta(days=365)


@pytest.fixture
def owner(personas: Personas, vault_home: Path) -> OrgAccess:
    return clinician_access(personas, "owner")


def _records(access: OrgAccess, ended: Any) -> dict[str, Any]:
    """One record of each kind that went out of effect at `ended`, and its successor in effect."""
    org, user = access.organization, access.actor
    made: dict[str, Any] = {}
    made["incident"] = Incident.objects.create(
        organization=org, title="Lost laptop", description="Encrypted", discovered_at=ended, closed_at=ended
    )
    made["open_incident"] = Incident.objects.create(
        organization=org, title="Phishing", description="Under review", discovered_at=ended
    )
    made["access_review"] = AccessReview.objects.create(organization=org, completed_at=ended)
    made["risk_assessment"] = RiskAssessment.objects.create(organization=org, completed_at=ended - YEAR)
    made["current_assessment"] = RiskAssessment.objects.create(organization=org, completed_at=ended)
    content = binary_stl(900)  # any file the vault accepts
    stored = vault.put_stream(organization=org, actor=user, chunks=[content], length=len(content)).stored_object
    made["evidence"] = RiskEvidence.objects.create(
        assessment=made["risk_assessment"], title="Scan report", stored_object=stored
    )
    policy = Policy.objects.create(organization=org, kind=PolicyKind.RETENTION)
    made["policy_version"] = PolicyVersion.objects.create(policy=policy, number=1, body="v1", approved_at=ended - YEAR)
    PolicyAcknowledgement.objects.create(version=made["policy_version"], user=user)
    made["current_version"] = PolicyVersion.objects.create(policy=policy, number=2, body="v2", approved_at=ended)
    module = TrainingModule.objects.create(organization=org, title="HIPAA basics", body="...")
    made["training_attempt"] = TrainingCompletion.objects.create(module=module, user=user, score=40, passed=False)
    made["current_pass"] = TrainingCompletion.objects.create(module=module, user=user, score=90, passed=True)
    TrainingCompletion.objects.filter(pk=made["training_attempt"].pk).update(completed_at=ended - YEAR)
    TrainingCompletion.objects.filter(pk=made["current_pass"].pk).update(completed_at=ended)
    vendor = Vendor.objects.create(organization=org, name="Mail host")
    made["vendor_reassessment"] = VendorReassessment.objects.create(vendor=vendor, result="satisfactory")
    made["current_reassessment"] = VendorReassessment.objects.create(vendor=vendor, result="satisfactory")
    VendorReassessment.objects.filter(pk=made["vendor_reassessment"].pk).update(assessed_at=ended - YEAR)
    VendorReassessment.objects.filter(pk=made["current_reassessment"].pk).update(assessed_at=ended)
    patient = Patient.objects.create(practice=org, name="Ann Example")
    for name, kind in (("patient_request", RequestKind.ACCESS), ("restriction", RequestKind.RESTRICTION)):
        made[name] = SubjectRequest.objects.create(
            organization=org,
            patient=patient,
            kind=kind,
            received_on=date(2020, 1, 1),
            status=RequestStatus.COMPLETED,
            decided_at=ended,
        )
    return made


DUE = [
    "incident",
    "access_review",
    "risk_assessment",
    "policy_version",
    "training_attempt",
    "vendor_reassessment",
    "patient_request",
]
KEPT = ["open_incident", "current_assessment", "current_version", "current_pass", "current_reassessment", "restriction"]


def test_records_out_of_effect_longer_than_their_period_go_and_the_rest_stay(owner: OrgAccess) -> None:
    now = timezone.now()
    made = _records(owner, now - 6.5 * YEAR)
    stored = made["evidence"].stored_object
    policies.set_policy(owner, RecordType.COMPLIANCE_RECORDS, 7 * 365)
    assert policies.due(owner.organization) == ([], [])  # out of effect 6.5 years: not yet 7

    later = now + 1 * YEAR
    items, _kept = policies.due(owner.organization, later)
    assert sorted(i.record.kind for i in items) == sorted(DUE)

    assert policies.enforce_all(later) == len(DUE)  # the worker's run finds the organization by this policy alone
    certificate = DestructionCertificate.objects.get(organization=owner.organization)

    assert certificate is not None and certificate.items == len(DUE)
    for name in DUE:
        assert not type(made[name]).objects.filter(pk=made[name].pk).exists(), name
    for name in KEPT:
        assert type(made[name]).objects.filter(pk=made[name].pk).exists(), name
    stored.refresh_from_db()
    assert stored.destroyed_at is not None  # the evidence was crypto-shredded
    body = json.loads(certificate.body)
    kinds = sorted(d["record"].split()[0] for d in body["destroyed"] if d["kind"] == "compliance_record")
    assert kinds == sorted(DUE) and "Ann Example" not in certificate.body
    [assessment] = [d for d in body["destroyed"] if d["record"].startswith("risk_assessment")]
    assert [v["sha256"] for v in assessment["versions"]] == [stored.versions.get().sha256]  # its evidence
    assert Event.objects.get(action="retention.destroyed").details["compliance_records"] == len(DUE)


def test_the_six_year_floor_counts_from_the_end_of_effect_and_a_held_patients_requests_stay(owner: OrgAccess) -> None:
    now = timezone.now()
    made = _records(owner, now - 5 * YEAR)  # out of effect for 5 years (created up to a year before)
    policies.set_policy(owner, RecordType.COMPLIANCE_RECORDS, policies.SIX_YEARS_DAYS)
    assert policies.due(owner.organization) == ([], [])
    soon = now + 1.1 * YEAR
    assert {i.record.kind for i in policies.due(owner.organization, soon)[0]} == set(DUE)
    policies.place_hold(owner, reason="Patient complaint 2026-3", patient=made["patient_request"].patient)
    items, kept = policies.due(owner.organization, soon)
    assert "patient_request" not in {i.record.kind for i in items}
    assert [k.why for k in kept] == ["under legal hold"]


def test_a_draft_overtaken_by_an_approved_version_is_out_of_effect_from_that_approval(owner: OrgAccess) -> None:
    now = timezone.now()
    policy = Policy.objects.create(organization=owner.organization, kind=PolicyKind.SANCTIONS)
    draft = PolicyVersion.objects.create(policy=policy, number=1, body="never approved")
    PolicyVersion.objects.create(policy=policy, number=2, body="approved", approved_at=now - 7 * YEAR)
    PolicyVersion.objects.create(policy=policy, number=3, body="a newer draft")
    found = compliance_records.ended(owner.organization, now)
    assert [(e.kind, e.record.pk) for e in found] == [("policy_version", draft.pk)]
