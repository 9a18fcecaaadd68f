"""GDPR records: only once the organization declares the GDPR applies; the record of processing
activities lists its connections and vendors (Art. 30(1)(d)) and prints; an impact assessment
needs every element of Art. 35(7); wrong roles and other organizations are refused."""

from __future__ import annotations

from io import BytesIO

import pytest
from django.urls import reverse
from pypdf import PdfReader

from casebridge.audit.models import Event
from casebridge.compliance import dashboard, gdpr
from casebridge.compliance.models import BaaStatus, GdprProfile, ImpactAssessment, Vendor
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs.models import AgreementBasis, Connection, ConnectionStatus

pytestmark = pytest.mark.django_db

DPIA = {
    "operation": "dpia",
    "title": "Case exchange with laboratories",
    "description": "Scans and photographs sent to labs.",
    "necessity": "Needed to make the restoration.",
    "risks": "Disclosure to the wrong lab.",
    "measures": "Connections with agreements only; audit log.",
    "dpo_opinion": "Agreed.",
}


def _url(personas: Personas, name: str = "gdpr") -> str:
    return reverse(name, args=[personas.practice.slug])


def test_the_record_comes_from_the_inventory_and_connections(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    undeclared = officer.get(_url(personas, "gdpr_record_pdf"))  # not declared: sent to declare it
    assert undeclared.status_code == 302 and undeclared["Location"] == _url(personas, "gdpr")
    assert officer.post(_url(personas), {**DPIA}).status_code == 400  # not declared: no DPIA either
    assert officer.post(_url(personas), {"operation": "profile", "applies": "on", "contact": ""}).status_code == 400
    assert not GdprProfile.objects.exists()
    assert "gdpr_record" not in {c.key for c in dashboard.checks(personas.practice)}  # not declared: not listed
    Connection.objects.create(
        requester=personas.practice,
        recipient=personas.lab,
        status=ConnectionStatus.ACTIVE,
        basis=AgreementBasis.TREATMENT,
    )
    Vendor.objects.create(organization=personas.practice, name="MailCo", category="e-mail", baa_status=BaaStatus.SIGNED)
    response = officer.post(_url(personas), {"operation": "profile", "applies": "on", "contact": "dpo@smile.test"})
    assert response.status_code == 302
    record = gdpr.processing_record(personas.practice)
    names = [r.name for r in record.recipients]
    assert "MailCo" in names and personas.lab.name in names
    assert "Documented treatment relationship" in [r.basis for r in record.recipients]
    page = officer.get(_url(personas)).content.decode()
    assert "Art. 30(1)" in page and "MailCo" in page
    pdf = officer.get(_url(personas, "gdpr_record_pdf"))
    assert pdf.status_code == 200
    text = PdfReader(BytesIO(pdf.content)).pages[0].extract_text()
    assert "MailCo" in text and "dpo@smile.test" in text
    actions = set(Event.objects.filter(action__startswith="compliance.gdpr.").values_list("action", flat=True))
    assert actions == {"compliance.gdpr.profile_saved", "compliance.gdpr.record_printed"}


def test_impact_assessment(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    officer.post(_url(personas), {"operation": "profile", "applies": "on", "contact": "dpo@smile.test"})
    assert officer.post(_url(personas), {**DPIA, "risks": "  "}).status_code == 400
    assert not ImpactAssessment.objects.exists()
    assert officer.post(_url(personas), DPIA).status_code == 302
    assessment = ImpactAssessment.objects.get()
    assert assessment.dpo_opinion == "Agreed." and assessment.recorded_by == personas.members["compliance_officer"]
    event = Event.objects.get(action="compliance.gdpr.dpia_recorded")
    assert event.details == {"dpia": str(assessment.pk), "dpo_opinion": True}
    assert "Case exchange with laboratories" in officer.get(_url(personas)).content.decode()
    states = {c.key: c.state for c in dashboard.checks(personas.practice)}
    assert states["gdpr_record"] == dashboard.OK and states["gdpr_dpia"] == dashboard.OK


def test_wrong_role_and_other_organization(personas: Personas) -> None:
    staff = signed_in_client(personas.members["staff"])
    assert staff.get(_url(personas)).status_code == 403
    assert staff.post(_url(personas), {"operation": "profile", "applies": "on", "contact": "x"}).status_code == 403
    officer = signed_in_client(personas.members["compliance_officer"])
    other = reverse("gdpr", args=[personas.other_practice.slug])
    assert officer.post(other, {"operation": "profile", "applies": "on", "contact": "x"}).status_code == 404
    assert officer.get(reverse("gdpr_record_pdf", args=[personas.other_practice.slug])).status_code == 404
    assert not GdprProfile.objects.exists()
