"""One place where refusals are shaped and audited, whichever view or action refused.

- `policy.Forbidden` raised by an action (a role lacking a permission) becomes Django's 403, as a
  guard's own refusal does; under /api/ a problem document. Without this, a web view calling an
  action the member may not take answered 500.
- Every 403 and 404 of an authenticated actor on a protected route is an `access.denied` event
  (folded per actor and reason, access/refusals.py): another organization's case or file, an
  unknown case number, a role without the permission. Public routes audit their own refusals
  (share links, tokens) and URLs that resolve to no view are not organization-scoped.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from casebridge.access import policy
from casebridge.access.guards import ACCESS_ATTR, to_onboarding
from casebridge.access.refusals import record_refusal

REFUSALS = frozenset({403, 404})
# Guard kinds whose views need no actor, or refuse in their own audited way.
_NOT_ORG_SCOPED = frozenset({"public", "transfer_server"})


class AccessRefusalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.status_code in REFUSALS:
            actor = getattr(request, "actor", None)
            match = request.resolver_match
            kind = getattr(match.func, ACCESS_ATTR, None) if match is not None else None
            if actor is not None and kind is not None and kind not in _NOT_ORG_SCOPED:
                record_refusal(request, actor, response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, policy.Forbidden):
            if request.path.startswith("/api/"):
                from casebridge.api.auth import problem

                return problem(403, "Forbidden", f"Your role does not allow: {exception.perm.label}.")
            access = getattr(request, "org_access", None)
            if isinstance(exception, policy.OnboardingRequired) and access is not None:
                return to_onboarding(request, access.organization.slug)
            # Raised here, Django answers it exactly as a guard's PermissionDenied: its 403 page,
            # which says the action's own reason when it gave one (a restricted patient...).
            # An attribute of the request, like guards.py's request.org_access (Django types it not).
            request.refusal_reason = exception.reason  # type: ignore[attr-defined]
            raise PermissionDenied(str(exception)) from exception
        return None
