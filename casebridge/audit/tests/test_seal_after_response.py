"""A request's events are committed before its response and chained (sealed) once the response
has been sent: the person does not wait for the sealer's commit (docs/audit.md, "What auditing
adds to a request")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import RequestFactory

from casebridge.audit.api import record
from casebridge.audit.models import Event, PendingSeal, Seal
from casebridge.core.middleware import RequestContextMiddleware

pytestmark = pytest.mark.django_db


def _serve(capture: Any, respond: Callable[[], Any]) -> HttpResponseBase:
    def view(request: HttpRequest) -> Any:
        with capture(execute=True):  # the commit, and so the on-commit hook, inside the request
            record("org.created", details={"n": 1})
        assert Event.objects.filter(action="org.created").count() == 1  # durable before the response
        return respond()

    return RequestContextMiddleware(view)(RequestFactory().get("/"))


def _close(response: HttpResponseBase) -> None:
    """What the WSGI server does once the last byte is sent; without the end-of-request handler
    that closes the database connection (the test's transaction is still open), as Django's test
    client does."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_the_seal_is_written_once_the_response_is_closed(django_capture_on_commit_callbacks: Any) -> None:
    response = _serve(django_capture_on_commit_callbacks, lambda: HttpResponse("ok"))
    assert PendingSeal.objects.count() == 1 and not Seal.objects.exists()
    _close(response)
    assert not PendingSeal.objects.exists() and Seal.objects.count() == 1


def test_a_streamed_response_is_not_waited_for(django_capture_on_commit_callbacks: Any) -> None:
    response = _serve(django_capture_on_commit_callbacks, lambda: StreamingHttpResponse(iter([b"bytes"])))
    assert Seal.objects.count() == 1  # a download can stream for minutes: sealed before it starts
    _close(response)
    assert Seal.objects.count() == 1


def test_a_request_that_fails_still_seals_what_it_committed(django_capture_on_commit_callbacks: Any) -> None:
    def fail() -> HttpResponse:
        raise RuntimeError("the view failed after its event committed")

    with pytest.raises(RuntimeError):
        _serve(django_capture_on_commit_callbacks, fail)
    assert Seal.objects.count() == 1 and not PendingSeal.objects.exists()


def test_outside_a_request_the_seal_is_written_at_once(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        record("org.created")
    assert Seal.objects.count() == 1 and not PendingSeal.objects.exists()


def test_on_a_connection_shared_with_another_thread_the_seal_is_written_before_the_response(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The test server's in-memory SQLite connection is shared with the test's own thread, which
    goes on the moment it has the response: sealing at close would use the connection with it."""
    connection.inc_thread_sharing()
    try:
        response = _serve(django_capture_on_commit_callbacks, lambda: HttpResponse("ok"))
        assert Seal.objects.count() == 1 and not PendingSeal.objects.exists()
    finally:
        connection.dec_thread_sharing()
    _close(response)
    assert Seal.objects.count() == 1
