"""Verifying the hot table's seals in chunks that can run in parallel processes.

`audit verify` reads millions of events (bench/audit_verify.py); one core rebuilds ~110,000
events' canonical forms and hashes a second. The work splits along the Merkle tree: chunk k
holds seqs k*CHUNK+1 .. (k+1)*CHUNK, so its leaves form one perfect subtree of height
CHUNK_BITS, and the frontier of the whole tree at any seq inside it is the frontier at the
chunk's start (nodes of height >= CHUNK_BITS only) followed by the chunk's own frontier so far.
A chunk's process therefore needs nothing from the chunks before it: it links its events from
the stored hash before its first seq, and reports its frontier at each checkpoint. The caller
(`chain.verify`) takes the chunks in order, checks that each started from the hash the one before
ended on, and checks the checkpoints against the whole tree's roots, so a problem is reported at
the same first bad event as one walk from #1 would report it.

Every chunk runs `check` whether in a worker process or in the caller's (tests inside a
transaction, an in-memory database, a threaded process, one CPU): one code path.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.db.models import TextField
from django.db.models.functions import Cast

from casebridge.audit.models import SEALED_FIELDS, Event, Seal
from casebridge.core import forking

CHUNK_BITS = 13
CHUNK = 1 << CHUNK_BITS  # 8,192 events


@dataclass(slots=True)
class Chunk:
    """What `check` found in seqs lo..hi."""

    lo: int
    prev: str  # the hash the first event was linked from
    checked: int  # events that passed, from lo on
    last_hash: str  # the hash of the last event that passed (prev if none did)
    event_ids: array  # the events that passed, in order ("q")
    marks: list[tuple[int, str, list[bytes]]]  # (checkpoint seq, hash there, frontier nodes there)
    size: int  # the tree size `nodes` stand for
    nodes: list[bytes]  # the frontier after the last event that passed
    problem: tuple[str, int, int] | None = None  # (what, seq, event id): an event that does not match
    stopped_at: int | None = None  # the rows ended before hi at this seq: a gap or a seal without its event


Task = tuple[int, int, str | None, tuple[int, list[bytes]], list[int]]  # check's arguments


def check(lo: int, hi: int, prev: str | None, base: tuple[int, list[bytes]], marks: Iterable[int]) -> Chunk:
    """Link seqs lo..hi from `prev` (None: the stored hash of lo - 1), append their leaves to the
    frontier `base` (size, nodes), and note the frontier at each seq in `marks`. Stops at the
    first event whose form does not hash to its seal, or where the rows skip a seq."""
    if prev is None:
        prev = Seal.objects.filter(seq=lo - 1).values_list("hash", flat=True).first() or ""
    size, nodes = base[0], list(base[1])
    result = Chunk(lo, prev, 0, prev, array("q"), [], size, nodes)
    wanted = set(marks)
    sha256 = hashlib.sha256
    prev_bytes, expected, last = bytes.fromhex(prev), lo, prev
    for row in _rows(lo, hi):
        seq, stored, event_id = row[0], row[1], row[2]
        if seq != expected:
            break
        form = _quick_form(row[2:], seq)
        digest = "" if form is None else sha256(prev_bytes + form).hexdigest()
        if form is None or digest != stored:  # rebuilt the reference way before it counts (see _quick_form)
            form = _reference_form(event_id, seq)
            if form is None or sha256(prev_bytes + form).hexdigest() != stored:
                what = f"#{seq} (event {event_id}) does not match its hash: edited, inserted or reordered"
                result.problem = (what, seq, event_id)
                break
        node, carry = sha256(b"\x00" + form).digest(), size  # merkle.Frontier.append, inlined
        while carry & 1:
            node = sha256(b"\x01" + nodes.pop() + node).digest()
            carry >>= 1
        nodes.append(node)
        size += 1
        result.event_ids.append(event_id)
        if seq in wanted:
            result.marks.append((seq, stored, nodes.copy()))
        prev_bytes, last, expected = bytes.fromhex(stored), stored, seq + 1
    if result.problem is None and expected <= hi:
        result.stopped_at = expected
    result.checked, result.last_hash, result.size = expected - lo, last, size
    return result


def processes_for(tasks: int) -> int:
    """How many processes `run` checks this many tasks with: one per CPU this process may use
    (or AUDIT_VERIFY_PROCESSES), no more than there are tasks, and 1 where forking is not safe."""
    configured = settings.AUDIT_VERIFY_PROCESSES
    wanted = min(configured if configured > 0 else forking.cpus(), tasks)
    return wanted if wanted > 1 and _may_fork() else 1


def run(tasks: list[Task], processes: int) -> Iterator[Chunk]:
    """`check` over the tasks, results in task order, in `processes` forked workers (1: here).
    Stopping the iteration stops the workers."""
    if processes < 2:
        yield from (check(*task) for task in tasks)
        return
    with forking.context().Pool(processes, initializer=forking.leave_inherited_connections) as pool:
        yield from pool.imap(_check_task, tasks)


def _check_task(task: Task) -> Chunk:
    return check(*task)


def _may_fork() -> bool:
    """A forked worker opens its own connection, so it sees what is committed: not this
    connection's open transaction, nor a private in-memory database. Forking a process with
    other threads can deadlock them, so a threaded server verifies in its own process."""
    database = connections[DEFAULT_DB_ALIAS]
    if database.in_atomic_block or _threaded():
        return False
    return not (isinstance(database, SQLiteWrapper) and database.is_in_memory_db())


def _threaded() -> bool:
    return not forking.single_threaded()


def iso(value: datetime) -> str:
    """A time as the canonical form writes it: UTC, microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# --- reading rows, building forms -------------------------------------------------------------
def _rows(lo: int, hi: int) -> list[tuple[Any, ...]]:
    """Seals lo..hi in order, each with its event's columns in `SEALED_FIELDS` order, as the
    database driver returns them: no model instances and no field converters. A seal whose
    event is gone has no row."""
    columns: list[Any] = ["seq", "hash", *(f"event__{name}" for name in SEALED_FIELDS)]
    if connection.vendor == "sqlite":  # the text as stored: no datetime to make and format again
        columns[3] = Cast("event__occurred_at", TextField())
    query = Seal.objects.filter(seq__gte=lo, seq__lte=hi).order_by("seq").values_list(*columns)
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _reference_form(event_id: int, seq: int) -> bytes | None:
    """The canonical form through Django's own field conversions, as the sealer wrote it."""
    from casebridge.audit.chain import canonical_values

    row = Event.objects.filter(pk=event_id).values_list(*SEALED_FIELDS).first()
    return None if row is None else canonical_values(dict(zip(SEALED_FIELDS, row, strict=True)), seq)


def _time_text(value: Any) -> str:
    if isinstance(value, datetime):  # PostgreSQL: aware, in the connection's time zone (UTC)
        return value.isoformat(timespec="microseconds") if value.tzinfo is UTC else iso(value)
    # SQLite: UTC as "YYYY-MM-DD HH:MM:SS[.f...]" (Django's writes, and Now()'s milliseconds)
    if len(value) == 19:
        return f"{value[:10]}T{value[11:]}.000000+00:00"
    if 21 <= len(value) <= 26 and value[19] == ".":
        return f"{value[:10]}T{value[11:19]}{value[19:].ljust(7, '0')}+00:00"
    raise ValueError("unexpected time format")


def _uuid_text(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, str) and len(value) == 32:  # SQLite keeps UUIDs as 32 hex digits
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(value)


def _quick_form(columns: tuple[Any, ...], seq: int) -> bytes | None:
    """`canonical_values` from raw column values with orjson, about five times faster; None
    where a value is not in a form this knows. Not the definition: orjson writes a few floats
    differently from `json` (1e-07 as 1e-7), so a form that does not match its seal is rebuilt
    by `_reference_form` before anything is reported. A match is sound either way: these bytes
    encode exactly the row's values, and they are what was sealed."""
    payload = dict(zip(SEALED_FIELDS, columns, strict=True))
    try:
        payload["seq"] = seq
        payload["occurred_at"] = _time_text(payload["occurred_at"])
        payload["organization_id"] = _uuid_text(payload["organization_id"])
        payload["emergency_access_id"] = _uuid_text(payload["emergency_access_id"])
        details = payload["details"]
        payload["details"] = orjson.loads(details) if isinstance(details, str | bytes) else details
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except (TypeError, ValueError):  # orjson's errors are ValueError and TypeError subclasses
        return None
