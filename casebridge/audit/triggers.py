"""Database triggers that refuse UPDATE and DELETE on the audit tables (SQLite and PostgreSQL)."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

PROTECTED_TABLES = ("audit_event", "audit_seal", "audit_checkpoint")


def _sqlite_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    ]


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION casebridge_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def _pg_statements(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION casebridge_audit_refuse_change()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION casebridge_audit_refuse_change()",
    ]


def install(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            for table in PROTECTED_TABLES:
                for sql in _pg_statements(table):
                    cursor.execute(sql)
        elif connection.vendor == "sqlite":
            for table in PROTECTED_TABLES:
                for sql in _sqlite_statements(table):
                    cursor.execute(sql)
        else:
            raise NotImplementedError(f"no audit triggers for {connection.vendor}")


def remove(connection: BaseDatabaseWrapper) -> None:
    """Drop the triggers. Used only by the test suite's flush and the tamper tests."""
    with connection.cursor() as cursor:
        for table in PROTECTED_TABLES:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
