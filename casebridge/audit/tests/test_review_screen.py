"""The audit log screen and its CSV export: events name their case by number (never the patient),
say what each action means, and the export's details are JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _file
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _case(p: Personas, patient: str = "Jane Roe") -> Case:
    return actions.create_case(_access(p), patient_name=patient, case_type="digital_crown")


def _export(p: Personas) -> list[dict[str, str]]:
    response = signed_in_client(p.members["owner"]).get(reverse("audit_export", args=[p.practice.slug]))
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_log_names_the_case_by_number_and_never_the_patient(world: Personas) -> None:
    case = _case(world)
    response = signed_in_client(world.members["owner"]).get(reverse("audit_log", args=[world.practice.slug]))
    page = response.content.decode()
    assert f"Case {case.number}" in page
    assert "cases.case" not in page
    assert "Jane" not in page and "Roe" not in page
    assert "Case created" in page  # what the action means, beside its code


def test_a_file_of_a_case_is_named_by_its_case(world: Personas) -> None:
    access = _access(world)
    case = _case(world)
    stored = _file(access)
    actions.attach_file(access, case, stored, kind="scan", label="upper")
    rows = [r for r in _export(world) if r["target_type"] == "vault.storedobject"]
    assert rows and {r["target_label"] for r in rows} == {f"File of case {case.number}"}


def test_the_export_writes_details_as_json(world: Personas) -> None:
    case = _case(world)
    record(
        "case.updated",
        actor=world.members["clinician"],
        organization=world.practice,
        target=case,
        details={"fields": ["due_date", "notes"], "nested": {"quote": 'say "hi"', "none": None, "yes": True}},
    )
    rows = _export(world)
    updated = next(r for r in rows if r["action"] == "case.updated")
    assert json.loads(updated["details"]) == {
        "fields": ["due_date", "notes"],
        "nested": {"quote": 'say "hi"', "none": None, "yes": True},
    }
    assert updated["target_label"] == f"Case {case.number}"
    for row in rows:
        json.loads(row["details"])  # every row, not just this one
        assert "Jane" not in row["details"]


def test_events_written_before_the_rename_stay_readable(world: Personas) -> None:
    """Stored events are never rewritten: an old "version destroyed" from ingest still shows, with
    a description that says what its reason means."""
    access = _access(world)
    stored = _file(access)
    record(
        "file.version_destroyed",
        actor=world.members["clinician"],
        organization=world.practice,
        target=stored,
        details={"version": 1, "reason": "metadata removed on ingest"},
    )
    page = signed_in_client(world.members["owner"]).get(reverse("audit_log", args=[world.practice.slug]))
    text = page.content.decode()
    assert "file.version_destroyed" in text and "routine replacement of an upload by its cleaned copy" in text


def test_a_target_that_no_longer_resolves_shows_its_stored_type(world: Personas) -> None:
    record(
        "case.viewed",
        actor=world.members["clinician"],
        organization=world.practice,
        target_type="cases.case",
        target_id="not-a-uuid",
    )
    rows = _export(world)
    viewed = next(r for r in rows if r["action"] == "case.viewed")
    assert viewed["target_label"] == "" and viewed["target_type"] == "cases.case"


def test_naming_targets_costs_the_same_for_few_or_many_events(world: Personas) -> None:
    client = signed_in_client(world.members["owner"])
    url = reverse("audit_log", args=[world.practice.slug])
    _case(world, "Ann One")
    client.get(url)  # warm the session and caches
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(8):
        _case(world, f"Patient {n}")
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert Event.objects.filter(target_type="cases.case").count() >= 9
    assert len(many) == len(few)
