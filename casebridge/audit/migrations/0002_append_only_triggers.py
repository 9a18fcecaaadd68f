"""Install the triggers that make the audit tables append-only (see audit/triggers.py)."""

from django.db import migrations


def install(apps, schema_editor):
    from casebridge.audit.triggers import install as install_triggers

    install_triggers(schema_editor.connection)


def remove(apps, schema_editor):
    from casebridge.audit.triggers import remove as remove_triggers

    remove_triggers(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
