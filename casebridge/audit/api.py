"""record() and record_many(): the only ways to write audit events, in the caller's transaction."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from casebridge.audit import catalog
from casebridge.audit.db.sqlite3.base import DatabaseWrapper as SealingSQLiteWrapper
from casebridge.audit.models import RECORDED_COLUMNS, ActorType, Event, Outcome
from casebridge.core import context

logger = logging.getLogger(__name__)

_PHI_KEYS = frozenset({"patient_name", "name", "first_name", "last_name", "dob", "birth_date", "date_of_birth"})


def _actor_fields(actor: Any) -> tuple[str, str, str]:
    if actor is None:
        return ActorType.SYSTEM, "", "system"
    actor_kind = getattr(actor, "audit_actor_type", None)
    if actor_kind is not None:
        return actor_kind, str(actor.pk), actor.audit_label
    if getattr(actor, "is_authenticated", False):
        return ActorType.USER, str(actor.pk), getattr(actor, "email", "")
    return ActorType.ANONYMOUS, "", ""


def record(
    action: str,
    *,
    actor: Any = None,
    organization: Any = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    patient_ref: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
    actor_label: str = "",
) -> Event:
    """Append one event; it commits or rolls back with the change it describes.

    `actor` is a user, a service account, None for the system, or AnonymousUser (then
    `actor_label` may name what was attempted, e.g. the e-mail typed at sign-in).
    """
    event = _build_event(
        action,
        actor=actor,
        organization=organization,
        target=target,
        target_type=target_type,
        target_id=target_id,
        patient_ref=patient_ref,
        outcome=outcome,
        details=details,
        actor_label=actor_label,
    )
    _append([event])
    return event


def _append(events: list[Event]) -> None:
    # No savepoint: if either insert fails, the caller's whole transaction must roll back,
    # so a change can never commit without its event (and a savepoint costs two round trips).
    owed = _take_owed_event()
    try:
        with transaction.atomic(savepoint=False):
            if owed is not None:
                events = [_build_event(**owed()), *events]
            if connection.vendor != "postgresql":
                _insert_batch_sqlite(events)
            elif len(events) == 1:
                _insert_with_queue_row(events[0])
            else:
                _insert_batch_with_queue_rows(events)
            _seal_after_commit()
    except BaseException:
        if owed is not None:  # not committed: the request still owes it (core/context.py)
            _give_back(owed)
        raise


def _take_owed_event() -> Callable[[], dict[str, Any]] | None:
    """The event the request owes (its `token.used`), when this append is a transaction of its
    own: it then commits with it. Not inside a caller's transaction, which may still roll back."""
    ctx = context.current()
    if ctx is None or ctx.owed_event is None or connection.in_atomic_block:
        return None
    owed, ctx.owed_event = ctx.owed_event, None
    return owed


def _give_back(owed: Callable[[], dict[str, Any]]) -> None:
    ctx = context.current()
    if ctx is not None:
        ctx.owed_event = owed


_EVENT_COLUMNS = RECORDED_COLUMNS
_CASTS = {"ip": "::inet", "details": "::jsonb"}
# One statement for the event and its queue row: on the single-event path every round trip is a
# measurable share of the cost (docs/audit.md). The time is the database's, as db_default gives.
_INSERT_WITH_QUEUE_ROW = (  # noqa: S608  (built from the constant column list above, never from input)
    "WITH e AS (INSERT INTO audit_event (occurred_at, {columns}) VALUES (STATEMENT_TIMESTAMP(), {values}) "
    "RETURNING id, occurred_at), q AS (INSERT INTO audit_pending_seal (event_id) SELECT id FROM e) "
    "SELECT id, occurred_at FROM e"
).format(
    columns=", ".join(_EVENT_COLUMNS),
    values=", ".join(f"%s{_CASTS.get(column, '')}" for column in _EVENT_COLUMNS),
)


def _insert_with_queue_row(event: Event) -> None:
    params = [getattr(event, column) for column in _EVENT_COLUMNS]
    params[_EVENT_COLUMNS.index("details")] = json.dumps(event.details)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_WITH_QUEUE_ROW, params)
        row = cursor.fetchone()
    assert row is not None
    event.pk, event.occurred_at = row
    event._state.adding = False
    event._state.db = connection.alias


def record_many(entries: Iterable[Mapping[str, Any]]) -> list[Event]:
    """Append several events at once (imports, bulk jobs), in the caller's transaction.

    Each entry holds record()'s arguments, `action` included, and is checked the same way
    before anything is written. Two statements in all, instead of two per event: the batched
    path that reaches tens of thousands of events per second.
    """
    events = [_build_event(**entry) for entry in entries]
    if not events:
        return []
    _append(events)
    return events


_ARRAY_TYPES = {"organization_id": "uuid[]", "emergency_access_id": "uuid[]", "ip": "inet[]", "details": "jsonb[]"}
# One statement for a whole batch and its queue rows, with one typed array per column: Django's
# bulk insert compiles a placeholder per value, which was ~45% of the batched time (profiled).
# WITH ORDINALITY keeps the batch's order for the ids, so its chain order is its insertion order.
_INSERT_BATCH_WITH_QUEUE_ROWS = (  # noqa: S608  (built from the constant column list, never from input)
    "WITH e AS (INSERT INTO audit_event (occurred_at, {columns}) "
    "SELECT STATEMENT_TIMESTAMP(), {selected} FROM UNNEST({arrays}) WITH ORDINALITY AS u({columns}, n) "
    "ORDER BY n RETURNING id, occurred_at), q AS (INSERT INTO audit_pending_seal (event_id) SELECT id FROM e) "
    "SELECT id, occurred_at FROM e ORDER BY id"
).format(
    columns=", ".join(_EVENT_COLUMNS),
    selected=", ".join(f"u.{column}" for column in _EVENT_COLUMNS),
    arrays=", ".join(f"%s::{_ARRAY_TYPES.get(column, 'text[]')}" for column in _EVENT_COLUMNS),
)


def _insert_batch_with_queue_rows(events: list[Event]) -> None:
    columns: list[list[Any]] = [[] for _ in _EVENT_COLUMNS]
    details_index = _EVENT_COLUMNS.index("details")
    for event in events:
        for index, column in enumerate(_EVENT_COLUMNS):
            value = getattr(event, column)
            columns[index].append(json.dumps(value) if index == details_index else value)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_BATCH_WITH_QUEUE_ROWS, columns)
        rows = cursor.fetchall()
    # Identity values are handed out in insertion order within one statement.
    for event, (pk, occurred_at) in zip(events, rows, strict=True):
        event.pk, event.occurred_at = pk, occurred_at
        event._state.adding = False
        event._state.db = connection.alias


# SQLite: a multi-row INSERT ... RETURNING of at most this many events per statement (15 values
# each, under SQLite's 32,766 variables), and the queue rows by executemany. Django's bulk_create
# spent ~75% of the batched time compiling a placeholder per value (profiled: 1,066 -> see
# docs/audit.md). Values are converted as the fields would (UUIDs as hex, JSON as text).
_SQLITE_ROWS_PER_INSERT = 2000
_UUID_COLUMNS = ("organization_id", "emergency_access_id")


def _insert_batch_sqlite(events: list[Event]) -> None:
    details_index = _EVENT_COLUMNS.index("details")
    uuid_indexes = {_EVENT_COLUMNS.index(column) for column in _UUID_COLUMNS}
    row_sql = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(events), _SQLITE_ROWS_PER_INSERT):
            chunk = events[start : start + _SQLITE_ROWS_PER_INSERT]
            params: list[Any] = []
            for event in chunk:
                for index, column in enumerate(_EVENT_COLUMNS):
                    value = getattr(event, column)
                    if index == details_index:
                        value = json.dumps(value)
                    elif index in uuid_indexes and value is not None:  # stored as 32 hex digits
                        value = value.hex if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).hex
                    params.append(value)
            cursor.execute(
                f"INSERT INTO audit_event ({', '.join(_EVENT_COLUMNS)}) VALUES {', '.join([row_sql] * len(chunk))} "  # noqa: S608  (constant columns)
                "RETURNING id, occurred_at",
                params,
            )
            # Rows are inserted in the order of VALUES, each taking the next id under the write
            # lock the transaction holds: sorted ids are the chunk's order (RETURNING's own order
            # is not guaranteed).
            returned = sorted(cursor.fetchall())
            for event, (pk, occurred_at) in zip(chunk, returned, strict=True):
                event.pk = pk
                event.occurred_at = db_datetime(occurred_at)
                event._state.adding = False
                event._state.db = connection.alias
        cursor.executemany("INSERT INTO audit_pending_seal (event_id) VALUES (%s)", [(event.pk,) for event in events])


def db_datetime(value: str | datetime) -> datetime:
    """A DateTimeField's value as Django converts it (aware), from what the driver returns: an
    aware datetime (PostgreSQL); on SQLite a naive one in UTC for a declared datetime column
    (Django's connection parses those), text (in UTC, as Django writes it) for an expression or
    a RETURNING clause."""
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _build_event(
    action: str,
    *,
    actor: Any = None,
    organization: Any = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    patient_ref: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
    actor_label: str = "",
) -> Event:
    """Validate and fill one unsaved event: refusals happen here, before any write."""
    catalog.get(action)  # unknown actions are a programming error, never silently logged
    details = dict(details or {})
    leaked = _PHI_KEYS.intersection(details)
    if leaked:
        raise ValueError(f"audit details must not carry PHI fields: {sorted(leaked)}")
    actor_type, actor_id, label = _actor_fields(actor)
    if actor_label:
        label = actor_label
    ctx = context.current()
    org_id = getattr(organization, "pk", organization)
    emergency_id = None
    if ctx is not None:
        if ctx.api_token is not None:
            details.setdefault("token", str(ctx.api_token.pk))
        grant = ctx.emergency_access
        if grant is not None and org_id is not None and grant.organization_id == org_id:
            emergency_id = grant.pk
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    return Event(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=label[:254],
        organization_id=org_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        patient_ref=patient_ref,
        ip=ctx.ip if ctx else None,
        user_agent=ctx.user_agent if ctx else "",
        request_id=ctx.request_id if ctx else "",
        outcome=outcome,
        emergency_access_id=emergency_id,
        details=details,
    )


def _seal_after_commit() -> None:
    """Seal once per committed transaction, however many events it carries.

    One sealer pass chains everything pending, so a transaction recording 500 events needs one
    pass, not 500. A hook already queued at this level or an enclosing one covers this event:
    Django drops a hook only with the savepoint it was queued in, which also drops the event.
    """
    if not settings.AUDIT_SEAL_ON_COMMIT:
        return  # a dedicated sealer (casebridge worker) chains the queue
    wrapper = transaction.get_connection()
    # SQLite: the backend chains the queue just before this transaction commits (in the same
    # commit) and then drops the hook below, which is the fallback (audit/db/sqlite3).
    if isinstance(wrapper, SealingSQLiteWrapper):
        wrapper.audit_unsealed = True
    if not any(hook[1] is seal_soon for hook in wrapper.run_on_commit):
        transaction.on_commit(seal_soon)


def seal_soon() -> None:
    # record()'s on-commit hook (the SQLite backend drops it when it sealed inside the commit).
    # The event is committed (durable) already; chaining it can wait until the response has been
    # sent, so the person does not wait for a second commit (docs/audit.md, "What auditing adds
    # to a request"). Outside a request: now.
    context.after_response(_seal_now)


def _seal_now() -> None:
    # Non-blocking: if another process is sealing, it or the periodic sealer will take ours.
    from casebridge.audit.chain import seal_pending

    try:
        seal_pending(blocking=False)
    except Exception:  # the event is committed and queued; sealing is retried periodically
        logger.exception("audit sealing deferred")
