"""The compliance workspace beside the data (issue 16). First: security incidents and breaches
with the 4-factor risk assessment of 45 CFR 164.402 and the notification clocks that follow."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Decision(models.TextChoices):
    UNDECIDED = "undecided", "Not decided yet"
    BREACH = "breach", "Breach: notification required"
    NOT_BREACH = "not_breach", "Not a breach: low probability of compromise demonstrated"


class Incident(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="incidents")
    title = models.CharField(max_length=200)
    description = models.TextField()
    discovered_at = models.DateTimeField()  # the clocks run from discovery (164.404(a)(2))
    occurred_at = models.DateTimeField(null=True, blank=True)
    systems = models.CharField(max_length=300, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    is_exercise = models.BooleanField(default=False)  # a tabletop exercise, recorded the same way
    individuals_affected = models.PositiveIntegerField(default=0)
    most_in_one_state = models.PositiveIntegerField(default=0)  # media notice above 500 in a state
    under_gdpr = models.BooleanField(default=False)
    # A business associate tells the covered entity within the contract's deadline (at most 60 days).
    contract_deadline_days = models.PositiveIntegerField(null=True, blank=True)
    # The four factors of 164.402(2), in the assessor's words.
    factor_nature = models.TextField(blank=True)
    factor_recipient = models.TextField(blank=True)
    factor_acquired = models.TextField(blank=True)
    factor_mitigation = models.TextField(blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.UNDECIDED)
    decision_rationale = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When each notice went out (None: not yet), keyed by Deadline.key.
    notices = models.JSONField(default=dict, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-discovered_at"]

    def __str__(self) -> str:
        return f"incident {self.pk}"


class BaaStatus(models.TextChoices):
    NONE = "none", "No BAA"
    REQUESTED = "requested", "Requested"
    SIGNED = "signed", "Signed"
    EXPIRED = "expired", "Expired"
    NOT_NEEDED = "not_needed", "Not needed (no PHI)"


class Vendor(models.Model):
    """A system or vendor that touches PHI (issue 16, item 1): who owns the relationship, what
    data it handles, and its BAA with the dates that matter."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="vendors")
    name = models.CharField(max_length=150)
    category = models.CharField(max_length=60, blank=True)  # e-mail, cloud storage, lab software...
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data_handled = models.CharField(max_length=300, blank=True)
    baa_status = models.CharField(max_length=16, choices=BaaStatus.choices, default=BaaStatus.NONE)
    baa_signed_on = models.DateField(null=True, blank=True)
    renewal_due = models.DateField(null=True, blank=True)
    reassessment_due = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    reminded_on = models.DateField(null=True, blank=True)
    # The signed agreement as uploaded, encrypted in the vault (compliance/vendors.py).
    baa_document = models.ForeignKey(
        "vault.StoredObject", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="vendor_name_once")]

    def __str__(self) -> str:
        return self.name


class Officers(models.Model):
    """The people the organization names as its security officer (45 CFR 164.308(a)(2)) and its
    privacy officer (164.530(a)): one person may hold both roles."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="officers")
    privacy_officer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    security_officer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    named_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"officers of {self.organization_id}"


class AccessReview(models.Model):
    """A periodic access review campaign (issue 16, item 7): an administrator confirms or revokes
    every member's role, every active external link and every connection; the outcome and how
    long revocations took are the record."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="access_reviews")
    started_at = models.DateTimeField(auto_now_add=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"access review {self.pk}"


class AccessReviewItem(models.Model):
    review = models.ForeignKey(AccessReview, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=16)  # member, link, connection
    ref = models.CharField(max_length=64)
    label = models.CharField(max_length=300)  # what the reviewer saw: a person and role, a link, an organization
    decision = models.CharField(max_length=8, blank=True)  # keep, revoke
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "label"]

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


class TrainingModule(models.Model):
    """A training module written by the compliance officer (issue 16, item 5): text, a short quiz,
    the roles it is assigned to, days to complete it, and whether it is refreshed yearly."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="training_modules")
    title = models.CharField(max_length=150)
    body = models.TextField()
    # [{"question": str, "choices": [str, ...], "answer": index}]
    quiz = models.JSONField(default=list, blank=True)
    pass_mark = models.PositiveSmallIntegerField(default=80)  # percent
    roles = models.JSONField(default=list, blank=True)  # role values; empty: everyone
    due_days = models.PositiveSmallIntegerField(default=30)
    annual = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Onboarding: members who join after this moment open no patient data until they pass it.
    onboarding_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class TrainingAttachment(models.Model):
    """A document that goes with a module (a policy, a slide deck), stored encrypted in the vault."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    module = models.ForeignKey(TrainingModule, on_delete=models.CASCADE, related_name="attachments")
    title = models.CharField(max_length=150)
    stored_object = models.ForeignKey("vault.StoredObject", on_delete=models.PROTECT, related_name="+")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class TrainingCompletion(models.Model):
    module = models.ForeignKey(TrainingModule, on_delete=models.CASCADE, related_name="completions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField()
    passed = models.BooleanField()
    completed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-completed_at"]

    def __str__(self) -> str:
        return f"{self.user_id} {self.module_id} {self.score}%"


class NotificationLetter(models.Model):
    """The draft, then final, notice for one of an incident's clocks (compliance/letters.py): its
    elements as the officer wrote them, keyed by the rule's element."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="letters")
    key = models.CharField(max_length=20)  # Deadline.key: individuals, hhs, media, covered_entity, authority
    sections = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "key"], name="one_letter_per_notice")]

    def __str__(self) -> str:
        return f"{self.key} letter of {self.incident_id}"


class ComplianceSetup(models.Model):
    """The first-run set-up of one organization (compliance/wizard.py): when it was first opened
    and when every step was found done."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="compliance_setup")
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"set-up of {self.organization_id}"


class BaaDocument(models.Model):
    """A business associate agreement drafted with the generator (compliance/baa.py) for one
    connection: the sections as edited, the contractual reporting deadline, final, then signed by
    both sides; the signed PDF is kept in the vault."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="baa_drafts")
    # Between the two sides of a connection, or between the organization and one of its vendors
    # (who signs outside CaseBridge: its countersigned copy is uploaded on the vendor's page).
    connection = models.ForeignKey(
        "orgs.Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="baa_documents"
    )
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.CASCADE, related_name="baa_documents")
    covered_entity = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    business_associate = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    sections = models.JSONField(default=dict)
    report_days = models.PositiveSmallIntegerField(default=10)
    expires_on = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_pdf = models.ForeignKey(
        "vault.StoredObject", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(connection__isnull=False, vendor__isnull=True)
                | models.Q(connection__isnull=True, vendor__isnull=False),
                name="baa_connection_or_vendor",
            )
        ]

    def __str__(self) -> str:
        return f"BAA {self.pk}"

    @property
    def business_associate_name(self) -> str:
        return self.business_associate.name if self.business_associate else self.vendor.name if self.vendor else ""


class BaaSignature(models.Model):
    """One party's signature: who, with the name and title they typed, when (after confirming
    their identity again)."""

    document = models.ForeignKey(BaaDocument, on_delete=models.CASCADE, related_name="signatures")
    party = models.CharField(max_length=20)  # covered_entity, business_associate
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=150)
    title = models.CharField(max_length=150)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["signed_at"]
        constraints = [models.UniqueConstraint(fields=["document", "party"], name="baa_one_signature_per_party")]

    def __str__(self) -> str:
        return f"{self.party} signature of {self.document_id}"


class VendorReassessment(models.Model):
    """The annual reassessment of a vendor (issue 16, item 1): the questionnaire's answers, what
    falls short, the result and when."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="reassessments")
    answers = models.JSONField(default=dict)  # question key -> bool
    breach_notes = models.TextField(blank=True)
    gaps = models.JSONField(default=list)  # question keys answered the wrong way
    result = models.CharField(max_length=16)  # satisfactory, follow_up
    assessed_at = models.DateTimeField(default=timezone.now)
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-assessed_at"]

    def __str__(self) -> str:
        return f"reassessment of {self.vendor_id}"
