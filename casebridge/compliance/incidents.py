"""Security incidents and breaches: record, assess (the four factors of 45 CFR 164.402(2)),
decide breach or not with a rationale, and follow the notification clocks (compliance/clocks.py)
until every notice is marked sent. Free text stays in the incident; the audit events name the
incident and what changed, never its words (they may name patients)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.compliance.clocks import Deadline, deadlines
from casebridge.compliance.models import Decision, Incident
from casebridge.orgs.models import OrgKind

TEXT_LIMIT = 8000


def _audit(action: str, access: OrgAccess, incident: Incident, details: dict[str, object]) -> None:
    record(
        action,
        actor=access.actor,
        organization=access.organization,
        target=incident,
        details={"incident": str(incident.pk), **details},
    )


def _check_text(errors: dict[str, str], **texts: str) -> None:
    for name, text in texts.items():
        if len(text) > TEXT_LIMIT:
            errors[name] = f"Keep it under {TEXT_LIMIT:,} characters."


def record_incident(
    access: OrgAccess,
    *,
    title: str,
    description: str,
    discovered_at: datetime,
    occurred_at: datetime | None = None,
    systems: str = "",
    is_exercise: bool = False,
) -> Incident:
    access.require(Perm.COMPLIANCE_MANAGE)
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the incident a short title (no patient names)."
    if not description.strip():
        errors["description"] = "Say what happened, as far as it is known."
    if discovered_at > timezone.now():
        errors["discovered_at"] = "Discovery cannot be in the future."
    if occurred_at is not None and occurred_at > discovered_at:
        errors["occurred_at"] = "It cannot have happened after it was discovered."
    _check_text(errors, description=description)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        incident = Incident.objects.create(
            organization=access.organization,
            title=title.strip()[:200],
            description=description.strip(),
            discovered_at=discovered_at,
            occurred_at=occurred_at,
            systems=systems.strip()[:300],
            is_exercise=is_exercise,
            reported_by=access.actor if isinstance(access.actor, User) else None,
        )
        _audit(
            "compliance.incident.recorded",
            access,
            incident,
            {"exercise": is_exercise, "discovered_at": discovered_at.isoformat()},
        )
    return incident


def assess(
    access: OrgAccess,
    incident: Incident,
    *,
    factor_nature: str,
    factor_recipient: str,
    factor_acquired: str,
    factor_mitigation: str,
    individuals_affected: int,
    most_in_one_state: int,
    under_gdpr: bool,
    contract_deadline_days: int | None,
    decision: str,
    decision_rationale: str,
) -> Incident:
    """The 4-factor assessment and its decision. Deciding "not a breach" needs every factor
    answered and a rationale: the burden of proof is the organization's (164.414(b))."""
    access.require(Perm.COMPLIANCE_MANAGE)
    errors: dict[str, str] = {}
    factors = {
        "factor_nature": factor_nature.strip(),
        "factor_recipient": factor_recipient.strip(),
        "factor_acquired": factor_acquired.strip(),
        "factor_mitigation": factor_mitigation.strip(),
    }
    if decision not in Decision.values:
        errors["decision"] = "Choose a decision."
    elif decision != Decision.UNDECIDED:
        for name, text in factors.items():
            if not text:
                errors[name] = "Answer each of the four factors before deciding."
        if not decision_rationale.strip():
            errors["decision_rationale"] = "Write why: the decision and its reasons are kept six years."
    if most_in_one_state > individuals_affected:
        errors["most_in_one_state"] = "Cannot exceed the individuals affected."
    if contract_deadline_days is not None and not 1 <= contract_deadline_days <= 60:
        errors["contract_deadline_days"] = "A contract deadline is 1 to 60 days."
    _check_text(errors, decision_rationale=decision_rationale, **factors)
    if errors:
        raise ValidationError(errors)
    changed_decision = decision != incident.decision
    with transaction.atomic():
        for name, text in factors.items():
            setattr(incident, name, text)
        incident.individuals_affected = individuals_affected
        incident.most_in_one_state = most_in_one_state
        incident.under_gdpr = under_gdpr
        incident.contract_deadline_days = contract_deadline_days
        incident.decision = decision
        incident.decision_rationale = decision_rationale.strip()
        if changed_decision:
            incident.decided_at = timezone.now() if decision != Decision.UNDECIDED else None
            incident.decided_by = access.actor if isinstance(access.actor, User) else None
        incident.save()
        _audit(
            "compliance.incident.assessed",
            access,
            incident,
            {"decision": decision, "individuals": individuals_affected, "gdpr": under_gdpr},
        )
    return incident


def clocks(incident: Incident) -> list[Deadline]:
    """The notices a decided breach requires (none before the decision, none for "not a breach")."""
    if incident.decision != Decision.BREACH:
        return []
    return deadlines(
        incident.discovered_at,
        individuals=incident.individuals_affected,
        most_in_one_state=incident.most_in_one_state,
        business_associate=incident.organization.kind == OrgKind.LAB,
        contract_deadline_days=incident.contract_deadline_days,
        under_gdpr=incident.under_gdpr,
    )


def mark_notice_sent(access: OrgAccess, incident: Incident, key: str, sent_at: datetime | None = None) -> None:
    access.require(Perm.COMPLIANCE_MANAGE)
    if key not in {d.key for d in clocks(incident)}:
        raise ValidationError("That notice is not one this incident requires.")
    when = sent_at or timezone.now()
    with transaction.atomic():
        incident.notices = {**incident.notices, key: when.isoformat()}
        incident.save(update_fields=["notices"])
        _audit(
            "compliance.incident.notice_sent",
            access,
            incident,
            {"notice": key, "sent_at": when.isoformat()},
        )


def affected_patients(access: OrgAccess, *, person: str, since: datetime, until: datetime) -> list[str]:
    """The patient references one person's recorded actions in the organization touched in a time
    range (events about one patient, and lists that showed several): the audit evidence for
    "patients affected"."""
    access.require(Perm.COMPLIANCE_MANAGE)
    events = Event.objects.filter(
        Q(actor_label__iexact=person) | Q(actor_id=person),
        organization_id=access.organization.pk,
        occurred_at__gte=since,
        occurred_at__lt=until,
    ).only("patient_ref", "details")
    refs: dict[str, None] = {}
    for event in events.iterator(chunk_size=2000):
        if event.patient_ref:
            refs[event.patient_ref] = None
        listed = event.details.get("patients") if isinstance(event.details, dict) else None
        for ref in listed if isinstance(listed, list) else ():
            refs[str(ref)] = None
    return list(refs)
