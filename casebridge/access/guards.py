"""View guards: every URL is either declared public or protected through the policy.

`tests/test_url_coverage.py` walks the URL configuration and fails for any view that is neither.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from casebridge.access import policy
from casebridge.access.refusals import record_refusal
from casebridge.access.requests import principal_of
from casebridge.access.roles import Perm
from casebridge.orgs.models import Organization

View = TypeVar("View", bound=Callable[..., HttpResponseBase])
ACCESS_ATTR = "casebridge_access"
SESSION_IDLE = "cb_idle_seconds"


def to_onboarding(request: HttpRequest, org_slug: str) -> HttpResponse:
    """Where a page request goes when the training gate withholds patient data: the training page,
    saying why (the API answers 403 with the same reason). The refusal is audited as any other."""
    actor = getattr(request, "actor", None)
    if actor is not None:
        record_refusal(request, actor, 403)
    messages.info(request, "Finish your onboarding training first: patient data opens once you pass it.")
    return redirect("training", org_slug)


def public(view: View) -> View:
    """Reachable without signing in: sign-in, invitation and setup links, health, static."""
    setattr(view, ACCESS_ATTR, "public")
    return view


FROM_TRANSFER_SERVER = "casebridge.from_transfer_server"  # request.META key, set by middleware


def transfer_server_only(view: View) -> View:
    """Reachable only by CaseBridge's transfer server, proven by the internal key (checked by
    vault.transfer.TransferServerMiddleware); everyone else gets 404. The view checks what the
    request names (an upload's lease), as no person or token is behind it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.META.get(FROM_TRANSFER_SERVER):
            from django.http import HttpResponseNotFound

            return HttpResponseNotFound()
        return view(request, *args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, "transfer_server")
    return cast(View, wrapper)


def signed_in(view: View) -> View:
    """The person's own account pages: signed in (and, through middleware, MFA-enrolled)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated or getattr(request, "api_token", None) is not None:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    setattr(wrapper, ACCESS_ATTR, "signed_in")
    return cast(View, wrapper)


def org_permission(perm: Perm) -> Callable[[View], View]:
    """Resolve the `org` URL argument for the actor; 404 for outsiders, 403 without `perm`.
    These are browser pages: API tokens are refused here and use the REST API (api/)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, org: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if getattr(request, "api_token", None) is not None:
                raise PermissionDenied("this page is not available to API tokens")
            principal = principal_of(request)
            if principal is None:
                return redirect_to_login(request.get_full_path())
            organization = Organization.objects.filter(slug=org).first()
            try:
                access = principal.enter(organization, perm, via=view.__name__)
            except policy.OnboardingRequired:
                return to_onboarding(request, org)
            except policy.Forbidden as exc:
                raise PermissionDenied(str(exc)) from exc
            request.org_access = access  # type: ignore[attr-defined]
            # Only when they change: assigning marks the session modified, a database write on
            # every request (and the case page's status poll comes every 15 seconds).
            if request.session.get("current_org") != access.organization.slug:
                request.session["current_org"] = access.organization.slug
            if request.session.get(SESSION_IDLE) != access.organization.idle_timeout_seconds:
                request.session[SESSION_IDLE] = access.organization.idle_timeout_seconds
            return view(request, *args, **kwargs)

        setattr(wrapper, ACCESS_ATTR, perm.value)
        return cast(View, wrapper)

    return decorator
