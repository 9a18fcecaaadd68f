"""Agreements gate the data plane: a connection whose BAA has ended carries no patient data
(Connection.can_carry_phi: new cases and imaging orders over it are refused with the reason),
and both sides' owners, administrators (and a lab's managers) are told once, by the worker, with how to fix it."""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from casebridge.access.roles import Role
from casebridge.audit.api import record
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.orgs.models import AgreementBasis, Connection, ConnectionStatus, Membership


def notify_expired() -> int:
    """Tell each side of every active connection whose BAA lapsed, once per lapse."""
    today = timezone.localdate()
    lapsed = Connection.objects.filter(
        status=ConnectionStatus.ACTIVE,
        basis=AgreementBasis.BAA,
        baa_expires_on__lt=today,
        baa_expiry_notified_on__isnull=True,
    ).select_related("requester", "recipient")
    told = 0
    for connection in lapsed:
        with transaction.atomic():
            if not Connection.objects.filter(pk=connection.pk, baa_expiry_notified_on__isnull=True).update(
                baa_expiry_notified_on=today
            ):
                continue  # another worker told them
            for side in (connection.requester, connection.recipient):
                other = connection.other(side)
                record(
                    "org.connection.baa_expired",
                    organization=side,
                    target=connection,
                    details={"with": str(other.pk), "expired_on": str(connection.baa_expires_on)},
                )
                queue_mail(
                    list(
                        Membership.objects.filter(
                            organization=side, is_active=True, role__in=[Role.OWNER, Role.ADMIN, Role.LAB_MANAGER]
                        ).values_list("user__email", flat=True)
                    ),
                    "baa_expired",
                    {
                        "organization": side.name,
                        "other": other.name,
                        "expired_on": connection.baa_expires_on,
                        "link": absolute_url(reverse("connections", args=[side.slug])),
                    },
                )
            told += 1
    return told
