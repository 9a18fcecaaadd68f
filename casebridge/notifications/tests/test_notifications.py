"""The bell: the e-mailed case events stored per person, read/unread, links to the case; only
the person's own, only in the organization of the page, only about cases they may still open."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casebridge.access.policy import case_for
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client
from casebridge.notifications import actions as notifications
from casebridge.notifications.models import Notification

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA

NAMES = ("Jane", "Roe")
NUMBERS = ("1961", "36")  # the birth year and the tooth


def _shows_no_phi(html: str) -> bool:
    """No name anywhere in the page (its CSRF tokens aside), and neither number as a word of its
    visible text once the notes' times are taken out: "36" is also a minute ("2026-12-05 23:36")
    and, on PostgreSQL, whose sequences tests do not reset, a row id in a link."""
    without_tokens = re.sub(r"[A-Za-z0-9_-]{20,}", "", html)
    text = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", " ", re.sub(r"<[^>]*>", " ", html))
    words = set(re.findall(r"\w+", text))
    return all(name not in without_tokens for name in NAMES) and all(n not in words for n in NUMBERS)


def _submitted(p: Personas) -> Case:
    case = _ready_crown(p)
    actions.submit_case(_access(p), case)
    return case


def _page(p: Personas, lab: bool = False) -> str:
    return reverse("notifications", args=[(p.lab if lab else p.practice).slug])


def test_the_lab_is_notified_of_a_new_case_and_the_practice_of_its_progress(world: Personas) -> None:
    technician = make_user("tech@lab.test")
    add_member(world.lab, technician, "technician")
    case = _submitted(world)
    assert set(Notification.objects.values_list("recipient__email", "event")) == {
        ("manager@lab.test", "New case for your lab"),
        ("tech@lab.test", "New case for your lab"),
    }
    actions.confirm_receipt(_lab(world), case_for(_lab(world), case.number))
    practice = set(Notification.objects.filter(organization=world.practice).values_list("recipient__email", flat=True))
    # Everyone who may open cases; not the auditor or compliance officer, not the deactivated.
    assert practice == {f"{role}@smile.test" for role in notifications.CASE_ROLES}
    assert "auditor" not in notifications.CASE_ROLES and "compliance_officer" not in notifications.CASE_ROLES


def test_the_bell_shows_everything_whatever_the_email_choices(world: Personas) -> None:
    world.lab_manager.notify_new_cases = False
    world.lab_manager.save(update_fields=["notify_new_cases"])
    _submitted(world)
    assert Notification.objects.filter(recipient=world.lab_manager).count() == 1


def test_the_page_and_bell_show_the_case_number_and_event_never_patient_data(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.lab_manager)
    html = client.get(_page(world, lab=True)).content.decode()
    assert f"<span><strong>{case.number}</strong>: New case for your lab</span>" in html
    assert _shows_no_phi(html)
    bell = client.get(reverse("notification_bell", args=[world.lab.slug])).content.decode()
    assert '<span id="bell-count" class="count attention"' in bell and ">1<" in bell
    assert _shows_no_phi(bell)


def test_opening_marks_read_and_goes_to_the_case(world: Personas) -> None:
    case = _submitted(world)
    note = Notification.objects.get(recipient=world.lab_manager)
    client = signed_in_client(world.lab_manager)
    response = client.post(reverse("notification_read", args=[world.lab.slug, note.pk]), {"open": "1"})
    assert response["Location"] == reverse("case_detail", args=[world.lab.slug, case.number])
    note.refresh_from_db()
    assert note.read_at is not None
    assert "Mark all as read" not in client.get(_page(world, lab=True)).content.decode()


def test_opening_the_case_page_marks_its_notifications_read(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.lab_manager)
    client.get(reverse("case_detail", args=[world.lab.slug, case.number]))
    assert not Notification.objects.filter(recipient=world.lab_manager, read_at__isnull=True).exists()


def test_mark_all_read_touches_only_the_persons_own(world: Personas) -> None:
    technician = make_user("tech@lab.test")
    add_member(world.lab, technician, "technician")
    _submitted(world)
    signed_in_client(world.lab_manager).post(reverse("notifications_read_all", args=[world.lab.slug]))
    assert Notification.objects.get(recipient=world.lab_manager).read_at is not None
    assert Notification.objects.get(recipient=technician).read_at is None


def test_another_persons_notification_is_never_shown_or_markable(world: Personas) -> None:
    technician = make_user("tech@lab.test")
    add_member(world.lab, technician, "technician")
    _submitted(world)
    theirs = Notification.objects.get(recipient=technician)
    client = signed_in_client(world.lab_manager)
    url = reverse("notification_read", args=[world.lab.slug, theirs.pk])
    assert client.post(url, {"open": "1"}).status_code == 404
    assert client.get(_page(world, lab=True), {"before": str(theirs.pk)}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    # Nor through another organization's URL: the outsider is no member there.
    assert signed_in_client(world.outsider).post(url).status_code == 404
    outsider_url = reverse("notification_read", args=[world.other_practice.slug, theirs.pk])
    assert signed_in_client(world.outsider).post(outsider_url).status_code == 404
    assert notifications.mark_read(_lab(world), notification_id=theirs.pk) == 0


def test_notifications_go_when_the_lab_loses_access_to_the_case(world: Personas) -> None:
    case = _submitted(world)
    client = signed_in_client(world.lab_manager)
    assert case.number in client.get(_page(world, lab=True)).content.decode()
    actions.revoke_lab_access(_access(world), case)
    assert case.number not in client.get(_page(world, lab=True)).content.decode()
    bell = client.get(reverse("notification_bell", args=[world.lab.slug])).content.decode()
    assert ">0<" in bell


def test_drafts_and_messages_on_drafts_notify_nobody(world: Personas) -> None:
    case = _ready_crown(world)
    actions.post_message(_access(world), case, "Note to self")
    assert not Notification.objects.exists()


def test_the_page_is_paged_by_cursor_with_a_fixed_number_of_queries(world: Personas) -> None:
    case = _submitted(world)
    lab = _lab(world)
    client = signed_in_client(world.members["clinician"])
    url = _page(world)
    actions.post_message(lab, case, "first")
    client.get(url)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    few = count()
    for i in range(notifications.PAGE + 4):
        actions.post_message(lab, case, f"message {i}")
    assert count() == few
    html = client.get(url).content.decode()
    assert html.count('class="notification unread"') == notifications.PAGE
    mine = Notification.objects.filter(recipient=world.members["clinician"]).order_by("-created_at", "-pk")
    cursor = mine[notifications.PAGE - 1].pk
    assert f"?before={cursor}" in html
    older = client.get(url, {"before": str(cursor)}).content.decode()
    assert older.count('class="notification unread"') == mine.count() - notifications.PAGE
    assert client.get(url, {"before": "not-a-cursor"}).status_code == 400
