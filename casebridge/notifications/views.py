"""The notification page, the bell's count (polled; not activity for idle logoff), mark read."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.notifications import actions


def _access(request: HttpRequest) -> OrgAccess:
    return org_access_of(request)


@require_GET
@org_permission(Perm.CASES_VIEW)
def notifications(request: HttpRequest) -> HttpResponse:
    """Newest first, a page at a time (cursor `before`: the id of the last one shown). Only case
    numbers and the event wording are shown, as in the e-mails: no patient data, so no audit."""
    access = _access(request)
    before = None
    cursor = request.GET.get("before", "")
    if cursor:
        try:
            cursor_id = uuid.UUID(cursor)
        except ValueError:
            return HttpResponseBadRequest("The page cursor is not valid; start again from the first page.")
        before = scoped_get(actions.visible_notifications(access), pk=cursor_id)
    rows, next_cursor = actions.page(access, before)
    return render(
        request,
        "notifications/list.html",
        {"notifications": rows, "next_cursor": next_cursor, "nav": "notifications"},
    )


@require_GET
@org_permission(Perm.CASES_VIEW)
def notification_bell(request: HttpRequest) -> HttpResponse:
    """The bell's count alone, for htmx to poll (accounts.middleware: not counted as activity)."""
    access = _access(request)
    # Rendered without the request: the navigation's context processors would cost queries on
    # every poll for nothing the count shows.
    context = {
        "current_org": access.organization,
        "unread_notifications": actions.unread_count(access),
        "notification_poll_seconds": settings.NOTIFICATION_POLL_SECONDS,
    }
    return HttpResponse(render_to_string("notifications/_bell_count.html", context))


@require_POST
@org_permission(Perm.CASES_VIEW)
def notification_read(request: HttpRequest, notification_id: uuid.UUID) -> HttpResponse:
    """Mark one of the person's own notifications read; anyone else's is "not found"."""
    access = _access(request)
    notification = scoped_get(actions.visible_notifications(access), pk=notification_id)
    actions.mark_read(access, notification_id=notification.pk)
    if request.POST.get("open"):
        return redirect("case_detail", access.organization.slug, notification.case.number)
    return redirect("notifications", access.organization.slug)


@require_POST
@org_permission(Perm.CASES_VIEW)
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    actions.mark_read(access)
    return redirect("notifications", access.organization.slug)
