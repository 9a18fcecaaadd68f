from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "casebridge.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from casebridge.audit.chain import checkpoint_now, seal_pending
        from casebridge.core.tasks import FIRST, LAST, register_periodic

        register_periodic("audit.seal", seal_pending, phase=FIRST)
        register_periodic("audit.checkpoint", checkpoint_now, phase=LAST)
        # After sealing: the rules read sealed events only (audit/alerts.py).
        from casebridge.audit import alerts

        register_periodic("audit.alerts", alerts.run)
        from casebridge.audit import reviews

        register_periodic("audit.review_reminders", reviews.remind_overdue)
        from casebridge.audit import witness

        register_periodic("audit.checkpoint_digest", witness.send_digest)
        from casebridge.audit import archive

        # Events older than AUDIT_ARCHIVE_AFTER_DAYS into segments (one query when none are).
        register_periodic("audit.archive", archive.archive_due)
        from casebridge.audit import partitions

        # PostgreSQL: this month's and the next months' partitions of audit_event, ahead of time.
        register_periodic("audit.partitions", partitions.ensure)
        from casebridge.audit import archive_reads

        # The review screen's archive reads are kept a day (their progress and what they found).
        register_periodic("audit.archive_reads", archive_reads.purge)
