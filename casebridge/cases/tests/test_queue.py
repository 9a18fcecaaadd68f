"""The work-queue home: what waits on this person (by side and role), due today, overdue, unread,
counts on the case-list tabs and in the navigation, the lab's production board; bounded queries;
never another organization's case, never a draft on the lab side."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.access.roles import Perm
from casebridge.audit.models import Event
from casebridge.cases import actions, queue
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _lab
from casebridge.core.testing import Personas, add_member, make_org, make_user, signed_in_client
from casebridge.orgs.models import OrgKind

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _case(p: Personas, status: str = Status.DRAFT, *, due_in: int | None = 7, patient: str = "Jane Roe") -> Case:
    """A case of the practice for its lab, put straight into `status`: the workflow itself is
    tested in test_workflow; here only where a case in that status shows up matters."""
    case = actions.create_case(
        _access(p),
        patient_name=patient,
        case_type="digital_crown",
        lab=p.lab,
        due_date=None if due_in is None else timezone.now().date() + timedelta(days=due_in),
        items=[ItemInput("crown", tooth=36)],
    )
    Case.objects.filter(pk=case.pk).update(status=status)
    case.refresh_from_db()
    return case


def _home(client: Client, p: Personas, lab: bool = False) -> str:
    response = client.get(reverse("org_home", args=[(p.lab if lab else p.practice).slug]))
    assert response.status_code == 200
    return response.content.decode()


def _section(html: str, view: str) -> str:
    start = html.index(f'id="h-queue-{view}"')
    return html[start : html.index("</section>", start)]


def test_the_practice_sees_questions_and_design_approvals_waiting_on_it(world: Personas) -> None:
    on_hold = _case(world, Status.ON_HOLD, patient="Anna Hold")
    approval = _case(world, Status.DESIGN_APPROVAL_REQUESTED, patient="Ben Approve")
    at_lab = _case(world, Status.IN_PRODUCTION, patient="Carl Busy")
    waiting = _section(_home(signed_in_client(world.members["clinician"]), world), "waiting")
    assert on_hold.number in waiting and "Anna Hold" in waiting
    assert approval.number in waiting and "Design approval requested" in waiting
    assert at_lab.number not in waiting
    assert '<span class="count attention">2</span>' in waiting


def test_the_lab_sees_receipts_to_confirm_and_design_decisions_waiting_on_it(world: Personas) -> None:
    submitted = _case(world, Status.SUBMITTED)
    approved = _case(world, Status.DESIGN_APPROVED)
    on_hold = _case(world, Status.ON_HOLD)
    waiting = _section(_home(signed_in_client(world.lab_manager), world, lab=True), "waiting")
    assert submitted.number in waiting and approved.number in waiting
    assert on_hold.number not in waiting  # waiting on the practice, not on the lab


def test_a_read_only_role_has_nothing_waiting_on_it(world: Personas) -> None:
    _case(world, Status.ON_HOLD)
    access = resolve(world.members["owner"], world.practice)
    assert access is not None
    access.permissions = access.permissions - {Perm.CASES_EDIT, Perm.CASES_WORK}
    assert queue.counts(access, world.members["owner"].pk)["waiting"] == 0
    assert queue.counts(_access(world), world.members["clinician"].pk)["waiting"] == 1


def test_due_today_and_overdue_list_open_cases_only(world: Personas) -> None:
    today = _case(world, Status.IN_PRODUCTION, due_in=0)
    late = _case(world, Status.RECEIVED, due_in=-2)
    done_late = _case(world, Status.COMPLETED, due_in=-2)
    html = _home(signed_in_client(world.members["clinician"]), world)
    assert today.number in _section(html, "today") and late.number not in _section(html, "today")
    overdue = _section(html, "overdue")
    assert late.number in overdue and done_late.number not in overdue and today.number not in overdue


def test_cases_with_unread_messages_are_listed_until_opened(world: Personas) -> None:
    case = _case(world, Status.RECEIVED)
    actions.post_message(_lab(world), case, "Is the margin subgingival?")
    client = signed_in_client(world.members["clinician"])
    assert case.number in _section(_home(client, world), "unread")
    client.get(reverse("case_detail", args=[world.practice.slug, case.number]))
    assert case.number not in _section(_home(client, world), "unread")


def test_the_case_list_tabs_carry_counts_and_filter(world: Personas) -> None:
    on_hold = _case(world, Status.ON_HOLD, due_in=-1)
    other = _case(world, Status.IN_DESIGN)
    client = signed_in_client(world.members["clinician"])
    url = reverse("case_list", args=[world.practice.slug])
    html = client.get(url).content.decode()
    assert 'Waiting on me <span class="count attention">1</span>' in html
    assert 'Overdue <span class="count attention">1</span>' in html
    assert 'Open <span class="count">2</span>' in html
    waiting = client.get(url, {"view": "waiting"}).content.decode()
    assert on_hold.number in waiting and other.number not in waiting


def test_the_navigation_counts_cases_waiting_on_the_person_on_every_page(world: Personas) -> None:
    _case(world, Status.DESIGN_APPROVAL_REQUESTED)
    client = signed_in_client(world.members["clinician"])
    _home(client, world)
    for url in (reverse("org_home", args=[world.practice.slug]), reverse("security")):
        html = client.get(url).content.decode()
        assert '1<span class="visually-hidden"> waiting on you</span>' in html, url


def test_another_organizations_cases_never_appear(world: Personas) -> None:
    mine = _case(world, Status.ON_HOLD, due_in=0, patient="Jane Roe")
    other_lab = make_org("Elsewhere Lab", OrgKind.LAB)
    stranger = make_user("manager@elsewhere.test")
    add_member(other_lab, stranger, "lab_manager")
    outsider_home = signed_in_client(world.outsider).get(reverse("org_home", args=[world.other_practice.slug]))
    stranger_home = signed_in_client(stranger).get(reverse("org_home", args=[other_lab.slug]))
    for response in (outsider_home, stranger_home):
        html = response.content.decode()
        assert response.status_code == 200 and mine.number not in html and "Jane Roe" not in html
    # And the practice's home is not theirs to open at all.
    assert signed_in_client(world.outsider).get(reverse("org_home", args=[world.practice.slug])).status_code == 404


def test_a_lab_never_sees_a_draft_on_its_home_board_or_counts(world: Personas) -> None:
    draft = _case(world, Status.DRAFT, due_in=0, patient="Dora Draft")
    html = _home(signed_in_client(world.lab_manager), world, lab=True)
    assert draft.number not in html and "Dora Draft" not in html
    counts = queue.counts(_lab(world), world.lab_manager.pk)
    assert counts == dict.fromkeys(queue.COUNTED_VIEWS, 0)
    assert all(not column.cards and column.total == 0 for column in queue.production_board(_lab(world)))


def test_the_lab_board_has_a_column_per_status_with_cards_linking_to_cases(
    world: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "BOARD_CARDS_PER_COLUMN", 2)
    in_production = [_case(world, Status.IN_PRODUCTION, due_in=days) for days in (5, 1, 3)]
    shipped = _case(world, Status.SHIPPED)
    _case(world, Status.COMPLETED)
    board = {column.status: column for column in queue.production_board(_lab(world))}
    assert list(board) == list(queue.BOARD_COLUMNS)
    column = board[Status.IN_PRODUCTION]
    # The most urgent first; the column says how many there are in all.
    assert [c.number for c in column.cards] == [in_production[1].number, in_production[2].number]
    assert column.total == 3
    assert [c.number for c in board[Status.SHIPPED].cards] == [shipped.number]
    html = _home(signed_in_client(world.lab_manager), world, lab=True)
    assert 'id="h-board"' in html
    assert reverse("case_detail", args=[world.lab.slug, shipped.number]) in html
    assert "All 3 in the list" in html
    # The practice has no board.
    assert 'id="h-board"' not in _home(signed_in_client(world.members["clinician"]), world)


def test_showing_the_queue_is_audited_by_case_number(world: Personas) -> None:
    case = _case(world, Status.ON_HOLD)
    _home(signed_in_client(world.members["clinician"]), world)
    event = Event.objects.get(action="case.queue.viewed")
    assert event.details == {"cases": [case.number], "patients": [str(case.patient_id)]}
    assert "Jane" not in str(event.details)


@pytest.mark.parametrize("side", ["practice", "lab"])
def test_the_home_page_uses_the_same_number_of_queries_for_1_and_12_cases(world: Personas, side: str) -> None:
    lab = side == "lab"
    client = signed_in_client(world.lab_manager if lab else world.members["clinician"])
    statuses = [Status.ON_HOLD, Status.SUBMITTED, Status.IN_PRODUCTION, Status.DESIGN_APPROVED]
    _case(world, Status.ON_HOLD, due_in=0)
    _case(world, Status.SUBMITTED, due_in=-1)
    _home(client, world, lab)  # warm up session and caches

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            _home(client, world, lab)
        return len(queries)

    few = count()
    for i in range(10):
        case = _case(world, statuses[i % 4], due_in=i % 3 - 1)
        actions.post_message(_lab(world) if not lab else _access(world), case, "news")
    assert count() == few
