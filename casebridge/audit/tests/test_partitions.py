"""PostgreSQL: audit_event is partitioned by month (audit/partitions.py). Events land in their
month's partition (or the DEFAULT one), every partition refuses UPDATE, DELETE and TRUNCATE,
the worker creates months ahead and moves events the DEFAULT partition took into them, and the
archive drops a month's partition once it has moved every event of it: the chain still verifies."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from casebridge.audit import archive, chain, partitions
from casebridge.audit.api import record
from casebridge.audit.models import Event, PendingSeal, Seal

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="audit_event is partitioned on PostgreSQL only (SQLite: one table)"
)


def _where(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_event WHERE id = %s", [event_id])
        return str(cursor.fetchone()[0])


def _event_at(moment: datetime) -> Event:
    """An event written at `moment` (as a clock that was wrong, or a test of old months, would)."""
    event = Event.objects.create(occurred_at=moment, actor_type="system", action="org.created", details={})
    PendingSeal.objects.create(event=event)
    return event


def _names() -> list[str]:
    with connection.cursor() as cursor:
        return partitions.names(cursor)


def test_sqlite_keeps_one_table_and_the_partition_work_does_nothing() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("the SQLite side of the partitioning")
    assert not partitions.is_partitioned()
    assert partitions.ensure() == [] and partitions.drop_emptied(timezone.now()) == []


@on_postgresql
def test_the_table_is_partitioned_with_this_and_the_next_months_and_a_default() -> None:
    current = partitions.month_start(timezone.now())
    assert partitions.is_partitioned()
    names = _names()
    for n in range(partitions.MONTHS_AHEAD + 1):
        assert partitions.name_of(partitions.add_months(current, n)) in names
    assert partitions.DEFAULT in names
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'audit_event'::regclass "
            "AND contype = 'p'"
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, occurred_at)"
        cursor.execute("SELECT pg_get_serial_sequence('audit_event', 'id')")
        assert cursor.fetchone()[0] == "public.audit_event_id_seq"
        for name in names:  # the model's indexes, on every partition
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [name])
            definitions = " ".join(row[0] for row in cursor.fetchall())
            assert "(organization_id, id DESC)" in definitions and "(action, id DESC)" in definitions
    assert partitions.ensure() == []  # nothing missing: nothing done


@on_postgresql
def test_events_land_in_their_months_partition_and_are_sealed_and_verified() -> None:
    now = timezone.now()
    current = partitions.month_start(now)
    recorded = record("org.created", details={"n": 1})
    next_month = _event_at(partitions.add_months(current, 1) + timedelta(days=3))
    long_ago = _event_at(datetime(2001, 5, 5, tzinfo=now.tzinfo))
    assert _where(recorded.pk) == partitions.name_of(current)
    assert _where(next_month.pk) == partitions.name_of(partitions.add_months(current, 1))
    assert _where(long_ago.pk) == partitions.DEFAULT  # no month of its own: never refused
    assert next_month.pk > recorded.pk and long_ago.pk > next_month.pk  # one sequence

    assert PendingSeal.objects.count() == 3
    chain.seal_pending()
    assert PendingSeal.objects.count() == 0
    assert [s.event_id for s in Seal.objects.select_related("event").order_by("seq")][-3:] == [
        recorded.pk,
        next_month.pk,
        long_ago.pk,
    ]
    assert chain.verify().ok
    out = io.StringIO()
    call_command("audit", "verify", stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("audit chain intact: 3 events")


@on_postgresql
def test_every_partition_refuses_update_delete_and_truncate() -> None:
    current = partitions.month_start(timezone.now())
    for name in _names():  # a row in each, so row triggers have something to refuse
        month = partitions.month_of(name)
        _event_at((month or datetime(2001, 5, 5, tzinfo=current.tzinfo)) + timedelta(days=2))
    for name in [*_names(), "audit_event"]:
        for sql in (f"UPDATE {name} SET action = 'x'", f"DELETE FROM {name}", f"TRUNCATE {name}"):
            with (
                pytest.raises(DatabaseError, match="audit_event is append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql)
    assert Event.objects.count() == len(_names())


@on_postgresql
def test_the_worker_creates_months_ahead_and_moves_what_the_default_partition_took() -> None:
    current = partitions.month_start(timezone.now())
    later = partitions.add_months(current, 5)
    early = _event_at(later + timedelta(days=9))  # a clock months ahead: no partition yet
    assert _where(early.pk) == partitions.DEFAULT

    created = partitions.ensure(now=later)
    assert created == [partitions.name_of(partitions.add_months(later, n)) for n in range(3)]
    assert _where(early.pk) == partitions.name_of(later)  # moved, same id and time
    assert Event.objects.get(pk=early.pk).occurred_at == early.occurred_at
    made = Event.objects.filter(action="audit.partition.created").order_by("id")
    assert [e.details for e in made] == [
        {"partition": created[0], "moved_from_default": 1},
        {"partition": created[1], "moved_from_default": 0},
        {"partition": created[2], "moved_from_default": 0},
    ]
    assert partitions.ensure(now=later) == []
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {partitions.name_of(later)}")
    chain.seal_pending()
    assert chain.verify().ok


@on_postgresql
def test_the_archive_drops_a_month_it_emptied_and_only_then() -> None:
    old = partitions.add_months(partitions.month_start(timezone.now()), -15)
    with connection.cursor() as cursor:  # as the migration made it (ensure() would log it: a new event)
        partitions._create_month(cursor, old)
    for day in range(5):
        _event_at(old + timedelta(days=day + 3))
    chain.seal_pending()
    assert chain.checkpoint_now() is not None
    record("org.created", details={"n": "recent"})
    chain.seal_pending()
    cutoff = timezone.now() - timedelta(days=395)
    assert partitions.drop_emptied(cutoff) == []  # its events are still there
    assert partitions.name_of(old) in _names()

    [segment] = archive.archive()

    assert segment.events == 5
    assert partitions.name_of(old) not in _names()
    [dropped] = Event.objects.filter(action="audit.partition.dropped")
    assert dropped.details["partition"] == partitions.name_of(old)
    current = partitions.month_start(timezone.now())
    assert partitions.name_of(current) in _names()  # the months in use stay
    chain.seal_pending()
    assert chain.verify().ok
    record("org.created", details={"n": "after"})  # the hot path goes on
    chain.seal_pending()
    assert chain.verify().ok
