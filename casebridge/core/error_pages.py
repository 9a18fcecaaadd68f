"""What a person sees when a request fails: pages in the site's layout that say what happened and
where to go next, and RFC 9457 problem documents for API paths, whose clients parse JSON."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

API_PREFIX = "/api/"

# Fixed wording: the API's answer never repeats an exception's text, which for a 404 could tell
# "exists but not yours" from "does not exist", and for a 500 could carry internals.
_API_PROBLEMS = {
    400: ("Bad Request", "The request could not be understood."),
    403: ("Forbidden", "Your role or token does not allow this."),
    404: ("Not Found", "Nothing here, or nothing you may see."),
    500: ("Internal Server Error", "Something went wrong on our side; it has been logged. Try again later."),
}


def _api_problem(status: int) -> JsonResponse:
    title, detail = _API_PROBLEMS[status]
    return JsonResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_problem(400)
    # Rendered without the request, as Django does: a 400 is often a disallowed Host header, and
    # the layout's context (the person, their organizations) must not depend on such a request.
    return defaults.bad_request(request, exception, template_name="400.html")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_problem(403)
    return defaults.permission_denied(request, exception, template_name="403.html")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: most often a form left open across a sign-out or a new sign-in elsewhere.
    Django's reason is for developers: the page says what to do instead."""
    if _is_api(request):
        return JsonResponse(
            {
                "type": "about:blank",
                "title": _API_PROBLEMS[403][0],
                "status": 403,
                "detail": "CSRF check failed: send the page's CSRF token as the X-CSRFToken header.",
            },
            status=403,
            content_type="application/problem+json",
        )
    return render(request, "403_csrf.html", status=403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_problem(404)
    return defaults.page_not_found(request, exception, template_name="404.html")


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _api_problem(500)
    # Without the request's context on purpose: whatever failed (the database, a context
    # processor) must not fail the error page too.
    return defaults.server_error(request, template_name="500.html")
