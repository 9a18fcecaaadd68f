"""The audit review screen for administrators, compliance officers and auditors."""

from __future__ import annotations

import csv
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit import catalog
from casebridge.audit.api import record
from casebridge.audit.models import Event, Outcome

PAGE_SIZE = 50


def _filtered(request: HttpRequest, org_id: Any) -> Any:
    events = Event.objects.filter(organization_id=org_id)
    action = request.GET.get("action", "").strip()
    if action:
        events = events.filter(action__startswith=action)
    actor = request.GET.get("actor", "").strip()
    if actor:
        events = events.filter(actor_label__icontains=actor)
    outcome = request.GET.get("outcome", "").strip()
    if outcome in Outcome.values:
        events = events.filter(outcome=outcome)
    if request.GET.get("emergency") == "1":
        events = events.filter(emergency_access_id__isnull=False)
    return events


@org_permission(Perm.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    events = _filtered(request, access.organization.pk)
    # Cursor pagination on the primary key: constant cost however deep the log is.
    before = request.GET.get("before", "")
    if before.isdigit():
        events = events.filter(id__lt=int(before))
    page = list(events.order_by("-id")[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    record(
        "audit.viewed",
        actor=access.actor,
        organization=access.organization,
        details={"filters": dict(request.GET.items())},
    )
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "audit/log.html",
        {
            "events": page,
            "next_before": page[-1].pk if has_more else None,
            "query": query.urlencode(),
            "actions": catalog.all_actions(),
            "sensitive": {a.name for a in catalog.all_actions() if a.sensitive},
            "filters": request.GET,
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@org_permission(Perm.AUDIT_VIEW)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    access = org_access_of(request)
    events = _filtered(request, access.organization.pk).order_by("id")
    record(
        "audit.exported",
        actor=access.actor,
        organization=access.organization,
        details={"filters": dict(request.GET.items())},
    )
    columns = [
        "id",
        "occurred_at",
        "action",
        "outcome",
        "actor_type",
        "actor_label",
        "target_type",
        "target_id",
        "patient_ref",
        "ip",
        "request_id",
        "emergency_access_id",
        "details",
    ]
    writer = csv.writer(_Echo())

    def rows() -> Any:
        yield writer.writerow(columns)
        for event in events.iterator(chunk_size=2000):
            yield writer.writerow([getattr(event, c) for c in columns])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-{access.organization.slug}.csv"'
    return response
