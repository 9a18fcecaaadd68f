"""Every answer under /api/ is a problem document (RFC 9457), errors included.

The typed endpoints get theirs from ninja's exception handlers (api/openapi.py); the hand-written
ones (files, tus, /me) and anything that escapes a view get theirs here, so no client of the API
ever receives Django's HTML error pages. Unexpected errors are logged with their traceback but
without the exception's message, which often quotes the request's input (a query parameter, a
patient's name): the log records where it failed, not what was sent.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views import csrf, defaults

from casebridge.api.auth import problem

logger = logging.getLogger("casebridge.api")

API_PREFIX = "/api/"
SERVER_ERROR_DETAIL = "Something went wrong on our side; nothing was changed."


def log_unexpected(request: HttpRequest, exc: BaseException) -> None:
    """One error record: method, route pattern (never the path, which can carry ids or tokens),
    the exception's type and the stack; the message is withheld."""
    match = request.resolver_match
    route = match.route if match is not None else "(unresolved)"
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "API error on %s %s: %s (message withheld, it may quote the request)\n%s",
        request.method,
        route,
        type(exc).__qualname__,
        stack,
    )


def server_error_problem() -> JsonResponse:
    return problem(500, "Internal Server Error", SERVER_ERROR_DETAIL)


class ApiErrorMiddleware:
    """Turns whatever a view under /api/ raises into a problem document."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, Http404):
            return problem(404, "Not Found", "No such object, or not yours to see.")
        if isinstance(exception, PermissionDenied):
            return problem(403, "Forbidden", "You may not do this.")
        if isinstance(exception, (BadRequest, SuspiciousOperation)):
            return problem(400, "Bad Request", "The request is malformed.")
        log_unexpected(request, exception)
        return server_error_problem()


def server_error(request: HttpRequest) -> HttpResponseBase:
    """handler500: what escapes even the middleware (an error inside middleware itself)."""
    if request.path.startswith(API_PREFIX):
        return server_error_problem()
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponseBase:
    """CSRF_FAILURE_VIEW: a session write under /api/ or /dicomweb/ (STOW-RS) without the CSRF
    token (or a write with no credentials at all, which Django checks for CSRF first) gets a
    problem document too."""
    if request.path.startswith((API_PREFIX, "/dicomweb/")):
        return problem(
            403,
            "Forbidden",
            "CSRF check failed: send an API token as 'Authorization: Bearer <token>', or from a signed-in "
            "page the CSRF token as the X-CSRFToken header.",
        )
    return csrf.csrf_failure(request, reason)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    """handler404: a URL under /api/ that names no endpoint (or an id of the wrong shape)."""
    if request.path.startswith(API_PREFIX):
        return problem(404, "Not Found", "No such endpoint or object.")
    return defaults.page_not_found(request, exception)
