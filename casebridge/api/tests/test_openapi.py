"""The OpenAPI document, its docs page, and a schemathesis run of every endpoint but the tus byte ones against it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from casebridge.api.tests.conftest import World, ready_case

pytestmark = pytest.mark.django_db

# Examples per operation (valid and invalid together): the default runs in about half a minute on
# two shared cores (60: about a minute); raise it for a deeper search.
EXAMPLES = int(os.environ.get("CASEBRIDGE_SCHEMATHESIS_EXAMPLES", "25"))

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


@dataclass
class RealObjects:
    """What schemathesis should find: real ids per path parameter, tokens of both sides."""

    by_parameter: dict[str, list[str]]
    case_in_state: dict[str, str]
    destroyable: list[str]
    unattached: list[str]
    attached: list[str]
    lab_slug: str
    tokens: dict[str, str]


def _tus_upload_in_progress(raw_token: str) -> str:
    """An upload created without its body, as a tus client leaves it between requests."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}", HTTP_TUS_RESUMABLE="1.0.0")
    response = client.post("/api/v1/uploads/", b"", content_type="", HTTP_UPLOAD_LENGTH="4096")
    assert response.status_code == 201, response.content
    return str(response["Location"]).rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture
def real_objects(world: World) -> RealObjects:
    """Cases in the states the workflow endpoints act on (a complete draft, submitted, received,
    on hold), their files, unattached uploads, uploads in progress and an external link: the
    ids schemathesis puts into paths and bodies so its requests reach the handlers' logic."""
    practice, lab = world.api("clinician"), world.api("lab_manager")
    practice_token = world.token("owner", ["cases:read", "cases:write", "org:read"])
    lab_token = world.token("lab_manager", ["cases:read", "cases:write", "org:read"])
    draft, submitted, received, on_hold = (ready_case(world, practice) for _ in range(4))
    for number in (submitted, received, on_hold):
        assert practice.post(f"cases/{number}/submit").status_code == 200
    for number in (received, on_hold):
        assert lab.post(f"cases/{number}/receive").status_code == 200
    assert lab.post(f"cases/{on_hold}/hold", {"question": "Which shade?"}).status_code == 200
    attached = [a["file_id"] for a in practice.get(f"cases/{submitted}/attachments").json()]
    link = practice.post(
        f"cases/{submitted}/links",
        {"files": attached[:1], "recipient_email": "doctor@example.com", "purpose": "second opinion"},
    )
    assert link.status_code == 201, link.content
    unattached = [world.upload("owner") for _ in range(3)]
    # Destruction gets files of its own: no other operation may meet a shredded file.
    destroyable = [world.upload("owner") for _ in range(3)]
    return RealObjects(
        case_in_state={"draft": draft, "submitted": submitted, "received": received, "on_hold": on_hold},
        by_parameter={
            "number": [draft, submitted, received, on_hold],
            "file_id": attached + unattached,
            "upload_id": [_tus_upload_in_progress(practice_token) for _ in range(2)],
            "link_id": [link.json()["id"]],
        },
        destroyable=destroyable,
        unattached=unattached,
        attached=attached,
        lab_slug=world.lab.slug,
        tokens={"practice": practice_token, "lab": lab_token},
    )


# The case states a workflow operation acts on (by method and the path after the case number),
# and the side that acts: its examples meet such a case with that side's token, so they reach the
# action instead of stopping at "not in this state" or "not your side".
AIMED_AT = {
    ("PATCH", ""): (("draft",), "practice"),
    ("POST", "/submit"): (("draft",), "practice"),
    ("POST", "/attachments"): (("draft", "received"), "practice"),
    ("POST", "/receive"): (("submitted",), "lab"),
    ("POST", "/status"): (("received",), "lab"),
    ("POST", "/design-approval"): (("received",), "lab"),
    ("POST", "/hold"): (("received",), "lab"),
    ("POST", "/answer"): (("on_hold",), "practice"),
    ("POST", "/links"): (("submitted",), "practice"),
}


def _realistic(operation: Any, real: RealObjects) -> st.SearchStrategy[Any]:
    """The operation's requests, valid and invalid (schemathesis's positive and negative modes),
    three in four aimed at real objects (the path's ids given to schemathesis, so a negative
    example is still invalid elsewhere) with a real token; the rest keep schemathesis's own,
    mostly unknown, ids."""
    names = re.findall(r"{(\w+)}", operation.path)
    pools = {name: real.by_parameter[name] for name in names if name in real.by_parameter}
    states, side = AIMED_AT.get(
        (operation.method.upper(), operation.path.removeprefix("/api/v1/cases/{number}")), ((), "")
    )
    if states and "number" in pools:
        pools["number"] = [real.case_in_state[state] for state in states]
    if operation.method.upper() == "DELETE" and "file_id" in pools:
        pools["file_id"] = real.destroyable
    real_paths = st.fixed_dictionaries({name: st.sampled_from(pool) for name, pool in pools.items()})

    @st.composite
    def draw_case(draw: st.DrawFn) -> Any:
        mode = draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        if pools and draw(st.integers(0, 3)):
            case = draw(operation.as_strategy(mode, path_parameters=draw(real_paths)))
        else:
            case = draw(operation.as_strategy(mode))
        # The connected lab and real uploads in the bodies that name them (valid examples only: an
        # invalid one must stay invalid).
        if isinstance(case.body, dict) and mode == GenerationMode.POSITIVE:
            if isinstance(case.body.get("lab"), str) and draw(st.booleans()):
                case.body["lab"] = real.lab_slug
            if "file_id" in case.body and draw(st.booleans()):
                case.body["file_id"] = draw(st.sampled_from(real.unattached))
            if isinstance(case.body.get("files"), list) and draw(st.booleans()):
                case.body["files"] = [draw(st.sampled_from(real.attached))]
        # A real token replaces the generated one, unless the example's point is the credential
        # itself (schemathesis removed or mangled it): then the API must answer 401 on its own.
        negated = getattr(case.meta.phase.data, "description", "") or ""
        if "Authorization" in (case.headers or {}) and "Authorization" not in negated:
            preferred = side and draw(st.integers(0, 3))
            token = real.tokens[side] if preferred else draw(st.sampled_from(sorted(real.tokens.values())))
            case.headers["Authorization"] = f"Bearer {token}"
        return case

    return draw_case()


# Findings left to their owners, each named: the check is skipped for that operation only, every
# other check still runs on it. Remove an entry when its fix lands.
KNOWN_FINDINGS: dict[tuple[str, str], tuple[Any, str]] = {}


def _exercise(operation: Any, real: RealObjects, *, roll_back: bool) -> Any:
    """A hypothesis test sending the operation's examples, each in a savepoint: rolled back, or
    for destruction kept even when the example fails (the ciphertext is gone either way, so the
    database must say so too)."""
    excluded = [positive_data_acceptance]
    known = KNOWN_FINDINGS.get((operation.method.upper(), operation.path))
    if known is not None:
        excluded.append(known[0])

    @given(case=_realistic(operation, real))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        failure: BaseException | None = None
        with transaction.atomic():
            try:
                # Schema-valid is not always acceptable here: the case-type template, the workflow
                # state and opaque cursors are rules no JSON schema states (400/422 by design).
                case.call_and_validate(excluded_checks=excluded)
            except (Exception, BaseExceptionGroup) as exc:
                failure = exc
            transaction.set_rollback(roll_back)
        if failure is not None:
            raise failure

    return exercise


# Only the tus byte endpoints are left out: tuspy and the browser tests drive those.
TUS_BYTE_OPERATIONS = frozenset({"tus_create", "tus_append"})


def test_the_api_keeps_to_its_document(real_objects: RealObjects, wsgi_app: Any) -> None:
    """Schemathesis generates requests from the document for every operation but the tus byte
    endpoints, aims most of them at real objects with real tokens, and checks: no 5xx, documented
    status codes, content types, headers and bodies. Each request runs in a savepoint rolled back
    afterwards, so every example meets the objects in their intended state. Bounded: EXAMPLES per
    operation (CASEBRIDGE_SCHEMATHESIS_EXAMPLES), derandomized."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", wsgi_app)
    # tus answers a missing or wrong Tus-Resumable header with 412, as its protocol requires.
    rejection = schema.config.checks.negative_data_rejection
    schema.config.checks.negative_data_rejection = type(rejection)(
        enabled=rejection.enabled, expected_statuses=[*rejection.expected_statuses, "412"]
    )
    failures: dict[str, str] = {}
    tested = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in TUS_BYTE_OPERATIONS:
            continue
        tested.add((operation.method.lower(), operation.path))
        # Destruction removes ciphertext, which a rollback cannot bring back: those run for real.
        roll_back = operation.method.upper() != "DELETE"

        exercise = _exercise(operation, real_objects, roll_back=roll_back)
        try:
            exercise()
        # Collect every operation's failure, then report them together. Schemathesis reports its
        # findings as a BaseExceptionGroup, which `except Exception` would let through.
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:3000]
    assert tested >= EXPECTED - {("post", "/api/v1/uploads/"), ("patch", "/api/v1/uploads/{upload_id}")}
    assert failures == {}, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
