"""PostgreSQL: audit_event becomes a table partitioned by month of occurred_at, with a DEFAULT
partition (audit/partitions.py). Every row, id, index and the append-only triggers are kept; the
foreign keys from audit_seal and audit_pending_seal to it are dropped, as no unique index on id
alone can exist on a partitioned table. SQLite: nothing changes."""

from django.db import migrations
from django.db.migrations.exceptions import IrreversibleError


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from casebridge.audit.partitions import convert

    convert(schema_editor.connection)


def refuse(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    raise IrreversibleError("turning the partitioned audit_event back into one table is not implemented")


class Migration(migrations.Migration):
    atomic = True

    dependencies = [("audit", "0009_archive_segments")]
    operations = [migrations.RunPython(partition, refuse)]
