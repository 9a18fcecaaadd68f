"""The audit review screen for administrators, compliance officers and auditors."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of, user_of
from casebridge.access.roles import Perm
from casebridge.audit import archive_reads, catalog, history
from casebridge.audit.api import record
from casebridge.audit.models import ArchiveRead, ArchiveReadState, ArchiveSegment, Event, SavedFilter
from casebridge.audit.queries import BadFilter, EventFilters, filters_from_query, for_archive, organization_events
from casebridge.audit.targets import target_labels

PAGE_SIZE = 50
EXPORT_BATCH = 2000


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
    archived_before = request.GET.get("archived_before", "")
    page: list[Event] = []
    if not (filters.include_archive and archived_before.isdigit()):
        # Cursor pagination on the primary key: constant cost however deep the log is.
        before = request.GET.get("before", "")
        if before.isdigit():
            events = events.filter(id__lt=int(before))
        page = list(events.order_by("-id")[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    for name in ("before", "archived_before", "read"):
        query.pop(name, None)
    next_query = f"{query.urlencode()}&before={page[-1].pk}" if has_more else ""
    reading = None
    waiting: ArchiveRead | None = None
    failed = False
    if filters.include_archive and not has_more and ArchiveSegment.objects.exists():
        question = archive_reads.key(filters, archive_reads.cursor_of(archived_before))
        job = archive_reads.find(request.GET.get("read", ""), access.organization, user_of(request), question)
        if job is None:
            # Segments are read by the task worker; this page (its number in the URL) shows
            # the progress, then what was found.
            job = archive_reads.start(access.organization, user_of(request), question, limit=PAGE_SIZE + 1)
            again = request.GET.copy()
            again["read"] = str(job.pk)
            return redirect(f"{request.path}?{again.urlencode()}")
        if job.state == ArchiveReadState.DONE:
            reading, next_query = _archived_page(job, page, query)
        elif job.state == ArchiveReadState.FAILED:
            failed = True
        else:
            waiting = job
    details: dict[str, Any] = {"filters": filters.as_details()}
    if reading is not None:
        details.update(archived=reading.archived, segments=reading.segments)
    elif waiting is not None or failed:
        details["archive"] = "failed" if failed else "reading"
    record("audit.viewed", actor=access.actor, organization=access.organization, details=details)
    labels = target_labels(page)
    descriptions = {a.name: a.description for a in catalog.all_actions()}
    return render(
        request,
        "audit/log.html",
        {
            "rows": [(e, labels.get(e.pk, ""), descriptions.get(e.action, "")) for e in page],
            "next_query": next_query,
            "query": query.urlencode(),
            "archive_note": reading.note if reading is not None else "",
            "archive_read": waiting,
            "archive_failed": failed,
            "actions": catalog.all_actions(),
            "sensitive": {a.name for a in catalog.all_actions() if a.sensitive},
            "filters": request.GET,
            "saved_filters": SavedFilter.objects.filter(organization=access.organization, user=user_of(request)),
        },
    )


@org_permission(Perm.AUDIT_VIEW)
def audit_archive_read(request: HttpRequest, read_id: uuid.UUID) -> HttpResponse:
    """The progress of one's own archive read, polled by the review page (htmx); once it has
    finished, the page is told to load again and shows what was found."""
    access = org_access_of(request)
    job = archive_reads.find(str(read_id), access.organization, user_of(request))
    if job is None:
        raise Http404("No such archive read.")
    if job.state in (ArchiveReadState.DONE, ArchiveReadState.FAILED):
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "audit/_archive_read.html", {"archive_read": job})


def _archived_page(job: ArchiveRead, page: list[Event], query: QueryDict) -> tuple[history.Reading, str]:
    """Once the hot tables have no more events for the page, the archive's newest matching
    events below the archive cursor (what `job` found) fill it (`page` is extended), newest
    first: the archived events follow every recent one, so nothing is skipped at the line
    between them. Returns what was read and the query of the next page ("" at the end)."""
    room = PAGE_SIZE - len(page)
    reading = archive_reads.reading_of(job)
    seen = {e.pk for e in page}  # an event archived while the page was read is shown once
    older = [e for e in reversed(reading.events) if e.pk not in seen]
    reading.only(older[:room])
    page.extend(reading.events)
    next_query = ""
    if len(older) > room:
        # 0: the archive from its newest event (the hot rows filled this page exactly).
        next_query = f"{query.urlencode()}&archived_before={reading.events[-1].pk if room else 0}"
    return reading, next_query


class _Echo:
    def write(self, value: str) -> str:
        return value


@org_permission(Perm.AUDIT_VIEW)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    access = org_access_of(request)
    events, filters = _filtered(request, access.organization.pk)
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
        "target_label",
        "patient_ref",
        "ip",
        "request_id",
        "emergency_access_id",
        "details",
        "archived",
    ]
    writer = csv.writer(_Echo())

    def cell(event: Event, column: str, labels: dict[int, str]) -> Any:
        if column == "details":
            # JSON, so a spreadsheet or script reads the same structure the API gives.
            return json.dumps(event.details, sort_keys=True, ensure_ascii=False)
        if column == "target_label":
            return labels[event.pk]
        if column == "archived":
            return "yes" if event.archived else ""
        return getattr(event, column)

    def batches() -> Iterator[list[Event]]:
        # With the archive: its events (the oldest) first, then the recent ones; segment by segment.
        archived = for_archive(access.organization.pk, filters) if filters.include_archive else None
        return history.streamed(events, archived, batch=EXPORT_BATCH)

    def rows() -> Any:
        yield writer.writerow(columns)
        for batch in batches():
            labels = target_labels(batch)  # one query per target type and batch, not per row
            for event in batch:
                yield writer.writerow([cell(event, c, labels) for c in columns])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-{access.organization.slug}.csv"'
    return response


@require_POST
@org_permission(Perm.AUDIT_VIEW)
def audit_filters(request: HttpRequest) -> HttpResponse:
    """Save the page's current filters under a name, or delete one of one's own saved filters."""
    access = org_access_of(request)
    user = user_of(request)
    mine = SavedFilter.objects.filter(organization=access.organization, user=user)
    if request.POST.get("delete"):
        mine.filter(pk=request.POST["delete"] if request.POST["delete"].isdigit() else 0).delete()
        return redirect("audit_log", access.organization.slug)
    name = request.POST.get("name", "").strip()[:80]
    query = request.POST.get("query", "")[:1000]
    try:
        filters_from_query(QueryDict(query))  # only filters the page understands are kept
    except BadFilter as exc:
        messages.error(request, f"Not saved: {exc}.")
        return redirect("audit_log", access.organization.slug)
    if not name:
        messages.error(request, "Name the filter to save it.")
    else:
        SavedFilter.objects.update_or_create(
            organization=access.organization, user=user, name=name, defaults={"query": query}
        )
        messages.success(request, f"Filters saved as “{name}”.")
    return redirect(f"{reverse('audit_log', args=[access.organization.slug])}?{query}")
