"""Evidence of backups and restore tests, kept for the compliance record (HIPAA 164.308(a)(7):
data backup plan, disaster recovery plan, testing and revision)."""

from __future__ import annotations

from django.db import models

from casebridge.core.models import BaseModel


class RunKind(models.TextChoices):
    BACKUP = "backup", "Backup"
    RESTORE_TEST = "restore_test", "Restore test"


class BackupRun(BaseModel):
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    # A folder path or bucket name: no credentials, no patient data.
    destination = models.CharField(max_length=300)
    set_id = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    files = models.PositiveIntegerField(default=0)
    bytes_copied = models.BigIntegerField(default=0)
    # Restore tests: how long the restore took (RTO) and how old its newest data was (RPO).
    rto_seconds = models.FloatField(null=True, blank=True)
    rpo_seconds = models.FloatField(null=True, blank=True)
    problem = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "-started_at"], name="retention_run_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.set_id or self.pk}"
