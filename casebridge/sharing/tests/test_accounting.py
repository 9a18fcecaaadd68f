"""The accounting of disclosures for one patient (45 CFR 164.528) as CSV and PDF: only after a
patient search, only the organization's own disclosures, a file name without the patient, and
the export itself recorded."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.audit.testing import archive_everything_so_far
from casebridge.core.testing import signed_in_client
from casebridge.sharing.models import Disclosure
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


def test_the_accounting_keeps_a_disclosure_whose_audit_events_were_archived(
    shared: SharedCase, make_link: MakeLink
) -> None:
    """The accounting is built from the disclosure records (kept six years with the case), not
    from the audit log: moving the log's old events into archive segments (audit/archive.py,
    after 13 months) takes nothing out of it."""
    make_link()
    Disclosure.objects.update(disclosed_at=timezone.now() - timedelta(days=5 * 365))  # well past 13 months
    archive_everything_so_far()
    assert not Event.objects.filter(action="share.link.created").exists()  # it left the hot tables

    officer = signed_in_client(shared.personas.members["compliance_officer"])
    slug = shared.personas.practice.slug
    searched = officer.post(reverse("disclosures", args=[slug]), {"patient": "Roe"})
    assert RECIPIENT in officer.get(searched["Location"]).content.decode()
    search = searched["Location"].split("search=")[1]
    response = officer.get(reverse("disclosures_export", args=[slug]), {"search": search, "format": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [(r[1], r[4]) for r in rows[1:]] == [(PATIENT, RECIPIENT)]
