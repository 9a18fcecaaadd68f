"""Who gets what from the cases API: outsiders 404, missing permission or scope 403, dead tokens
401, bad input 400/422 problem+json with nothing changed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from casebridge.accounts.models import ApiToken
from casebridge.api.tests.conftest import Api, World, draft_body, ready_case
from casebridge.audit.models import Event
from casebridge.cases.models import Case, Status
from casebridge.core.testing import add_member, make_org, make_user, signed_in_client
from casebridge.orgs.models import OrgKind

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _is_problem(response: object, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _submitted(world: World) -> str:
    practice = world.api()
    number = ready_case(world, practice)
    assert practice.post(f"cases/{number}/submit").status_code == 200
    return number


def test_another_labs_token_gets_404(world: World) -> None:
    number = _submitted(world)
    other_lab = make_org("Other Lab", OrgKind.LAB)
    stranger = make_user("tech@otherlab.test")
    add_member(other_lab, stranger, "technician")
    from casebridge.accounts.actions import create_api_token

    _t, raw = create_api_token(
        organization=other_lab, name="t", scopes=["cases:read", "cases:write"], days=1, actor=stranger, user=stranger
    )
    api = Api(raw)
    _is_problem(api.get(f"cases/{number}"), 404)
    _is_problem(api.post(f"cases/{number}/receive"), 404)
    _is_problem(api.get(f"cases/{number}/attachments"), 404)
    _is_problem(api.post(f"cases/{number}/messages", {"body": "hello"}), 404)
    assert api.get("cases").json()["results"] == []
    # The same answer as for a case that does not exist at all.
    assert api.get("cases/CB-1999-000001").json() == api.get(f"cases/{number}").json()
    assert Case.objects.get(number=number).status == Status.SUBMITTED


def test_another_practices_token_gets_404(world: World) -> None:
    number = ready_case(world)
    outsider = world.api("outsider")
    _is_problem(outsider.get(f"cases/{number}"), 404)
    _is_problem(outsider.patch(f"cases/{number}", {"notes": "x"}), 404)


def test_a_token_without_cases_write_gets_403_and_changes_nothing(world: World) -> None:
    number = ready_case(world)
    reader = world.api(scopes=["cases:read"])
    assert reader.get(f"cases/{number}").status_code == 200
    before = Case.objects.count()
    body = _is_problem(reader.post("cases", draft_body(world)), 403)
    assert body["permission"] == "cases.edit"
    _is_problem(reader.post(f"cases/{number}/submit"), 403)
    _is_problem(reader.patch(f"cases/{number}", {"notes": "changed"}), 403)
    _is_problem(reader.post(f"cases/{number}/remake", {"reason": "because"}), 403)
    _is_problem(reader.post(f"cases/{number}/messages", {"body": "hi"}), 403)
    assert Case.objects.count() == before and Case.objects.get(number=number).status == Status.DRAFT


def test_a_token_without_cases_read_and_a_role_without_cases_get_403(world: World) -> None:
    number = ready_case(world)
    _is_problem(world.api(scopes=["org:read"]).get("cases"), 403)
    _is_problem(world.api(scopes=["org:read"]).get(f"cases/{number}"), 403)
    _is_problem(world.api("auditor").get("cases"), 403)


def test_expired_and_revoked_tokens_get_401(world: World) -> None:
    api = world.api()
    assert api.get("cases").status_code == 200
    token = ApiToken.objects.get(prefix=api.raw.split("_")[1])
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _is_problem(api.get("cases"), 401)
    other = world.api()
    ApiToken.objects.filter(prefix=other.raw.split("_")[1]).update(revoked_at=timezone.now())
    response = other.post("cases", draft_body(world))
    _is_problem(response, 401)
    assert "Bearer" in response["WWW-Authenticate"]
    anonymous = Client().get("/api/v1/cases")
    _is_problem(anonymous, 401)


def test_the_lab_loses_the_case_after_the_grace_period(world: World) -> None:
    number = _submitted(world)
    lab = world.api("technician")
    lab.post(f"cases/{number}/receive")
    for status in ("in_production", "quality_check"):
        lab.post(f"cases/{number}/status", {"status": status})
    lab.post(f"cases/{number}/status", {"status": "shipped", "tracking_number": "T1"})
    lab.post(f"cases/{number}/status", {"status": "delivered"})
    assert lab.post(f"cases/{number}/complete").status_code == 200
    assert lab.get(f"cases/{number}").status_code == 200  # within the grace period
    Case.objects.filter(number=number).update(lab_access_until=timezone.now() - timedelta(seconds=1))
    _is_problem(lab.get(f"cases/{number}"), 404)
    _is_problem(lab.get(f"cases/{number}/messages"), 404)
    assert lab.get("cases").json()["results"] == []
    assert world.api().get(f"cases/{number}").status_code == 200


def test_bad_input_is_refused_with_the_fields_and_nothing_changes(world: World) -> None:
    api = world.api()
    case_events = Event.objects.filter(action__startswith="case.")
    cases, events = Case.objects.count(), case_events.count()
    malformed = api.client.post("/api/v1/cases", "{not json", content_type="application/json")
    _is_problem(malformed, 400)
    body = draft_body(world, items=[{"tooth": 99, "restoration": "crown"}, {"restoration": "teleporter", "tooth": 11}])
    body["patient"] = {"name": ""}
    problem = _is_problem(api.post("cases", body), 422)
    fields = " ".join(e["field"] for e in problem["errors"])
    assert "items.0" in fields and "items.1.restoration" in fields and "patient.name" in fields
    assert {"field": "body.items.0", "detail": "tooth: '99' is not an FDI tooth number (11-48, 51-85)"} in problem[
        "errors"
    ]
    wrong_type = _is_problem(api.post("cases", draft_body(world, items=[{"tooth": 36, "restoration": "veneer"}])), 422)
    assert "not part of a digital single crown" in wrong_type["detail"]
    unknown_lab = _is_problem(api.post("cases", draft_body(world, lab="other-dental")), 422)
    assert unknown_lab["errors"][0]["field"] == "body.lab"
    assert Case.objects.count() == cases and case_events.count() == events


def test_refused_transitions_and_attachments_change_nothing(world: World) -> None:
    api = world.api()
    number = api.post("cases", draft_body(world)).json()["number"]
    missing = _is_problem(api.post(f"cases/{number}/submit"), 422)
    assert "scan" in missing["detail"]
    lab_file = world.upload("technician")
    foreign = _is_problem(api.post(f"cases/{number}/attachments", {"file_id": lab_file, "kind": "scan"}), 422)
    assert foreign["errors"][0]["field"] == "body.file_id"
    _is_problem(api.post(f"cases/{number}/attachments", {"file_id": "not-a-uuid", "kind": "scan"}), 422)
    _is_problem(api.post(f"cases/{number}/attachments", {"file_id": world.upload(), "kind": "design"}), 422)
    _is_problem(api.post(f"cases/{number}/status", {"status": "shipped"}), 403)  # a practice role
    _is_problem(api.post(f"cases/{number}/status", {"status": "teleported"}), 422)
    case = Case.objects.get(number=number)
    assert case.status == Status.DRAFT and case.attachments.count() == 0


def test_list_parameters_are_checked(world: World) -> None:
    api = world.api()
    _is_problem(api.get("cases", cursor="garbage!"), 400)
    _is_problem(api.get("cases", limit=101), 422)
    _is_problem(api.get("cases", due_before="tomorrow"), 422)
    _is_problem(api.get("cases", status="lost"), 422)
    _is_problem(api.client.put("/api/v1/cases"), 405)


def test_a_signed_in_person_uses_the_api_with_csrf_protection(world: World) -> None:
    clinician = world.personas.members["clinician"]
    client = signed_in_client(clinician)
    assert client.get("/api/v1/cases").status_code == 200
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(clinician)
    refused = strict.post("/api/v1/cases", json.dumps(draft_body(world)), content_type="application/json")
    _is_problem(refused, 403)
    assert Case.objects.count() == 0
    assert strict.get("/account/security/", secure=True).status_code == 200  # a form page sets the cookie
    made = strict.post(
        "/api/v1/cases",
        json.dumps(draft_body(world)),
        content_type="application/json",
        secure=True,
        HTTP_REFERER="https://testserver/account/security/",
        HTTP_X_CSRFTOKEN=strict.cookies[settings.CSRF_COOKIE_NAME].value,
    )
    assert made.status_code == 201, made.content


def test_the_list_costs_the_same_number_of_queries_for_any_number_of_cases(world: World) -> None:
    api = world.api()

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.get("cases")
        assert response.status_code == 200
        return len(queries)

    # From two cases up the audit rows are written as one batch, so two is the baseline.
    for name in ("A", "B"):
        api.post("cases", draft_body(world, patient={"name": name}))
    few = cost()
    for _ in range(6):
        api.post("cases", draft_body(world, patient={"name": f"P {_}"}))
    assert cost() == few
    assert len(api.get("cases").json()["results"]) == 8


def test_the_practices_work_is_refused_to_a_lab_owner_at_every_door(world: World) -> None:
    """A lab's owner holds every permission, yet creating cases, editing drafts and sharing a
    case's files are the practice's: the API and the pages answer 403 alike, from one rule."""
    from casebridge.accounts.actions import create_api_token
    from casebridge.sharing.models import ExternalLink

    number = _submitted(world)
    lab_owner = make_user("owner@lab.test")
    add_member(world.lab, lab_owner, "owner")
    _token, raw = create_api_token(
        organization=world.lab,
        name="lab",
        scopes=["cases:read", "cases:write"],
        days=1,
        actor=lab_owner,
        user=lab_owner,
    )
    api = Api(raw)
    cases_before = Case.objects.count()
    body = _is_problem(api.post("cases", draft_body(world, lab=None)), 403)
    assert "created by dental practices" in body["detail"]
    assert Case.objects.count() == cases_before
    files = [a["file_id"] for a in world.api().get(f"cases/{number}/attachments").json()]
    share = {"files": files[:1], "recipient_email": "x@y.test", "purpose": "referral"}
    assert "practice that owns" in _is_problem(api.post(f"cases/{number}/links", share), 403)["detail"]
    _is_problem(api.get(f"cases/{number}/links"), 403)
    web = signed_in_client(lab_owner)
    lab = world.lab.slug
    assert web.get(f"/o/{lab}/cases/new/").status_code == 403
    assert web.get(f"/o/{lab}/cases/{number}/edit/").status_code == 403
    assert web.get(f"/o/{lab}/cases/{number}/share/").status_code == 403
    assert not ExternalLink.objects.exists()
    link_id = world.api().post(f"cases/{number}/links", share).json()["id"]
    assert web.post(f"/o/{lab}/cases/{number}/share/{link_id}/revoke/").status_code == 403
    _is_problem(api.post(f"cases/{number}/links/{link_id}/revoke"), 403)
    assert ExternalLink.objects.get(pk=link_id).revoked_at is None


def test_the_practice_attaches_nothing_over_the_api_once_the_case_was_sent(world: World) -> None:
    number = _submitted(world)
    api = world.api()
    count = len(api.get(f"cases/{number}/attachments").json())
    file_id = world.upload()
    body = _is_problem(api.post(f"cases/{number}/attachments", {"file_id": file_id, "kind": "photo"}), 422)
    assert "already sent to the lab" in body["detail"]
    assert len(api.get(f"cases/{number}/attachments").json()) == count
