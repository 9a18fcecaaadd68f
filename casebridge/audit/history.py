"""The log across the 13-month line: the events a report asks for from the hot tables and, in the
same list, the matching events of the archive segments (audit/archive.py), oldest first.

Every page that must cover more than the hot window (the per-patient access report; the review
screen and the per-person activity report when asked to include the archive) reads through
`combined`: the hot events come from the caller's own query, the archived ones from
`archive.search` with `archive.Filters` (the one parser of segments, and the one `match` the
command line's `audit search --archived` uses). An archived event is given to the page as an
unsaved `Event` built from its canonical form, so templates, CSV and PDF show both alike; it is
never saved (the hot tables are append-only and it left them on purpose).

The hot tables are read before the segments: an event archived between the two reads is then
seen twice (and kept once, by its id), never missed. A site without segments pays one query.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Max, QuerySet, Subquery

from casebridge.audit import archive
from casebridge.audit.models import RECORDED_COLUMNS, ArchiveSegment, Event, Seal


@dataclass
class Reading:
    """What a report read: its events oldest first, and how many of them came from segments."""

    events: list[Event]
    archived: int = 0
    segments: int = 0  # segments read (whether or not they held a match)
    first_at: datetime | None = None  # the oldest and newest archived event included
    last_at: datetime | None = None
    truncated: bool = False
    ids: set[int] = field(default_factory=set)  # the archived events' ids
    destroyed_through: datetime | None = None  # the newest event of the segments destroyed under retention

    @property
    def note(self) -> str:
        """ "includes N archived events from <period>" (and until when events were destroyed
        under the retention policies), or "" when no segment was read and none destroyed."""
        gone = (
            f"events up to {self.destroyed_through:%Y-%m-%d} were destroyed under the retention policies"
            if self.destroyed_through is not None
            else ""
        )
        if not self.segments:
            return gone
        segments = f"{self.segments} archived segment{'s' if self.segments != 1 else ''} read"
        if not self.archived or self.first_at is None or self.last_at is None:
            said = f"includes no archived event ({segments})"
        else:
            said = (
                f"includes {self.archived} archived event{'s' if self.archived != 1 else ''} "
                f"from {self.first_at:%Y-%m-%d} to {self.last_at:%Y-%m-%d} ({segments})"
            )
        return f"{said}; {gone}" if gone else said

    def only(self, events: list[Event]) -> None:
        """Keep these of the archived events (a page's share), counts and period with them."""
        self.events = events
        self.archived = len(events)
        self.first_at = min((e.occurred_at for e in events), default=None)
        self.last_at = max((e.occurred_at for e in events), default=None)
        self.ids = {e.pk for e in events}


def as_event(values: dict[str, Any]) -> Event:
    """An archived event (its canonical values) as an unsaved Event, marked `archived`."""
    event = Event(
        id=int(values["id"]),
        occurred_at=datetime.fromisoformat(values["occurred_at"]),
        **{name: values[name] for name in RECORDED_COLUMNS},
    )
    for name in ("organization_id", "emergency_access_id"):
        if values[name]:
            setattr(event, name, uuid.UUID(values[name]))
    event.archived = True
    return event


def archived(
    filters: archive.Filters | Sequence[archive.Filters],
    *,
    limit: int,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    newest: bool = False,
) -> Reading:
    """The archived events matching `filters` (and `keep`, for what Filters cannot say), oldest
    first: the oldest `limit`, or with `newest` the newest `limit` (a page of the review screen,
    newest first, takes the end); the segments read are counted."""
    reading = Reading([])
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    if not ArchiveSegment.objects.exists():
        return reading
    reading.destroyed_through = ArchiveSegment.objects.filter(destroyed_at__isnull=False).aggregate(
        last=Max("last_at")
    )["last"]

    def step(done: int, total: int) -> None:
        reading.segments = done
        if progress is not None:
            progress(done, total)

    for values in archive.search(filters, progress=step):
        if keep is not None and not keep(values):
            continue
        if len(kept) >= limit:
            reading.truncated = True
            if not newest:
                break
        kept.append(values)
    reading.only([as_event(values) for values in kept])
    return reading


def combined(
    hot: Iterable[Event],
    filters: archive.Filters | Sequence[archive.Filters],
    *,
    limit: int,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    newest: bool = False,
) -> Reading:
    """The hot events (read first) and the archived ones matching `filters` (the oldest `limit`,
    or the newest with `newest`), oldest first."""
    hot_events = list(hot)
    reading = archived(filters, limit=limit, keep=keep, newest=newest)
    seen = {e.pk for e in hot_events}
    reading.only([e for e in reading.events if e.pk not in seen])
    reading.events = sorted(hot_events + reading.events, key=lambda e: (e.occurred_at, e.pk))
    return reading


def streamed(hot: QuerySet[Event], filters: archive.Filters | None, *, batch: int) -> Iterator[list[Event]]:
    """Every event of an export in batches, in constant memory however many segments there are:
    the archived events matching `filters` (segment by segment, oldest first; None: the hot
    tables alone), then the hot ones (`hot`, by id), each once.

    The segments present at the start are read first. The hot rows are one query, which also
    reads the oldest sequence number still hot (the same snapshot): a segment written while the
    export ran is read last, and of its events only those older than that number are given (the
    others were hot in the snapshot and given with it). If the query gave no row, none of that
    segment's matching events was given, so all are."""
    upto = ArchiveSegment.objects.aggregate(last=Max("last_seq"))["last"] if filters is not None else None
    floor: int | None = None  # the oldest sequence number hot when the hot rows were read
    pending: list[Event] = []

    def batched(events: Iterable[Event]) -> Iterator[list[Event]]:
        for event in events:
            pending.append(event)
            if len(pending) == batch:
                yield pending.copy()
                pending.clear()

    def recent() -> Iterator[Event]:
        nonlocal floor
        oldest_hot = Subquery(Seal.objects.order_by("seq").values("seq")[:1])
        for event in hot.annotate(hot_floor=oldest_hot).order_by("id").iterator(chunk_size=batch):
            floor = event.hot_floor
            yield event

    if filters is not None and upto is not None:
        yield from batched(as_event(v) for v in archive.search(filters, upto_seq=upto))
    yield from batched(recent())
    if filters is not None:
        late = archive.search(filters, after_seq=upto or 0)
        yield from batched(as_event(v) for v in late if floor is None or int(v["seq"]) < floor)
    if pending:
        yield pending
