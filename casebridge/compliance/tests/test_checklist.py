"""The checklist: items CaseBridge cannot see are attested by a compliance manager (note, date,
audited, a year's validity); live items read the records (inventory, policies, exercises); the
risk assessment is attested until its live evidence replaces one function; the auditor's report
is one page."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from casebridge.audit.models import Event
from casebridge.compliance import dashboard
from casebridge.compliance.models import AccessReview, Attestation, GdprProfile, Incident
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _by_key(personas: Personas) -> dict[str, dashboard.Check]:
    return {c.key: c for c in dashboard.checks(personas.practice)}


def test_every_seed_item_has_a_check(personas: Personas) -> None:
    keys = set(_by_key(personas))
    # The 12 file-sharing points and the security checklist's gaps, by the key that answers each.
    for key in (
        "inventory", "agreements", "mfa", "encryption", "file_names", "case_contents", "one_channel",
        "no_consumer_links", "training", "offboarding", "log_review", "audit_log", "incident_test",
        "risk_assessment", "facility", "devices", "policies", "restore_test", "incidents", "officers",
    ):  # fmt: skip
        assert key in keys, key
    assert all(c.key for c in dashboard.checks(personas.practice))


def test_attestation_is_recorded_audited_and_expires(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_attest", args=[personas.practice.slug])
    assert _by_key(personas)["file_names"].state == dashboard.UNKNOWN
    assert officer.post(url, {"item": "file_names", "note": "Checked the scanner export folder."}).status_code == 302
    check = _by_key(personas)["file_names"]
    assert check.state == dashboard.OK and check.checked_on == timezone.localdate()
    event = Event.objects.get(action="compliance.attestation.recorded")
    assert event.details == {"item": "file_names"}  # the note stays out of the audit details
    Attestation.objects.update(attested_at=timezone.now() - timedelta(days=366))
    check = _by_key(personas)["file_names"]
    assert check.state == dashboard.ATTENTION and "expired" in check.evidence
    page = officer.get(reverse("compliance", args=[personas.practice.slug])).content.decode()
    assert "Checked the scanner export folder." in page and "Attest today" in page


def test_bad_attestations_change_nothing(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_attest", args=[personas.practice.slug])
    officer.post(url, {"item": "file_names", "note": "   "})
    officer.post(url, {"item": "mfa", "note": "We all have MFA"})  # live: not attested
    officer.post(url, {"item": "nonsense", "note": "x"})
    officer.post(url, {"item": "devices", "note": "x" * 2001})
    assert signed_in_client(personas.members["staff"]).post(url, {"item": "devices", "note": "ok"}).status_code == 403
    other = reverse("compliance_attest", args=[personas.other_practice.slug])
    assert officer.post(other, {"item": "devices", "note": "ok"}).status_code == 404
    assert not Attestation.objects.exists()
    assert not Event.objects.filter(action="compliance.attestation.recorded").exists()


def test_risk_assessment_evidence_replaces_the_attestation(personas: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _by_key(personas)["risk_assessment"].attestable
    live = dashboard.Check("Security risk assessment, yearly", dashboard.OK, "Done.", "164.308", key="risk_assessment")
    monkeypatch.setattr(dashboard, "risk_assessment_evidence", lambda organization: live)
    assert _by_key(personas)["risk_assessment"] is live
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_attest", args=[personas.practice.slug])
    officer.post(url, {"item": "risk_assessment", "note": "done"})
    assert not Attestation.objects.exists()


def test_live_items_read_the_records(personas: Personas) -> None:
    assert _by_key(personas)["incident_test"].state == dashboard.ATTENTION
    Incident.objects.create(
        organization=personas.practice, title="Tabletop", description="lost phone", discovered_at=timezone.now(),
        is_exercise=True,
    )  # fmt: skip
    assert _by_key(personas)["incident_test"].state == dashboard.OK
    assert _by_key(personas)["access_review"].state == dashboard.ATTENTION  # never reviewed
    review = AccessReview.objects.create(organization=personas.practice)
    AccessReview.objects.filter(pk=review.pk).update(completed_at=timezone.now())
    assert _by_key(personas)["access_review"].state == dashboard.OK
    assert "0 revoked" in _by_key(personas)["access_review"].evidence
    assert _by_key(personas)["policies"].state == dashboard.ATTENTION  # none approved
    assert "0 of 6 policies approved" in _by_key(personas)["policies"].evidence


def test_the_auditor_report_is_one_page(personas: Personas) -> None:
    GdprProfile.objects.create(organization=personas.practice, applies=True, contact="dpo@smile.test")  # 2 more
    assert len(dashboard.checks(personas.practice)) >= 22
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance_attest", args=[personas.practice.slug])
    for item in dashboard.ATTESTABLE:
        officer.post(url, {"item": item.key, "note": "long note " * 100})
    response = officer.get(reverse("compliance_report", args=[personas.practice.slug]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    reader = PdfReader(BytesIO(response.content))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "Multi-factor authentication" in text and "attested" in text and timezone.now().strftime("%Y-%m-%d") in text
    assert Event.objects.filter(action="compliance.attestation.report_printed").count() == 1
    assert (
        signed_in_client(personas.members["staff"])
        .get(reverse("compliance_report", args=[personas.practice.slug]))
        .status_code
        == 403
    )
    assert officer.get(reverse("compliance_report", args=[personas.other_practice.slug])).status_code == 404
