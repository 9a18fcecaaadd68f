"""The accounting of disclosures for one patient (45 CFR 164.528) as CSV and PDF: only after a
patient search, only the organization's own disclosures, a file name without the patient, and
the export itself recorded."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from casebridge.audit.models import Event
from casebridge.core.testing import signed_in_client
from casebridge.sharing.tests.conftest import PATIENT, RECIPIENT, SharedCase
from casebridge.sharing.tests.test_links import MakeLink

pytestmark = pytest.mark.django_db


def test_a_patients_accounting_exports_as_csv_and_pdf(shared: SharedCase, make_link: MakeLink) -> None:
    link, _token = make_link()
    officer = signed_in_client(shared.personas.members["compliance_officer"])
    slug = shared.personas.practice.slug
    export = reverse("disclosures_export", args=[slug])
    assert officer.get(export).status_code == 302  # no patient chosen: back to the page
    searched = officer.post(reverse("disclosures", args=[slug]), {"patient": "Roe"})
    search = searched["Location"].split("search=")[1]
    page = officer.get(searched["Location"]).content.decode()
    assert "Accounting for this patient (PDF)" in page and "Roe" not in searched["Location"]
    response = officer.get(export, {"search": search, "format": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "disclosed_at" and rows[1][1] == PATIENT and rows[1][4] == RECIPIENT
    assert rows[1][-1] == ("de-identified" if link.deidentify else "originals")
    assert response["Content-Disposition"] == 'attachment; filename="accounting-of-disclosures.csv"'
    pdf = officer.get(export, {"search": search, "format": "pdf"})
    assert pdf.content.startswith(b"%PDF")
    exported = Event.objects.filter(action="share.disclosures.exported")
    assert exported.count() == 2 and all("Roe" not in str(e.details) for e in exported)


def test_only_the_organizations_auditors_export(shared: SharedCase, make_link: MakeLink) -> None:
    make_link()
    slug = shared.personas.practice.slug
    assert (
        signed_in_client(shared.personas.members["staff"]).get(reverse("disclosures_export", args=[slug])).status_code
        == 403
    )
    outsider = signed_in_client(shared.personas.outsider)
    other = shared.personas.other_practice.slug
    searched = outsider.post(reverse("disclosures", args=[other]), {"patient": "Roe"})
    search = searched["Location"].split("search=")[1]
    response = outsider.get(reverse("disclosures_export", args=[other]), {"search": search, "format": "csv"})
    assert len(list(csv.reader(io.StringIO(response.content.decode())))) == 1  # the header alone
