"""Read-side helpers about organizations shared by several apps."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from casebridge.access.roles import Role
from casebridge.orgs.models import Connection, ConnectionStatus, Membership, Organization


def connections_of(organization: Organization, *, active: bool = False) -> QuerySet[Connection]:
    """Every connection the organization is a side of, whichever side asked (only the accepted
    ones with `active`), with both organizations loaded."""
    connections = Connection.objects.filter(Q(requester=organization) | Q(recipient=organization))
    if active:
        connections = connections.filter(status=ConnectionStatus.ACTIVE)
    return connections.select_related("requester", "recipient")


def compliance_recipients(organization: Organization) -> list[str]:
    """Who is e-mailed about compliance matters (alerts, overdue reviews, vendor renewals,
    checkpoint digests): the active compliance officers, or the owners and administrators when
    none is named."""
    members = Membership.objects.filter(organization=organization, is_active=True, user__is_active=True)
    officers = list(members.filter(role=Role.COMPLIANCE_OFFICER).values_list("user__email", flat=True))
    return officers or list(members.filter(role__in=[Role.OWNER, Role.ADMIN]).values_list("user__email", flat=True))
