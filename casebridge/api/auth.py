"""Who is calling the API: a bearer token's principal, or a signed-in person (MFA enforced by
middleware, CSRF by Django). Errors are RFC 9457 problem documents."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase

from casebridge.access.guards import ACCESS_ATTR

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


def problem(status: int, title: str, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status=status,
        content_type="application/problem+json",
    )


def api_actor(view: View) -> View:
    """Require an authenticated actor; the view asks the policy about the objects it touches.

    OPTIONS is answered without one when the view defines `options_response` (tus discovery and
    CORS preflight carry capabilities only, never data)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        options = getattr(view, "options_response", None)
        if request.method == "OPTIONS" and options is not None:
            return options(request)
        actor = getattr(request, "actor", None)
        if actor is None:
            response = problem(401, "Unauthorized", "Sign in, or send an API token as 'Authorization: Bearer <token>'.")
            response["WWW-Authenticate"] = 'Bearer realm="casebridge"'
            return response
        return view(request, *args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, "api")
    return wrapper  # type: ignore[return-value]


def answers_options(handler: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[View], View]:
    """Mark a view whose OPTIONS requests `handler` answers without authentication."""

    def decorator(view: View) -> View:
        view.options_response = handler  # type: ignore[attr-defined]
        return view

    return decorator
