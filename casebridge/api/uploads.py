"""tus 1.0.0 at /api/v1/uploads/: core, creation, creation-with-upload, termination, checksum,
expiration. The protocol lives here; the vault's upload service does the work."""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from casebridge.access import policy
from casebridge.access.guards import public
from casebridge.access.requests import actor_of, api_token_of
from casebridge.access.roles import Perm
from casebridge.api.auth import answers_options, api_actor, problem
from casebridge.orgs.models import Organization
from casebridge.vault import uploads
from casebridge.vault.models import Upload

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


def _tus_headers(response: HttpResponseBase) -> HttpResponseBase:
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    return response


def _upload_headers(response: HttpResponseBase, upload: Upload) -> HttpResponseBase:
    response["Upload-Offset"] = str(upload.offset)
    response["Upload-Length"] = str(upload.length)
    response["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    if upload.completed_at is not None:
        response["CaseBridge-File-Id"] = str(upload.object_id)
    return _tus_headers(response)


def _error(status: int, detail: str) -> HttpResponseBase:
    titles = {
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        410: "Gone",
        412: "Precondition Failed",
        413: "Content Too Large",
        415: "Unsupported Media Type",
        422: "Unprocessable Content",
        423: "Locked",
        460: "Checksum Mismatch",
        503: "Service Unavailable",
        507: "Insufficient Storage",
    }
    response = problem(status, titles.get(status, "Error"), detail)
    if status == 412:
        response["Tus-Version"] = TUS_VERSION
    return _tus_headers(response)


def _check_version(request: HttpRequest) -> HttpResponseBase | None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        return _error(412, f"Send 'Tus-Resumable: {TUS_VERSION}'.")
    return None


def _metadata(header: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except ValueError:
            raise uploads.UploadError("Upload-Metadata values must be base64.") from None
    return values


def body_reader(request: HttpRequest, length: int) -> uploads.Readinto:
    """readinto() over a request body of `length` bytes: 0 at its end or when the client left."""
    direct = _gunicorn_socket_body(request, length)
    if direct is not None:
        return direct
    remaining = length

    def readinto(view: memoryview) -> int:
        nonlocal remaining
        if not remaining:
            return 0
        chunk = request.read(min(len(view), remaining))
        view[: len(chunk)] = chunk
        remaining -= len(chunk)
        return len(chunk)

    return readinto


def _gunicorn_socket_body(request: HttpRequest, length: int) -> uploads.Readinto | None:
    """Read a known-length body straight from gunicorn's socket into the caller's buffer.

    Over TLS every recv() returns one 16 KiB record; gunicorn's reader appends each to a BytesIO
    and copies the result out again. recv_into() the vault's segment buffer decrypts each record
    where it will be hashed and encrypted: no copy at all (docs/performance.md). Anything gunicorn
    already read ahead is taken first; with another server, or a body someone already started
    reading, this returns None and request.read() is used.
    """
    from gunicorn.http.body import LengthReader
    from gunicorn.http.unreader import SocketUnreader

    stream = request.META.get("wsgi.input")
    reader = getattr(stream, "reader", None)
    unreader = getattr(reader, "unreader", None)
    buffered = getattr(stream, "buf", None)
    if not isinstance(reader, LengthReader) or not isinstance(unreader, SocketUnreader) or buffered is None:
        return None
    if buffered.tell() or reader.length != length:
        return None
    sock = unreader.sock
    pending: memoryview | None = None  # what gunicorn read ahead, taken on the first read
    remaining = length

    def readinto(view: memoryview) -> int:
        nonlocal pending, remaining
        if pending is None:
            ahead = unreader.take_buffered()
            if len(ahead) > length:  # a pipelined next request: give it back
                unreader.unread(ahead[length:])
                ahead = ahead[:length]
            pending = memoryview(ahead)
        want = min(len(view), remaining)
        if not want:
            return 0
        if pending:
            got = min(want, len(pending))
            view[:got] = pending[:got]
            pending = pending[got:]
        else:
            got = sock.recv_into(view, want)  # 0: the client went away, keep what arrived
        remaining -= got
        reader.length -= got  # gunicorn must not wait for bytes we consumed
        return got

    return readinto


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise uploads.UploadError("Content-Length must be a number.") from None


def _organization(request: HttpRequest, actor: Any, meta: dict[str, str]) -> Organization:
    token = api_token_of(request)
    if token is not None:
        organization = token.organization
    else:
        slug = meta.get("organization") or request.session.get("current_org", "")
        found = Organization.objects.filter(slug=slug).first() if slug else None
        if found is None:
            orgs = list(policy.organizations_of(actor)[:2])
            found = orgs[0] if len(orgs) == 1 else None
        if found is None:
            raise uploads.UploadError("Name the organization in the 'organization' metadata.", 400)
        organization = found
    access = policy.resolve(actor, organization, token)
    if access is None:
        raise uploads.UploadError("no such organization", 404)
    if not access.has(Perm.FILES_UPLOAD):
        raise uploads.UploadError("Your role (or token scope) does not allow uploading files.", 403)
    return organization


def _patch(
    request: HttpRequest, upload: Upload, actor: Any, status: int = 204, offset: int | None = None
) -> HttpResponseBase:
    if request.content_type != OFFSET_CONTENT_TYPE:
        return _error(415, f"PATCH bodies must be '{OFFSET_CONTENT_TYPE}'.")
    try:
        client_offset = int(request.headers["Upload-Offset"]) if offset is None else offset
    except (KeyError, ValueError):
        return _error(400, "Send the Upload-Offset header.")
    checksum_header = request.headers.get("Upload-Checksum")
    checksum = uploads.parse_checksum(checksum_header) if checksum_header else None
    length = _content_length(request)
    result = uploads.append(
        upload,
        actor=actor,
        client_offset=client_offset,
        body=body_reader(request, length),
        content_length=length,
        checksum=checksum,
    )
    return _upload_headers(HttpResponse(status=status), result.upload)


@public
@csrf_exempt
def tus_options(request: HttpRequest) -> HttpResponseBase:
    """Protocol discovery (tus and CORS preflight): capabilities only, no data."""
    response = HttpResponse(status=204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = EXTENSIONS
    response["Tus-Max-Size"] = str(settings.VAULT_MAX_UPLOAD_BYTES)
    response["Tus-Checksum-Algorithm"] = "sha256"
    return _tus_headers(response)


@api_actor
@answers_options(tus_options)
def upload_collection(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return _error(400, "Create an upload with POST.") if request.method != "GET" else _error(400, "Use tus.")
    bad = _check_version(request)
    if bad:
        return bad
    actor = actor_of(request)
    try:
        if "Upload-Defer-Length" in request.headers:
            raise uploads.UploadError("Upload-Defer-Length is not supported: send Upload-Length.")
        try:
            length = int(request.headers["Upload-Length"])
        except (KeyError, ValueError):
            raise uploads.UploadError("Send the Upload-Length header (total bytes).") from None
        meta = _metadata(request.headers.get("Upload-Metadata", ""))
        organization = _organization(request, actor, meta)
        stored = None
        if meta.get("file"):
            stored = policy.readable_files(actor).filter(pk=_uuid(meta["file"]), organization=organization).first()
            if stored is None:
                raise uploads.UploadGone("no such file")
        upload = uploads.create_upload(organization=organization, actor=actor, length=length, stored_object=stored)
        location = reverse("tus_upload", args=[upload.pk])
        if request.content_type == OFFSET_CONTENT_TYPE or length == 0:
            if length == 0:
                result = uploads.append(upload, actor=actor, client_offset=0, body=lambda view: 0, content_length=0)
                response = _upload_headers(HttpResponse(status=201), result.upload)
            else:
                response = _patch(request, upload, actor, status=201, offset=0)
        else:
            response = _upload_headers(HttpResponse(status=201), upload)
        response["Location"] = location
        return response
    except uploads.UploadError as exc:
        return _error(exc.status, str(exc))


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        raise uploads.UploadGone("no such file") from None


@api_actor
@answers_options(tus_options)
def upload_resource(request: HttpRequest, upload_id: str) -> HttpResponseBase:
    bad = _check_version(request)
    if bad and request.method != "HEAD":
        return bad
    actor = actor_of(request)
    upload = uploads.owned_uploads(actor).filter(pk=upload_id).first()
    if upload is None:
        return _error(404, "no such upload")
    try:
        if request.method == "HEAD":
            return _upload_headers(HttpResponse(status=200), upload)
        if request.method == "PATCH":
            return _patch(request, upload, actor)
        if request.method == "DELETE":
            if upload.completed_at is not None:
                return _error(409, "This upload is complete; delete the file instead.")
            uploads.terminate(upload, actor=actor)
            return _tus_headers(HttpResponse(status=204))
    except uploads.UploadError as exc:
        return _error(exc.status, str(exc))
    return _error(400, "Use HEAD, PATCH or DELETE.")
