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
from casebridge.kernel import filetypes
from casebridge.vault.queries import recent_files

# The browser streams the file slice by slice instead of holding it in memory. Each slice costs a
# lease and a commit in the application besides the bytes: through the transfer server 8 MiB
# slices ran at ~100 MB/s, 32 MiB ones at ~195 MB/s (docs/performance.md). A dropped connection
# keeps what arrived (the server commits partial bodies), so a larger slice loses nothing more.
UPLOAD_CHUNK_BYTES = 32 << 20


def _recent(request: HttpRequest) -> dict[str, object]:
    access: OrgAccess = org_access_of(request)
    return {"files": recent_files(access)}


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
