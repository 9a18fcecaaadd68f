"""Evidence of backups and restore tests, kept for the compliance record (HIPAA 164.308(a)(7):
data backup plan, disaster recovery plan, testing and revision)."""

from __future__ import annotations

from django.conf import settings
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


class RecordType(models.TextChoices):
    CASE_FILES = "case_files", "Files of closed cases"
    MESSAGES = "messages", "Messages of closed cases"
    EXTERNAL_LINKS = "external_links", "External links that have ended"
    UNATTACHED_UPLOADS = "unattached_uploads", "Uploads never attached to a case"
    AUDIT_EVENTS = "audit_events", "Audit events"
    COMPLIANCE_RECORDS = "compliance_records", "Compliance records"


class RetentionPolicy(BaseModel):
    """How long an organization keeps one type of record; None: for ever (the default)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    record_type = models.CharField(max_length=24, choices=RecordType.choices)
    keep_days = models.PositiveIntegerField(null=True, blank=True)
    # The state whose dental-record rule sets the floor for case files (retention/data/*.json).
    preset = models.CharField(max_length=8, blank=True)
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "record_type"], name="retention_policy_once_per_type")
        ]

    def __str__(self) -> str:
        return f"{self.record_type}: {self.keep_days}"


class LegalHold(BaseModel):
    """Suspends every deletion of a patient's, a case's or the whole organization's records."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey("cases.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=300)
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"hold {self.pk}"

    @property
    def scope(self) -> str:
        return "case" if self.case_id else "patient" if self.patient_id else "organization"


class Postponement(BaseModel):
    """An owner's decision to let no record of the organization be destroyed before `until`."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    until = models.DateField()
    reason = models.CharField(max_length=300)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"postponed until {self.until}"


class DestructionCertificate(BaseModel):
    """What one enforcement run destroyed, signed (Ed25519, keyring key) so that the record of the
    destruction outlives what it destroyed and cannot be edited unseen."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    body = models.TextField()  # canonical JSON: run time, policies, items with their hashes, actor
    key_id = models.CharField(max_length=40)
    signature = models.CharField(max_length=128)
    items = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"destruction certificate {self.pk}"


class EnforcementRun(BaseModel):
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    destroyed = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"enforcement {self.started_at:%Y-%m-%d %H:%M}"


class DeclaredStateRule(BaseModel):
    """The dental-record rule of a state the shipped table does not list yet, as an owner or
    administrator of the organization declared it after confirming it (with counsel or the
    state's dental board): it then sets the floor for case files like a listed state's rule.
    One per organization; every change is audited."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=2)  # USPS code, e.g. "CA"
    years_after_last_treatment = models.PositiveSmallIntegerField()
    minor_until_age = models.PositiveSmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=200)
    url = models.URLField(max_length=500, blank=True)
    declared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    declared_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"US-{self.state}: {self.years_after_last_treatment} years"
