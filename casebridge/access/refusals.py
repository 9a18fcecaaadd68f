"""Refused requests in the audit log (`access.denied`, outcome denied), folded so a scanner that
tries thousands of ids cannot flood the log.

The first refusal of one actor for one reason (status, method, route) in a window is recorded at
once; the ones after it in the same window are only counted in the shared cache, and the next
recorded refusal for that reason says how many were folded (`details.folded`). Counts live in the
cache every app server shares (Redis or the database cache), so the folding holds across servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from casebridge.audit.api import record
from casebridge.audit.models import Outcome

# Folded counts outlive the window so a burst's tail is still reported by the next event of the
# same kind, even a day later.
FOLDED_TTL_SECONDS = 24 * 3600
# Case numbers are internal ids; any other string in a URL is the caller's input and could be
# anything (a name typed into the address bar), so it never reaches the log.
_CASE_NUMBER = re.compile(r"^CB-\d{4}-\d{6,9}$")


def _actor_key(actor: Any) -> str:
    return f"{getattr(actor, 'audit_actor_type', 'user')}:{actor.pk}"


def _ids_named_in_url(kwargs: dict[str, Any]) -> dict[str, str]:
    """The URL's internal ids (UUIDs, case numbers), so the event says what was tried."""
    ids: dict[str, str] = {}
    for name, value in kwargs.items():
        if isinstance(value, uuid.UUID):
            ids[name] = str(value)
        elif isinstance(value, str) and _CASE_NUMBER.match(value):
            ids[name] = value
    return ids


def refusal_organization(request: HttpRequest, actor: Any) -> Any:
    """Whose log shows the refusal: the caller's organization, never the one they probed (an
    outsider must not be able to write into another organization's log by guessing its URLs)."""
    access = getattr(request, "org_access", None)
    if access is not None:
        return access.organization
    token = getattr(request, "api_token", None)
    if token is not None:
        return token.organization_id
    organization_id = getattr(actor, "organization_id", None)  # a service account's own
    if organization_id is not None:
        return organization_id
    from casebridge.access.policy import organizations_of

    # The organization in the URL when the actor belongs to it (a role lacking a permission is
    # refused before the guard keeps its access), else the one their session last opened.
    match = request.resolver_match
    session = getattr(request, "session", None)
    for slug in (
        match.kwargs.get("org", "") if match is not None else "",
        session.get("current_org", "") if session is not None else "",
    ):
        if slug:
            organization = organizations_of(actor).filter(slug=slug).first()
            if organization is not None:
                return organization
    return None


def record_refusal(request: HttpRequest, actor: Any, status: int) -> bool:
    """Audit one refused request of an authenticated actor; False when it was folded instead."""
    match = request.resolver_match
    route = match.route if match is not None else ""
    method = request.method or ""
    reason = f"{status} {method} {route}"
    key = "audit:refused:" + hashlib.sha256(f"{_actor_key(actor)}|{reason}".encode()).hexdigest()[:32]
    folded_key = f"{key}:folded"
    window = settings.AUDIT_REFUSAL_WINDOW_SECONDS
    if not cache.add(f"{key}:open", True, timeout=window):
        # Within the window: count it for the next event instead of writing one.
        cache.add(folded_key, 0, timeout=FOLDED_TTL_SECONDS)
        try:
            cache.incr(folded_key)
        except ValueError:  # expired between add and incr
            cache.set(folded_key, 1, timeout=FOLDED_TTL_SECONDS)
        return False
    folded = cache.get(folded_key, 0)
    if folded:
        # decr by what was read, not delete: a refusal counted meanwhile on another server stays.
        with contextlib.suppress(ValueError):  # expired meanwhile: nothing left to take back
            cache.decr(folded_key, folded)
    record(
        "access.denied",
        actor=actor,
        organization=refusal_organization(request, actor),
        outcome=Outcome.DENIED,
        details={
            "status": status,
            "method": method,
            "route": route,
            **_ids_named_in_url(match.kwargs if match is not None else {}),
            "folded": folded,
            "window_seconds": window,
        },
    )
    return True
