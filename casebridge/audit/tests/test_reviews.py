"""Periodic review of the audit log: a compliance officer signs a period with notes, findings and
follow-up (an audit event; the texts stay in the review); an overdue review is flagged on the
page and e-mailed once a day; the accountability metrics count what they claim to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.audit import reviews
from casebridge.audit.api import record
from casebridge.audit.models import AuditReview, Event
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import Organization

pytestmark = pytest.mark.django_db


def _age(org: Organization, days: int) -> None:
    Organization.objects.filter(pk=org.pk).update(created_at=timezone.now() - timedelta(days=days))
    org.refresh_from_db()


def test_a_compliance_officer_signs_a_review_and_the_texts_stay_out_of_the_log(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("audit_reviews", args=[personas.practice.slug])
    today = timezone.localdate()
    response = officer.post(
        url,
        {
            "period_start": (today - timedelta(days=30)).isoformat(),
            "period_end": today.isoformat(),
            "notes": "Sign-ins, refusals, two external links.",
            "findings": "Dr. Jones shared Jane Roe's scans with a personal address.",
            "follow_up": "Talk to Dr. Jones; revoke the link.",
        },
    )
    assert response.status_code == 302
    review = AuditReview.objects.get()
    assert review.reviewed_by == personas.members["compliance_officer"]
    event = Event.objects.get(action="audit.review.signed")
    assert event.details["findings"] is True and "Roe" not in str(event.details)
    page = officer.get(url).content.decode()
    assert "on schedule" in page and "Talk to Dr. Jones" in page


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"period_start": "2026-02-01", "period_end": "2026-01-01"}, "period_end"),
        ({"period_end": (timezone.localdate() + timedelta(days=3)).isoformat()}, "period_end"),
        ({"notes": "", "findings": ""}, "notes"),
    ],
)
def test_a_bad_sign_off_is_refused_beside_its_field(personas: Personas, fields: dict[str, str], field: str) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    form = {"period_start": "2026-01-01", "period_end": "2026-01-31", "notes": "reviewed", **fields}
    response = officer.post(reverse("audit_reviews", args=[personas.practice.slug]), form)
    assert response.status_code == 400 and f'id="id_{field}_errors"' in response.content.decode()
    assert not AuditReview.objects.exists()


def test_only_compliance_managers_sign_and_outsiders_see_nothing(personas: Personas) -> None:
    url = reverse("audit_reviews", args=[personas.practice.slug])
    form = {"period_start": "2026-01-01", "period_end": "2026-01-31", "notes": "reviewed"}
    auditor = signed_in_client(personas.members["auditor"])
    assert auditor.get(url).status_code == 200
    assert auditor.post(url, form).status_code == 403
    assert signed_in_client(personas.members["staff"]).get(url).status_code == 403
    outsider = signed_in_client(personas.outsider)
    assert outsider.get(reverse("audit_reviews", args=[personas.other_practice.slug])).status_code == 200
    assert not AuditReview.objects.exists()


def test_an_overdue_review_is_flagged_and_reminded_once_a_day(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    _age(personas.practice, 45)
    assert reviews.overdue_days(personas.practice) == 15
    with django_capture_on_commit_callbacks(execute=True):
        reviews.remind_overdue()
        reviews.remind_overdue()
    sent = [m for m in mail.outbox if "review overdue" in m.subject and "Smile Dental" in m.subject]
    assert len(sent) == 1 and sent[0].to == [personas.members["compliance_officer"].email]
    officer = signed_in_client(personas.members["compliance_officer"])
    assert "overdue by 15 days" in officer.get(reverse("audit_reviews", args=[personas.practice.slug])).content.decode()


def test_the_metrics_count_removals_failures_and_reviews(personas: Personas) -> None:
    _age(personas.practice, 100)
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    staff = personas.members["staff"]
    org_actions.deactivate_member(owner, personas.practice.memberships.get(user=staff))
    record("case.viewed", actor=staff, organization=personas.practice)  # after removal: counted
    record("auth.login.succeeded", actor=personas.members["clinician"])
    record("auth.login.failed", actor=None, actor_label=personas.members["clinician"].email, outcome="failure")
    result = reviews.metrics(personas.practice)
    assert result.members_removed == 1 and result.actions_after_removal == 1
    assert result.sign_ins == 1 and result.failed_sign_ins == 1 and result.failed_sign_in_rate == 0.5
    assert result.reviews_expected == 3 and result.reviews_signed == 0 and result.review_cadence_kept == 0.0
