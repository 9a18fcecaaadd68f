"""Audit tables: events (append-only), their seals (the hash chain) and signed checkpoints.

Events are inserted in the transaction of the change they describe, without any lock. A sealer
(see chain.py) assigns each committed event a gap-free sequence number and chain hash in a row
of its own, so unrelated requests never wait for each other on the chain head. Database
triggers refuse UPDATE and DELETE on all three tables. Alerts (raised from sealed events by
audit/alerts.py) are ordinary rows: they are acknowledged, and each raise and acknowledgement is
itself an event.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Now
from django.utils import timezone


class Outcome(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class ActorType(models.TextChoices):
    USER = "user"
    SERVICE = "service"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"
    RECIPIENT = "recipient"
    # Whoever runs a `casebridge` command on the server (access/operator.py).
    OPERATOR = "operator"


class Event(models.Model):
    # Not a column: True on the unsaved copies audit/history.py builds from archive segments, so
    # pages and exports can mark them "(archived)".
    archived = False

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_default=Now())
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True, db_index=True)
    actor_label = models.CharField(max_length=254, blank=True)
    organization_id = models.UUIDField(null=True, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    # Internal patient id only: names and dates of birth never enter the log.
    patient_ref = models.CharField(max_length=64, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    emergency_access_id = models.UUIDField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_event"
        indexes = [
            models.Index(fields=["organization_id", "-id"], name="audit_event_org_recent"),
            models.Index(fields=["action", "-id"], name="audit_event_action_recent"),
            # Time ranges: where the alert rules' windows begin (alerts._floor), the review
            # screen's from/to filter.
            models.Index(fields=["occurred_at"], name="audit_event_time"),
            # The review page's filters (queries.organization_events), each paged newest first
            # on the id within one organization (docs/audit.md, "Review page at 10 million
            # events"). The case filter's expression is exactly what `details__case` compiles
            # to: `details -> 'case'` on PostgreSQL, `json_extract(details, '$."case"')` on SQLite.
            models.Index(
                F("organization_id"), KeyTransform("case", "details"), F("id").desc(), name="audit_event_org_case"
            ),
            models.Index(fields=["organization_id", "occurred_at"], name="audit_event_org_time"),
            models.Index(fields=["organization_id", "ip", "-id"], name="audit_event_org_ip"),
            models.Index(fields=["organization_id", "outcome", "-id"], name="audit_event_org_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk}"


# The columns an event is written with (besides its id and time): the single-statement inserts
# in api.py write exactly these, and the chain hashes them with the id and time (chain.py).
RECORDED_COLUMNS = (
    "actor_type",
    "actor_id",
    "actor_label",
    "organization_id",
    "action",
    "target_type",
    "target_id",
    "patient_ref",
    "ip",
    "user_agent",
    "request_id",
    "outcome",
    "emergency_access_id",
    "details",
)
# What a seal's hash covers of its event, in this order: the canonical form (chain.py).
SEALED_FIELDS = ("id", "occurred_at", *RECORDED_COLUMNS)


class PendingSeal(models.Model):
    """Queue of committed events that the sealer has not chained yet (not itself audit data)."""

    event = models.OneToOneField(Event, on_delete=models.CASCADE, primary_key=True)

    class Meta:
        db_table = "audit_pending_seal"

    def __str__(self) -> str:
        return f"pending seal of event {self.event_id}"


class Seal(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(Event, on_delete=models.PROTECT, related_name="seal")
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "audit_seal"

    def __str__(self) -> str:
        return f"seal #{self.seq}"


class Checkpoint(models.Model):
    """A signed statement "the chain had this hash at this sequence number, and the RFC 9162
    Merkle tree over the events sealed so far (tree size = seq) had this root". Checkpoints
    written before the tree existed have no root (their signature covers the chain alone)."""

    seq = models.BigIntegerField(primary_key=True)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())
    tree_root = models.CharField(max_length=64, blank=True, default="")  # "": before the tree
    # The tree's right border at this size (audit.merkle.Frontier): the next checkpoint appends
    # the events sealed since instead of rehashing the whole log.
    frontier = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "audit_checkpoint"

    def __str__(self) -> str:
        return f"checkpoint #{self.seq}"


class TreeHead(models.Model):
    """The Merkle tree's right border after the last large seal pass: one row, replaced by each
    pass that seals many events at once, so the next one and the checkpoints it writes extend
    it instead of reading back and rehashing the events sealed since the last checkpoint. A
    cache, never evidence: what it holds goes only into roots that `audit verify` recomputes
    from the events themselves, so a wrong one shows there as a checkpoint whose root does not
    match. Passes of a few events (one request's) leave it alone: a write per event would cost
    more than the read-back it saves once per checkpoint."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField()
    frontier = models.JSONField()

    class Meta:
        db_table = "audit_tree_head"

    def __str__(self) -> str:
        return f"tree head #{self.seq}"


class AlertKind(models.TextChoices):
    MASS_DOWNLOAD = "mass_download", "Mass download"
    FAILED_SIGNINS = "failed_signins", "Repeated failed sign-ins or second-factor codes"
    DEACTIVATED_ATTEMPT = "deactivated_attempt", "Sign-in attempt by a deactivated account"
    EMERGENCY_ACCESS = "emergency_access", "Emergency access granted"
    DENIED_SURGE = "denied_surge", "Surge of refused requests"
    AFTER_HOURS = "after_hours", "Activity outside the organization's hours"
    AUDIT_FAILURE = "audit_failure", "Audit verification failed (tampering or witness mismatch)"


class AlertRule(models.Model):
    """An organization's setting for one kind of alert; kinds without a row use the defaults
    (audit.alerts.DEFAULT_RULES)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="alert_rules")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    enabled = models.BooleanField(default=True)
    threshold = models.PositiveIntegerField(default=1)  # events (files, failures, refusals)
    window_minutes = models.PositiveIntegerField(default=10)
    # Business hours for AFTER_HOURS, in the server's time zone: [start_hour, end_hour).
    start_hour = models.PositiveSmallIntegerField(default=7)
    end_hour = models.PositiveSmallIntegerField(default=19)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "kind"], name="alert_rule_once")]

    def __str__(self) -> str:
        return f"{self.kind} rule of {self.organization_id}"


class Alert(models.Model):
    """Something a compliance officer should look at, raised by a rule from audit events. It
    names people (workforce, not patients) and counts, never patient data."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    summary = models.CharField(max_length=300)
    subject_key = models.CharField(max_length=300, blank=True)  # who or what it is about, for folding repeats
    details = models.JSONField(default=dict, blank=True)
    first_seq = models.BigIntegerField(null=True, blank=True)  # the audit events that raised it
    last_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "acknowledged_at", "created_at"], name="audit_alert_inbox")]

    def __str__(self) -> str:
        return f"{self.kind} alert {self.pk}"


class AlertCursor(models.Model):
    """How far the alert rules have read the sealed chain (one row)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"alerts read up to #{self.last_seq}"


class ReviewSchedule(models.Model):
    """How often an organization reviews its audit log (HIPAA 164.308(a)(1)(ii)(D)), and when it
    was last reminded that a review is overdue."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="review_schedule")
    cadence_days = models.PositiveIntegerField(default=30)
    last_reminded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"review every {self.cadence_days} days"


class AuditReview(models.Model):
    """A signed periodic review of the audit log: who reviewed which period, what they found and
    what follows. Evidence for the compliance dashboard; the sign-off is also an audit event."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="audit_reviews")
    period_start = models.DateField()
    period_end = models.DateField()
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True)
    findings = models.TextField(blank=True)
    follow_up = models.TextField(blank=True)
    signed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-signed_at"]

    def __str__(self) -> str:
        return f"review of {self.period_start}..{self.period_end}"


class DigestState(models.Model):
    """The last checkpoint e-mailed in the daily digest (one row): a copy of the signed heads in
    the compliance officers' mailboxes is one more witness outside the database."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.BigIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"digest up to #{self.last_seq}"


class SavedFilter(models.Model):
    """A reviewer's named set of audit log filters (the query string, never search text about a
    patient by name: the log's filters hold actions, people, ids, dates)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "user", "name"], name="saved_filter_once")]

    def __str__(self) -> str:
        return self.name


class ArchiveSegment(models.Model):
    """Sealed events older than AUDIT_ARCHIVE_AFTER_DAYS, moved out of the hot tables into one
    compressed, signed file in the blob store, encrypted like every file (audit/archive.py). The
    events keep their numbers, hashes and Merkle leaves: `audit verify` and proofs read them here."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    first_seq = models.BigIntegerField(unique=True)
    last_seq = models.BigIntegerField(unique=True)
    events = models.PositiveIntegerField()
    first_at = models.DateTimeField()  # the earliest and latest occurred_at inside (search skips others)
    last_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)  # the chain hash before first_seq
    last_hash = models.CharField(max_length=64)
    content_sha256 = models.CharField(max_length=64)  # of events.jsonl, as signed
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=200)
    blob_name = models.CharField(max_length=200, unique=True)
    size = models.BigIntegerField()  # the ZIP's plaintext size
    ciphertext_size = models.BigIntegerField()
    # The segment's data key, wrapped by the key provider's KEK (like an organization key: no
    # organization owns the audit log, and no organization's key destruction may take it).
    wrapped_key = models.TextField()
    kek_version = models.CharField(max_length=200, db_index=True)
    created_at = models.DateTimeField(db_default=Now())
    # Crypto-shredded under every organization's audit-event retention policy: the wrapped key
    # erased, then the blob deleted. The row stays, its signed range and hashes carrying the chain
    # over the events it held, with the Merkle frontier at #last_seq (`audit verify` goes on from
    # there; the next signed checkpoint checks that frontier against the tree it signed).
    destroyed_at = models.DateTimeField(null=True, blank=True)
    frontier = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "audit_archive_segment"
        ordering = ["first_seq"]

    def __str__(self) -> str:
        return f"archive segment #{self.first_seq}-#{self.last_seq}"


class ArchiveGate(models.Model):
    """A row exists only inside the transaction that moves events into a segment: the
    append-only triggers let that transaction (and no other: the row is uncommitted) delete the
    archived events and their seals."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)

    class Meta:
        db_table = "audit_archive_gate"

    def __str__(self) -> str:
        return "archiving in progress"


class ArchiveReadState(models.TextChoices):
    QUEUED = "queued", "Waiting for the worker"
    READING = "reading", "Reading the archive"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ArchiveRead(models.Model):
    """One page of the review screen's "include the archive", read by the task worker while the
    page shows its progress (audit/archive_reads.py). It keeps the filters it was asked (the
    page's query string) and the numbers of the events it found, never their content: the page
    reads those from their segments again, so no decrypted copy of the archive is left behind.
    Rows older than a day are deleted by the housekeeping tick."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    query = models.CharField(max_length=1000)  # the review screen's filters and archive cursor
    state = models.CharField(max_length=10, choices=ArchiveReadState.choices, default=ArchiveReadState.QUEUED)
    segments_done = models.PositiveIntegerField(default=0)
    segments_total = models.PositiveIntegerField(null=True, blank=True)
    # [[event id, seq], ...] of the newest matches (one page and one more), oldest first
    found = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "audit_archive_read"

    def __str__(self) -> str:
        return f"archive read {self.pk}"

    @property
    def percent(self) -> int:
        if self.state == ArchiveReadState.DONE:
            return 100
        if not self.segments_total:
            return 0
        return min(99, self.segments_done * 100 // self.segments_total)
