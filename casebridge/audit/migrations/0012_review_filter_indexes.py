"""Indexes for the review page's filters (queries.organization_events) at millions of events:
case number, time range, IP and outcome, each within one organization and (except the time
range) newest first on the id as the page reads them. On PostgreSQL they are created on the
partitioned parent, which creates them on every month's partition (and on those made later);
an index on a partitioned table cannot be built CONCURRENTLY, so this migration holds a lock
that blocks new events while it builds: at 10 million events it took minutes (docs/audit.md)."""

import django.db.models.fields.json
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0011_event_time_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                models.F("organization_id"),
                django.db.models.fields.json.KeyTransform("case", "details"),
                models.OrderBy(models.F("id"), descending=True),
                name="audit_event_org_case",
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["organization_id", "occurred_at"], name="audit_event_org_time"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["organization_id", "ip", "-id"], name="audit_event_org_ip"),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["organization_id", "outcome", "-id"], name="audit_event_org_outcome"),
        ),
    ]
