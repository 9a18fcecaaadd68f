"""Access reviews: a campaign lists every active member, open link and connection; keeping or
revoking each acts through the usual actions; the campaign completes when all are decided; only
people who manage members run it, and another organization's items are out of reach."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.compliance.models import AccessReview, AccessReviewItem
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Connection, ConnectionStatus, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def connected(personas: Personas, vault_home: Path) -> Personas:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=personas.lab.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.localdate()
    )
    lab = resolve(personas.lab_manager, personas.lab)
    assert lab is not None
    org_actions.accept_connection(lab, connection)
    return personas


def test_a_review_lists_everything_and_revoking_acts_at_once(connected: Personas) -> None:
    owner = signed_in_client(connected.members["owner"])
    url = reverse("access_reviews", args=[connected.practice.slug])
    owner.post(url, {"operation": "start"})
    review = AccessReview.objects.get()
    kinds = sorted(set(review.items.values_list("kind", flat=True)))
    assert kinds == ["connection", "member"]
    staff = Membership.objects.get(organization=connected.practice, user=connected.members["staff"])
    staff_item = review.items.get(kind="member", ref=str(staff.pk))
    owner.post(url, {"item": str(staff_item.pk), "decision": "revoke"})
    staff.refresh_from_db()
    assert not staff.is_active  # deactivated through the Members action
    connection_item = review.items.get(kind="connection")
    owner.post(url, {"item": str(connection_item.pk), "decision": "revoke"})
    assert Connection.objects.get().status == ConnectionStatus.ENDED
    owner_item = review.items.get(kind="member", label__startswith=connected.members["owner"].email)
    owner.post(url, {"item": str(owner_item.pk), "decision": "revoke"})  # refused: not oneself
    owner_item.refresh_from_db()
    assert owner_item.decided_at is None
    for item in review.items.filter(decided_at__isnull=True):
        owner.post(url, {"item": str(item.pk), "decision": "keep"})
    review.refresh_from_db()
    assert review.completed_at is not None
    completed = Event.objects.get(action="compliance.access_review.completed")
    assert completed.details["revoked"] == 2


def test_only_member_managers_and_only_their_items(connected: Personas) -> None:
    url = reverse("access_reviews", args=[connected.practice.slug])
    assert signed_in_client(connected.members["compliance_officer"]).get(url).status_code == 403
    signed_in_client(connected.members["owner"]).post(url, {"operation": "start"})
    item = AccessReviewItem.objects.filter(kind="member").first()
    assert item is not None
    outsider = signed_in_client(connected.outsider)
    other = reverse("access_reviews", args=[connected.other_practice.slug])
    assert outsider.post(other, {"item": str(item.pk), "decision": "revoke"}).status_code == 404
    item.refresh_from_db()
    assert item.decided_at is None
