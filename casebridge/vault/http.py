"""Decrypted file versions over HTTP: one streamed response with single-range support, a strong
ETag and no-store headers, shared by every door that hands out a file (REST API, external links)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from casebridge.vault import api as vault
from casebridge.vault import transfer
from casebridge.vault.models import ObjectVersion, StoredObject

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

# (start, end-exclusive) of a partial answer, or None when the whole file is sent.
ByteRange = tuple[int, int] | None


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
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


def stream_plaintext(version: ObjectVersion, start: int, end: int) -> Iterator[bytes]:
    # WSGI servers need bytes; each segment is copied once out of the decryptor's reused buffer.
    # An integrity failure raises here, mid-response: the server then drops the connection, so a
    # client can never mistake a truncated body for the whole file.
    for segment in vault.read_version(version, start, end):
        yield bytes(segment)


def version_response(
    request: HttpRequest,
    stored: StoredObject,
    version: ObjectVersion,
    *,
    before_body: Callable[[ByteRange], None],
    refuse: Callable[[int, str, str], HttpResponseBase],
    filename: str | None = None,
) -> HttpResponseBase:
    """GET or HEAD of one version, honouring Range/If-Range.

    `before_body` runs only when content is about to be sent (GET, satisfiable range), so the
    caller can write its audit event or count the download first; an exception it raises
    aborts the response before a single byte leaves. The bytes are then streamed from here, or,
    under `casebridge serve`, by the transfer server this answers 307 to (vault/transfer.py).
    `filename` is the name the download is saved under (default: the vault's neutral name).
    `refuse(status, title, detail)` shapes the 416 answer the way the caller's clients expect
    (problem+json for the API).
    """
    # The case's name of the file (CB-2026-000013_upper_1.stl) when the caller knows it: the lab
    # must keep telling upper from lower; the vault's own neutral name otherwise. Never the
    # uploaded name.
    name = filename or stored.neutral_name(version.version)
    size, etag = version.size, transfer.etag(version)
    start, end, status = 0, size, 200
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if range_header and size > 0 and (if_range is None or if_range == etag):
        parsed = parse_range(range_header, size)
        if parsed == "bad":
            response: HttpResponseBase = refuse(416, "Range Not Satisfiable", "The range is outside the file.")
            response["Content-Range"] = f"bytes */{size}"
            return response
        if isinstance(parsed, tuple):
            start, end = parsed
            status = 206
    if request.method == "HEAD":
        response = HttpResponse(status=status)
    else:
        before_body((start, end) if status == 206 else None)
        handed_over = transfer.redirect(stored, version, start, end, partial=status == 206, filename=name)
        if handed_over is not None:
            return handed_over
        response = StreamingHttpResponse(
            stream_plaintext(version, start, end), status=status, content_type=stored.mime_type
        )
    response["Content-Type"] = stored.mime_type
    response["Content-Length"] = str(end - start)
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
