"""The practice's sharing pages: share chosen files of a case, list and revoke its links, and the
accounting of disclosures for compliance officers. Views parse input and call sharing.actions."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, acts_for_practice, case_for, scoped_get, sharing_refusal
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.audit.exposure import record_case_opened
from casebridge.cases.models import Case
from casebridge.cases.views import render_case_page
from casebridge.core import searches
from casebridge.deid import export as deid_export
from casebridge.sharing import accounting, actions
from casebridge.sharing.forms import ShareForm
from casebridge.sharing.models import Disclosure, ExternalLink

PAGE = 50
LINK_STATES = {
    None: "Active",
    "revoked": "Revoked",
    "locked": "Locked after wrong codes",
    "case_closed": "Ended with the case",
    "expired": "Expired",
    "downloads_exhausted": "Downloads used up",
}


def _access(request: HttpRequest) -> OrgAccess:
    return org_access_of(request)


def can_share(access: OrgAccess | None, case: Case) -> bool:
    return access is not None and access.has(Perm.CASES_EDIT) and acts_for_practice(access, case)


def section_context(case: Case, form: ShareForm | None = None, notice: str = "") -> dict[str, Any]:
    """What the case page's sharing section shows: the form, the case's links and, right after
    sharing, what was done (``notice``)."""
    files = [(str(a.stored_object_id), a.display_name) for a in actions.shared_files_of_case(case)]
    links = [
        (link, LINK_STATES.get(actions.dead_reason(link), "Ended"), link.max_downloads - link.downloads_used)
        for link in actions.links_of_case(case)
    ]
    return {
        "case": case,
        "burned_in": [
            (name, why)
            for file_id, why in actions.burned_in_suspects(actions.shared_files_of_case(case)).items()
            for fid, name in files
            if fid == file_id
        ],
        "form": form or ShareForm(file_choices=files),
        "links": links,
        "shareable": case.status not in actions.SHAREABLE_REFUSED and case.archived_at is None,
        "restricted": sharing_refusal(case),
        "notice": notice,
    }


@org_permission(Perm.CASES_EDIT)
def case_share(request: HttpRequest, number: str) -> HttpResponse:
    access = _access(request)
    case = case_for(access, number)
    if not acts_for_practice(access, case):
        return render(request, "sharing/case_share.html", {"case": case, "not_yours": True}, status=403)
    form: ShareForm | None = None
    if request.method == "POST":
        choices = [(str(a.stored_object_id), a.display_name) for a in actions.shared_files_of_case(case)]
        form = ShareForm(request.POST, file_choices=choices)
        if form.is_valid():
            by_file = {str(a.stored_object_id): a for a in actions.shared_files_of_case(case)}
            try:
                link = actions.create_link(
                    access,
                    case,
                    attachments=[by_file[f] for f in form.cleaned_data["shared_files"]],
                    recipient_email=form.cleaned_data["recipient_email"],
                    purpose=form.cleaned_data["purpose"],
                    expires_in_days=form.cleaned_data["expires_in_days"],
                    max_downloads=form.cleaned_data["max_downloads"],
                    deidentify=not form.cleaned_data["send_originals"],
                    deid_options=form.cleaned_data["deid_options"],
                    reason=form.cleaned_data["reason"],
                    clean_pixel=form.cleaned_data["clean_pixel"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                notice = f"The link was e-mailed to {link.masked_email}; the code goes separately when they open it."
                if _from_htmx(request):
                    return _section(request, case, notice=notice)
                messages.success(request, notice)
                return redirect(reverse("case_detail", args=[access.organization.slug, case.number]) + "#sharing")
        # Refused: the form comes back where it was filled in, errors beside their fields.
        form.mark_errors()
        if _from_htmx(request):
            return _section(request, case, form)
        return render_case_page(request, access, case, share_form=form, status=400)
    return render(
        request,
        "sharing/case_share.html",
        {**section_context(case, form), "nav": "cases"},
    )


@org_permission(Perm.CASES_EDIT)
def share_preview(request: HttpRequest, number: str) -> HttpResponse:
    """What de-identification will remove from the chosen files (the report the recipient's ZIP
    will carry), before the link is created: the same permission and practice check as sharing."""
    access = _access(request)
    case = case_for(access, number)
    if not acts_for_practice(access, case):
        return render(request, "sharing/case_share.html", {"case": case, "not_yours": True}, status=403)
    by_file = {str(a.stored_object_id): a for a in actions.shared_files_of_case(case)}
    chosen = [by_file[f] for f in request.GET.getlist("shared_files") if f in by_file] or list(by_file.values())
    try:
        options = deid_export.options_from_names(request.GET.getlist("deid_options"))
    except ValueError as error:
        return render(request, "sharing/preview.html", {"case": case, "error": str(error), "nav": "cases"}, status=400)
    work = deid_export.plan(actions.named_versions(chosen), options, deid_export.case_secret(case))
    report = deid_export.preview(work)
    record_case_opened(
        access,
        case,
        "case.deid_previewed",
        files=[str(a.stored_object_id) for a in chosen],
        options=report["options"],
    )
    return render(
        request,
        "sharing/preview.html",
        {"case": case, "report": report, "option_labels": list(deid_export.OPTION_LABELS.items()), "nav": "cases"},
    )


def _from_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))  # django_htmx's middleware: the HX-Request header


def _section(request: HttpRequest, case: Case, form: ShareForm | None = None, notice: str = "") -> HttpResponse:
    """The sharing section alone, for htmx to swap in place. A refusal answers 200 as well: htmx
    swaps only successful answers, and the errors are what the person must see."""
    response = render(request, "sharing/_case_section.html", {**section_context(case, form, notice), "allowed": True})
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@org_permission(Perm.CASES_EDIT)
def link_revoke(request: HttpRequest, number: str, link_id: UUID) -> HttpResponse:
    access = _access(request)
    case = case_for(access, number)
    if not acts_for_practice(access, case):
        raise PermissionDenied("only the practice that owns the case revokes its links")
    link = scoped_get(ExternalLink.objects.filter(case=case).select_related("case"), pk=link_id)
    try:
        actions.revoke_link(access, link)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The link for {link.masked_email} no longer works.")
    return redirect(reverse("case_detail", args=[access.organization.slug, case.number]) + "#sharing")


@org_permission(Perm.AUDIT_VIEW)
def disclosures(request: HttpRequest) -> HttpResponse:
    """The accounting of disclosures (45 CFR 164.528): newest first, filtered by patient name
    (posted, and kept out of URLs: core/searches.py)."""
    if request.method == "POST":
        return searches.redirect_to_results(request, "patient")
    access = _access(request)
    rows = Disclosure.objects.filter(practice=access.organization).select_related(
        "patient", "case", "link", "disclosed_by"
    )
    search_id, query = searches.recall(request)
    if query:
        rows = rows.filter(patient__name__icontains=query)
    before = request.GET.get("before", "")
    if before:
        with contextlib.suppress(ValueError):  # a mangled cursor shows the first page
            rows = rows.filter(disclosed_at__lt=datetime.fromisoformat(before))
    page = list(rows.order_by("-disclosed_at", "-pk")[: PAGE + 1])
    record(
        "share.disclosures.viewed",
        actor=access.actor,
        organization=access.organization,
        # Which patients' disclosures were shown (internal references, never the search text).
        details={
            "filtered": bool(query),
            "rows": len(page[:PAGE]),
            "patients": list(dict.fromkeys(str(row.patient_id) for row in page[:PAGE])),
        },
    )
    return render(
        request,
        "sharing/disclosures.html",
        {
            "rows": page[:PAGE],
            "patient": query,
            "search_id": search_id,
            "next_before": page[PAGE - 1].disclosed_at.isoformat() if len(page) > PAGE else None,
            "nav": "disclosures",
        },
    )


@org_permission(Perm.AUDIT_VIEW)
def disclosures_export(request: HttpRequest) -> HttpResponse:
    """The accounting for one patient (the page's patient search) over the six years 164.528
    covers, as CSV or PDF to hand to the patient. Without a search there is nothing to export:
    an accounting is per individual."""
    access = _access(request)
    _search_id, query = searches.recall(request)
    if not query:
        messages.info(request, "Search for the patient first: an accounting of disclosures is given per patient.")
        return redirect("disclosures", access.organization.slug)
    since = timezone.now() - timedelta(days=6 * 366)
    rows = list(
        Disclosure.objects.filter(practice=access.organization, patient__name__icontains=query, disclosed_at__gte=since)
        .select_related("patient", "case", "link")
        .order_by("disclosed_at", "pk")
    )
    wanted = "pdf" if request.GET.get("format") == "pdf" else "csv"
    record(
        "share.disclosures.exported",
        actor=access.actor,
        organization=access.organization,
        details={"format": wanted, "rows": len(rows), "patients": list(dict.fromkeys(str(r.patient_id) for r in rows))},
    )
    content = accounting.as_pdf(access.organization, rows) if wanted == "pdf" else accounting.as_csv(rows).encode()
    response = HttpResponse(content, content_type="application/pdf" if wanted == "pdf" else "text/csv; charset=utf-8")
    # The file name carries no patient name: it ends up in download folders and histories.
    response["Content-Disposition"] = f'attachment; filename="accounting-of-disclosures.{wanted}"'
    response["Cache-Control"] = "no-store"
    return response
