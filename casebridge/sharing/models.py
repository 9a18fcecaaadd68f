"""External links (a chosen set of a case's files for one outside recipient, behind a one-time
code sent to their address), the codes themselves, and the accounting of disclosures."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casebridge.audit.models import ActorType
from casebridge.core.models import BaseModel


class ExternalLink(BaseModel):
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="external_links")
    attachments = models.ManyToManyField("cases.Attachment", related_name="external_links")
    recipient_email = models.EmailField(max_length=254)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    max_downloads = models.PositiveIntegerField()
    downloads_used = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Wrong codes in a row across all codes of the link; at the limit the link locks for good.
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the URL token: the raw token exists only in the e-mail sent to the recipient.
    token_digest = models.CharField(max_length=64, unique=True)
    # What the recipient receives (issue 14, item 4): de-identified copies made as they download
    # (DICOM by the Basic Profile plus `deid_options`, option keys of deid.Options.selected()),
    # unless the sender chose originals; any choice less strict than the Basic Profile carries
    # the sender's written reason, also recorded in the audit log.
    deidentify = models.BooleanField(default=True)
    deid_options = models.JSONField(default=list, blank=True)
    originals_reason = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["case", "-created_at"], name="sharing_link_case_recent")]

    def __str__(self) -> str:
        return f"link {self.pk}"  # never the address: str() ends up in logs

    @property
    def masked_email(self) -> str:
        """j***@example.com: enough for the recipient to recognise their address, no more."""
        local, _, domain = self.recipient_email.partition("@")
        return f"{local[:1]}***@{domain}"


class OneTimeCode(models.Model):
    link = models.ForeignKey(ExternalLink, on_delete=models.CASCADE, related_name="codes")
    code_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    # Set when a newer code replaces this one: only the latest code sent can be used.
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["link", "-created_at"], name="sharing_code_link_recent")]

    def __str__(self) -> str:
        return f"code {self.pk} of {self.link_id}"


class Disclosure(models.Model):
    """One line of the patient's accounting of disclosures: who received which files, when, why,
    disclosed by whom. Kept with the case (PROTECT): the accounting covers six years."""

    practice = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("cases.Patient", on_delete=models.PROTECT, related_name="disclosures")
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="disclosures")
    link = models.OneToOneField(
        ExternalLink, null=True, blank=True, on_delete=models.PROTECT, related_name="disclosure"
    )
    recipient_email = models.EmailField(max_length=254)
    # Neutral names and vault ids of what was made available, as they were at the time.
    files = models.JSONField(default=list)
    disclosed_at = models.DateTimeField()
    disclosed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    disclosed_by_label = models.CharField(max_length=254)
    purpose = models.TextField()
    # Copied from the link when a retention policy removes it (the accounting outlives the link):
    # "de-identified" or "originals", and "used of allowed" downloads.
    copies = models.CharField(max_length=16, blank=True)
    downloads = models.CharField(max_length=24, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["practice", "-disclosed_at"], name="sharing_disclosure_recent"),
            models.Index(fields=["patient", "-disclosed_at"], name="sharing_disclosure_patient"),
        ]

    def __str__(self) -> str:
        return f"disclosure {self.pk}"


class Recipient:
    """The outside person acting through a link, as the audit log names them: the link's id and
    the address the code was sent to."""

    audit_actor_type = ActorType.RECIPIENT

    def __init__(self, link: ExternalLink) -> None:
        self.link = link

    @property
    def pk(self) -> str:
        return str(self.link.pk)

    @property
    def audit_label(self) -> str:
        return self.link.recipient_email
