"""The inventory of systems and vendors that touch PHI, with their BAAs (issue 16, item 1):
recorded by compliance managers, each change audited; a vendor handling PHI without a signed
BAA is flagged; renewals and reassessments are reminded 30 days ahead by the worker; the BAA
chain shows, next to the organization's own vendors, its connections and their agreements."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance import documents
from casebridge.compliance.models import BaaStatus, Vendor, VendorReassessment
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.orgs.models import Organization
from casebridge.orgs.queries import compliance_recipients, connections_of

REMIND_DAYS = 30
FIELDS = ("name", "category", "data_handled", "baa_status", "baa_signed_on", "renewal_due", "reassessment_due", "notes")
TEXTS = ("category", "data_handled", "notes")


def save_vendor(access: OrgAccess, vendor: Vendor | None, **values: Any) -> Vendor:
    access.require(Perm.COMPLIANCE_MANAGE)
    errors: dict[str, str] = {}
    name = str(values.get("name") or "").strip()
    if not name:
        errors["name"] = "Name the system or vendor."
    if values.get("baa_status") == BaaStatus.SIGNED and not values.get("baa_signed_on"):
        errors["baa_signed_on"] = "Enter the date the BAA was signed."
    signed, renewal = values.get("baa_signed_on"), values.get("renewal_due")
    if isinstance(signed, date) and isinstance(renewal, date) and renewal <= signed:
        errors["renewal_due"] = "The renewal comes after the signing."
    if errors:
        raise ValidationError(errors)
    cleaned = {field: values.get(field) for field in FIELDS}
    cleaned["name"] = name
    cleaned["baa_status"] = cleaned["baa_status"] or BaaStatus.NONE
    for text in TEXTS:
        cleaned[text] = str(cleaned[text] or "").strip()
    vendor = vendor or Vendor(organization=access.organization)
    changed = [field for field, value in cleaned.items() if getattr(vendor, field) != value]
    for field, value in cleaned.items():
        setattr(vendor, field, value)
    try:
        with transaction.atomic():
            vendor.reminded_on = None if {"renewal_due", "reassessment_due"} & set(changed) else vendor.reminded_on
            vendor.save()
            record(
                "compliance.vendor.saved",
                actor=access.actor,
                organization=access.organization,
                target=vendor,
                details={"vendor": str(vendor.pk), "fields": changed, "baa_status": vendor.baa_status},
            )
    except IntegrityError:
        raise ValidationError({"name": "A vendor with that name is already listed."}) from None
    return vendor


def needs_attention(vendor: Vendor, today: date | None = None) -> str:
    """Why a vendor needs attention now, or "" when it does not."""
    today = today or timezone.localdate()
    if vendor.baa_status in (BaaStatus.NONE, BaaStatus.REQUESTED, BaaStatus.EXPIRED):
        return (
            "handles PHI without a signed BAA"
            if vendor.baa_status != BaaStatus.REQUESTED
            else "BAA requested, not signed"
        )
    if vendor.renewal_due and vendor.renewal_due < today:
        return "BAA renewal overdue"
    if vendor.renewal_due and vendor.renewal_due <= today + timedelta(days=REMIND_DAYS):
        return f"BAA renewal due {vendor.renewal_due:%Y-%m-%d}"
    if vendor.reassessment_due and vendor.reassessment_due <= today + timedelta(days=REMIND_DAYS):
        return f"reassessment due {vendor.reassessment_due:%Y-%m-%d}"
    return ""


def baa_chain(organization: Organization) -> list[dict[str, Any]]:
    """The organization's connections and, for each, the agreement it rests on and how many of
    the other side's own vendors lack a signed BAA (counts only: their inventory is theirs)."""
    rows = []
    for connection in connections_of(organization, active=True):
        other = connection.other(organization)
        vendors = Vendor.objects.filter(organization=other)
        rows.append(
            {
                "organization": other,
                "connection": connection,
                "vendors": vendors.count(),
                "vendors_without_baa": vendors.exclude(baa_status__in=[BaaStatus.SIGNED, BaaStatus.NOT_NEEDED]).count(),
            }
        )
    return rows


def remind() -> int:
    """E-mail compliance officers about renewals and reassessments due within 30 days, once."""
    today = timezone.localdate()
    soon = today + timedelta(days=REMIND_DAYS)
    due = Vendor.objects.filter(reminded_on__isnull=True).filter(renewal_due__lte=soon) | Vendor.objects.filter(
        reminded_on__isnull=True, reassessment_due__lte=soon
    )
    told = 0
    for vendor in due.select_related("organization").distinct():
        to = compliance_recipients(vendor.organization)
        queue_mail(
            to,
            "vendor_due",
            {
                "organization": vendor.organization.name,
                "vendor": vendor.name,
                "what": needs_attention(vendor, today) or "review due",
                "link": absolute_url(reverse("vendors", args=[vendor.organization.slug])),
            },
        )
        Vendor.objects.filter(pk=vendor.pk).update(reminded_on=today)
        told += 1
    return told


DOCUMENT_LIMIT = 50 * 1024 * 1024  # a signed agreement: a PDF or a scan of one
# The annual reassessment: each question, the answer that is in order, and why it is asked.
QUESTIONS: tuple[tuple[str, str, bool, str], ...] = (
    (
        "security",
        "Does the vendor run a documented security program (risk analysis, policies, a security officer)?",
        True,
        "45 CFR 164.308(a)(1), 164.314(a)",
    ),
    ("encryption", "Is patient data encrypted at rest and in transit?", True, "45 CFR 164.312(a)(2)(iv), (e)(2)(ii)"),
    ("mfa", "Is multi-factor authentication required for access to patient data?", True, "45 CFR 164.312(d)"),
    ("audit", "Does the vendor keep audit logs of access to patient data?", True, "45 CFR 164.312(b)"),
    (
        "breaches",
        "Has the vendor had a breach or security incident involving patient data in the past year?",
        False,
        "45 CFR 164.410, 164.314(a)(2)(i)(C)",
    ),
)
REASSESS_EVERY_DAYS = 365


def upload_baa(access: OrgAccess, vendor: Vendor, *, chunks: Any, length: int, signed_on: date | None) -> Vendor:
    """Keep the vendor's signed BAA, encrypted in the vault; the vendor's status becomes signed."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if vendor.organization_id != access.organization.pk:
        raise ValidationError("This vendor belongs to another organization.")
    errors = {}
    if length <= 0:
        errors["document"] = "Choose the signed agreement: this file is empty."
    elif length > DOCUMENT_LIMIT:
        errors["document"] = f"Agreements are limited to {DOCUMENT_LIMIT // (1024 * 1024)} MB."
    if signed_on is None:
        errors["baa_signed_on"] = "Enter the date the BAA was signed."
    elif signed_on > timezone.localdate():
        errors["baa_signed_on"] = "The signing date cannot be in the future."
    if errors:
        raise ValidationError(errors)
    version = documents.put(access, chunks, length)
    with transaction.atomic():
        vendor.baa_document = version.stored_object
        vendor.baa_status = BaaStatus.SIGNED
        vendor.baa_signed_on = signed_on
        vendor.save(update_fields=["baa_document", "baa_status", "baa_signed_on"])
        record(
            "compliance.baa.uploaded",
            actor=access.actor,
            organization=access.organization,
            target=version.stored_object,
            details={"vendor": str(vendor.pk), "size": length, "signed_on": str(signed_on)},
        )
    return vendor


def reassess(access: OrgAccess, vendor: Vendor, answers: dict[str, str], breach_notes: str) -> VendorReassessment:
    """Record the year's questionnaire: every question answered yes or no; an answer out of order
    is a gap and the result is 'follow up'. The next reassessment is due a year from today."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if vendor.organization_id != access.organization.pk:
        raise ValidationError("This vendor belongs to another organization.")
    unanswered = [key for key, *_ in QUESTIONS if answers.get(key) not in ("yes", "no")]
    if unanswered:
        raise ValidationError({key: "Answer yes or no." for key in unanswered})
    given = {key: answers[key] == "yes" for key, *_ in QUESTIONS}
    if given["breaches"] and not breach_notes.strip():
        raise ValidationError({"breach_notes": "Say what happened and what the vendor did about it."})
    gaps = [key for key, _q, good, _c in QUESTIONS if given[key] != good]
    with transaction.atomic():
        done = VendorReassessment.objects.create(
            vendor=vendor,
            answers=given,
            breach_notes=breach_notes.strip()[:2000],
            gaps=gaps,
            result="follow_up" if gaps else "satisfactory",
            assessed_by=access.actor if isinstance(access.actor, User) else None,
        )
        vendor.reassessment_due = timezone.localdate() + timedelta(days=REASSESS_EVERY_DAYS)
        vendor.reminded_on = None
        vendor.save(update_fields=["reassessment_due", "reminded_on"])
        record(
            "compliance.vendor.reassessed",
            actor=access.actor,
            organization=access.organization,
            target=vendor,
            details={"vendor": str(vendor.pk), "result": done.result, "gaps": gaps},
        )
    return done
