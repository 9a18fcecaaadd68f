"""The audit review screen for administrators, compliance officers and auditors."""

from __future__ import annotations

import csv
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit import catalog
from casebridge.audit.api import record
from casebridge.audit.queries import BadFilter, EventFilters, filters_from_query, organization_events

PAGE_SIZE = 50


def _filtered(request: HttpRequest, org_id: Any) -> tuple[Any, EventFilters]:
    """The organization's events matching the page's filters. A filter that cannot be understood
    is dropped with a message saying why, rather than silently matching everything."""
    try:
        filters = filters_from_query(request.GET)
    except BadFilter as exc:
        messages.error(request, f"Filter ignored: {exc}.")
        filters = EventFilters()
    return organization_events(org_id, filters), filters


@org_permission(Perm.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    events, filters = _filtered(request, access.organization.pk)
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
        details={"filters": filters.as_details()},
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
    events, filters = _filtered(request, access.organization.pk)
    events = events.order_by("id")
    record(
        "audit.exported",
        actor=access.actor,
        organization=access.organization,
        details={"filters": filters.as_details()},
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
