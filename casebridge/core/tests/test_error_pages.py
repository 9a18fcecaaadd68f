"""Error pages: in the site's layout, saying what happened and where to go, identical for "does not
exist" and "not yours"; API paths answer RFC 9457 problem documents instead."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from casebridge.access.policy import resolve
from casebridge.cases import actions
from casebridge.core import error_pages
from casebridge.core.testing import Personas, signed_in_client, without_csrf_token

pytestmark = pytest.mark.django_db


def _other_practices_case_number(p: Personas) -> str:
    access = resolve(p.outsider, p.other_practice)
    assert access is not None
    return actions.create_case(access, patient_name="Rita Other", case_type="digital_crown").number


def _in_layout(content: bytes) -> bool:
    return b'class="topbar"' in content and b"Skip to content" in content


def test_someone_elses_case_and_a_missing_case_read_identically(personas: Personas) -> None:
    client = signed_in_client(personas.members["clinician"])
    theirs = client.get(reverse("case_detail", args=["smile-dental", _other_practices_case_number(personas)]))
    missing = client.get(reverse("case_detail", args=["smile-dental", "CB-2026-999999"]))
    assert theirs.status_code == missing.status_code == 404
    assert without_csrf_token(theirs.content) == without_csrf_token(missing.content)
    assert _in_layout(missing.content) and b"Page not found" in missing.content
    assert b"Go to Smile Dental" in missing.content  # where to go next
    assert b"Rita" not in theirs.content and b"CB-2026-999999" not in missing.content


def test_another_organization_and_a_missing_one_read_identically(personas: Personas) -> None:
    client = signed_in_client(personas.members["clinician"])
    client.get(reverse("org_home", args=["smile-dental"]))  # so both pages name the same organization
    theirs = client.get(reverse("case_list", args=["other-dental"]))
    missing = client.get(reverse("case_list", args=["no-such-practice"]))
    assert theirs.status_code == missing.status_code == 404
    assert without_csrf_token(theirs.content) == without_csrf_token(missing.content)
    assert b"Other Dental" not in theirs.content


def test_a_missing_page_for_someone_signed_out_offers_to_sign_in(db: None) -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and _in_layout(response.content)
    assert reverse("account_login").encode() in response.content


def test_a_member_without_the_permission_sees_why_and_where_to_go(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    client.get(reverse("org_home", args=["smile-dental"]))
    response = client.get(reverse("audit_log", args=["smile-dental"]))
    assert response.status_code == 403 and _in_layout(response.content)
    assert b"You are not allowed to do this" in response.content
    assert b"ask an owner or administrator" in response.content
    assert reverse("org_home", args=["smile-dental"]).encode() in response.content


def test_a_bad_host_gets_the_styled_400_page(db: None) -> None:
    response = Client().get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert _in_layout(response.content) and b"The request was not understood" in response.content


def test_a_server_error_page_needs_nothing_from_the_request(db: None) -> None:
    response = error_pages.server_error(RequestFactory().get("/o/smile-dental/cases/"))
    assert response.status_code == 500
    assert _in_layout(response.content) and b"Something went wrong on our side" in response.content


def test_an_unhandled_exception_renders_the_500_page(personas: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    from casebridge.orgs import context

    def broken(request: object) -> dict[str, object]:
        raise RuntimeError("database gone")

    monkeypatch.setattr(context, "organizations_of", broken)  # every signed-in page needs it
    client = signed_in_client(personas.members["staff"])
    client.raise_request_exception = False
    response = client.get(reverse("security"))
    assert response.status_code == 500 and b"Something went wrong on our side" in response.content
    assert b"database gone" not in response.content


@pytest.mark.parametrize(
    ("status", "handler"),
    [
        (400, lambda r: error_pages.bad_request(r, Exception("x"))),
        (403, lambda r: error_pages.permission_denied(r, Exception("x"))),
        (404, lambda r: error_pages.page_not_found(r, Exception("case CB-2026-000001 belongs to other-dental"))),
        (500, error_pages.server_error),
    ],
)
def test_api_paths_answer_problem_documents_without_the_exception_text(
    status: int, handler: Callable[[HttpRequest], HttpResponse]
) -> None:
    response = handler(RequestFactory().get("/api/v1/anything"))
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["status"] == status and body["title"] and body["detail"] not in ("", "x")
    assert b"other-dental" not in response.content


def test_an_unknown_api_path_is_a_problem_document(personas: Personas) -> None:
    response = signed_in_client(personas.members["staff"]).get("/api/v1/files/not-a-route/deeper")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


def test_a_form_sent_without_its_csrf_token_gets_a_page_saying_what_to_do(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    client.handler.enforce_csrf_checks = True
    response = client.post(reverse("preferences"), {"full_name": "Changed", "tooth_notation": "fdi"})
    assert response.status_code == 403 and _in_layout(response.content)
    assert b"This form could not be sent" in response.content and b"Nothing was changed" in response.content
    personas.members["staff"].refresh_from_db()
    assert personas.members["staff"].tooth_notation == "universal"


def test_an_api_call_without_its_csrf_token_gets_a_problem_document(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    client.handler.enforce_csrf_checks = True
    response = client.post("/api/v1/uploads/", HTTP_TUS_RESUMABLE="1.0.0", HTTP_UPLOAD_LENGTH="10")
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
    assert b"CSRF" in response.content
