"""Written policies (issue 16, item 9): six starting texts, each citing the rule it serves, which
the compliance officer edits (every save a new version, none deleted by hand: 45 CFR 164.316(b)(2)(i)
keeps them 6 years after they were last in effect, and only the organization's retention policy
for compliance records removes a replaced one: retention/compliance_records.py), approves
(audited), and members acknowledge, version by version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance.models import Policy, PolicyAcknowledgement, PolicyKind, PolicyVersion
from casebridge.compliance.policy_texts import TEMPLATES
from casebridge.orgs.models import Membership, Organization

MAX_BODY = 50_000

# What each policy is for, the rule it serves, and its starting text. "{org}" becomes the name.
CITATIONS = {
    PolicyKind.FILE_SHARING: "45 CFR 164.308(a)(4), 164.312(a), (b), (e), 164.502(b), 164.502(e)",
    PolicyKind.RETENTION: "45 CFR 164.316(b)(2), 164.530(j), 164.310(d)(2)(i)",
    PolicyKind.INCIDENT_RESPONSE: "45 CFR 164.308(a)(6), 164.400-414",
    PolicyKind.SANCTIONS: "45 CFR 164.308(a)(1)(ii)(C), 164.530(e)",
    PolicyKind.DEVICE_MEDIA: "45 CFR 164.310(c), 164.310(d)",
    PolicyKind.ACCESS_MANAGEMENT: "45 CFR 164.308(a)(3), (a)(4), 164.312(a), (d)",
}

WHY = {
    PolicyKind.FILE_SHARING: "How patient files go to and from the lab: the channel, what is sent, who sees it.",
    PolicyKind.RETENTION: "How long records and documentation are kept, and how they are destroyed.",
    PolicyKind.INCIDENT_RESPONSE: "What everyone does when something goes wrong with patient data.",
    PolicyKind.SANCTIONS: "What happens to workforce members who break the policies (required by HIPAA).",
    PolicyKind.DEVICE_MEDIA: "Laptops, phones, USB drives and paper: use, re-use and disposal.",
    PolicyKind.ACCESS_MANAGEMENT: "Who gets access to patient data, how it is granted, reviewed and removed.",
}


def _person(access: OrgAccess) -> User | None:
    return access.actor if isinstance(access.actor, User) else None


def template(kind: str, organization: Organization) -> str:
    return TEMPLATES[PolicyKind(kind)].format(org=organization.name)


def policy_of(organization: Organization, kind: str) -> Policy:
    policy, _ = Policy.objects.get_or_create(organization=organization, kind=PolicyKind(kind))
    return policy


def latest(policy: Policy) -> PolicyVersion | None:
    return policy.versions.order_by("-number").first()


def in_effect(policy: Policy) -> PolicyVersion | None:
    """The newest approved version: what members follow and acknowledge."""
    return policy.versions.filter(approved_at__isnull=False).order_by("-number").first()


def save(access: OrgAccess, kind: str, body: str) -> PolicyVersion:
    """A new version; an unchanged text makes none. Nothing is overwritten."""
    access.require(Perm.COMPLIANCE_MANAGE)
    body = body.replace("\r\n", "\n").strip()
    if not body:
        raise ValidationError({"body": "Write the policy's text."})
    if len(body) > MAX_BODY:
        raise ValidationError({"body": f"Keep the policy under {MAX_BODY} characters."})
    with transaction.atomic():
        policy = policy_of(access.organization, kind)
        Policy.objects.select_for_update().filter(pk=policy.pk).first()
        previous = latest(policy)
        if previous is not None and previous.body == body:
            raise ValidationError({"body": f"Nothing changed since version {previous.number}."})
        number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = PolicyVersion.objects.create(policy=policy, number=number, body=body, saved_by=_person(access))
        record(
            "compliance.policy.saved",
            actor=access.actor,
            organization=access.organization,
            details={"kind": policy.kind, "version": number},
        )
    return version


def approve(access: OrgAccess, version: PolicyVersion) -> PolicyVersion:
    """The compliance officer or owner approves the newest version; it takes effect now."""
    access.require(Perm.COMPLIANCE_MANAGE)
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().get(pk=version.pk)
        if version.policy.organization_id != access.organization.pk:
            raise ValidationError("Not a policy of this organization.")
        if version.approved_at is not None:
            raise ValidationError("This version is already approved.")
        newest = latest(version.policy)
        if newest is None or newest.pk != version.pk:
            raise ValidationError("Only the newest version can be approved: a later one was saved.")
        version.approved_at, version.approved_by = timezone.now(), _person(access)
        version.save(update_fields=["approved_at", "approved_by"])
        record(
            "compliance.policy.approved",
            actor=access.actor,
            organization=access.organization,
            details={"kind": version.policy.kind, "version": version.number},
        )
    return version


def acknowledge(access: OrgAccess, policy: Policy) -> PolicyAcknowledgement:
    """An active member states they read the version in effect; once per version."""
    access.require(Perm.ORG_VIEW)
    if access.membership is None or policy.organization_id != access.organization.pk:
        raise ValidationError("Only members acknowledge their organization's policies.")
    current = in_effect(policy)
    if current is None:
        raise ValidationError("This policy has no approved version to acknowledge yet.")
    if current.acknowledgements.filter(user_id=access.membership.user_id).exists():
        raise ValidationError("You already acknowledged this version.")
    ack = PolicyAcknowledgement.objects.create(version=current, user_id=access.membership.user_id)
    record(
        "compliance.policy.acknowledged",
        actor=access.actor,
        organization=access.organization,
        details={"kind": policy.kind, "version": current.number},
    )
    return ack


RETAIN_YEARS = 6


def kept_until(versions: list[PolicyVersion]) -> dict[object, date | None]:
    """Per version (newest first), the earliest date it may be discarded: six years after it was
    written or was last in effect, whichever is later (164.316(b)(2)(i)); None while in effect or
    never superseded by an approved version (it may still take effect)."""
    found: dict[object, date | None] = {}
    superseded_at = None  # when the next approved version took effect
    for version in versions:
        if version.approved_at is None:
            found[version.pk] = None if superseded_at is None else _plus_years(version.saved_at.date(), RETAIN_YEARS)
            continue
        found[version.pk] = None if superseded_at is None else _plus_years(superseded_at.date(), RETAIN_YEARS)
        superseded_at = version.approved_at
    return found


def _plus_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # February 29th
        return day.replace(year=day.year + years, day=28)


def missing(organization: Organization, version: PolicyVersion) -> list[User]:
    """Active members who have not acknowledged this version."""
    readers = set(version.acknowledgements.values_list("user_id", flat=True))
    return [
        m.user
        for m in Membership.objects.filter(organization=organization, is_active=True, user__is_active=True)
        .select_related("user")
        .order_by("user__email")
        if m.user_id not in readers
    ]


@dataclass
class Status:
    kind: str
    label: str
    why: str
    citation: str
    policy: Policy | None
    latest: PolicyVersion | None
    current: PolicyVersion | None
    acknowledged: int
    members: int
    mine: bool  # whether the viewer acknowledged the version in effect

    @property
    def awaiting_approval(self) -> bool:
        return self.latest is not None and self.latest.approved_at is None


def _active(organization: Organization) -> set[object]:
    return set(
        Membership.objects.filter(organization=organization, is_active=True, user__is_active=True).values_list(
            "user_id", flat=True
        )
    )


def statuses(organization: Organization, viewer_id: object = None) -> list[Status]:
    members = _active(organization)
    existing = {p.kind: p for p in Policy.objects.filter(organization=organization)}
    found = []
    for kind in PolicyKind:
        policy = existing.get(kind.value)
        newest = latest(policy) if policy else None
        current = in_effect(policy) if policy else None
        readers = set(current.acknowledgements.values_list("user_id", flat=True)) if current else set()
        found.append(
            Status(
                kind=kind.value,
                label=kind.label,
                why=WHY[kind],
                citation=CITATIONS[kind],
                policy=policy,
                latest=newest,
                current=current,
                acknowledged=len(readers & members),
                members=len(members),
                mine=viewer_id in readers,
            )
        )
    return found
