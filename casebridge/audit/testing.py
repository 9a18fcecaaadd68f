"""Test helpers: make the audit store refuse new events, as a full disk or a lost database would
(used to show that a change never commits without its event: the write and its event share one
transaction, so when the event cannot be written the change is rolled back too);
sign a checkpoint with its witness copies; tamper with the audit tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

_TRIGGER = "audit_event_tests_refuse_insert"


@contextmanager
def audit_store_refusing_events() -> Iterator[None]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION casebridge_tests_refuse_insert() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'audit store unavailable'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER {_TRIGGER} BEFORE INSERT ON audit_event "
                "FOR EACH ROW EXECUTE FUNCTION casebridge_tests_refuse_insert()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER {_TRIGGER} BEFORE INSERT ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON audit_event")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")


def checkpointed(n: int, capture: Callable[..., Any]) -> int:
    """Record `n` events and sign a checkpoint at the head, running the on-commit hooks (which
    write the witness copies) with `capture` (django_capture_on_commit_callbacks). Its seq."""
    from casebridge.audit import chain
    from casebridge.audit.api import record

    for i in range(n):
        record("org.created", details={"n": i})
    with capture(execute=True):
        checkpoint = chain.checkpoint_now()
    assert checkpoint is not None
    return checkpoint.seq


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run SQL against the audit tables with their append-only triggers removed, as an attacker
    with database access would."""
    from casebridge.audit import triggers

    triggers.remove(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def archive_everything_so_far() -> None:
    """Move every event recorded so far into archive segments, as 13 months later would (the
    archive needs a signed checkpoint after them, and leaves the chain's head hot: one more
    event after the checkpoint stays)."""
    from datetime import timedelta

    from django.utils import timezone

    from casebridge.audit import archive, chain
    from casebridge.audit.api import record

    chain.seal_pending()
    assert chain.checkpoint_now() is not None
    record("org.created", details={"n": 0})
    chain.seal_pending()
    assert archive.archive(now=timezone.now() + timedelta(days=400))
