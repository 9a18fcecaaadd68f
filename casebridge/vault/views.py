"""The Files page, a person's inbox: resumable browser uploads (Uppy over our tus endpoint), the
files they uploaded with where each is used, attaching one to a case (through the case's own
attach rules, as the case page does) and deleting one not attached to any case (through the same
destruction as the API). Uploading itself happens in api/uploads.py."""

from __future__ import annotations

import json
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from casebridge.access import policy
from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.exposure import record_patients_shown
from casebridge.cases import actions as case_actions
from casebridge.cases.models import AttachmentKind
from casebridge.kernel import filetypes
from casebridge.vault.queries import attachable_cases, inbox_rows

# The browser streams the file slice by slice instead of holding it in memory. Each slice costs a
# lease and a commit in the application besides the bytes: through the transfer server 8 MiB
# slices ran at ~100 MB/s, 32 MiB ones at ~195 MB/s (docs/performance.md). A dropped connection
# keeps what arrived (the server commits partial bodies), so a larger slice loses nothing more.
UPLOAD_CHUNK_BYTES = 32 << 20


def _recent(request: HttpRequest) -> dict[str, object]:
    access: OrgAccess = org_access_of(request)
    rows = inbox_rows(access)
    cases = attachable_cases(access) if any(not r.used_in for r in rows) else []
    if cases:
        # The case picker names each case's patient: one event for the patients shown.
        record_patients_shown(actor=access.actor, organization=access.organization, cases=cases, via="web.files")
    return {"rows": rows, "cases": cases, "kinds": AttachmentKind.choices}


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("files", args=[org_access_of(request).organization.slug]))


@require_POST
@org_permission(Perm.FILES_UPLOAD)
def file_attach(request: HttpRequest, file_id: UUID) -> HttpResponse:
    """Attach one of the person's unattached uploads to a case they may add files to."""
    access = org_access_of(request)
    principal = access.principal
    stored = scoped_get(
        policy.readable_files(principal, access.organization).filter(principal.owns(), attached_at__isnull=True),
        pk=file_id,
    )
    try:
        case = policy.case_for(access, request.POST.get("case", ""))
    except Http404:
        messages.error(request, "Choose one of your cases to attach the file to.")
        return _back(request)
    try:
        attachment = case_actions.attach_file(
            access, case, stored, kind=request.POST.get("kind", ""), label=request.POST.get("label", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(request)
    messages.success(request, f"Attached to {case.number} as {attachment.display_name}.")
    return _back(request)


@require_POST
@org_permission(Perm.FILES_UPLOAD)
def file_destroy(request: HttpRequest, file_id: UUID) -> HttpResponse:
    """Delete (crypto-shred) one of the person's uploads that no case uses."""
    access = org_access_of(request)
    principal = access.principal
    stored = scoped_get(
        policy.destroyable_files(principal).filter(organization=access.organization, attached_at__isnull=True),
        pk=file_id,
    )
    try:
        case_actions.destroy_file(principal, stored, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _back(request)
    messages.success(request, "The file was deleted: its key is destroyed, nothing of it can be read again.")
    return _back(request)


@org_permission(Perm.FILES_UPLOAD)
def files(request: HttpRequest) -> HttpResponse:
    context = {
        **_recent(request),
        "nav": "files",
        "accepted_types": filetypes.ACCEPTED_TYPES_MESSAGE,
        "refusals": json.dumps(filetypes.browser_refusals()),
        "chunk_size": UPLOAD_CHUNK_BYTES,
        "max_size": settings.VAULT_MAX_UPLOAD_BYTES,
    }
    return render(request, "vault/files.html", context)


@org_permission(Perm.FILES_UPLOAD)
def files_recent(request: HttpRequest) -> HttpResponse:
    """The recent-files table alone, swapped in by htmx after an upload completes."""
    return render(request, "vault/recent_files.html", _recent(request))
