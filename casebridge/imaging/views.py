"""The imaging pages of a case: the 3D scan viewer (and, next, the CBCT and X-ray viewers)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.policy import case_for
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.cases.models import Attachment, Case

MESH_TYPES = ("stl", "ply", "obj")


def scan_attachments(case: Case) -> list[Attachment]:
    """The case's surface scans (STL, PLY, OBJ) a 3D viewer can show, oldest first."""
    return list(
        case.attachments.select_related("stored_object", "case")
        .filter(stored_object__file_type__in=MESH_TYPES, stored_object__destroyed_at__isnull=True)
        .order_by("added_at")
    )


@require_GET
@org_permission(Perm.CASES_VIEW)
def scan_viewer(request: HttpRequest, number: str) -> HttpResponse:
    access = org_access_of(request)
    case = case_for(access, number)
    scans = scan_attachments(case)
    # One event per opening; each file the page then fetches is a download event of its own.
    record(
        "imaging.scans_viewed",
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=str(case.patient_id),
        details={"case": case.number, "files": [str(a.stored_object_id) for a in scans]},
    )
    files = [
        {
            "id": str(a.stored_object_id),
            "name": a.display_name,
            "label": a.label or a.get_kind_display(),
            "type": a.stored_object.file_type,
            "url": reverse("file_content", args=[a.stored_object_id]),
        }
        for a in scans
    ]
    return render(request, "imaging/scan_viewer.html", {"case": case, "files": files})
