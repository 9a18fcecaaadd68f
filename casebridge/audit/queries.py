"""Reading the audit log: one set of filters for the review page, its CSV export and the API."""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.lookups import IContains
from django.utils.dateparse import parse_date, parse_datetime

from casebridge.audit.archive import Filters
from casebridge.audit.models import Event, Outcome

CASE_NUMBER = re.compile(r"^CB-\d{4}-\d{6,9}$")


class BadFilter(ValueError):
    """A filter value that cannot be understood; the message says which and why."""


@dataclass(frozen=True)
class EventFilters:
    action: str = ""  # a registered action, or a dotted prefix of some ("case." for every case event)
    actor: str = ""  # part of the actor's label (a person's e-mail, "service:NAME", "operator:...")
    outcome: str = ""
    case: str = ""  # a case number: the events whose details name that case
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    emergency_only: bool = False
    patient: str = ""  # an internal patient reference (UUID): the events about that patient
    ip: str = ""  # the client address recorded with the event
    # Also the archive segments (events older than 13 months): slower, read segment by segment.
    include_archive: bool = False

    def __post_init__(self) -> None:
        if self.patient:
            try:
                uuid.UUID(self.patient)
            except ValueError:
                raise BadFilter("patient must be a patient reference (the id shown in the log)") from None
        if self.ip:
            try:
                ipaddress.ip_address(self.ip)
            except ValueError:
                raise BadFilter("ip must be an IPv4 or IPv6 address") from None
        if self.outcome and self.outcome not in Outcome.values:
            raise BadFilter(f"outcome must be one of: {', '.join(Outcome.values)}")
        if self.case and not CASE_NUMBER.match(self.case):
            raise BadFilter("case must be a case number such as CB-2026-000123")
        if self.since and self.until and self.since >= self.until:
            raise BadFilter("since must be earlier than until")

    def as_details(self) -> dict[str, Any]:
        """What the reader asked for, for the `audit.viewed` / `audit.exported` event."""
        values = {
            "action": self.action,
            "actor": self.actor,
            "outcome": self.outcome,
            "case": self.case,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "emergency": "1" if self.emergency_only else "",
            "patient": self.patient,
            "ip": self.ip,
            "archive": "1" if self.include_archive else "",
        }
        return {key: value for key, value in values.items() if value}


def parse_moment(name: str, value: str) -> datetime | None:
    """An ISO 8601 date-time, or a date meaning its first instant; without a zone, UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day: date | None = parse_date(value)
            moment = datetime.combine(day, time.min) if day is not None else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadFilter(f"{name} must be an ISO 8601 date or date-time, e.g. 2026-11-30 or 2026-11-30T14:00:00Z")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def filters_from_query(query: Any) -> EventFilters:
    """The review page's and export's filters from its query string (a QueryDict or a dict)."""
    return EventFilters(
        action=query.get("action", "").strip(),
        actor=query.get("actor", "").strip(),
        outcome=query.get("outcome", "").strip(),
        case=query.get("case", "").strip().upper(),
        since=parse_moment("since", query.get("since", "")),
        until=parse_moment("until", query.get("until", "")),
        emergency_only=query.get("emergency") == "1",
        patient=query.get("patient", "").strip().lower(),
        ip=query.get("ip", "").strip(),
        include_archive=query.get("archive") == "1",
    )


def for_archive(organization_id: Any, filters: EventFilters, before_id: int | None = None) -> Filters:
    """The same question for the archive segments (archive.Filters.match), as organization_events
    asks the hot tables: tests/test_review_archive.py checks that both agree event for event."""
    return Filters(
        start=filters.since,
        end=filters.until,
        organization=str(organization_id),
        outcome=filters.outcome,
        patient_ref=filters.patient,
        action_starts=filters.action,
        actor_part=filters.actor,
        case=filters.case,
        ip=filters.ip,
        emergency_only=filters.emergency_only,
        before_id=before_id,
    )


class _ContainsIgnoringCase(IContains):
    """`icontains`, written as ILIKE on PostgreSQL. Django's `UPPER(label) LIKE UPPER('%x%')`
    matches the same rows, but PostgreSQL estimates it at a handful of rows and plans a full scan
    of the organization's events and a sort (8 s at 10 million events, docs/audit.md), where
    `label ILIKE '%x%'` is estimated as the substring match it is and read newest first from the
    index until a page is full (0.2 s). Other databases: `icontains` as is."""

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = compiler.compile(self.lhs)
        rhs, rhs_params = self.process_rhs(compiler, connection)  # '%x%', its own % and _ escaped
        return f"{lhs}::text ILIKE {rhs}", (*lhs_params, *rhs_params)


def organization_events(organization_id: Any, filters: EventFilters) -> QuerySet[Event]:
    """The events of one organization matching `filters`, unordered (callers page by id)."""
    events = Event.objects.filter(organization_id=organization_id)
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.actor:
        events = events.filter(_ContainsIgnoringCase(F("actor_label"), filters.actor))
    if filters.outcome:
        events = events.filter(outcome=filters.outcome)
    if filters.case:
        events = events.filter(details__case=filters.case)
    if filters.since:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__lt=filters.until)
    if filters.emergency_only:
        events = events.filter(emergency_access_id__isnull=False)
    if filters.patient:
        events = events.filter(patient_ref=filters.patient)
    if filters.ip:
        events = events.filter(ip=filters.ip)
    return events
