"""The whole case story through the REST API: a practice clinician's token and a lab technician's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from casebridge.api.tests.conftest import World, draft_body, ready_case
from casebridge.audit.models import Event
from casebridge.cases.models import Case
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db


def _tus_upload(world: World, raw_token: str, content: bytes) -> str:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}", HTTP_TUS_RESUMABLE="1.0.0")
    response = client.post(
        "/api/v1/uploads/",
        content,
        content_type="application/offset+octet-stream",
        HTTP_UPLOAD_LENGTH=str(len(content)),
    )
    assert response.status_code == 201, response.content
    return str(response["CaseBridge-File-Id"])


def test_the_whole_story_through_the_api(world: World) -> None:
    practice, lab = world.api("clinician"), world.api("technician")

    created = practice.post("cases", draft_body(world))
    assert created.status_code == 201
    case = created.json()
    number = case["number"]
    assert case["status"] == "draft" and case["items"][0]["tooth"] == 36  # Universal 19 is FDI 36
    assert case["items"][0]["tooth_palmer"] == "LL6" and case["patient"]["name"] == "Jane Roe"
    assert any("scan" in m for m in case["missing"])

    # Attachments: one through tus (the header the client gets back), the rest already uploaded.
    file_id = _tus_upload(world, practice.raw, binary_stl(4000))
    first = practice.post(f"cases/{number}/attachments", {"file_id": file_id, "kind": "scan", "label": "Upper"})
    assert first.status_code == 201
    assert first.json()["name"] == f"{number}_upper_1.stl" and first.json()["file_id"] == file_id
    for kind, label in (("scan", "lower"), ("scan", "bite"), ("photo", "shade"), ("photo", "shade")):
        added = practice.post(f"cases/{number}/attachments", {"file_id": world.upload(), "kind": kind, "label": label})
        assert added.status_code == 201
    names = [a["name"] for a in practice.get(f"cases/{number}/attachments").json()]
    assert f"{number}_shade_2.stl" in names and len(names) == 5

    # The lab sees nothing of a draft.
    assert lab.get(f"cases/{number}").status_code == 404
    assert practice.patch(f"cases/{number}", {"notes": "Light contacts", "delivery": "ship"}).json()["notes"] == (
        "Light contacts"
    )
    submitted = practice.post(f"cases/{number}/submit")
    assert submitted.status_code == 200 and submitted.json()["status"] == "submitted"

    listed = lab.get("cases", status="submitted").json()
    assert [c["number"] for c in listed["results"]] == [number]
    received = lab.post(f"cases/{number}/receive").json()
    assert received["status"] == "received" and received["received_by"] == world.technician.display_name
    assert Event.objects.filter(action="case.received", patient_ref=case["patient"]["ref"]).exists()

    held = lab.post(f"cases/{number}/hold", {"question": "A2 or A3?"})
    assert held.json()["status"] == "on_hold"
    answered = practice.post(f"cases/{number}/answer", {"answer": "A2, please."})
    assert answered.json()["status"] == "received"
    messages = lab.get(f"cases/{number}/messages").json()
    assert [(m["body"], m["is_question"]) for m in messages] == [("A2 or A3?", True), ("A2, please.", False)]
    assert lab.post(f"cases/{number}/messages", {"body": "Thanks."}).status_code == 201

    assert lab.post(f"cases/{number}/status", {"status": "in_design"}).json()["next_statuses"] == ["in_production"]
    refused = lab.post(f"cases/{number}/design-approval", {})
    assert refused.status_code == 422 and "design file" in refused.json()["detail"]
    design = lab.post(f"cases/{number}/attachments", {"file_id": world.upload("technician"), "kind": "design"})
    assert design.status_code == 201
    assert lab.post(f"cases/{number}/design-approval", {"note": "v1"}).json()["status"] == "design_approval_requested"
    assert practice.post(f"cases/{number}/design-decision", {"approve": True}).json()["status"] == "design_approved"

    for status in ("in_production", "quality_check"):
        assert lab.post(f"cases/{number}/status", {"status": status}).status_code == 200
    no_tracking = lab.post(f"cases/{number}/status", {"status": "shipped"})
    assert no_tracking.status_code == 422 and "tracking" in no_tracking.json()["detail"]
    shipped = lab.post(f"cases/{number}/status", {"status": "shipped", "tracking_number": "1Z999"}).json()
    assert shipped["tracking_number"] == "1Z999"
    lab.post(f"cases/{number}/status", {"status": "delivered"})
    completed = lab.post(f"cases/{number}/complete").json()
    assert completed["status"] == "completed" and completed["lab_access_until"] is not None
    assert [h["status"] for h in completed["history"]][:3] == ["draft", "submitted", "received"]

    remake = practice.post(f"cases/{number}/remake", {"reason": "open margin distal"})
    assert remake.status_code == 201 and remake.json()["remake_of"] == number
    assert remake.json()["items"][0]["tooth"] == 36 and remake.json()["status"] == "draft"

    archived = practice.post(f"cases/{number}/archive").json()
    assert archived["archived_at"] is not None

    # Every read left an event with the patient reference: the list one per page.
    views = Event.objects.filter(action="case.viewed", patient_ref=case["patient"]["ref"])
    assert views.filter(details__via="api.messages").exists()
    listed = Event.objects.filter(action="patient.viewed", details__via="api.list")
    assert listed.filter(patient_ref=case["patient"]["ref"], details__cases=[number]).exists()


def test_the_practice_can_revoke_the_labs_access(world: World) -> None:
    practice, lab = world.api("clinician"), world.api("technician")
    number = ready_case(world, practice)
    practice.post(f"cases/{number}/submit")
    assert lab.get(f"cases/{number}").status_code == 200
    revoked = practice.post(f"cases/{number}/revoke-lab-access")
    assert revoked.status_code == 200 and revoked.json()["lab_access_revoked_at"] is not None
    assert lab.get(f"cases/{number}").status_code == 404
    assert lab.get("cases").json()["results"] == []


def test_design_rejection_needs_a_reason(world: World) -> None:
    practice, lab = world.api("clinician"), world.api("technician")
    number = ready_case(world, practice)
    practice.post(f"cases/{number}/submit")
    lab.post(f"cases/{number}/receive")
    lab.post(f"cases/{number}/status", {"status": "in_design"})
    lab.post(f"cases/{number}/attachments", {"file_id": world.upload("technician"), "kind": "design"})
    lab.post(f"cases/{number}/design-approval")
    assert practice.post(f"cases/{number}/design-decision", {"approve": False}).status_code == 422
    rejected = practice.post(f"cases/{number}/design-decision", {"approve": False, "note": "Thicker margin"})
    assert rejected.json()["status"] == "design_rejected"


def test_the_list_filters_and_pages_by_cursor(world: World) -> None:
    practice = world.api("clinician")
    today = timezone.now().date()
    numbers = []
    for days in range(5):
        body = draft_body(world, due_date=(today + timedelta(days=days)).isoformat())
        numbers.append(practice.post("cases", body).json()["number"])
    first = practice.get("cases", limit=2).json()
    assert [c["number"] for c in first["results"]] == numbers[::-1][:2]
    seen = [c["number"] for c in first["results"]]
    url = first["next"]
    while url:
        page = practice.client.get(url).json()
        seen += [c["number"] for c in page["results"]]
        url = page["next"]
    assert seen == numbers[::-1]
    window = practice.get("cases", due_after=today.isoformat(), due_before=(today + timedelta(days=3)).isoformat())
    assert sorted(c["number"] for c in window.json()["results"]) == numbers[1:3]
    assert [c["number"] for c in practice.post("cases/search", {"q": numbers[2]}).json()["results"]] == [numbers[2]]
    assert len(practice.post("cases/search", {"q": "jane"}).json()["results"]) == 5
    assert practice.post("cases/search", {"q": "nobody"}).json()["results"] == []
    assert practice.get("cases", status="submitted").json()["results"] == []


def test_a_search_by_name_travels_in_the_body_and_pages_by_cursor(world: World) -> None:
    practice = world.api("clinician")
    numbers = [practice.post("cases", draft_body(world)).json()["number"] for _ in range(3)]

    refused = practice.get("cases", q="Jane")
    assert refused.status_code == 400 and "POST /api/v1/cases/search" in refused.json()["detail"]
    first = practice.post("cases/search", {"q": "Jane", "limit": 2}).json()
    assert first["next"] is None and first["next_cursor"]
    rest = practice.post("cases/search", {"q": "Jane", "limit": 2, "cursor": first["next_cursor"]}).json()
    seen = [c["number"] for c in first["results"] + rest["results"]]
    assert seen == numbers[::-1] and rest["next_cursor"] is None


def test_the_api_search_finds_chart_numbers_and_dates_of_birth_and_never_another_organization(
    world: World,
) -> None:
    practice = world.api("clinician")
    wanted = practice.post("cases", draft_body(world)).json()["number"]  # Jane Roe, 1980-04-01, C-17
    other = practice.post(
        "cases", draft_body(world, patient={"name": "Ann Other", "date_of_birth": "1990-01-02", "chart_number": "C-1"})
    ).json()["number"]
    for term in ("C-17", "1980-04-01", "04/01/1980", "01.04.1980", "roe jane"):
        found = [c["number"] for c in practice.post("cases/search", {"q": term}).json()["results"]]
        assert found == [wanted], term
    assert other not in [c["number"] for c in practice.post("cases/search", {"q": "Jane"}).json()["results"]]
    outsider = world.api("outsider")
    assert outsider.post("cases/search", {"q": "C-17"}).json()["results"] == []


def test_teeth_can_be_given_in_any_notation(world: World) -> None:
    practice = world.api("clinician")
    items = [
        {"tooth": 11, "restoration": "crown"},
        {"tooth": "UL1", "notation": "palmer", "restoration": "crown"},
        {"tooth": "3", "notation": "universal", "restoration": "crown"},
    ]
    case = practice.post("cases", draft_body(world, items=items)).json()
    assert sorted(i["tooth"] for i in case["items"]) == [11, 16, 21]
    updated = practice.patch(
        f"cases/{case['number']}", {"items": [{"tooth": "LR8", "notation": "palmer", "restoration": "crown"}]}
    )
    assert [i["tooth"] for i in updated.json()["items"]] == [48]
    assert Case.objects.get(number=case["number"]).items.count() == 1


def test_an_attached_cbct_archive_reports_its_indexing_and_other_files_report_none(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    from casebridge.imaging.synthetic import cbct_series
    from casebridge.imaging.tests.cases import zipped
    from casebridge.vault import api as vault

    practice = world.api("clinician")
    number = practice.post("cases", draft_body(world)).json()["number"]
    user, org = world.user_and_org("clinician")
    slices = cbct_series("api-ingest", slices=6, size=16)
    archive = zipped({f"slice{i:03}.dcm": s for i, s in enumerate(slices)} | {"notes.dcm": b"not dicom"})
    stored = vault.put_stream(organization=org, actor=user, chunks=[archive], length=len(archive)).stored_object
    file_id = str(stored.pk)

    with django_capture_on_commit_callbacks(execute=True):  # the worker takes the job after commit
        assert practice.post(f"cases/{number}/attachments", {"file_id": file_id, "kind": "cbct"}).status_code == 201
    practice.post(f"cases/{number}/attachments", {"file_id": world.upload(), "kind": "scan", "label": "upper"})

    listed = {a["kind"]: a for a in practice.get(f"cases/{number}/attachments").json()}
    assert listed["cbct"]["ingest"] == {
        "state": "done",
        "total": 7,
        "processed": 7,
        "imported": 6,
        "duplicates": 0,
        "errors": 1,
    }
    assert listed["scan"]["ingest"] is None
