"""Read-side helpers for case pages and the API: who can be chosen as lab or doctor."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from casebridge.accounts.models import User
from casebridge.orgs.models import Connection, ConnectionStatus, Membership, Organization, OrgKind


@dataclass(frozen=True)
class LabChoice:
    lab: Organization
    can_receive: bool  # an agreement basis is recorded: the lab may receive patient data


def connected_labs(practice: Organization) -> list[LabChoice]:
    """Labs with an accepted connection to ``practice``, by name; never any other lab."""
    connections = (
        Connection.objects.filter(Q(requester=practice) | Q(recipient=practice), status=ConnectionStatus.ACTIVE)
        .select_related("requester", "recipient")
        .order_by("pk")
    )
    choices = {}
    for connection in connections:
        other = connection.other(practice)
        if other.kind == OrgKind.LAB:
            choices[other.pk] = LabChoice(other, connection.can_carry_phi)
    return sorted(choices.values(), key=lambda c: c.lab.name.lower())


def prescribers(practice: Organization) -> list[User]:
    """The practice's active members marked as prescribers: the people a case can be prescribed
    by, whatever their role (an owner-dentist as much as a clinician)."""
    return list(
        User.objects.filter(
            memberships__organization=practice,
            memberships__is_active=True,
            memberships__is_prescriber=True,
            is_active=True,
        ).order_by("full_name", "email")
    )


def prescriber_membership(practice: Organization, user: User) -> Membership | None:
    """``user``'s membership in ``practice`` if they may prescribe there now, else None."""
    return Membership.objects.filter(
        organization=practice, user=user, is_active=True, is_prescriber=True, user__is_active=True
    ).first()
