"""Test helper: make the audit store refuse new events, as a full disk or a lost database would.

Used to show that a change never commits without its event: the write and its event share one
transaction, so when the event cannot be written the change is rolled back too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
