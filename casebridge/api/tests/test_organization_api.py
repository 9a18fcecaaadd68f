"""Read-only API for the caller's organization, its members (org:read) and its audit log
(AUDIT_VIEW and audit:read): the scope and the role are both required, nothing leaks across
organizations, filters match the review page's, pages follow an opaque cursor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.accounts.actions import create_api_token
from casebridge.api.openapi import build_document
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db

CASE = "CB-2026-000001"
OTHER_CASE = "CB-2026-000002"


def _client(personas: Personas, who: str, scopes: list[str]) -> Client:
    if who == "outsider":
        user, org = personas.outsider, personas.other_practice
    else:
        user, org = personas.members[who], personas.practice
    _token, raw = create_api_token(organization=org, name="reader", scopes=scopes, days=1, actor=user, user=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def _seed(personas: Personas) -> None:
    staff = personas.members["staff"]
    record("case.created", actor=staff, organization=personas.practice, details={"case": CASE})
    record("case.viewed", actor=staff, organization=personas.practice, details={"case": CASE})
    record(
        "case.viewed", actor=personas.members["clinician"], organization=personas.practice, details={"case": OTHER_CASE}
    )
    record("auth.login.failed", organization=personas.practice, outcome="failure", actor_label="someone@x.test")
    record("case.viewed", actor=personas.outsider, organization=personas.other_practice, details={"case": CASE})


def _events(client: Client, **params: Any) -> Any:
    return client.get("/api/v1/audit/events", params)


def _actions(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["action"] for e in response.json()["results"] if e["action"] != "token.used"]


def test_an_owner_token_with_audit_read_reads_the_log_newest_first_and_the_read_is_audited(
    personas: Personas,
) -> None:
    _seed(personas)
    client = _client(personas, "owner", ["audit:read"])
    response = _events(client, action="case.")
    assert _actions(response) == ["case.viewed", "case.viewed", "case.created"]
    first = response.json()["results"][0]
    assert first["details"] == {"case": OTHER_CASE} and first["actor_label"] == "clinician@smile.test"
    assert response["Content-Type"].startswith("application/json")
    viewed = Event.objects.get(action="audit.viewed")
    assert viewed.actor_id == str(personas.members["owner"].pk)
    assert viewed.details["filters"] == {"action": "case."}
    assert viewed.details["via"] == "api" and viewed.details["count"] == 3


@pytest.mark.parametrize("role", ["auditor", "compliance_officer", "admin"])
def test_every_role_with_audit_view_reads_it_with_the_scope(personas: Personas, role: str) -> None:
    _seed(personas)
    assert "auth.login.failed" in _actions(_events(_client(personas, role, ["audit:read"])))


def test_a_token_without_audit_read_gets_403_even_the_owners(personas: Personas) -> None:
    _seed(personas)
    response = _events(_client(personas, "owner", ["org:read", "cases:read", "cases:write"]))
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["permission"] == "audit.view"
    assert not Event.objects.filter(action="audit.viewed").exists()


@pytest.mark.parametrize("role", ["staff", "clinician", "technician"])
def test_a_member_without_audit_view_gets_403_whatever_the_scope(personas: Personas, role: str) -> None:
    if role == "technician":
        add_member(personas.practice, make_user("tech@smile.test"), "technician")
        personas.members["technician"] = Membership.objects.get(user__email="tech@smile.test").user
    response = _events(_client(personas, role, ["audit:read", "org:read"]))
    assert response.status_code == 403


def test_a_signed_in_member_without_audit_view_gets_403_and_an_auditor_200(personas: Personas) -> None:
    _seed(personas)
    assert signed_in_client(personas.members["staff"]).get("/api/v1/audit/events").status_code == 403
    assert "case.created" in _actions(signed_in_client(personas.members["auditor"]).get("/api/v1/audit/events"))


def test_another_organizations_token_sees_only_its_own_organizations_events(personas: Personas) -> None:
    _seed(personas)
    response = _events(_client(personas, "outsider", ["audit:read"]))
    results = response.json()["results"]
    assert {e["action"] for e in results} <= {"case.viewed", "token.created", "token.used"}
    assert [e["actor_label"] for e in results if e["action"] == "case.viewed"] == ["owner@other.test"]
    assert _actions(_events(_client(personas, "outsider", ["audit:read"]), case=OTHER_CASE)) == []


def test_a_deactivated_members_token_finds_no_organization(personas: Personas) -> None:
    client = _client(personas, "auditor", ["audit:read", "org:read"])
    Membership.objects.filter(user=personas.members["auditor"]).update(is_active=False)
    assert _events(client).status_code == 404
    assert client.get("/api/v1/organization").status_code == 404


def test_filters_by_action_actor_outcome_case_and_time(personas: Personas) -> None:
    _seed(personas)
    client = _client(personas, "owner", ["audit:read"])
    assert _actions(_events(client, case=CASE)) == ["case.viewed", "case.created"]
    assert _actions(_events(client, actor="clinician@")) == ["case.viewed"]
    assert _actions(_events(client, outcome="failure")) == ["auth.login.failed"]
    assert _actions(_events(client, action="auth.login.failed")) == ["auth.login.failed"]
    now = timezone.now()
    assert _actions(_events(client, action="case.", until=(now - timedelta(hours=1)).isoformat())) == []
    recent = _actions(_events(client, action="case.", since=(now - timedelta(hours=1)).isoformat()))
    assert len(recent) == 3
    assert _actions(_events(client, emergency="true")) == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"since": "yesterday"}, 422),
        ({"since": "2026-12-02", "until": "2026-12-01"}, 422),
        ({"case": "Jane Roe"}, 422),
        ({"outcome": "maybe"}, 422),
        ({"limit": "0"}, 422),
        ({"cursor": "garbage!"}, 400),
        ({"cursor": "bm90LWEtbnVtYmVy"}, 400),  # base64 of "not-a-number"
    ],
)
def test_bad_filters_get_a_clear_problem_not_a_500(personas: Personas, params: dict[str, str], status: int) -> None:
    response = _events(_client(personas, "owner", ["audit:read"]), **params)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"


def test_pages_follow_the_cursor_without_gaps_or_repeats(personas: Personas) -> None:
    for n in range(7):
        record("case.viewed", organization=personas.practice, details={"case": f"CB-2026-00010{n}"})
    client = _client(personas, "owner", ["audit:read"])
    seen: list[int] = []
    response = _events(client, action="case.viewed", limit=3)
    while True:
        body = response.json()
        seen += [e["id"] for e in body["results"]]
        if body["next"] is None:
            break
        assert "action=case.viewed" in body["next"] and "limit=3" in body["next"]
        response = client.get(body["next"])
    expected = list(
        Event.objects.filter(organization_id=personas.practice.pk, action="case.viewed")
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert seen == expected and len(seen) == 7


def test_the_organization_and_its_members_with_org_read(personas: Personas) -> None:
    client = _client(personas, "staff", ["org:read"])
    org = client.get("/api/v1/organization").json()
    assert org["slug"] == "smile-dental" and org["kind"] == "practice" and org["idle_timeout_seconds"] == 900
    members: list[dict[str, Any]] = []
    response = client.get("/api/v1/organization/members", {"limit": 4})
    while True:
        body = response.json()
        members += body["results"]
        if body["next"] is None:
            break
        response = client.get(body["next"])
    emails = {m["email"]: m for m in members}
    assert set(emails) == {f"{role}@smile.test" for role in personas.members} | {"gone@smile.test"}
    assert emails["gone@smile.test"]["is_active"] is False and emails["owner@smile.test"]["role"] == "owner"
    assert "owner@other.test" not in emails


def test_organization_endpoints_need_org_read(personas: Personas) -> None:
    client = _client(personas, "owner", ["cases:read", "audit:read"])
    assert client.get("/api/v1/organization").status_code == 403
    assert client.get("/api/v1/organization/members").status_code == 403
    assert client.get("/api/v1/organization/members", {"cursor": "x"}).status_code == 403
    bad = _client(personas, "owner", ["org:read"]).get("/api/v1/organization/members", {"cursor": "eA"})
    assert bad.status_code == 400


def test_the_openapi_document_describes_the_new_endpoints() -> None:
    paths = build_document()["paths"]
    audit = paths["/api/v1/audit/events"]["get"]
    assert {p["name"] for p in audit["parameters"]} >= {
        "since",
        "until",
        "action",
        "actor",
        "outcome",
        "case",
        "cursor",
    }
    assert {"200", "400", "401", "403", "422"} <= {str(code) for code in audit["responses"]}
    assert "get" in paths["/api/v1/organization"] and "get" in paths["/api/v1/organization/members"]


def test_the_review_page_filters_by_case_and_time_too(personas: Personas) -> None:
    _seed(personas)
    client = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    page = client.get(url, {"case": CASE}).content.decode()
    assert page.count("<code>case.") == 2
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert "<code>case." not in client.get(url, {"since": tomorrow}).content.decode()
    refused = client.get(url, {"since": "soon"})
    assert refused.status_code == 200 and "Filter ignored: since must be an ISO 8601 date" in refused.content.decode()


def test_reading_a_page_costs_the_same_queries_however_many_rows(personas: Personas) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client(personas, "owner", ["audit:read", "org:read"])
    counts = []
    for rows in (2, 40):
        for n in range(rows):
            record("case.viewed", organization=personas.practice, details={"case": f"CB-2026-{n:06d}"})
        with CaptureQueriesContext(connection) as audit_page:
            assert _events(client, limit=rows).status_code == 200
        with CaptureQueriesContext(connection) as members_page:
            assert client.get("/api/v1/organization/members", {"limit": rows}).status_code == 200
        counts.append((len(audit_page), len(members_page)))
    assert counts[0] == counts[1]
