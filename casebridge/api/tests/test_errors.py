"""Every answer under /api/ is a problem document, malformed parameters are 4xx, and an
unexpected error is a problem+json 500 whose log line does not repeat what the client sent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from casebridge.access.guards import ACCESS_ATTR
from casebridge.api.tests.conftest import World, ready_case
from casebridge.cases.models import Case
from casebridge.urls import urlpatterns as casebridge_urls

pytestmark = pytest.mark.django_db

SECRET_INPUT = "Jane Roe 1961-04-02"


def _is_problem(response: HttpResponse, status: int) -> bool:
    return response.status_code == status and response["Content-Type"] == "application/problem+json"


def test_a_malformed_file_list_cursor_is_a_400_that_does_not_echo_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    api = world.api("clinician")
    world.upload("clinician")
    with caplog.at_level(logging.INFO):
        for before in ("garbage", "", "2026-13-45T00:00:00Z", "2026-01-01T00:00:00", SECRET_INPUT):
            response = api.client.get("/api/v1/files/", {"before": before})
            assert _is_problem(response, 400), (before, response.status_code)
            assert "next_before" in response.json()["detail"]
    assert "garbage" not in caplog.text and "Jane" not in caplog.text
    # The cursor the list hands out still works.
    page = api.client.get("/api/v1/files/", {"before": "2999-01-01T00:00:00+00:00"})
    assert page.status_code == 200 and len(page.json()["results"]) == 1


def test_a_malformed_version_is_a_400_not_the_current_version(world: World) -> None:
    api = world.api("clinician")
    file_id = world.upload("clinician")
    for version in ("0", "-1", "abc", "²", "9" * 30):
        response = api.client.get(f"/api/v1/files/{file_id}/content", {"version": version})
        assert _is_problem(response, 400), (version, response.status_code)
    assert _is_problem(api.client.get(f"/api/v1/files/{file_id}/content", {"version": "7"}), 404)
    assert api.client.get(f"/api/v1/files/{file_id}/content", {"version": "1"}).status_code == 200


def test_null_for_a_draft_text_field_is_a_422_and_changes_nothing(world: World) -> None:
    api = world.api("clinician")
    number = ready_case(world, api)
    before = Case.objects.get(number=number)
    for body in ({"ship_to": None}, {"notes": None}, {"delivery": None}, {"notes": None, "due_date": None}):
        response = api.patch(f"cases/{number}", body)
        assert _is_problem(response, 422), (body, response.status_code)
        assert response.json()["errors"][0]["field"].startswith("body.")
    after = Case.objects.get(number=number)
    assert (after.ship_to, after.notes, after.delivery, after.due_date) == (
        before.ship_to,
        before.notes,
        before.delivery,
        before.due_date,
    )
    # null stays meaningful where the document allows it: no due date.
    assert api.patch(f"cases/{number}", {"due_date": None}).json()["due_date"] is None


def test_unknown_api_urls_and_ids_of_the_wrong_shape_are_problem_documents(world: World) -> None:
    api = world.api("clinician")
    for url in ("/api/v1/nothing-here", "/api/v1/files/not-a-uuid", "/api/v1/uploads/%C2%AD"):
        assert _is_problem(api.client.get(url), 404), url
    # A page outside the API keeps Django's HTML answer.
    assert "html" in api.client.get("/no-such-page/")["Content-Type"]


def test_a_write_without_credentials_is_a_problem_document(world: World, vault_home: Path) -> None:
    file_id = world.upload("clinician")
    # Django checks CSRF before any view runs: the refusal must still be problem+json.
    response = Client(enforce_csrf_checks=True).delete(f"/api/v1/files/{file_id}", '{"reason": "because"}')
    assert _is_problem(response, 403) and "CSRF" in response.json()["detail"]


# A view that fails the way an unforeseen bug does, with the client's input in the exception.
def _failing_view(request: HttpRequest) -> HttpResponse:
    raise ValueError(f"could not parse {request.GET.get('q', '')!r}")


setattr(_failing_view, ACCESS_ATTR, "public")
urlpatterns = [path("api/v1/test-failure", _failing_view), path("test-failure", _failing_view), *casebridge_urls]


@pytest.mark.urls(__name__)
def test_an_unexpected_error_under_api_is_a_problem_500_that_logs_no_input(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/test-failure", {"q": SECRET_INPUT})
    assert _is_problem(response, 500)
    assert SECRET_INPUT not in response.content.decode()
    assert "ValueError" in caplog.text and "api/v1/test-failure" in caplog.text
    assert "Jane" not in caplog.text
    # Outside the API, Django's own 500 page as before.
    assert "html" in client.get("/test-failure")["Content-Type"]


def test_a_cursor_with_an_offset_postgresql_would_refuse_is_taken_in_utc(world: World) -> None:
    response = world.api().client.get("/api/v1/files/", {"before": "0748-04-07T21:38:12-18:48"})
    assert response.status_code == 200 and response.json()["results"] == []
