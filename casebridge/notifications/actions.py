"""Writing and reading notifications: created with the case event (same transaction), marked
read only by their own recipient."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from casebridge.access.policy import OrgAccess, visible_cases
from casebridge.access.roles import Perm, Role, permissions_for
from casebridge.accounts.models import NotifyTopic, User
from casebridge.cases.models import Case
from casebridge.notifications.models import Notification
from casebridge.orgs.models import Membership, Organization

PAGE = 30

# Only people whose role may open the case are told about it: an auditor or compliance officer
# would get a link they cannot follow.
CASE_ROLES = tuple(role for role in Role.values if Perm.CASES_VIEW in permissions_for(role))


def notify_members(case: Case, organization: Organization, event: str, topic: NotifyTopic) -> int:
    """Store `event` for every active member of `organization` who may see cases, whatever their
    e-mail choices (those say what is e-mailed; the bell always shows everything)."""
    recipients = Membership.objects.filter(
        organization=organization, is_active=True, user__is_active=True, role__in=CASE_ROLES
    ).values_list("user_id", flat=True)
    created = Notification.objects.bulk_create(
        Notification(recipient_id=user_id, organization=organization, case=case, topic=topic, event=event)
        for user_id in recipients
    )
    return len(created)


def visible_notifications(access: OrgAccess) -> QuerySet[Notification]:
    """This person's notifications in this organization about cases they may still open: after
    the practice revokes a lab's access, or the grace period ends, they disappear with the case."""
    if not isinstance(access.actor, User) or not access.has(Perm.CASES_VIEW):
        return Notification.objects.none()
    return Notification.objects.filter(
        recipient=access.actor, organization=access.organization, case__in=visible_cases(access).values("pk")
    )


def unread_count(access: OrgAccess) -> int:
    return visible_notifications(access).filter(read_at__isnull=True).count()


def page(access: OrgAccess, before: Notification | None = None) -> tuple[list[Notification], Notification | None]:
    """One page of notifications, newest first, after the cursor `before`; and the next cursor."""
    found = visible_notifications(access).select_related("case")
    if before is not None:
        found = found.filter(Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, pk__lt=before.pk))
    rows = list(found.order_by("-created_at", "-pk")[: PAGE + 1])
    return rows[:PAGE], (rows[PAGE - 1] if len(rows) > PAGE else None)


def mark_read(access: OrgAccess, *, notification_id: Any = None, case: Case | None = None) -> int:
    """Mark one notification, those of one case, or all as read: only among this person's own
    (someone else's id changes nothing). Returns how many changed."""
    mine = visible_notifications(access).filter(read_at__isnull=True)
    if notification_id is not None:
        mine = mine.filter(pk=notification_id)
    if case is not None:
        mine = mine.filter(case=case)
    return mine.update(read_at=timezone.now())
