"""Live updates of the case page: a small status fragment the page polls every 15 seconds
(htmx), saying when the other side acted since the page was loaded. Polling is not activity:
accounts.middleware keeps it from extending the idle-logoff timer."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.policy import case_for
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.cases.models import Case

# status.events.messages.attachments: counts only, never anything about the patient.
STAMP = re.compile(r"^[a-z_]{1,32}\.\d{1,9}\.\d{1,9}\.\d{1,9}$")


def context(case: Case) -> dict[str, object]:
    """What the case page needs to poll: the marker of what it shows, and how often to ask."""
    return {"live_stamp": stamp(case), "poll_seconds": settings.CASE_LIVE_POLL_SECONDS}


def stamp(case: Case) -> str:
    """What the page showed of the case's state: changes when either side acts on it (a status
    change, a message, a file). Three count queries on indexed foreign keys."""
    return f"{case.status}.{case.events.count()}.{case.messages.count()}.{case.attachments.count()}"


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_live(request: HttpRequest, number: str) -> HttpResponse:
    """The status fragment. It shows the status and what changed, which the case page already
    showed this person, no patient data: polling it is not audited (the page view was)."""
    access = org_access_of(request)
    case = case_for(access, number)  # first: "no such case" before any other answer
    seen = request.GET.get("seen", "")
    if not STAMP.match(seen):
        return HttpResponseBadRequest("Reload the case page: its live-update marker is missing or malformed.")
    now = stamp(case)
    old_status = seen.split(".", 1)[0]
    # Rendered without the request: the navigation's context processors would cost queries on
    # every poll for nothing this fragment shows.
    html = render_to_string(
        "cases/_live.html",
        {
            "current_org": access.organization,
            "case": case,
            "live_stamp": seen,
            "changed": now != seen,
            "status_changed": old_status != case.status,
            "poll_seconds": settings.CASE_LIVE_POLL_SECONDS,
        },
    )
    return HttpResponse(html)
