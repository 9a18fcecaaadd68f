"""Compliance records whose time in effect has ended, for the retention run: HIPAA keeps its
documentation six years "from the date of its creation or the date when it last was in effect,
whichever is later" (45 CFR 164.316(b)(2)(i)), so each record's clock starts when it stopped
being in effect, and only records whose end the portal knows are ever due:

- an incident, once closed (with its notification letters);
- an access review, once completed (with its items);
- a risk assessment, once a later one is completed (with its answers, risk register entries and
  evidence files, crypto-shredded);
- a policy version, once a later version of the policy is approved (with its acknowledgements);
- a training attempt, once the same member passes the same module later;
- a vendor reassessment, once the vendor is reassessed again;
- a patient's request, once decided (a restriction: once lifted).

Everything else (BAAs and their signatures, vendors, officers, attestations, impact assessments,
the GDPR profile, training modules, the current version of each policy, the latest assessment)
is in effect until something replaces it that the portal does not record, and is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from django.db import transaction


@dataclass(frozen=True)
class Ended:
    kind: str  # "incident", "access_review", "risk_assessment", "policy_version", ...
    record: Any
    since: datetime  # when it stopped being in effect: the retention clock starts there
    patient_id: Any = None  # a patient's request: a hold on the patient keeps it


def ended(organization: Any, cutoff: datetime) -> list[Ended]:
    """The organization's compliance records out of effect since `cutoff` or earlier, oldest first."""
    found = [item for item in _all_ended(organization) if item.since <= cutoff]
    return sorted(found, key=lambda item: (item.since, item.kind, str(item.record.pk)))


def _all_ended(organization: Any) -> Iterator[Ended]:
    from casebridge.compliance.models import (
        AccessReview,
        Incident,
        Policy,
        RequestKind,
        RequestStatus,
        RiskAssessment,
        SubjectRequest,
        TrainingCompletion,
        VendorReassessment,
    )

    for incident in Incident.objects.filter(organization=organization, closed_at__isnull=False):
        yield from _out("incident", incident, incident.closed_at)
    for review in AccessReview.objects.filter(organization=organization, completed_at__isnull=False):
        yield from _out("access_review", review, review.completed_at)
    done = RiskAssessment.objects.filter(organization=organization, completed_at__isnull=False).order_by("completed_at")
    for assessment, next_assessment in pairwise(done):
        yield from _out("risk_assessment", assessment, next_assessment.completed_at)
    for policy in Policy.objects.filter(organization=organization):
        versions = list(policy.versions.order_by("number"))
        approved = [v for v in versions if v.approved_at is not None]
        for version, next_version in pairwise(approved):
            yield from _out("policy_version", version, next_version.approved_at)
        for draft in versions:  # a draft older than a version approved after it never took effect
            later = next((v for v in approved if v.number > draft.number), None)
            if draft.approved_at is None and later is not None:
                yield from _out("policy_version", draft, later.approved_at)
    attempts = TrainingCompletion.objects.filter(module__organization=organization).order_by(
        "user_id", "module_id", "completed_at", "pk"
    )
    by_member: dict[tuple[Any, Any], list[Any]] = {}
    for attempt in attempts:
        by_member.setdefault((attempt.user_id, attempt.module_id), []).append(attempt)
    for series in by_member.values():
        for index, attempt in enumerate(series):
            later_pass = next((p for p in series[index + 1 :] if p.passed), None)
            if later_pass is not None:
                yield from _out("training_attempt", attempt, later_pass.completed_at)
    reassessments = VendorReassessment.objects.filter(vendor__organization=organization).order_by(
        "vendor_id", "assessed_at", "pk"
    )
    by_vendor: dict[Any, list[Any]] = {}
    for reassessment in reassessments:
        by_vendor.setdefault(reassessment.vendor_id, []).append(reassessment)
    for runs in by_vendor.values():
        for run, next_run in pairwise(runs):
            yield from _out("vendor_reassessment", run, next_run.assessed_at)
    decided = SubjectRequest.objects.filter(organization=organization, decided_at__isnull=False).exclude(
        status=RequestStatus.OPEN
    )
    for request in decided:
        in_force = request.kind == RequestKind.RESTRICTION and request.status == RequestStatus.COMPLETED
        if in_force and request.lifted_at is None:
            continue  # a restriction in effect
        yield from _out(
            "patient_request", request, request.lifted_at if in_force else request.decided_at, request.patient_id
        )


def _out(kind: str, record: Any, since: datetime | None, patient_id: Any = None) -> Iterator[Ended]:
    if since is not None:
        yield Ended(kind, record, since, patient_id)


def destroy(item: Ended, organization: Any, *, reason: str) -> dict[str, Any]:
    """Delete one record with what belongs to it (its evidence files crypto-shredded through the
    vault); the certificate's line for it: kind, id, when it left effect, and its files' hashes."""
    from casebridge.retention.policies import _shred

    record = item.record
    record_id = str(record.pk)
    evidence = list(record.evidence.select_related("stored_object")) if item.kind == "risk_assessment" else []
    # The files first (crypto-shredding cannot be rolled back), then the rows in one transaction.
    files = [
        _shred(e.stored_object, organization, reason=reason, kind="compliance_file", case=None, since="")
        for e in evidence
        if e.stored_object.destroyed_at is None
    ]
    with transaction.atomic():
        for e in evidence:
            e.delete()
        if item.kind == "policy_version":
            record.acknowledgements.all().delete()
        record.delete()
    return {
        "kind": "compliance_record",
        "record": f"{item.kind} {record_id}",
        "case": "",
        "retained_since": item.since.isoformat(),
        "versions": [v for line in files for v in line["versions"]],
    }
