"""Template context for the navigation: cases waiting on this person and unread notifications,
in the organization the page shows (or the session's, on account pages). Two count queries."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from casebridge.access.policy import visible_cases
from casebridge.access.requests import principal_of
from casebridge.access.roles import Perm
from casebridge.audit import alerts
from casebridge.cases import queue
from casebridge.notifications import actions


def navigation_counts(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(request, "api_token", None) is not None:
        return {}

    @functools.cache
    def current_access() -> Any:
        access = getattr(request, "org_access", None)
        if access is not None:
            return access
        principal = principal_of(request)
        slug = request.session.get("current_org")
        organization = principal.default_organization(slug) if principal is not None and slug else None
        return principal.access(organization) if principal is not None and organization is not None else None

    def waiting() -> int:
        access = current_access()
        if access is None or not access.has(Perm.CASES_VIEW):
            return 0
        return visible_cases(access).filter(queue.OPEN & queue.waiting_on(access)).count()

    def unread() -> int:
        access = current_access()
        return actions.unread_count(access) if access is not None else 0

    def open_alerts() -> int:
        access = current_access()
        if access is None or not access.has(Perm.AUDIT_VIEW):
            return 0
        return alerts.open_alerts(access.organization).count()

    # Lazy: counted only when a page's navigation shows them (not for fragments or JSON).
    return {
        "nav_alerts": SimpleLazyObject(open_alerts),
        "nav_waiting": SimpleLazyObject(waiting),
        "unread_notifications": SimpleLazyObject(unread),
        "notification_poll_seconds": settings.NOTIFICATION_POLL_SECONDS,
    }
