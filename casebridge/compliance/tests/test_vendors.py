"""The vendor inventory: BAA status and dates, what needs attention, reminders 30 days ahead
(once), the BAA chain through connections in counts only; compliance managers only."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import OrgAccess, resolve
from casebridge.audit.models import Event
from casebridge.compliance import vendors
from casebridge.compliance.models import BaaStatus, Vendor
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _officer(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    return access


def test_a_vendor_without_a_signed_baa_or_near_renewal_needs_attention(personas: Personas) -> None:
    today = timezone.localdate()
    mailer = vendors.save_vendor(_officer(personas), None, name="MailCo", data_handled="appointment e-mails")
    assert vendors.needs_attention(mailer) == "handles PHI without a signed BAA"
    cloud = vendors.save_vendor(
        _officer(personas),
        None,
        name="CloudStore",
        baa_status=BaaStatus.SIGNED,
        baa_signed_on=today - timedelta(days=300),
        renewal_due=today + timedelta(days=20),
    )
    assert vendors.needs_attention(cloud).startswith("BAA renewal due")
    event = Event.objects.filter(action="compliance.vendor.saved").latest("id")
    assert event.details["baa_status"] == "signed" and "name" in event.details["fields"]


def test_bad_entries_are_refused(personas: Personas) -> None:
    with pytest.raises(ValidationError) as refused:
        vendors.save_vendor(_officer(personas), None, name="", baa_status=BaaStatus.SIGNED)
    assert {"name", "baa_signed_on"} <= set(refused.value.message_dict)
    with pytest.raises(ValidationError, match="after the signing"):
        vendors.save_vendor(
            _officer(personas),
            None,
            name="X",
            baa_status=BaaStatus.SIGNED,
            baa_signed_on=date(2026, 5, 1),
            renewal_due=date(2026, 4, 1),
        )
    vendors.save_vendor(_officer(personas), None, name="Dup")
    with pytest.raises(ValidationError, match="already listed"):
        vendors.save_vendor(_officer(personas), None, name="Dup")
    assert Vendor.objects.count() == 1


def test_renewals_are_reminded_once(personas: Personas, django_capture_on_commit_callbacks: Any) -> None:
    today = timezone.localdate()
    vendors.save_vendor(
        _officer(personas),
        None,
        name="ScanHub",
        baa_status=BaaStatus.SIGNED,
        baa_signed_on=today - timedelta(days=300),
        renewal_due=today + timedelta(days=10),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert vendors.remind() == 1
        assert vendors.remind() == 0
    [message] = mail.outbox
    assert message.to == [personas.members["compliance_officer"].email] and "ScanHub" in message.subject


def test_the_page_for_compliance_managers_only(personas: Personas) -> None:
    url = reverse("vendors", args=[personas.practice.slug])
    officer = signed_in_client(personas.members["compliance_officer"])
    assert officer.post(url, {"name": "MailCo", "baa_status": "none"}).status_code == 302
    assert "handles PHI without a signed BAA" in officer.get(url).content.decode()
    assert signed_in_client(personas.members["staff"]).get(url).status_code == 403
    vendor = Vendor.objects.get()
    outsider = signed_in_client(personas.outsider)
    other = reverse("vendors", args=[personas.other_practice.slug])
    assert outsider.post(other, {"vendor": str(vendor.pk), "name": "Mine", "baa_status": "none"}).status_code == 404
    vendor.refresh_from_db()
    assert vendor.name == "MailCo"
