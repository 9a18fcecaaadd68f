"""A token request's `token.used` is committed before its response, exactly once, and shares
the commit of the request's first audited transaction that commits on its own (a download's
`file.downloaded`): one commit instead of two (docs/audit.md, "What auditing adds to a request").
Real commits (transactional_db), through the real middleware."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from casebridge.accounts import actions
from casebridge.accounts.middleware import ApiTokenMiddleware
from casebridge.accounts.models import ApiToken
from casebridge.audit import api
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.core.middleware import RequestContextMiddleware
from casebridge.core.testing import Personas

pytestmark = pytest.mark.usefixtures("transactional_db")


class _Abandon(Exception):
    pass


@pytest.fixture
def token(personas: Personas) -> tuple[ApiToken, str]:
    user = personas.members["owner"]
    return actions.create_api_token(
        organization=personas.practice, name="integration", scopes=["org:read"], days=7, actor=user, user=user
    )


def _call(raw: str, view: Callable[[], None]) -> tuple[HttpResponse, CaptureQueriesContext]:
    def respond(request: HttpRequest) -> HttpResponse:
        view()
        return HttpResponse("ok")

    handler = RequestContextMiddleware(ApiTokenMiddleware(respond))
    request = RequestFactory().get(reverse("api_me"), HTTP_AUTHORIZATION=f"Bearer {raw}")
    with CaptureQueriesContext(connection) as queries:
        response = handler(request)
    response.close()
    return response, queries


def _actions() -> list[str]:
    return list(Event.objects.exclude(action="token.created").order_by("id").values_list("action", flat=True))


def _commits(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"] == "COMMIT")


def test_the_token_use_rides_in_the_requests_own_audited_commit(token: tuple[ApiToken, str]) -> None:
    response, queries = _call(token[1], lambda: record("org.created", details={"n": 1}))
    assert response.status_code == 200
    assert _actions() == ["token.used", "org.created"]
    assert _commits(queries) == 1  # the event, the token's event, its last-used time (and on SQLite the seals)
    token[0].refresh_from_db()
    assert token[0].last_used_at is not None
    used = Event.objects.get(action="token.used")
    assert used.details == {"method": "GET", "route": "api_me", "token": str(token[0].pk)}


def test_a_request_that_records_nothing_still_records_the_token_use(token: tuple[ApiToken, str]) -> None:
    _call(token[1], lambda: None)
    assert _actions() == ["token.used"]


def test_a_rolled_back_recording_does_not_take_the_token_use_with_it(token: tuple[ApiToken, str]) -> None:
    def view() -> None:
        try:
            with transaction.atomic():  # the view's own transaction: it may still roll back
                record("org.created", details={"n": 1})
                raise _Abandon
        except _Abandon:
            pass
        record("org.created", details={"n": 2})  # committed on its own: carries the token use

    _call(token[1], view)
    assert _actions() == ["token.used", "org.created"]
    assert Event.objects.get(action="org.created").details["n"] == 2


def test_a_failed_commit_gives_the_token_use_back_to_the_request(
    token: tuple[ApiToken, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = api._seal_after_commit
    calls = 0

    def fail_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise _Abandon  # inside the append's transaction: both events roll back
        real()

    monkeypatch.setattr(api, "_seal_after_commit", fail_once)

    def view() -> None:
        with pytest.raises(_Abandon):
            record("org.created", details={"n": 1})

    _call(token[1], view)
    assert _actions() == ["token.used"]  # recorded by the middleware before the response
    token[0].refresh_from_db()
    assert token[0].last_used_at is not None


def test_without_a_token_nothing_is_owed(personas: Personas) -> None:
    handler = RequestContextMiddleware(ApiTokenMiddleware(lambda request: HttpResponse("ok")))
    handler(RequestFactory().get(reverse("api_me"))).close()
    assert not Event.objects.filter(action="token.used").exists()
