"""The OpenAPI document, its docs page, and a schemathesis run of the JSON endpoints against it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from casebridge.api.tests.conftest import World, ready_case

pytestmark = pytest.mark.django_db

EXAMPLES = 6

# Every case endpoint and the hand-written ones: a new endpoint must show up in the document.
EXPECTED = {
    ("get", "/api/v1/cases"),
    ("post", "/api/v1/cases"),
    ("get", "/api/v1/cases/{number}"),
    ("patch", "/api/v1/cases/{number}"),
    *(
        ("post", f"/api/v1/cases/{{number}}/{step}")
        for step in (
            "submit",
            "receive",
            "status",
            "design-approval",
            "design-decision",
            "hold",
            "answer",
            "complete",
            "archive",
            "revoke-lab-access",
            "remake",
        )
    ),
    ("get", "/api/v1/cases/{number}/attachments"),
    ("post", "/api/v1/cases/{number}/attachments"),
    ("get", "/api/v1/cases/{number}/messages"),
    ("post", "/api/v1/cases/{number}/messages"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/uploads/"),
    ("patch", "/api/v1/uploads/{upload_id}"),
    ("get", "/api/v1/files/"),
    ("get", "/api/v1/files/{file_id}"),
    ("get", "/api/v1/files/{file_id}/content"),
}


def test_the_document_describes_every_endpoint_its_security_and_its_errors(db: None) -> None:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    operations = {(method, route) for route, item in document["paths"].items() for method in item}
    assert operations >= EXPECTED
    assert document["components"]["securitySchemes"]["CaseBridgeAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "cb_<prefix>_<secret>",
        "description": document["components"]["securitySchemes"]["CaseBridgeAuth"]["description"],
    }
    create = document["paths"]["/api/v1/cases"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "422"}
    assert list(create["responses"]["422"]["content"]) == ["application/problem+json"]


def test_the_docs_page_runs_under_the_strict_csp(db: None) -> None:
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui-bundle" in html and "js/apidocs" in html and "/api/v1/openapi.json" in html
    assert "<script>" not in html and "unsafe-inline" not in response["Content-Security-Policy"]


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """Django as a WSGI app in this thread, inside the test's transaction. The per-request
    connection housekeeping would close that transaction's connection (on PostgreSQL; on SQLite's
    in-memory test database closing is a no-op), so it is switched off around every call, as
    django.test.Client does: the Client reconnects it after each of its own requests."""
    handler = get_wsgi_application()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        return handler(environ, start_response)

    try:
        yield app
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_api_keeps_to_its_document(world: World, wsgi_app: Any) -> None:
    """Schemathesis generates requests from the document for every JSON operation, sends them with
    a real token (and a real case to find), and checks: no 5xx, documented status codes, content
    types, headers and bodies. Bounded: a few examples per operation, derandomized."""
    token = world.token("owner", ["cases:read", "cases:write", "org:read"])
    ready_case(world)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app)
    # The JSON endpoints; tus and downloads stream bytes and have their own protocol tests.
    schema = schema.exclude(tag="uploads").exclude(operation_id="file_content").exclude(method="DELETE")
    failures: dict[str, str] = {}
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            # Schema-valid is not always acceptable here: the case-type template, the workflow state
            # and opaque cursors are rules no JSON schema states, and they answer 400/422 by design.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, excluded_checks=[positive_data_acceptance]
            )

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = str(exc)[:2000]
    assert tested >= 20
    assert failures == {}, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
