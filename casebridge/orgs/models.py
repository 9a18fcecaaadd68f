"""Organizations, memberships, invitations, connections between organizations, emergency access."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from casebridge.access.roles import Role
from casebridge.core.models import BaseModel


class OrgKind(models.TextChoices):
    PRACTICE = "practice", "Dental practice"
    LAB = "lab", "Dental lab"
    IMAGING = "imaging", "Imaging center"


class Organization(BaseModel):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=16, choices=OrgKind.choices)
    idle_timeout_seconds = models.PositiveIntegerField(default=15 * 60)
    # How long a lab keeps access to a case after it is completed (cases issue).
    lab_access_grace_days = models.PositiveIntegerField(default=30)
    # The organization's own profile (not PHI): a practice's address is where finished work is
    # shipped by default, and its phone is how a patient checks that a shared link is genuine.
    address = models.TextField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    # De-identification on receipt (issue 14, item 4): members see and download de-identified
    # copies of the files of cases another organization sent (deid/export.py, made at download
    # time; the originals stay in the vault). Off by default.
    deidentify_on_receipt = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class Membership(BaseModel):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    # A prescriber may be named as the doctor of a case, whatever their role (an owner-dentist as
    # much as a clinician): a lab prescription carries the license and is signed in their name.
    is_prescriber = models.BooleanField(default=False)
    license_number = models.CharField(max_length=40, blank=True)
    license_state = models.CharField(max_length=2, blank=True)  # USPS code of the licensing state

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique"),
            models.CheckConstraint(
                condition=models.Q(is_prescriber=False) | (~models.Q(license_number="") & ~models.Q(license_state="")),
                name="membership_prescriber_has_license",
            ),
        ]

    @property
    def license(self) -> str:
        """The license as printed on a prescription: state code, dash, number (CA-12345)."""
        return f"{self.license_state}-{self.license_number}" if self.is_prescriber else ""

    def __str__(self) -> str:
        return f"{self.user_id} in {self.organization_id} as {self.role}"


class Invitation(BaseModel):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=32, choices=Role.choices)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    digest = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation {self.pk}"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class AgreementBasis(models.TextChoices):
    NONE = "none", "No agreement recorded (cannot carry PHI)"
    BAA = "baa", "Signed business associate agreement"
    TREATMENT = "treatment", "Documented treatment relationship"


class ConnectionStatus(models.TextChoices):
    PENDING = "pending", "Awaiting acceptance"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class Connection(BaseModel):
    """A practice's working relationship with a lab or imaging center, and its legal basis."""

    requester = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="connections_requested")
    recipient = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="connections_received")
    status = models.CharField(max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.PENDING)
    basis = models.CharField(max_length=16, choices=AgreementBasis.choices, default=AgreementBasis.NONE)
    baa_signed_on = models.DateField(null=True, blank=True)
    # A BAA with an end date stops carrying patient data after it (issue 16: BAAs gate the data
    # plane); both sides are told once when it lapses (orgs.agreements.notify_expired).
    baa_expires_on = models.DateField(null=True, blank=True)
    baa_expiry_notified_on = models.DateField(null=True, blank=True)
    basis_note = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["requester", "recipient"], name="connection_unique_pair"),
            models.CheckConstraint(condition=~models.Q(requester=models.F("recipient")), name="connection_not_self"),
        ]

    def __str__(self) -> str:
        return f"connection {self.pk}"

    @property
    def baa_expired(self) -> bool:
        return (
            self.basis == AgreementBasis.BAA
            and self.baa_expires_on is not None
            and self.baa_expires_on < timezone.localdate()
        )

    @property
    def can_carry_phi(self) -> bool:
        return self.status == ConnectionStatus.ACTIVE and self.basis != AgreementBasis.NONE and not self.baa_expired

    def phi_refusal(self, other_name: str) -> str:
        """Why patient data may not travel over this connection, in words for the sender."""
        if self.baa_expired:
            assert self.baa_expires_on is not None
            return (
                f"The business associate agreement with {other_name} expired on {self.baa_expires_on:%Y-%m-%d}: "
                "record the renewed agreement on the Connections page before sending patient data."
            )
        return (
            f"No agreement is recorded with {other_name}: record a signed BAA or a treatment relationship "
            "on the Connections page before sending patient data."
        )

    def other(self, org: Organization) -> Organization:
        return self.recipient if org.pk == self.requester_id else self.requester


class EmergencyAccess(BaseModel):
    """Break-glass (45 CFR 164.312(a)(2)(ii)): time-limited elevation with a written reason."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="emergency_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="emergency_grants")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    expiry_recorded = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["organization", "user", "expires_at"], name="emergency_active_lookup")]

    def __str__(self) -> str:
        return f"emergency access {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None and self.expires_at > timezone.now()
