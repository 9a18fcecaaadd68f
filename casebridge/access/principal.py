"""Who acts in a request: the person or service account, the credential it came with, and what
that credential lets it do in each organization. Resolved once per request and handed to every
policy question, so no query helper receives a bare user and has to remember the token
(Sentry's `Access` in spirit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.http import Http404

from casebridge.access.roles import Perm
from casebridge.accounts.models import ApiToken, ServiceAccount, User
from casebridge.core import context
from casebridge.orgs.models import Organization


@dataclass(eq=False)
class Principal:
    """A person (signed in with MFA, or through one of their tokens) or a service account (through
    a token). A token acts for its own organization only, with its scopes only."""

    actor: User | ServiceAccount
    token: ApiToken | None = None
    _accesses: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def is_service(self) -> bool:
        return isinstance(self.actor, ServiceAccount)

    def organizations(self) -> list[Organization]:
        """The organizations this principal may act for at all (before permissions)."""
        if self.token is not None:
            return [self.token.organization] if self.token.is_usable else []
        if isinstance(self.actor, ServiceAccount):
            return [self.actor.organization] if self.actor.is_active else []
        from casebridge.access.policy import organizations_of

        return list(organizations_of(self.actor)) if self.actor.is_active else []

    def access(self, organization: Organization) -> Any:
        """What it may do in `organization` (an `OrgAccess`), or None for an outsider. Cached for
        the request: membership, emergency grant, token scopes are read once."""
        from casebridge.access.policy import resolve

        if organization.pk not in self._accesses:
            self._accesses[organization.pk] = resolve(self.actor, organization, self.token)
        return self._accesses[organization.pk]

    def accesses(self, perm: Perm | None = None) -> list[Any]:
        """Its access in each organization it may act for, limited to those granting `perm`."""
        found = [a for a in (self.access(o) for o in self.organizations()) if a is not None]
        return [a for a in found if perm is None or a.has(perm)]

    def owns(self, prefix: str = "") -> Q:
        """The `created_by`/`created_by_service` condition for rows this principal created."""
        key = f"{prefix}created_by_service" if self.is_service else f"{prefix}created_by"
        return Q(**{key: self.actor})

    def enter(self, organization: Organization | None, perm: Perm, *, via: str) -> Any:
        """The one way a request enters an organization: 404 for an outsider (the same answer as
        "no such organization"), `policy.Forbidden` without `perm`; marks the request's audit
        context with an emergency grant and records its use when only the grant allows `perm`."""
        access = self.access(organization) if organization is not None else None
        if access is None:
            raise Http404("no such organization")
        access.require(perm)
        ctx = context.current()
        if ctx is not None:
            ctx.emergency_access = access.emergency
        if access.emergency is not None and access.uses_emergency(perm):
            from casebridge.audit.api import record

            record(
                "breakglass.used",
                actor=self.actor,
                organization=access.organization,
                details={"permission": perm.value, "view": via},
            )
        return access

    def default_organization(self, slug: str = "") -> Organization | None:
        """The organization a request without one in its URL acts for: the token's own; else the
        one named (or the session's current one), if it may act there; else its only one."""
        if self.token is not None:
            return self.token.organization
        mine = self.organizations()
        if slug:
            return next((o for o in mine if o.slug == slug), None)
        return mine[0] if len(mine) == 1 else None
