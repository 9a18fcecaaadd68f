"""Monthly partitions of the audit event table (PostgreSQL only; SQLite keeps one plain table).

`audit_event` is PARTITION BY RANGE (occurred_at), one partition per calendar month in UTC
(`audit_event_y2026m12`) and a DEFAULT partition (`audit_event_default`) that takes any event
whose month has no partition yet, so an insert never fails for want of one. Migration 0010
converted the table (`convert`); the worker creates the current and the next months' partitions
ahead of time (`ensure`, the "audit.partitions" periodic work), and the archive (audit/archive.py)
drops a month's partition once every event of it has moved into archive segments
(`drop_emptied`): the hot table holds the last 13 months or so whatever the log's age.

The primary key of a partitioned table must hold the partition key: it is (id, occurred_at), ids
still come from one sequence (`audit_event_id_seq`), so they stay unique and increasing. No
unique index on id alone can exist, so `audit_seal.event_id` and `audit_pending_seal.event_id`
cannot be database foreign keys any more (Django still treats them as relations). What they
guarded is kept otherwise: both are written from the event they name (api.py inserts the event
and its queue row in one statement, the sealer copies the id it read), and an event leaves the
table only in the archiving transaction, which deletes its seal with it.

Dropping a partition is DDL, which row triggers do not see: only `drop_emptied` does it, inside
a transaction that holds the archive gate (so it never runs beside an archiving transaction),
after DETACH has locked the partition and a read has found it empty; each drop is audited.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

# SQL here names tables (S608 marks each f-string): only these constants, name_of(month) for a
# month computed here, and the sequence PostgreSQL's catalog names; never anything from input.
TABLE = "audit_event"
DEFAULT = "audit_event_default"
SEQUENCE = "audit_event_id_seq"
MONTHS_AHEAD = 2  # besides the current month
_NAME = re.compile(r"^audit_event_y(\d{4})m(\d{2})$")
_LOCK = 0x6361_7564_6974  # advisory lock for partition changes ("caudit")


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def name_of(month: datetime) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def month_of(name: str) -> datetime | None:
    match = _NAME.match(name)
    return datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC) if match else None


def is_partitioned(cursor: Any = None) -> bool:
    if connection.vendor != "postgresql":
        return False
    if cursor is None:
        with connection.cursor() as cursor:
            return is_partitioned(cursor)
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return row is not None and row[0] == "p"


def names(cursor: Any) -> list[str]:
    """The partitions of audit_event, by name (none where it is not partitioned)."""
    if cursor.db.vendor != "postgresql":
        return []
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        [TABLE],
    )
    return [row[0] for row in cursor.fetchall()]


def months(cursor: Any) -> list[datetime]:
    """The months that have a partition, oldest first."""
    return sorted(month for name in names(cursor) if (month := month_of(name)) is not None)


def _create_month(cursor: Any, month: datetime) -> int:
    """Create the month's partition; events of that month that the DEFAULT partition took in
    the meantime move into it (through the archive gate, as moving is a delete and an insert).
    Returns how many moved."""
    from casebridge.audit import triggers
    from casebridge.audit.models import ArchiveGate

    name, start, end = name_of(month), month, add_months(month, 1)
    bounds = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    # table name built here, not input (see TABLE)
    cursor.execute(f"SELECT count(*) FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s", [start, end])  # noqa: S608
    waiting = cursor.fetchone()[0]
    if not waiting:
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}")
    else:
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
        ArchiveGate.objects.create()
        cursor.execute(
            # table name built here, not input (see TABLE)
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "  # noqa: S608
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        if cursor.rowcount != waiting:
            raise RuntimeError(f"{name}: {cursor.rowcount} events moved out of {DEFAULT} for {waiting}")
        ArchiveGate.objects.all().delete()
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} {bounds}")
    for sql in triggers.pg_truncate_statements(name, TABLE):
        cursor.execute(sql)
    return int(waiting)


def ensure(now: datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of the current month and the next `ahead` ones that do not exist
    yet (one catalog query when all do). Returns the names created."""
    if not is_partitioned():
        return []
    current = month_start(now or timezone.now())
    wanted = [add_months(current, n) for n in range(ahead + 1)]
    with connection.cursor() as cursor:
        if not set(wanted) - set(months(cursor)):
            return []
    from casebridge.audit.api import record

    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        have = set(months(cursor))
        for month in wanted:
            if month in have:
                continue
            moved = _create_month(cursor, month)
            created.append(name_of(month))
            record("audit.partition.created", details={"partition": name_of(month), "moved_from_default": moved})
    return created


def drop_emptied(cutoff: datetime, now: datetime | None = None) -> list[str]:
    """Detach and drop every month's partition that ended before `cutoff` (the archive's) and
    before the current month, and holds no event: the archive moved them all into segments.
    Each drop holds the archive gate and is audited. Returns the names dropped."""
    if not is_partitioned():
        return []
    from casebridge.audit.api import record
    from casebridge.audit.models import ArchiveGate

    limit = min(month_start(cutoff), month_start(now or timezone.now()))
    dropped = []
    with connection.cursor() as cursor:
        candidates = [month for month in months(cursor) if add_months(month, 1) <= limit]
    for month in candidates:
        name = name_of(month)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name})")  # noqa: S608  (names: see TABLE)
            if cursor.fetchone()[0]:
                continue  # events not archived yet (the archive stops at a checkpoint)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
            if name not in names(cursor):
                continue  # another worker dropped it
            ArchiveGate.objects.create()
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")  # locks it: nothing enters now
            cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608  (names: see TABLE)
            if cursor.fetchone()[0]:
                raise RuntimeError(f"{name} is not empty: not dropped")  # rolls the detach back
            cursor.execute(f"DROP TABLE {name}")
            ArchiveGate.objects.all().delete()
            record(
                "audit.partition.dropped",
                details={"partition": name, "from": month.isoformat(), "to": add_months(month, 1).isoformat()},
            )
        dropped.append(name)
    return dropped


# --- The conversion (migration 0010) ------------------------------------------------------------


def convert(schema_connection: Any, now: datetime | None = None) -> None:
    """Turn the plain audit_event into the partitioned one, keeping every row, id, index and
    trigger, the id sequence's position, and dropping the two foreign keys that point at it."""
    from casebridge.audit import triggers

    current = month_start(now or timezone.now())
    with schema_connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE}, audit_seal, audit_pending_seal IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE confrelid = to_regclass(%s) AND contype = 'f' ORDER BY 1, 2",
            [TABLE],
        )
        for table, constraint in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = %s AND indexname <> %s ORDER BY indexname",
            [TABLE, f"{TABLE}_pkey"],
        )
        indexes = cursor.fetchall()
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        cursor.execute(f"SELECT last_value, is_called FROM {cursor.fetchone()[0]}")  # noqa: S608  (names: see TABLE)
        last_value, is_called = cursor.fetchone()
        cursor.execute(f"SELECT min(occurred_at), max(id) FROM {TABLE}")  # noqa: S608  (names: see TABLE)
        oldest, max_id = cursor.fetchone()
        next_id = max(last_value + 1 if is_called else last_value, (max_id or 0) + 1)

        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {TABLE}_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at)"
        )
        first = min(month_start(oldest), current) if oldest is not None else current
        month = first
        while month <= add_months(current, MONTHS_AHEAD):
            cursor.execute(
                f"CREATE TABLE {name_of(month)} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"
            )
            month = add_months(month, 1)
        cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_unpartitioned")  # noqa: S608  (names: see TABLE)
        cursor.execute(f"DROP TABLE {TABLE}_unpartitioned")  # its triggers, indexes and sequence with it

        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, occurred_at)")
        for _name, definition in indexes:
            cursor.execute(definition)  # the same names on the parent; PostgreSQL adds them per partition
        cursor.execute(f"CREATE SEQUENCE {SEQUENCE} AS bigint OWNED BY {TABLE}.id")
        cursor.execute("SELECT setval(%s, %s, false)", [SEQUENCE, next_id])
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
    triggers.install(schema_connection)
