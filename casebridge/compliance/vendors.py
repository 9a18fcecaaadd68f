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
from casebridge.audit.api import record
from casebridge.compliance.models import BaaStatus, Vendor
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
