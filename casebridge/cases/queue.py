"""The work queue: which open cases need this person now (questions to answer, designs to approve,
receipts to confirm), which are due today or overdue, which carry unread messages, and the lab's
production board. Every query starts from `policy.visible_cases` and is bounded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from casebridge.access.policy import OrgAccess, visible_cases
from casebridge.access.roles import Perm
from casebridge.cases.models import Case, ImagingOrder, ImagingOrderStatus, Message, Status
from casebridge.orgs.models import OrgKind

OPEN = ~Q(status__in=[Status.COMPLETED, Status.CANCELLED]) & Q(archived_at__isnull=True)

# What the practice must do before the lab can go on: answer its question, decide on a design.
PRACTICE_WAITING = (Status.ON_HOLD, Status.DESIGN_APPROVAL_REQUESTED)
# What the lab must pick up: a new case to confirm, a design decision the practice made.
LAB_WAITING = (Status.SUBMITTED, Status.DESIGN_APPROVED, Status.DESIGN_REJECTED)

# The lab's production board, left to right as a case moves through the lab.
BOARD_COLUMNS = (
    Status.SUBMITTED,
    Status.RECEIVED,
    Status.ON_HOLD,
    Status.IN_DESIGN,
    Status.DESIGN_APPROVAL_REQUESTED,
    Status.DESIGN_REJECTED,
    Status.DESIGN_APPROVED,
    Status.IN_PRODUCTION,
    Status.QUALITY_CHECK,
    Status.SHIPPED,
    Status.DELIVERED,
)
BOARD_CARDS_PER_COLUMN = 20
LIST_LIMIT = 10

# The case-list tabs that have a count, in the order the page shows them.
COUNTED_VIEWS = ("waiting", "unread", "today", "overdue", "week", "open")


def waiting_on(access: OrgAccess) -> Q:
    """Cases whose next step is this organization's, for a person whose role may take it: a
    read-only role has nothing waiting on it."""
    org = access.organization
    condition = Q(pk__in=[])
    if access.has(Perm.CASES_EDIT):
        condition |= Q(practice=org, status__in=PRACTICE_WAITING)
    if access.has(Perm.CASES_WORK):
        condition |= Q(lab=org, status__in=LAB_WAITING)
    if access.has(Perm.CASES_EDIT):  # an imaging center picks up its new orders
        new_orders = ImagingOrder.objects.filter(center=org, status=ImagingOrderStatus.SENT, access_revoked_at=None)
        condition |= Q(pk__in=new_orders.values("case_id"))
    return condition


def unread_for(user_id: Any) -> Exists:
    """The case has a message this person has not opened yet."""
    return Exists(Message.objects.filter(case=OuterRef("pk")).exclude(reads__user=user_id))


def view_filter(view: str, access: OrgAccess, user_id: Any, today: date) -> Q | None:
    """The condition of one counted tab of the case list, or None for a tab without a count."""
    conditions = {
        "waiting": OPEN & waiting_on(access),
        "unread": OPEN & Q(unread_for(user_id)),
        "today": OPEN & Q(due_date=today),
        "overdue": OPEN & Q(due_date__lt=today),
        "week": OPEN & Q(due_date__gte=today, due_date__lte=today + timedelta(days=7)),
        "open": OPEN,
    }
    return conditions.get(view)


def counts(access: OrgAccess, user_id: Any, today: date | None = None) -> dict[str, int]:
    """How many cases each counted tab holds for this person: one aggregate query."""
    today = today or timezone.now().date()
    aggregates = {}
    for view in COUNTED_VIEWS:
        condition = view_filter(view, access, user_id, today)
        assert condition is not None
        aggregates[view] = Count("pk", filter=condition)
    result: dict[str, int] = visible_cases(access).aggregate(**aggregates)
    return result


@dataclass
class Column:
    status: str
    label: str
    cards: list[Case]
    total: int


def _first(cases: QuerySet[Case], limit: int = LIST_LIMIT) -> list[Case]:
    """The most urgent `limit` cases: earliest due date first, cases without one last."""
    most_urgent = F("due_date").asc(nulls_last=True)
    return list(cases.select_related("practice", "lab", "patient").order_by(most_urgent, "number")[:limit])


@dataclass
class Section:
    view: str  # the case-list tab that shows all of them
    title: str
    hint: str
    count: int
    cases: list[Case]


WAITING_HINTS: dict[str, str] = {
    OrgKind.PRACTICE: "Questions from the lab to answer, designs to approve.",
    OrgKind.LAB: "New cases to confirm, design decisions from the practice.",
}
SECTION_TITLES = {
    "waiting": ("Waiting on you", ""),
    "today": ("Due today", ""),
    "overdue": ("Overdue", "Past their due date and not completed."),
    "unread": ("Unread messages", "Cases with messages you have not opened yet."),
}


def home(access: OrgAccess, user_id: Any) -> dict[str, Any]:
    """What the home page shows: the counts and the first cases of each list (a fixed number of
    queries whatever the number of cases)."""
    today = timezone.now().date()
    mine = visible_cases(access)
    tally = counts(access, user_id, today)
    sections = []
    for view, (title, hint) in SECTION_TITLES.items():
        if view == "waiting":
            hint = WAITING_HINTS.get(access.organization.kind, "")
        condition = view_filter(view, access, user_id, today)
        assert condition is not None
        cases = _first(mine.filter(condition))
        sections.append(Section(view, title, hint, tally[view], cases))
    return {"counts": tally, "sections": sections, "today": today}


def production_board(access: OrgAccess) -> list[Column]:
    """The lab's open cases by status, the most urgent first, at most BOARD_CARDS_PER_COLUMN per
    column (the column says how many more): two queries."""
    mine = visible_cases(access).filter(OPEN, lab=access.organization, status__in=BOARD_COLUMNS)
    totals = dict(mine.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    ranked = mine.select_related("practice", "patient").annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("status")],
            order_by=[F("due_date").asc(nulls_last=True), F("number").asc()],
        )
    )
    cards: dict[str, list[Case]] = {status: [] for status in BOARD_COLUMNS}
    for case in ranked.filter(rank__lte=BOARD_CARDS_PER_COLUMN).order_by("status", "rank"):
        cards[case.status].append(case)
    return [Column(status, Status(status).label, cards[status], totals.get(status, 0)) for status in BOARD_COLUMNS]
