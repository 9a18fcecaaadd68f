"""Which roles each kind of organization has: the lists people pick from and the rule the actions
enforce when a role is handed out (to a member, an invitation or a service account).

- A dental lab makes the work: technicians and lab managers, no clinicians (nobody at a lab
  prescribes).
- A dental practice prescribes: clinicians and staff, no technician or lab manager (those roles
  move a case through a lab's production, which a practice never does).
- An imaging center takes and reads scans for referring practices: its radiologists are
  clinicians and its technologists staff, as in a practice. It runs no lab production line, so
  it has no technician or lab manager either; its connections are managed by owners and admins.

Owners, administrators, compliance officers and auditors exist everywhere.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from casebridge.access.roles import Role
from casebridge.orgs.models import OrgKind

_EVERYWHERE = (Role.OWNER, Role.ADMIN)
_OVERSIGHT = (Role.COMPLIANCE_OFFICER, Role.AUDITOR)

ROLES_BY_KIND: dict[str, tuple[Role, ...]] = {
    OrgKind.PRACTICE: (*_EVERYWHERE, Role.CLINICIAN, Role.STAFF, *_OVERSIGHT),
    OrgKind.LAB: (*_EVERYWHERE, Role.LAB_MANAGER, Role.TECHNICIAN, Role.STAFF, *_OVERSIGHT),
    OrgKind.IMAGING: (*_EVERYWHERE, Role.CLINICIAN, Role.STAFF, *_OVERSIGHT),
}


def roles_of_kind(kind: str) -> tuple[Role, ...]:
    return ROLES_BY_KIND.get(kind, ())


def role_choices(kind: str, *, exclude: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(value, label) pairs for a select of roles in an organization of ``kind``."""
    return [(role.value, role.label) for role in roles_of_kind(kind) if role not in exclude]


def check_role_fits(kind: str, role: str) -> None:
    """Refuse a role the organization's kind does not have, naming the kind and what it has."""
    if role not in Role.values:
        raise ValidationError(f"Role must be one of: {', '.join(label for _v, label in role_choices(kind))}.")
    if role not in roles_of_kind(kind):
        kind_label = OrgKind(kind).label.lower()
        article = "an" if kind_label[0] in "aeiou" else "a"
        allowed = ", ".join(label for _v, label in role_choices(kind))
        raise ValidationError(f"{Role(role).label} is not a role in {article} {kind_label}. Choose one of: {allowed}.")
