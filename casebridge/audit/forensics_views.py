"""The forensics pages (audit/forensics.py): AUDIT_VIEW, the organization's own records only."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit import forensics
from casebridge.audit.api import record
from casebridge.audit.targets import target_labels
from casebridge.orgs.models import Organization


def _page(
    request: HttpRequest, kind: str, subject: uuid.UUID, build: Callable[[Organization, uuid.UUID], forensics.Activity]
) -> HttpResponse:
    access = org_access_of(request)
    activity = build(access.organization, subject)
    record(
        "audit.viewed",
        actor=access.actor,
        organization=access.organization,
        details={"via": f"forensics.{kind}", "subject": str(subject), "count": len(activity.events)},
    )
    labels = target_labels(activity.events)
    return render(
        request,
        "audit/forensics.html",
        {
            "activity": activity,
            "rows": [(e, labels.get(e.pk, "")) for e in activity.events],
            "limit": forensics.LIMIT,
            "nav": "audit",
        },
    )


@org_permission(Perm.AUDIT_VIEW)
def link_forensics(request: HttpRequest, link_id: uuid.UUID) -> HttpResponse:
    return _page(request, "link", link_id, forensics.link_activity)


@org_permission(Perm.AUDIT_VIEW)
def file_forensics(request: HttpRequest, file_id: uuid.UUID) -> HttpResponse:
    return _page(request, "file", file_id, forensics.file_activity)


@org_permission(Perm.AUDIT_VIEW)
def person_forensics(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    return _page(request, "person", user_id, forensics.person_activity)
