"""The imaging pages of a case: the 3D scan viewer and the CBCT/CT viewer."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.policy import case_for
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.exposure import record_case_opened
from casebridge.cases.models import Attachment, Case
from casebridge.imaging.models import Series

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
    record_case_opened(access, case, "imaging.scans_viewed", files=[str(a.stored_object_id) for a in scans])
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


@require_GET
@org_permission(Perm.CASES_VIEW)
def study_viewer(request: HttpRequest, number: str, series_id: str) -> HttpResponse:
    """One series of the case's imaging in the CBCT/CT viewer (its slices stream by WADO-RS)."""
    access = org_access_of(request)
    case = case_for(access, number)
    series = Series.objects.filter(study__case=case, pk=series_id).select_related("study").first()
    if series is None:
        raise Http404("no such series")
    record_case_opened(access, case, "imaging.study_viewed", study=str(series.study_id), series=str(series.pk))
    config = {"wadoRoot": "/dicomweb", "study": series.study.study_uid, "series": series.series_uid}
    response = render(request, "imaging/cbct_viewer.html", {"case": case, "series": series, "config": config})
    # Cornerstone3D positions its overlays (crosshairs, measurement labels) with style attributes:
    # style attributes only, on this page only; style elements and every script stay 'self'.
    # (django-csp's csp_update decorator does the same; its typing takes no URL arguments.)
    setattr(response, "_csp_update", {"style-src-attr": ["'unsafe-inline'"]})  # noqa: B010
    return response


def case_series(case: Case) -> list[Series]:
    """The case's indexed series, for its page: modality, size, slices."""
    return list(Series.objects.filter(study__case=case).select_related("study").order_by("study__created_at"))
