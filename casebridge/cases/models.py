"""Cases: the patient reference (minimum necessary), the prescription per tooth, the workflow
state with its history, attachments (vault objects) and the conversation about them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casebridge.core.models import BaseModel


class Patient(BaseModel):
    """Only what the lab needs to match a case to a person: never more (HIPAA minimum necessary)."""

    practice = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="patients")
    name = models.CharField(max_length=150)
    date_of_birth = models.DateField(null=True, blank=True)
    chart_number = models.CharField(max_length=40, blank=True)

    class Meta:
        indexes = [models.Index(fields=["practice", "name"], name="cases_patient_lookup")]

    def __str__(self) -> str:
        return f"patient {self.pk}"  # never the name: str() ends up in logs


class CaseCounter(models.Model):
    """Per-year case numbers (CB-2026-000123), handed out under a row lock: no PHI, no gaps."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last}"


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    RECEIVED = "received", "Received by lab"
    IN_DESIGN = "in_design", "In design"
    DESIGN_APPROVAL_REQUESTED = "design_approval_requested", "Design approval requested"
    DESIGN_APPROVED = "design_approved", "Design approved"
    DESIGN_REJECTED = "design_rejected", "Design rejected"
    IN_PRODUCTION = "in_production", "In production"
    QUALITY_CHECK = "quality_check", "Quality check"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    COMPLETED = "completed", "Completed"
    ON_HOLD = "on_hold", "On hold: question to the practice"
    CANCELLED = "cancelled", "Cancelled"


class Delivery(models.TextChoices):
    SHIP = "ship", "Ship to address"
    PICKUP = "pickup", "Local pickup"


class Case(BaseModel):
    number = models.CharField(max_length=20, unique=True)
    practice = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="cases_sent")
    lab = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="cases_received"
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    case_type = models.CharField(max_length=40)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.DRAFT)
    status_before_hold = models.CharField(max_length=32, blank=True)
    due_date = models.DateField(null=True, blank=True)
    delivery = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.SHIP)
    ship_to = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    tracking_number = models.CharField(max_length=80, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    submitted_at = models.DateTimeField(null=True, blank=True)
    # The prescriber's electronic signature, fixed when the practice sends the case: the slip
    # prints what was true then, even if the doctor's license or name changes later.
    signed_name = models.CharField(max_length=150, blank=True)
    signed_license = models.CharField(max_length=50, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    # Set at completion from the practice's grace period: the lab sees the case until then.
    lab_access_until = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    lab_access_revoked_at = models.DateTimeField(null=True, blank=True)
    remake_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="remakes")

    class Meta:
        indexes = [
            models.Index(fields=["practice", "status", "due_date"], name="cases_practice_board"),
            models.Index(fields=["lab", "status", "due_date"], name="cases_lab_board"),
        ]

    def __str__(self) -> str:
        return self.number


class Restoration(models.TextChoices):
    CROWN = "crown", "Crown"
    BRIDGE_ABUTMENT = "bridge_abutment", "Bridge abutment"
    BRIDGE_PONTIC = "bridge_pontic", "Bridge pontic"
    INLAY = "inlay", "Inlay"
    ONLAY = "onlay", "Onlay"
    VENEER = "veneer", "Veneer"
    IMPLANT_CROWN = "implant_crown", "Implant crown"
    IMPLANT_ABUTMENT = "implant_abutment", "Implant abutment (custom)"
    IMPLANT_BRIDGE = "implant_bridge", "Implant bridge / full-arch"
    COMPLETE_DENTURE = "complete_denture", "Complete denture"
    PARTIAL_DENTURE = "partial_denture", "Partial denture"
    NIGHT_GUARD = "night_guard", "Night guard / splint"
    ALIGNER = "aligner", "Aligner"
    SURGICAL_GUIDE = "surgical_guide", "Surgical guide"
    MODEL = "model", "Model"


class Material(models.TextChoices):
    ZIRCONIA_FULL = "zirconia_full", "Zirconia, full-contour"
    ZIRCONIA_LAYERED = "zirconia_layered", "Zirconia, layered"
    EMAX = "emax", "Lithium disilicate (e.max)"
    PFM = "pfm", "Porcelain fused to metal"
    GOLD = "gold", "Full-cast gold / noble alloy"
    PMMA = "pmma", "PMMA (temporary)"
    COMPOSITE = "composite", "Composite"
    ACRYLIC = "acrylic", "Acrylic"
    TITANIUM = "titanium", "Titanium"
    COCR = "cocr", "Cobalt-chrome"
    PEEK = "peek", "PEEK"


class Arch(models.TextChoices):
    UPPER = "upper", "Upper"
    LOWER = "lower", "Lower"
    BOTH = "both", "Both"


class CaseItem(models.Model):
    """One restoration: on a tooth (FDI code), or on an arch for appliances like dentures."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="items")
    tooth = models.PositiveSmallIntegerField(null=True, blank=True)
    arch = models.CharField(max_length=8, choices=Arch.choices, blank=True)
    restoration = models.CharField(max_length=32, choices=Restoration.choices)
    material = models.CharField(max_length=32, choices=Material.choices, blank=True)
    shade = models.CharField(max_length=10, blank=True)
    stump_shade = models.CharField(max_length=10, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tooth__isnull=False) | ~models.Q(arch=""), name="case_item_tooth_or_arch"
            )
        ]

    def __str__(self) -> str:
        return f"{self.restoration} on {self.tooth or self.arch}"


class CaseEvent(models.Model):
    """The case's status history, as people see it (the audit log keeps the full record)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=32, choices=Status.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True)
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.case_id} -> {self.status}"


class AttachmentKind(models.TextChoices):
    RX = "rx", "Prescription"
    SCAN = "scan", "Scan"
    CBCT = "cbct", "CBCT / X-ray"
    PHOTO = "photo", "Photo"
    DESIGN = "design", "Design for approval"
    REPORT = "report", "Radiology report"
    OTHER = "other", "Other"


class Attachment(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="attachments")
    stored_object = models.OneToOneField("vault.StoredObject", on_delete=models.PROTECT, related_name="attachment")
    kind = models.CharField(max_length=10, choices=AttachmentKind.choices)
    label = models.CharField(max_length=40, blank=True)  # neutral, e.g. "upper", "shade_1"
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    added_by_org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "added_at"]

    def __str__(self) -> str:
        return self.display_name

    def download_name(self, version: int) -> str:
        """The name a download of `version` is saved under: the case's name of the file, with
        `_v<n>` for an earlier version than the current one."""
        name = self.display_name
        if version != self.stored_object.current_version:
            stem, _, extension = name.rpartition(".")
            name = f"{stem}_v{version}.{extension}"
        return name

    @property
    def display_name(self) -> str:
        """CB-2026-000123_upper_1.stl: the case number, a neutral label, never the uploaded name."""
        parts = [self.case.number, self.label or self.kind, str(self.seq)]
        return "_".join(parts) + f".{self.stored_object.extension}"

    @property
    def seq(self) -> int:
        same = [a.pk for a in self.case.attachments.all() if a.kind == self.kind and a.label == self.label]
        return same.index(self.pk) + 1 if self.pk in same else len(same) + 1


class Message(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    author_org = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    is_question = models.BooleanField(default=False)
    attachments = models.ManyToManyField(Attachment, blank=True, related_name="messages")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"message {self.pk} on {self.case_id}"


class MessageRead(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="message_read_once")]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.message_id}"


class ImagingModality(models.TextChoices):
    CBCT = "cbct", "CBCT (cone beam CT)"
    PANORAMIC = "panoramic", "Panoramic X-ray"
    CEPHALOMETRIC = "ceph", "Cephalometric X-ray"
    FULL_MOUTH = "fmx", "Full-mouth intraoral series"


class ImagingRegion(models.TextChoices):
    BOTH_ARCHES = "both_arches", "Both arches"
    MAXILLA = "maxilla", "Maxilla"
    MANDIBLE = "mandible", "Mandible"
    LOCALIZED = "localized", "Localized (the teeth named)"
    TMJ = "tmj", "Temporomandibular joints"
    SINUS = "sinus", "Maxillary sinuses"
    AIRWAY = "airway", "Airway"


class ImagingOrderStatus(models.TextChoices):
    SENT = "sent", "Sent to the imaging center"
    RECEIVED = "received", "Received by the imaging center"
    DELIVERED = "delivered", "Images delivered"
    CANCELLED = "cancelled", "Cancelled"


class ImagingOrder(BaseModel):
    """A practice refers the patient of a case to a connected imaging center for a study.

    The center sees the case (patient reference and this order, not the lab prescription) from
    the moment the order is sent until the practice revokes its access or the grace period after
    delivery ends, adds the study and its report to the case while it works on the order, and
    delivers. Whoever the practice sends the case to (its lab) sees the study like any file of
    the case. The policy (access.policy.visible_cases) reads these rows."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="imaging_orders")
    center = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="imaging_orders")
    modality = models.CharField(max_length=16, choices=ImagingModality.choices)
    region = models.CharField(max_length=16, choices=ImagingRegion.choices)
    teeth = models.CharField(max_length=120, blank=True)  # FDI codes, comma-separated
    clinical_question = models.TextField()
    status = models.CharField(max_length=16, choices=ImagingOrderStatus.choices, default=ImagingOrderStatus.SENT)
    ordered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Set at delivery from the practice's grace period, as for a lab at completion.
    access_until = models.DateTimeField(null=True, blank=True)
    access_revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["center", "status"], name="cases_imaging_order_inbox")]

    def __str__(self) -> str:
        return f"imaging order {self.pk} on {self.case_id}"

    @property
    def is_open(self) -> bool:
        """Whether the center still works on it (it may add files)."""
        return self.status == ImagingOrderStatus.RECEIVED and self.access_revoked_at is None
