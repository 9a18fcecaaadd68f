"""The Files page, an organization's inbox of uploads: resumable browser uploads (Uppy over our
tus endpoint); the files with what each is, who uploaded it, its malware check and the case it
is used in; attaching one to a case (exactly as the case page attaches an upload:
`cases.actions.attach_file`) and deleting one that no case uses (exactly as the API destroys a
file: `cases.actions.destroy_file`). Uploading itself happens in api/uploads.py."""

from __future__ import annotations

import json
import uuid
from uuid import UUID

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from casebridge.access import policy
from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, case_for, organization_side, scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.exposure import record_patients_shown
from casebridge.cases import actions as case_actions
from casebridge.kernel import filetypes
from casebridge.retention.policies import UnderLegalHold
from casebridge.vault.forms import NOT_ONE_OF_YOURS, AttachForm, DestroyForm
from casebridge.vault.models import StoredObject
from casebridge.vault.queries import InboxRow, attachable_cases, inbox_files, inbox_page, inbox_rows, waiting_count

# The browser streams the file slice by slice instead of holding it in memory. Each slice costs a
# lease and a commit in the application besides the bytes: through the transfer server 8 MiB
# slices ran at ~100 MB/s, 32 MiB ones at ~195 MB/s (docs/performance.md). A dropped connection
# keeps what arrived (the server commits partial bodies), so a larger slice loses nothing more.
UPLOAD_CHUNK_BYTES = 32 << 20
WAITING = "waiting"  # ?show=waiting: only the files on no case yet


def _listing(request: HttpRequest) -> dict[str, object] | HttpResponse:
    """The list's context: one page, the filter and the cursor from the query string. Case
    numbers and neutral names only, no patient data: nothing to audit (as the notifications)."""
    access: OrgAccess = org_access_of(request)
    waiting_only = request.GET.get("show") == WAITING
    before = None
    cursor = request.GET.get("before", "")
    if cursor:
        try:
            cursor_id = uuid.UUID(cursor)
        except ValueError:
            return HttpResponseBadRequest("The page cursor is not valid; start again from the first page.")
        before = scoped_get(inbox_files(access), pk=cursor_id)
    rows, next_cursor = inbox_page(access, waiting_only=waiting_only, before=before)
    return {
        "rows": rows,
        "next_cursor": next_cursor,
        "waiting_only": waiting_only,
        "waiting_count": waiting_count(access),
        "paged": before is not None,
    }


@require_GET
@org_permission(Perm.FILES_UPLOAD)
def files(request: HttpRequest) -> HttpResponse:
    listing = _listing(request)
    if isinstance(listing, HttpResponse):
        return listing
    context = {
        **listing,
        "nav": "files",
        "accepted_types": filetypes.ACCEPTED_TYPES_MESSAGE,
        "refusals": json.dumps(filetypes.browser_refusals()),
        "chunk_size": UPLOAD_CHUNK_BYTES,
        "max_size": settings.VAULT_MAX_UPLOAD_BYTES,
    }
    return render(request, "vault/files.html", context)


@require_GET
@org_permission(Perm.FILES_UPLOAD)
def files_recent(request: HttpRequest) -> HttpResponse:
    """The files table alone, swapped in by htmx after an upload completes."""
    listing = _listing(request)
    if isinstance(listing, HttpResponse):
        return listing
    return render(request, "vault/recent_files.html", listing)


def _row(access: OrgAccess, stored: StoredObject) -> InboxRow | None:
    """`stored` as the Files page shows it, or None when the page does not list it."""
    rows = inbox_rows(access, inbox_files(access).filter(pk=stored.pk), 1)
    return rows[0] if rows else None


def _back(access: OrgAccess) -> HttpResponse:
    return redirect(reverse("files", args=[access.organization.slug]))


@require_http_methods(["GET", "POST"])
@org_permission(Perm.FILES_UPLOAD)
def file_attach(request: HttpRequest, file_id: UUID) -> HttpResponse:
    """Put one of the person's uploads on a case they may add files to: the case page's attach
    (the same file lookup, the same case lookup, `attach_file` with its checks, metadata removal,
    audit event and DICOM indexing), reached from the file instead of from the case."""
    access = org_access_of(request)
    stored = scoped_get(policy.readable_files(access.principal, access.organization), pk=file_id)
    row = _row(access, stored)  # None: a file of another organization's, on a case this one sees
    if row is None or row.attachment is not None:
        where = f" It is already part of {row.attachment.case.number}." if row and row.attachment else ""
        messages.info(request, f"That file cannot be attached to another case.{where}")
        return _back(access)
    cases, more = attachable_cases(access)
    kinds = case_actions.upload_kinds(organization_side(access))
    form = AttachForm(request.POST if request.method == "POST" else None, cases=cases, kinds=kinds)
    if request.method == "POST" and form.is_valid():
        try:
            case = case_for(access, form.cleaned_data["case"])
        except Http404:
            form.add_error("case", NOT_ONE_OF_YOURS)
        else:
            try:
                attachment = case_actions.attach_file(
                    access, case, stored, kind=form.cleaned_data["kind"], label=form.cleaned_data["label"]
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Attached to {case.number} as {attachment.display_name}.")
                return _back(access)
    # The picker names each case's patient: one event for the patients shown.
    record_patients_shown(actor=access.actor, organization=access.organization, cases=cases, via="web.files.attach")
    return render(
        request,
        "vault/file_attach.html",
        {"row": row, "form": form, "cases": cases, "more_cases": more, "nav": "files"},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@org_permission(Perm.FILES_UPLOAD)
@reauthentication_required(allow_get=True)  # destruction cannot be undone: confirm identity first
def file_destroy(request: HttpRequest, file_id: UUID) -> HttpResponse:
    """Delete a file no case uses, after a confirmation with the reason: the API's destruction
    (`destroy_file`: who may destroy what, legal holds, crypto-shredding, the audit event).
    A file of a case is part of the patient's record: the page says where it is used instead."""
    access = org_access_of(request)
    stored = scoped_get(inbox_files(access), pk=file_id)
    row = _row(access, stored)
    if row is None:
        raise Http404("not found")
    if row.attachment is not None:
        return render(
            request,
            "vault/file_destroy.html",
            {"row": row, "nav": "files"},
            status=409 if request.method == "POST" else 200,
        )
    if not row.may_delete:
        raise Http404("not found")
    form = DestroyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            case_actions.destroy_file(access.principal, stored, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            form.add_error(None if isinstance(exc, UnderLegalHold) else "reason", exc)
        else:
            messages.success(
                request, f"Deleted the {row.name}: its key is destroyed, so nothing of it can be read again."
            )
            return _back(access)
    return render(
        request,
        "vault/file_destroy.html",
        {"row": row, "form": form, "nav": "files"},
        status=400 if form.errors else 200,
    )
