"""The per-patient access report: every event of the organization about one patient, including
the lists that showed them, as a page, CSV and PDF; auditors only; each look and export is
itself recorded; another organization's events never appear."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.urls import reverse

from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.audit.testing import archive_everything_so_far
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(personas: Personas) -> str:
    ref = str(uuid.uuid4())
    clinician = personas.members["clinician"]
    record("case.viewed", actor=clinician, organization=personas.practice, patient_ref=ref, details={"case": "CB-1"})
    record(
        "patient.viewed",
        actor=personas.members["staff"],
        organization=personas.practice,
        details={"via": "web.case_list", "patients": [ref, str(uuid.uuid4())], "cases": ["CB-1", "CB-2"]},
    )
    record("case.viewed", actor=personas.outsider, organization=personas.other_practice, patient_ref=ref)
    record("case.viewed", actor=clinician, organization=personas.practice, patient_ref=str(uuid.uuid4()))
    return ref


def test_the_report_lists_who_saw_the_patient_including_lists(personas: Personas, patient: str) -> None:
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("patient_report", args=[personas.practice.slug, patient])
    page = auditor.get(url).content.decode()
    assert "case.viewed" in page and "patient.viewed" in page
    assert personas.members["staff"].email in page and personas.outsider.email not in page
    exported = auditor.get(url, {"format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    # The two events, and the page look just before: looking is part of the patient's record.
    assert rows[0][:2] == ["occurred_at", "action"] and [r[1] for r in rows[1:]] == [
        "case.viewed",
        "patient.viewed",
        "audit.viewed",
    ]
    assert exported["Content-Disposition"].endswith(f'access-report-{patient}.csv"')
    pdf = auditor.get(url, {"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    looks = Event.objects.filter(patient_ref=patient, action__in=["audit.viewed", "audit.exported"])
    assert looks.count() == 3


def test_only_auditors_of_the_organization(personas: Personas, patient: str) -> None:
    url = reverse("patient_report", args=[personas.practice.slug, patient])
    assert signed_in_client(personas.members["staff"]).get(url).status_code == 403
    other = reverse("patient_report", args=[personas.other_practice.slug, patient])
    outsider_page = signed_in_client(personas.outsider).get(other).content.decode()
    assert personas.members["clinician"].email not in outsider_page  # only their own organization's events
    unknown = reverse("patient_report", args=[personas.practice.slug, uuid.uuid4()])
    assert signed_in_client(personas.members["auditor"]).get(unknown).status_code == 404


def test_archived_events_stay_in_the_report_page_csv_and_pdf(personas: Personas, patient: str) -> None:
    archive_everything_so_far()
    assert not Event.objects.filter(patient_ref=patient).exists()  # they left the hot tables
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("patient_report", args=[personas.practice.slug, patient])
    page = auditor.get(url).content.decode()
    assert "case.viewed" in page and "patient.viewed" in page and "(archived)" in page
    assert "includes 2 archived events from" in page
    assert personas.members["staff"].email in page and personas.outsider.email not in page  # own org only
    rows = list(csv.reader(io.StringIO(auditor.get(url, {"format": "csv"}).content.decode())))
    assert [(r[1], r[-1]) for r in rows[1:]] == [
        ("case.viewed", "yes"),
        ("patient.viewed", "yes"),
        ("audit.viewed", ""),  # the page look just before, still hot
    ]
    assert auditor.get(url, {"format": "pdf"}).content.startswith(b"%PDF")
    look = Event.objects.filter(patient_ref=patient, action="audit.viewed").get()
    assert look.details["archived"] == 2 and look.details["segments"] >= 1
    # The other organization's auditor finds nothing of ours in the segments either.
    other = reverse("patient_report", args=[personas.other_practice.slug, patient])
    outsider_page = signed_in_client(personas.outsider).get(other).content.decode()
    assert personas.members["clinician"].email not in outsider_page and "(archived)" in outsider_page
    assert signed_in_client(personas.members["staff"]).get(url).status_code == 403


def test_without_segments_nothing_changes(personas: Personas, patient: str) -> None:
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("patient_report", args=[personas.practice.slug, patient])
    assert "archived" not in auditor.get(url).content.decode()
    rows = list(csv.reader(io.StringIO(auditor.get(url, {"format": "csv"}).content.decode())))
    assert {r[-1] for r in rows[1:]} == {""}
    assert "archived" not in Event.objects.filter(patient_ref=patient, action="audit.viewed").get().details
