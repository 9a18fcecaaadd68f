"""Template context: the current organization, the actor's permissions there, the switcher."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from casebridge.access.policy import organizations_of
from casebridge.access.requests import principal_of


def current_organization(request: HttpRequest) -> dict[str, Any]:
    access = getattr(request, "org_access", None)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(request, "api_token", None) is not None:
        return {}
    orgs = list(organizations_of(user))
    current = access.organization if access else None
    if current is None:
        slug = request.session.get("current_org")
        current = next((o for o in orgs if o.slug == slug), None)
        # Pages outside an organization's URLs (the account pages) still show the whole
        # navigation of the organization the person last worked in, with what their role there
        # allows: the policy answers, exactly as on that organization's own pages.
        principal = principal_of(request)
        if current is not None and principal is not None:
            access = principal.access(current)
    return {
        "my_orgs": orgs,
        "current_org": current,
        "current_perms": {p.value for p in access.permissions} if access else set(),
        "current_role": access.role if access else "",
        "emergency_grant": access.emergency if access else None,
    }
