"""Request-scoped context (request id, client address) and the Permissions-Policy header."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from casebridge.core import context


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ctx = context.from_request(request)
        ctx.after_response = []
        token = context.activate(ctx)
        try:
            response = self.get_response(request)
        except BaseException:
            _run(ctx.after_response)
            raise
        finally:
            context.deactivate(token)
        response["X-Request-Id"] = ctx.request_id
        if ctx.after_response:
            if response.streaming or connection.allow_thread_sharing:
                # A streamed body can take minutes: its work is not kept waiting that long. A
                # connection shared with another thread (the test server's in-memory SQLite) would
                # be used by both at once: that thread goes on as soon as it has the response.
                _run(ctx.after_response)
            else:
                _after_close(response, ctx.after_response)
        return response


def _run(work: list[Callable[[], None]]) -> None:
    for item in work:
        item()


def _after_close(response: HttpResponse, work: list[Callable[[], None]]) -> None:
    """Run `work` when the WSGI server closes the response: after its last byte was sent (the
    test client closes it too, before it returns the response), before Django's end-of-request
    handlers (which may close the database connection)."""
    close = response.close

    def close_after_work() -> None:
        try:
            _run(work)
        finally:
            close()

    # The instance's own `close`, which the WSGI server calls (as Django documents it); set in
    # the instance dict because type checkers refuse assigning to a method.
    vars(response)["close"] = close_after_work


class PermissionsPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        # Pages can show patient data: never keep them in shared or browser caches.
        response.setdefault("Cache-Control", "no-store")
        return response
