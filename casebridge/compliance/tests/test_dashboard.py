"""The compliance checklist reads live evidence: MFA coverage, agreements, audit verification,
review cadence, off-boarding, restore tests, incidents; what it cannot know is shown as not
tracked, never as in place."""

from __future__ import annotations

import pytest
from django.urls import reverse

from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.compliance import dashboard
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _states(personas: Personas) -> dict[str, str]:
    return {c.title: c.state for c in dashboard.checks(personas.practice)}


def test_the_checklist_reflects_the_evidence(personas: Personas) -> None:
    states = _states(personas)
    assert states["Multi-factor authentication for everyone"] == dashboard.OK  # personas all enrolled
    assert states["Tamper-evident audit log, verified"] == dashboard.ATTENTION  # never verified
    assert states["Backups that restore, tested"] == dashboard.ATTENTION
    assert states["Workforce training"] == dashboard.UNKNOWN
    assert states["Agreements with everyone who handles PHI"] == dashboard.ATTENTION  # no vendors listed
    record("audit.verified", details={"checked": 1, "head": 1})
    assert _states(personas)["Tamper-evident audit log, verified"] == dashboard.OK


def test_the_page_for_compliance_managers_only(personas: Personas) -> None:
    url = reverse("compliance", args=[personas.practice.slug])
    page = signed_in_client(personas.members["compliance_officer"]).get(url)
    assert page.status_code == 200 and "not tracked" in page.content.decode()
    assert signed_in_client(personas.members["auditor"]).get(url).status_code == 403
    other = reverse("compliance", args=[personas.other_practice.slug])
    assert signed_in_client(personas.members["compliance_officer"]).get(other).status_code == 404


def test_officers_are_named_from_active_members_only(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("compliance", args=[personas.practice.slug])
    assert _states(personas)["Privacy and security officers named"] == dashboard.ATTENTION
    chosen = personas.members["compliance_officer"]
    officer.post(url, {"privacy": str(chosen.pk), "security": str(personas.members["owner"].pk)})
    assert _states(personas)["Privacy and security officers named"] == dashboard.OK
    officer.post(url, {"privacy": str(personas.outsider.pk), "security": str(personas.deactivated.pk)})
    named = dashboard.officers_of(personas.practice)
    assert named.privacy_officer == chosen  # refused: nothing changed
    assert Event.objects.filter(action="compliance.officers.named").count() == 1
