"""The forensics pages (audit/forensics.py): AUDIT_VIEW, the organization's own records only."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit import forensics, reports
from casebridge.audit.api import record
from casebridge.audit.targets import target_labels
from casebridge.orgs.models import Organization


def _page(
    request: HttpRequest,
    kind: str,
    subject: uuid.UUID,
    build: Callable[[Organization, uuid.UUID], forensics.Activity],
    archive_option: bool = False,
) -> HttpResponse:
    access = org_access_of(request)
    activity = build(access.organization, subject)
    details: dict[str, object] = {"via": f"forensics.{kind}", "subject": str(subject), "count": len(activity.events)}
    if activity.archive_note:
        details["archive"] = "1"
    record("audit.viewed", actor=access.actor, organization=access.organization, details=details)
    return _render(request, activity, limit=forensics.LIMIT, archive_option=archive_option)


def _render(
    request: HttpRequest,
    activity: forensics.Activity,
    *,
    limit: int,
    exports: bool = False,
    archive_option: bool = False,
) -> HttpResponse:
    labels = target_labels(activity.events)
    return render(
        request,
        "audit/forensics.html",
        {
            "activity": activity,
            "rows": [(e, labels.get(e.pk, "")) for e in activity.events],
            "limit": limit,
            "exports": exports,
            "archive_option": archive_option and not activity.archive_note,
            "nav": "audit",
        },
    )


def _with_archive(
    request: HttpRequest, kind: str, subject: uuid.UUID, build: Callable[..., forensics.Activity]
) -> HttpResponse:
    """A forensics page whose `?archive=1` also reads the events older than 13 months."""
    wanted = request.GET.get("archive") == "1"
    return _page(
        request,
        kind,
        subject,
        lambda organization, about: build(organization, about, include_archive=wanted),
        archive_option=True,
    )


@org_permission(Perm.AUDIT_VIEW)
def link_forensics(request: HttpRequest, link_id: uuid.UUID) -> HttpResponse:
    return _with_archive(request, "link", link_id, forensics.link_activity)


@org_permission(Perm.AUDIT_VIEW)
def file_forensics(request: HttpRequest, file_id: uuid.UUID) -> HttpResponse:
    return _with_archive(request, "file", file_id, forensics.file_activity)


@org_permission(Perm.AUDIT_VIEW)
def person_forensics(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    return _with_archive(request, "person", user_id, forensics.person_activity)


@org_permission(Perm.AUDIT_VIEW)
def patient_report(request: HttpRequest, patient_ref: uuid.UUID) -> HttpResponse:
    """Who saw or did what concerning one patient (by internal reference): page, CSV or PDF."""
    access = org_access_of(request)
    reading = reports.patient_events(access.organization, patient_ref)
    events = reading.events
    if not events:
        raise Http404("nothing recorded about that patient here")
    wanted = request.GET.get("format", "")
    details: dict[str, object] = {"via": f"patient_report{'.' + wanted if wanted else ''}", "count": len(events)}
    if reading.segments:
        details.update(archived=reading.archived, segments=reading.segments)
    record(
        "audit.exported" if wanted in ("csv", "pdf") else "audit.viewed",
        actor=access.actor,
        organization=access.organization,
        patient_ref=str(patient_ref),
        details=details,
    )
    if wanted == "csv":
        response = HttpResponse(reports.as_csv(events), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="access-report-{patient_ref}.csv"'
    elif wanted == "pdf":
        response = HttpResponse(
            reports.as_pdf(access.organization, patient_ref, events, reading.note), content_type="application/pdf"
        )
        response["Content-Disposition"] = f'attachment; filename="access-report-{patient_ref}.pdf"'
    else:
        facts = [("Events", str(len(events)))]
        activity = forensics.Activity("Patient access report", str(patient_ref), events, [], facts, reading.note)
        return _render(request, activity, limit=reports.LIMIT, exports=True)
    response["Cache-Control"] = "no-store"
    return response
