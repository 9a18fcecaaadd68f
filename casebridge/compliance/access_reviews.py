"""Access reviews (issue 16, item 7): a campaign lists every active member with their role,
every external link still open and every active connection; the administrator keeps or revokes
each (revoking goes through the same actions as the Members, sharing and Connections pages),
and the campaign completes once every item is decided. Quarterly by default: the checklist says
when one is due."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance.models import AccessReview, AccessReviewItem
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import Membership, Organization
from casebridge.orgs.queries import connections_of
from casebridge.sharing import actions as share_actions
from casebridge.sharing.models import ExternalLink

CADENCE = timedelta(days=91)


def start(access: OrgAccess) -> AccessReview:
    access.require(Perm.MEMBERS_MANAGE)
    org = access.organization
    if AccessReview.objects.filter(organization=org, completed_at__isnull=True).exists():
        raise ValidationError("An access review is already open: finish it first.")
    with transaction.atomic():
        review = AccessReview.objects.create(
            organization=org, started_by=access.actor if isinstance(access.actor, User) else None
        )
        items = [
            AccessReviewItem(
                review=review, kind="member", ref=str(m.pk), label=f"{m.user.email} · {m.get_role_display()}"
            )
            for m in Membership.objects.filter(organization=org, is_active=True).select_related("user")
        ]
        now = timezone.now()
        items += [
            AccessReviewItem(
                review=review, kind="link", ref=str(link.pk), label=f"{link.case.number} → {link.recipient_email}"
            )
            for link in ExternalLink.objects.filter(
                case__practice=org, revoked_at__isnull=True, expires_at__gt=now
            ).select_related("case")
        ]
        items += [
            AccessReviewItem(review=review, kind="connection", ref=str(c.pk), label=c.other(org).name)
            for c in connections_of(org, active=True)
        ]
        AccessReviewItem.objects.bulk_create(items)
        record(
            "compliance.access_review.started",
            actor=access.actor,
            organization=org,
            target=review,
            details={"review": str(review.pk), "items": len(items)},
        )
    return review


def decide(access: OrgAccess, item: AccessReviewItem, decision: str) -> None:
    """Keep or revoke one item; revoking acts at once through the page's usual action."""
    access.require(Perm.MEMBERS_MANAGE)
    if decision not in ("keep", "revoke"):
        raise ValidationError("Keep or revoke.")
    if item.review.completed_at is not None or item.decided_at is not None:
        raise ValidationError("Already decided.")
    org = access.organization
    with transaction.atomic():
        if decision == "revoke":
            if item.kind == "member":
                org_actions.deactivate_member(access, Membership.objects.get(pk=item.ref, organization=org))
            elif item.kind == "link":
                share_actions.revoke_link(access, ExternalLink.objects.get(pk=item.ref, case__practice=org))
            else:
                org_actions.end_connection(access, connections_of(org).get(pk=item.ref))
        item.decision, item.decided_at = decision, timezone.now()
        item.save(update_fields=["decision", "decided_at"])
        record(
            "compliance.access_review.decided",
            actor=access.actor,
            organization=org,
            target=item.review,
            details={"review": str(item.review_id), "kind": item.kind, "ref": item.ref, "decision": decision},
        )
        review = item.review
        if not review.items.filter(decided_at__isnull=True).exists():
            review.completed_at = timezone.now()
            review.save(update_fields=["completed_at"])
            revoked = review.items.filter(decision="revoke")
            record(
                "compliance.access_review.completed",
                actor=access.actor,
                organization=org,
                target=review,
                details={
                    "review": str(review.pk),
                    "kept": review.items.filter(decision="keep").count(),
                    "revoked": revoked.count(),
                    "hours_to_complete": round((review.completed_at - review.started_at).total_seconds() / 3600, 1),
                },
            )


def next_due(organization: Organization) -> object:
    last = AccessReview.objects.filter(organization=organization, completed_at__isnull=False).first()
    start = last.completed_at if last and last.completed_at else organization.created_at
    return (start + CADENCE).date()
