"""Database triggers that refuse UPDATE and DELETE on the audit tables (SQLite and PostgreSQL).

One exception: the transaction that moves old events into an archive segment (audit/archive.py)
holds a row in `audit_archive_gate`, uncommitted and so invisible to every other transaction;
while it does, DELETE on `audit_event` and `audit_seal` is let through for that transaction.
(Installed only once the gate table exists; before it, the triggers refuse every change.)

On PostgreSQL `audit_event` is partitioned by month (audit/partitions.py). Its row trigger is
declared on the partitioned table, so PostgreSQL clones it onto every partition, present and
future; the trigger passes the table's name as an argument because TG_TABLE_NAME names the
partition. TRUNCATE triggers are not inherited: each partition gets one of its own."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from casebridge.audit import partitions

PROTECTED_TABLES = ("audit_event", "audit_seal", "audit_checkpoint")
ARCHIVED_TABLES = ("audit_event", "audit_seal")  # what archiving may delete
GATE = "audit_archive_gate"


def _sqlite_statements(table: str, gated: bool) -> list[str]:
    when = "WHEN NOT EXISTS (SELECT 1 FROM audit_archive_gate) " if gated and table in ARCHIVED_TABLES else ""
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} {when}"
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    ]


def _pg_function(gated: bool) -> str:
    gate = (
        "    IF TG_OP = 'DELETE' AND COALESCE(TG_ARGV[0], TG_TABLE_NAME) IN ('audit_event', 'audit_seal')\n"
        "       AND EXISTS (SELECT 1 FROM audit_archive_gate) THEN\n"
        "        RETURN OLD;\n"
        "    END IF;\n"
        if gated
        else ""
    )
    return (
        "CREATE OR REPLACE FUNCTION casebridge_audit_refuse_change() RETURNS trigger AS $$\nBEGIN\n"
        f"{gate}"
        "    RAISE EXCEPTION '% is append-only', COALESCE(TG_ARGV[0], TG_TABLE_NAME)\n"
        "        USING ERRCODE = 'insufficient_privilege';\n"
        "END;\n$$ LANGUAGE plpgsql"
    )


def _pg_statements(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION casebridge_audit_refuse_change('{table}')",
        *pg_truncate_statements(table, table),
    ]


def pg_truncate_statements(relation: str, table: str) -> list[str]:
    """Refuse TRUNCATE on `relation` (a table or one of `table`'s partitions)."""
    return [
        f"DROP TRIGGER IF EXISTS {relation}_no_truncate ON {relation}",
        f"CREATE TRIGGER {relation}_no_truncate BEFORE TRUNCATE ON {relation} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION casebridge_audit_refuse_change('{table}')",
    ]


def install(connection: BaseDatabaseWrapper) -> None:
    gated = GATE in connection.introspection.table_names()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_pg_function(gated))
            for table in PROTECTED_TABLES:
                for sql in _pg_statements(table):
                    cursor.execute(sql)
            for partition in partitions.names(cursor):
                for sql in pg_truncate_statements(partition, "audit_event"):
                    cursor.execute(sql)
        elif connection.vendor == "sqlite":
            for table in PROTECTED_TABLES:
                for sql in _sqlite_statements(table, gated):
                    cursor.execute(sql)
        else:
            raise NotImplementedError(f"no audit triggers for {connection.vendor}")


def remove(connection: BaseDatabaseWrapper) -> None:
    """Drop the triggers. Used only by the test suite's flush and the tamper tests."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for partition in partitions.names(cursor):
                cursor.execute(f"DROP TRIGGER IF EXISTS {partition}_no_truncate ON {partition}")
        for table in PROTECTED_TABLES:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
