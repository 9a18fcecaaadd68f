"""The compliance dashboard (issue 16, item 10, first part): each checklist item the seeds name,
checked from live evidence where CaseBridge can know it, and said to be unknown where it
cannot yet (training, risk assessment): never a green light without evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from allauth.mfa.models import Authenticator
from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit import reviews
from casebridge.audit.api import record
from casebridge.audit.models import Event, PendingSeal
from casebridge.compliance.models import BaaStatus, Decision, Incident, Officers, Vendor
from casebridge.compliance.training import coverage as training_coverage
from casebridge.orgs.models import Membership, Organization
from casebridge.orgs.queries import connections_of
from casebridge.retention.models import BackupRun, RunKind

OK, ATTENTION, UNKNOWN = "ok", "attention", "unknown"


@dataclass
class Check:
    title: str
    state: str  # OK, ATTENTION or UNKNOWN
    evidence: str
    citation: str


def checks(organization: Organization) -> list[Check]:
    now = timezone.now()
    found: list[Check] = []
    officers = officers_of(organization)
    found.append(
        Check(
            "Privacy and security officers named",
            OK if officers.privacy_officer_id and officers.security_officer_id else ATTENTION,
            "Privacy officer: "
            + (officers.privacy_officer.display_name if officers.privacy_officer else "not named")
            + "; security officer: "
            + (officers.security_officer.display_name if officers.security_officer else "not named")
            + ".",
            "45 CFR 164.308(a)(2), 164.530(a)",
        )
    )

    members = Membership.objects.filter(organization=organization, is_active=True, user__is_active=True)
    total = members.count()
    enrolled = (
        members.filter(user__authenticator__type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN])
        .values("user")
        .distinct()
        .count()
    )
    found.append(
        Check(
            "Multi-factor authentication for everyone",
            OK if total and enrolled == total else ATTENTION,
            f"{enrolled} of {total} active members have a second factor (CaseBridge lets no one in without one).",
            "45 CFR 164.312(d); proposed 2025 rule",
        )
    )
    found.append(
        Check(
            "Encryption in transit and at rest",
            OK,
            "HTTPS only; every file encrypted at rest under its own key (envelope encryption), by construction.",
            "45 CFR 164.312(a)(2)(iv), (e)(2)(ii)",
        )
    )
    connections = connections_of(organization, active=True)
    carrying = sum(1 for c in connections if c.can_carry_phi)
    vendors = Vendor.objects.filter(organization=organization)
    unsigned = vendors.exclude(baa_status__in=[BaaStatus.SIGNED, BaaStatus.NOT_NEEDED]).count()
    found.append(
        Check(
            "Agreements with everyone who handles PHI",
            OK if carrying == connections.count() and vendors.exists() and not unsigned else ATTENTION,
            f"{carrying} of {connections.count()} connections carry patient data under a recorded agreement; "
            f"{vendors.count()} vendors listed, {unsigned} without a signed BAA"
            + ("" if vendors.exists() else " (list your vendors under Vendors)")
            + ".",
            "45 CFR 164.502(e), 164.504(e)",
        )
    )
    pending = PendingSeal.objects.count()
    verified = Event.objects.filter(action="audit.verified").order_by("-occurred_at").first()
    found.append(
        Check(
            "Tamper-evident audit log, verified",
            OK if verified and now - verified.occurred_at < timedelta(days=8) else ATTENTION,
            (f"Last verified {verified.occurred_at:%Y-%m-%d}" if verified else "Never verified")
            + f"; {pending} events waiting to be chained. Run `casebridge audit verify` (weekly at least).",
            "45 CFR 164.312(b), (c)(1)",
        )
    )
    late = reviews.overdue_days(organization)
    found.append(
        Check(
            "Regular review of activity",
            OK if not late else ATTENTION,
            f"Next review due {reviews.next_due(organization):%Y-%m-%d}"
            + (f"; overdue by {late} days." if late else "."),
            "45 CFR 164.308(a)(1)(ii)(D)",
        )
    )
    measured = reviews.metrics(organization)
    found.append(
        Check(
            "Access ends when people leave",
            OK if measured.actions_after_removal == 0 else ATTENTION,
            f"{measured.members_removed} members removed in 12 months; {measured.actions_after_removal} actions "
            "by them afterwards.",
            "45 CFR 164.308(a)(3)(ii)(C)",
        )
    )
    restore = BackupRun.objects.filter(kind=RunKind.RESTORE_TEST).order_by("-started_at").first()
    found.append(
        Check(
            "Backups that restore, tested",
            OK if restore and restore.ok and now - restore.started_at < timedelta(days=8) else ATTENTION,
            (
                f"Last restore test {restore.started_at:%Y-%m-%d}: {'passed' if restore.ok else 'FAILED'}"
                + (f" in {restore.rto_seconds:.0f} s" if restore.rto_seconds else "")
                if restore
                else "No restore test yet: `casebridge backup verify`."
            ),
            "45 CFR 164.308(a)(7)(ii)(A), (D)",
        )
    )
    open_incidents = Incident.objects.filter(organization=organization, closed_at__isnull=True).exclude(
        decision=Decision.NOT_BREACH
    )
    found.append(
        Check(
            "Incidents assessed and notified in time",
            OK if not open_incidents.exists() else ATTENTION,
            f"{open_incidents.count()} incidents undecided or with notices to follow.",
            "45 CFR 164.308(a)(6), 164.404-410",
        )
    )
    taught = training_coverage(organization)
    found.append(
        Check(
            "Workforce training",
            UNKNOWN if not taught.required else OK if taught.done == taught.required else ATTENTION,
            (
                f"{taught.done} of {taught.required} assigned trainings complete, {taught.overdue} overdue."
                if taught.required
                else "No training module assigned yet: write one under Training."
            ),
            "45 CFR 164.308(a)(5)",
        )
    )
    for title, citation in (("Security risk assessment", "45 CFR 164.308(a)(1)(ii)(A)"),):
        found.append(Check(title, UNKNOWN, "Not tracked in CaseBridge yet: keep your own evidence.", citation))
    return found


def officers_of(organization: Organization) -> Officers:
    officers, _ = Officers.objects.get_or_create(organization=organization)
    return officers


def name_officers(access: OrgAccess, *, privacy: User | None, security: User | None) -> Officers:
    """Name the officers: active members of the organization only; audited."""
    access.require(Perm.COMPLIANCE_MANAGE)
    allowed = set(
        Membership.objects.filter(organization=access.organization, is_active=True, user__is_active=True).values_list(
            "user_id", flat=True
        )
    )
    errors = {
        field: "Choose an active member of the organization."
        for field, person in (("privacy", privacy), ("security", security))
        if person is not None and person.pk not in allowed
    }
    if errors:
        raise ValidationError(errors)
    officers = officers_of(access.organization)
    officers.privacy_officer, officers.security_officer, officers.named_at = privacy, security, timezone.now()
    officers.save()
    record(
        "compliance.officers.named",
        actor=access.actor,
        organization=access.organization,
        details={
            "privacy": str(privacy.pk) if privacy else None,
            "security": str(security.pk) if security else None,
        },
    )
    return officers
