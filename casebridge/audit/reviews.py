"""Periodic review of the audit log (HIPAA 164.308(a)(1)(ii)(D)) and the accountability metrics
the seeds ask for (issue 15, items 5 and 8).

- A review is signed by a compliance officer (or owner/admin) for a period, with notes, findings
  and follow-up actions; the sign-off is an audit event. The cadence is per organization
  (30 days by default); when a review is overdue the compliance officers are reminded by e-mail
  once a day by the worker (`remind_overdue`), and the Reviews page says so.
- Metrics, over a period: time-to-revoke (for members removed, whether they acted in the
  organization afterwards; for a lab's cases closed, how long the lab kept access after
  completion), review cadence kept, failed sign-in rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.audit.models import AuditReview, Event, ReviewSchedule
from casebridge.cases.models import Case
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.orgs.models import Membership, Organization
from casebridge.orgs.queries import compliance_recipients

TEXT_LIMIT = 8000


def schedule_of(organization: Organization) -> ReviewSchedule:
    schedule, _ = ReviewSchedule.objects.get_or_create(organization=organization)
    return schedule


def next_due(organization: Organization) -> date:
    """The day the next review is due: the cadence after the last one's period end (or after
    the organization was created, before its first review)."""
    cadence = timedelta(days=schedule_of(organization).cadence_days)
    last = AuditReview.objects.filter(organization=organization).order_by("-period_end").first()
    start = last.period_end if last else timezone.localdate(organization.created_at)
    return start + cadence


def overdue_days(organization: Organization, today: date | None = None) -> int:
    return max(0, ((today or timezone.localdate()) - next_due(organization)).days)


def sign_review(
    access: OrgAccess,
    *,
    period_start: date,
    period_end: date,
    notes: str = "",
    findings: str = "",
    follow_up: str = "",
) -> AuditReview:
    access.require(Perm.COMPLIANCE_MANAGE)
    errors: dict[str, str] = {}
    today = timezone.localdate()
    if period_end < period_start:
        errors["period_end"] = "The period must end on or after its first day."
    elif period_end > today:
        errors["period_end"] = "A review covers days that have passed."
    for name, text in (("notes", notes), ("findings", findings), ("follow_up", follow_up)):
        if len(text) > TEXT_LIMIT:
            errors[name] = f"Keep it under {TEXT_LIMIT:,} characters."
    if not (notes.strip() or findings.strip()):
        errors["notes"] = "Say what you reviewed (or what you found): an empty sign-off is no evidence."
    if errors:
        raise ValidationError(errors)
    actor = access.actor if isinstance(access.actor, User) else None
    with transaction.atomic():
        review = AuditReview.objects.create(
            organization=access.organization,
            period_start=period_start,
            period_end=period_end,
            reviewed_by=actor,
            notes=notes.strip(),
            findings=findings.strip(),
            follow_up=follow_up.strip(),
        )
        # The texts may name people or patients: they stay in the review, not in the log.
        record(
            "audit.review.signed",
            actor=access.actor,
            organization=access.organization,
            target=review,
            details={
                "review": str(review.pk),
                "from": period_start.isoformat(),
                "to": period_end.isoformat(),
                "findings": bool(findings.strip()),
                "follow_up": bool(follow_up.strip()),
            },
        )
    return review


def remind_overdue() -> int:
    """E-mail the compliance officers of organizations whose review is overdue, once a day."""
    reminded = 0
    now = timezone.now()
    for organization in Organization.objects.all():
        late = overdue_days(organization)
        schedule = schedule_of(organization)
        if not late or (schedule.last_reminded_at and now - schedule.last_reminded_at < timedelta(hours=23)):
            continue
        to = compliance_recipients(organization)
        queue_mail(
            to,
            "review_overdue",
            {
                "organization": organization.name,
                "days": late,
                "link": absolute_url(reverse("audit_reviews", args=[organization.slug])),
            },
        )
        ReviewSchedule.objects.filter(pk=schedule.pk).update(last_reminded_at=now)
        reminded += 1
    return reminded


# --- metrics ------------------------------------------------------------------------------
@dataclass
class Metrics:
    since: datetime
    members_removed: int
    actions_after_removal: int  # events by removed members in the organization after removal
    lab_cases_closed: int
    median_lab_access_after_completion_days: float | None
    sign_ins: int
    failed_sign_ins: int
    reviews_expected: int
    reviews_signed: int

    @property
    def failed_sign_in_rate(self) -> float | None:
        total = self.sign_ins + self.failed_sign_ins
        return self.failed_sign_ins / total if total else None

    @property
    def review_cadence_kept(self) -> float | None:
        return min(1.0, self.reviews_signed / self.reviews_expected) if self.reviews_expected else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items() if k != "since"},
            "since": self.since.isoformat(),
            "failed_sign_in_rate": self.failed_sign_in_rate,
            "review_cadence_kept": self.review_cadence_kept,
        }


def metrics(organization: Organization, days: int = 365) -> Metrics:
    since = timezone.now() - timedelta(days=days)
    in_org = Event.objects.filter(organization_id=organization.pk, occurred_at__gte=since)
    removals = list(in_org.filter(action="org.member.deactivated").values_list("details", "occurred_at"))
    user_ids = {str(details.get("user")): at for details, at in removals if isinstance(details, dict)}
    after = sum(
        in_org.filter(actor_id=user_id, occurred_at__gt=at).exclude(outcome="denied").count()
        for user_id, at in user_ids.items()
    )
    closed = Case.objects.filter(practice=organization, completed_at__gte=since, lab__isnull=False)
    spans = []
    for case in closed.only("completed_at", "lab_access_until", "lab_access_revoked_at"):
        ends = [t for t in (case.lab_access_until, case.lab_access_revoked_at) if t is not None]
        if ends and case.completed_at is not None:
            spans.append(max(0.0, (min(ends) - case.completed_at).total_seconds() / 86400))
    people = Membership.objects.filter(organization=organization).values_list("user_id", "user__email")
    ids = [str(user_id) for user_id, _email in people]
    emails = [email for _user_id, email in people]
    auth = Event.objects.filter(occurred_at__gte=since)
    succeeded = auth.filter(action="auth.login.succeeded", actor_id__in=ids).count()
    failed = auth.filter(Q(actor_label__in=emails) | Q(actor_id__in=ids), action="auth.login.failed").count()
    cadence = schedule_of(organization).cadence_days
    existed = min(days, max(0, (timezone.now() - organization.created_at).days))
    return Metrics(
        since=since,
        members_removed=len(removals),
        actions_after_removal=after,
        lab_cases_closed=len(spans),
        median_lab_access_after_completion_days=round(median(spans), 1) if spans else None,
        sign_ins=succeeded,
        failed_sign_ins=failed,
        reviews_expected=existed // cadence,
        reviews_signed=AuditReview.objects.filter(organization=organization, signed_at__gte=since).count(),
    )
