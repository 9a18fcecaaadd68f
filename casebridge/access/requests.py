"""Typed access to what the middleware and guards attach to a request (actor, token, org access)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

if TYPE_CHECKING:
    from casebridge.access.policy import OrgAccess
    from casebridge.access.principal import Principal
    from casebridge.accounts.models import ApiToken, User


def actor_of(request: HttpRequest) -> Any:
    """The signed-in person (after MFA), the token's user or service account, or None."""
    return getattr(request, "actor", None)


def principal_of(request: HttpRequest) -> Principal | None:
    """Who acts in this request and through which credential (None: nobody signed in with MFA and
    no token). Built once per request from what the authentication middleware found."""
    from casebridge.access.principal import Principal

    if _PRINCIPAL not in request.__dict__:
        actor = actor_of(request)
        request.__dict__[_PRINCIPAL] = Principal(actor, api_token_of(request)) if actor is not None else None
    principal: Principal | None = request.__dict__[_PRINCIPAL]
    return principal


_PRINCIPAL = "_casebridge_principal"


def user_of(request: HttpRequest) -> User:
    """The signed-in person, in views the guards already limited to signed-in people."""
    from casebridge.accounts.models import User

    user = request.user
    if not isinstance(user, User):
        raise LookupError("user_of() outside a signed-in view")
    return user


def api_token_of(request: HttpRequest) -> ApiToken | None:
    return getattr(request, "api_token", None)


def org_access_of(request: HttpRequest) -> OrgAccess:
    """What the actor may do in the organization of this URL (set by access.guards.org_permission)."""
    access = getattr(request, "org_access", None)
    if access is None:
        raise LookupError("org_access_of() outside an org_permission-guarded view")
    return access
