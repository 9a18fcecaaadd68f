"""Files over HTTP: download with single-range support, version history, crypto-shredding."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from casebridge.access import policy
from casebridge.api.auth import api_actor, problem
from casebridge.audit.api import record
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion, StoredObject

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end-exclusive) for one satisfiable range; None to send everything; "bad" for 416."""
    match = _RANGE.match(header.replace(" ", ""))
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if first == "" and last == "":
        return "bad"
    if first == "":
        suffix = int(last)
        if suffix == 0:
            return "bad"
        return max(size - suffix, 0), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return "bad"
    return start, end


def _etag(version: ObjectVersion) -> str:
    return f'"sha256-{version.sha256}"'


def _file(request: HttpRequest, file_id: str) -> StoredObject | None:
    return policy.readable_files(request.actor, getattr(request, "api_token", None)).filter(pk=file_id).first()  # type: ignore[attr-defined]


def _stream(version: ObjectVersion, start: int, end: int) -> Iterator[bytes]:
    # WSGI servers need bytes; each segment is copied once out of the decryptor's reused buffer.
    # An integrity failure raises here, mid-response: the server then drops the connection, so a
    # client can never mistake a truncated body for the whole file.
    for segment in vault.read_version(version, start, end):
        yield bytes(segment)


@api_actor
def file_content(request: HttpRequest, file_id: str) -> HttpResponseBase:
    if request.method not in ("GET", "HEAD"):
        return problem(405, "Method Not Allowed", "Use GET.")
    stored = _file(request, file_id)
    if stored is None:
        return problem(404, "Not Found", "no such file")
    try:
        number = int(request.GET["version"]) if "version" in request.GET else None
        version = vault.get_version(stored, number)
    except (ValueError, vault.ObjectUnavailable):
        return problem(404, "Not Found", "no such version")
    size, etag = version.size, _etag(version)
    start, end, status = 0, size, 200
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and size > 0 and (if_range is None or if_range == etag):
        parsed = _parse_range(range_header, size)
        if parsed == "bad":
            response: HttpResponseBase = problem(416, "Range Not Satisfiable", "The range is outside the file.")
            response["Content-Range"] = f"bytes */{size}"
            return response
        if isinstance(parsed, tuple):
            start, end = parsed
            status = 206
    if request.method == "HEAD":
        response = HttpResponse(status=status)
    else:
        record(
            "file.downloaded",
            actor=request.actor,  # type: ignore[attr-defined]
            organization=stored.organization_id,
            target=stored,
            details={"version": version.version, "range": [start, end] if status == 206 else None, "size": size},
        )
        response = StreamingHttpResponse(_stream(version, start, end), status=status, content_type=stored.mime_type)
    response["Content-Type"] = stored.mime_type
    response["Content-Length"] = str(end - start)
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'attachment; filename="{stored.neutral_name(version.version)}"'
    return response


def _version_json(version: ObjectVersion) -> dict[str, object]:
    return {
        "version": version.version,
        "size": version.size,
        "sha256": version.sha256,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by_label,
    }


@api_actor
def file_detail(request: HttpRequest, file_id: str) -> HttpResponseBase:
    if request.method == "DELETE":
        return _destroy(request, file_id)
    stored = _file(request, file_id)
    if stored is None:
        return problem(404, "Not Found", "no such file")
    versions = list(stored.versions.order_by("-version"))
    return JsonResponse(
        {
            "id": str(stored.pk),
            "name": stored.neutral_name(),
            "type": stored.file_type,
            "mime_type": stored.mime_type,
            "current_version": stored.current_version,
            "created_at": stored.created_at.isoformat(),
            "versions": [_version_json(v) for v in versions],
        }
    )


def _destroy(request: HttpRequest, file_id: str) -> HttpResponseBase:
    stored = policy.destroyable_files(request.actor).filter(pk=file_id).first()  # type: ignore[attr-defined]
    if stored is None:
        if _file(request, file_id) is not None:
            return problem(403, "Forbidden", "Only the uploader or an administrator can destroy a file.")
        return problem(404, "Not Found", "no such file")
    try:
        reason = str(json.loads(request.body or b"{}").get("reason", ""))
    except (ValueError, AttributeError):
        reason = ""
    if len(reason.strip()) < 5:
        return problem(400, "Bad Request", 'Give a reason (JSON body {"reason": "..."}); it is kept in the audit log.')
    vault.destroy_object(stored, actor=request.actor, reason=reason)  # type: ignore[attr-defined]
    return HttpResponse(status=204)


@api_actor
def file_list(request: HttpRequest) -> HttpResponseBase:
    """The caller's own files, newest first, cursor-paginated (?before=<created_at ISO>)."""
    files = policy.readable_files(request.actor, getattr(request, "api_token", None)).order_by("-created_at", "-pk")  # type: ignore[attr-defined]
    before = request.GET.get("before")
    if before:
        files = files.filter(created_at__lt=before)
    page = list(files[:51])
    data = [
        {
            "id": str(f.pk),
            "name": f.neutral_name(),
            "type": f.file_type,
            "current_version": f.current_version,
            "created_at": f.created_at.isoformat(),
        }
        for f in page[:50]
    ]
    return JsonResponse({"results": data, "next_before": page[49].created_at.isoformat() if len(page) > 50 else None})
