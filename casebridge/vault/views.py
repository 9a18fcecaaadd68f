"""The Files page: resumable browser uploads (Uppy over our tus endpoint) and the uploader's
recent files. Uploading itself happens in api/uploads.py; these views only render."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.vault import filetypes
from casebridge.vault.queries import recent_files

# Large enough to keep request overhead small, small enough that a dropped connection costs little
# and that the browser streams the file slice by slice instead of holding it in memory.
UPLOAD_CHUNK_BYTES = 8 << 20


def _recent(request: HttpRequest) -> dict[str, object]:
    access: OrgAccess = org_access_of(request)
    return {"files": recent_files(access.actor, access.organization)}


@org_permission(Perm.FILES_UPLOAD)
def files(request: HttpRequest) -> HttpResponse:
    context = {
        **_recent(request),
        "nav": "files",
        "accepted_types": filetypes.ACCEPTED_TYPES_MESSAGE,
        "chunk_size": UPLOAD_CHUNK_BYTES,
        "max_size": settings.VAULT_MAX_UPLOAD_BYTES,
    }
    return render(request, "vault/files.html", context)


@org_permission(Perm.FILES_UPLOAD)
def files_recent(request: HttpRequest) -> HttpResponse:
    """The recent-files table alone, swapped in by htmx after an upload completes."""
    return render(request, "vault/recent_files.html", _recent(request))
