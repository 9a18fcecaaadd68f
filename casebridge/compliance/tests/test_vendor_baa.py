"""A vendor's signed BAA kept in the vault (downloads audited) and its annual reassessment
questionnaire (security, encryption, MFA, audit, breach history) with result and date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.compliance.models import BaaStatus, Vendor, VendorReassessment
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
GOOD = {"security": "yes", "encryption": "yes", "mfa": "yes", "audit": "yes", "breaches": "no"}


@pytest.fixture
def vendor(personas: Personas) -> Vendor:
    return Vendor.objects.create(organization=personas.practice, name="CloudStore")


def _url(personas: Personas, name: str, vendor: Vendor) -> str:
    return reverse(name, args=[personas.practice.slug, vendor.pk])


def _upload(name: str = "baa.pdf", content: bytes = PDF) -> object:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="application/pdf")


def test_the_signed_baa_is_stored_and_its_download_audited(personas: Personas, vendor: Vendor) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    signed = str(timezone.localdate() - timedelta(days=3))
    response = client.post(
        _url(personas, "vendor_detail", vendor),
        {"operation": "document", "document": _upload(), "baa_signed_on": signed},
    )
    assert response.status_code == 302
    vendor.refresh_from_db()
    assert vendor.baa_document is not None and vendor.baa_status == BaaStatus.SIGNED
    assert str(vendor.baa_signed_on) == signed
    download = client.get(_url(personas, "vendor_baa_document", vendor))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    read = Event.objects.get(action="compliance.baa.document_read")
    assert read.details == {"vendor": str(vendor.pk)}
    assert Event.objects.filter(action="compliance.baa.uploaded").count() == 1


def test_a_bad_upload_changes_nothing(personas: Personas, vendor: Vendor) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    url = _url(personas, "vendor_detail", vendor)
    later = str(timezone.localdate() + timedelta(days=9))
    for body in (
        {"operation": "document", "baa_signed_on": "2026-01-05"},  # no file
        {"operation": "document", "document": _upload()},  # no date
        {"operation": "document", "document": _upload(), "baa_signed_on": later},
        {"operation": "document", "document": _upload("x.exe", b"MZ\x90\x00" * 64), "baa_signed_on": "2026-01-05"},
    ):
        assert client.post(url, body).status_code == 400
    vendor.refresh_from_db()
    assert vendor.baa_document is None and vendor.baa_status == BaaStatus.NONE
    assert client.get(_url(personas, "vendor_baa_document", vendor)).status_code == 404


def test_the_reassessment_records_result_gaps_and_the_next_date(personas: Personas, vendor: Vendor) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    url = _url(personas, "vendor_detail", vendor)
    assert client.post(url, {"operation": "reassess", **GOOD}).status_code == 302
    first = VendorReassessment.objects.get()
    assert first.result == "satisfactory" and first.gaps == []
    vendor.refresh_from_db()
    assert vendor.reassessment_due == timezone.localdate() + timedelta(days=365)
    # A breach without saying what happened is refused; with it, the breach and no MFA are gaps.
    weak = {**GOOD, "mfa": "no", "breaches": "yes"}
    assert client.post(url, {"operation": "reassess", **weak}).status_code == 400
    assert client.post(url, {"operation": "reassess", **{**GOOD, "audit": ""}}).status_code == 400
    assert VendorReassessment.objects.count() == 1
    client.post(url, {"operation": "reassess", **weak, "breach_notes": "Lost backup tape, notified in 5 days"})
    latest = VendorReassessment.objects.first()
    assert latest is not None and latest.result == "follow_up" and latest.gaps == ["mfa", "breaches"]
    event = Event.objects.filter(action="compliance.vendor.reassessed").latest("id")
    assert event.details["result"] == "follow_up"
    assert "follow up: mfa, breaches" in client.get(url).content.decode()


def test_other_organizations_and_other_roles_are_refused(personas: Personas, vendor: Vendor) -> None:
    other = signed_in_client(personas.outsider)
    for name in ("vendor_detail", "vendor_baa_document"):
        assert other.get(reverse(name, args=[personas.other_practice.slug, vendor.pk])).status_code == 404
    outside = other.post(
        reverse("vendor_detail", args=[personas.other_practice.slug, vendor.pk]), {"operation": "reassess", **GOOD}
    )
    assert outside.status_code == 404
    staff = signed_in_client(personas.members["staff"])
    assert staff.post(_url(personas, "vendor_detail", vendor), {"operation": "reassess", **GOOD}).status_code == 403
    assert not VendorReassessment.objects.exists()
    assert staff.get(_url(personas, "vendor_baa_document", vendor)).status_code == 403
