"""tus 1.0.0 at /api/v1/uploads/: core, creation, creation-with-upload, termination, checksum,
expiration. The protocol lives here; the vault's upload service does the work. Under `casebridge
serve` an upload's Location is on the transfer server, which takes the PATCH bodies and asks the
hand-over endpoints at the end of this module before and after each one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from casebridge.access import policy
from casebridge.access.guards import FROM_TRANSFER_SERVER, public, transfer_server_only
from casebridge.access.principal import Principal
from casebridge.access.requests import principal_of
from casebridge.access.roles import Perm
from casebridge.accounts.models import ApiToken
from casebridge.api.auth import answers_options, api_actor, problem
from casebridge.audit.models import Outcome
from casebridge.cases import actions as case_actions
from casebridge.kernel import request_body
from casebridge.kernel.appending import Appended, Checkpoint, parse_checksum
from casebridge.orgs.models import Organization
from casebridge.vault import transfer, uploads
from casebridge.vault.api import PendingVersion
from casebridge.vault.models import ObjectVersion, StoredObject, Upload

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


def body_reader(request: HttpRequest, length: int) -> request_body.Readinto:
    """readinto() over a request body of `length` bytes: 0 at its end or when the client left."""
    return request_body.body_reader(request.META, length, request.read)


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise uploads.UploadError("Content-Length must be a number.") from None


def _organization(request: HttpRequest, principal: Principal, meta: dict[str, str]) -> Organization:
    """The organization an upload is created in: the token's own, else the one named in the
    metadata (or the session's current one, or the person's only one); entered like any other
    request, so scope, membership and emergency bookkeeping are those of every sibling."""
    if principal.token is not None:
        organization = principal.default_organization()
    else:
        named = meta.get("organization") or request.session.get("current_org", "")
        organization = principal.default_organization(named)
        if organization is None and not meta.get("organization"):
            raise uploads.UploadError("Name the organization in the 'organization' metadata.", 400)
    try:
        access = principal.enter(organization, Perm.FILES_UPLOAD, via="upload")
    except Http404:
        raise uploads.UploadError("no such organization", 404) from None
    except policy.Forbidden:
        raise uploads.UploadError("Your role (or token scope) does not allow uploading files.", 403) from None
    return access.organization


def _patch_terms(
    request: HttpRequest, content_type: str, offset: int | None = None
) -> tuple[int, tuple[str, bytes] | None] | HttpResponseBase:
    """A PATCH's offset and checksum from its headers, or the tus error that refuses it; for a
    body sent here and for one the transfer server takes alike."""
    if content_type.split(";")[0].strip() != OFFSET_CONTENT_TYPE:
        return _error(415, f"PATCH bodies must be '{OFFSET_CONTENT_TYPE}'.")
    try:
        client_offset = int(request.headers["Upload-Offset"]) if offset is None else offset
    except (KeyError, ValueError):
        return _error(400, "Send the Upload-Offset header.")
    checksum_header = request.headers.get("Upload-Checksum")
    return client_offset, parse_checksum(checksum_header) if checksum_header else None


def _patch(
    request: HttpRequest, upload: Upload, actor: Any, status: int = 204, offset: int | None = None
) -> HttpResponseBase:
    terms = _patch_terms(request, request.content_type or "", offset)
    if isinstance(terms, HttpResponseBase):
        return terms
    client_offset, checksum = terms
    length = _content_length(request)
    result = uploads.append(
        upload,
        actor=actor,
        client_offset=client_offset,
        body=body_reader(request, length),
        content_length=length,
        checksum=checksum,
        add_version=_version_gate(upload, actor, _token(request)),
    )
    return _upload_headers(HttpResponse(status=status), result.upload)


def _token(request: HttpRequest) -> ApiToken | None:
    principal = principal_of(request)
    return principal.token if principal is not None else None


@contextmanager
def _case_rules_as_tus_errors() -> Iterator[None]:
    """cases.actions' refusals as tus answers: 403 for a permission, 415 for a file's type, 409
    for the state of the case (sent, closed) or of the file."""
    try:
        yield
    except policy.Forbidden as exc:
        raise uploads.UploadError(str(exc), 403) from None
    except ValidationError as exc:
        status = 415 if getattr(exc, "code", None) == "file_type" else 409
        raise uploads.UploadError(" ".join(exc.messages), status) from None


def _version_gate(upload: Upload, actor: Any, token: ApiToken | None = None) -> uploads.AddVersion:
    """What the finished content of a new version goes through: cases.actions.add_version, under
    the uploader's access as of now (asked again: the case may have moved on since the upload
    began)."""

    def add(content: PendingVersion) -> ObjectVersion:
        access = policy.resolve(actor, upload.organization, token)
        stored = StoredObject.objects.filter(pk=upload.object_id).first()
        if access is None or stored is None:
            raise uploads.UploadError("no such file", 404)
        with _case_rules_as_tus_errors():
            return case_actions.add_version(access, stored, content)

    return add


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
    principal = principal_of(request)
    assert principal is not None  # api_actor: someone is signed in or sent a token
    actor = principal.actor
    try:
        if "Upload-Defer-Length" in request.headers:
            raise uploads.UploadError("Upload-Defer-Length is not supported: send Upload-Length.")
        try:
            length = int(request.headers["Upload-Length"])
        except (KeyError, ValueError):
            raise uploads.UploadError("Send the Upload-Length header (total bytes).") from None
        meta = _metadata(request.headers.get("Upload-Metadata", ""))
        organization = _organization(request, principal, meta)
        stored = None
        if meta.get("file"):
            # A version is sealed under its file's organization's keys: the file must be of the
            # organization the upload is made in, and readable by this principal there.
            stored = (
                policy.readable_files(principal, organization)
                .filter(pk=_uuid(meta["file"]), organization=organization)
                .first()
            )
            access = principal.access(organization)
            if stored is None or access is None:
                raise uploads.UploadGone("no such file")
            with _case_rules_as_tus_errors():  # decided before any byte flows, and again at the end
                case_actions.require_version(access, stored)
        upload = uploads.create_upload(organization=organization, actor=actor, length=length, stored_object=stored)
        location = transfer.upload_location(upload.pk) or reverse("tus_upload", args=[upload.pk])
        if request.content_type == OFFSET_CONTENT_TYPE or length == 0:
            if length == 0:
                result = uploads.append(
                    upload,
                    actor=actor,
                    client_offset=0,
                    body=lambda view: 0,
                    content_length=0,
                    add_version=_version_gate(upload, actor, _token(request)),
                )
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
    principal = principal_of(request)
    assert principal is not None  # api_actor: someone is signed in or sent a token
    actor = principal.actor
    upload = policy.owned_uploads(principal).filter(pk=upload_id).first()
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


# --- hand-over to the transfer server -----------------------------------------------------------
# The transfer server receives PATCH bodies for uploads whose Location points at it. Around each
# body it asks here, with the internal key:
#   lease   with the client's own credentials and headers, so sign-in, MFA, CSRF, roles and
#           ownership are checked exactly as for a PATCH sent here: the checks a PATCH gets, the
#           lease, and what continuing the upload takes (its DEK);
#   renew   the lease, every few seconds while the body's bytes flow, with the checkpoint of what
#           is durably staged so far, which becomes the upload's offset (a resume starts there);
#   commit  what the body appended (or why it was refused), answered as the PATCH is answered.
# renew and commit name the lease token that only the lease's answer carried: the client's
# request was authorized once, for the lease, as a PATCH sent here is.
@api_actor
def upload_lease(request: HttpRequest, upload_id: str) -> HttpResponseBase:
    if not request.META.get(FROM_TRANSFER_SERVER) or request.method != "POST":
        return problem(404, "Not Found", "no such upload")
    principal = principal_of(request)
    upload = policy.owned_uploads(principal).filter(pk=upload_id).first() if principal is not None else None
    if upload is None:
        return _error(404, "no such upload")
    bad = _check_version(request)
    if bad:
        return bad
    try:
        length = int(request.headers.get("CaseBridge-Body-Length") or 0)  # set by the transfer server
    except ValueError:
        return _error(400, "Content-Length must be a number.")
    try:
        terms = _patch_terms(request, request.headers.get("CaseBridge-Body-Type", ""))
        if isinstance(terms, HttpResponseBase):
            return terms
        client_offset, checksum = terms
        token, cont = uploads.lease(
            upload,
            client_offset=client_offset,
            content_length=length,
            checksum=checksum,
            # The transfer server's process, which is not writing this upload (it checks first).
            holder=request.headers.get("CaseBridge-Lease-Holder", "")[:160],
        )
    except uploads.UploadError as exc:
        return _error(exc.status, str(exc))
    held = request.headers.get("CaseBridge-Hasher-Offset")  # the transfer server has the hash that far
    parts = transfer.part_urls(upload, cont, length, rebuild=held != str(cont.offset))
    return JsonResponse({"token": token, **cont.to_wire(), **({"parts": parts} if parts else {})})


@csrf_exempt  # no ambient credentials: the internal key and a lease token, both sent explicitly
@transfer_server_only
def upload_lease_step(request: HttpRequest, upload_id: str, step: str) -> HttpResponseBase:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = {}
    token = str(data.get("token", ""))
    held = request.method == "POST" and token
    upload = uploads.leased_upload(upload_id, token, lapsed=step == "renew") if held else None
    if upload is None:
        return _error(409, "This request no longer holds the upload; ask for its offset and resume.")
    try:
        if step == "renew":
            checkpoint = data.get("checkpoint")
            uploads.renew(upload, token, Checkpoint.from_wire(checkpoint) if checkpoint is not None else None)
            return HttpResponse(status=204)
        if step == "commit":
            try:
                return _commit(upload, token, data)
            finally:
                uploads.release(upload, token)
    except uploads.UploadError as exc:
        return _error(exc.status, str(exc))
    return problem(404, "Not Found", "no such step")


def _commit(upload: Upload, token: str, data: dict[str, Any]) -> HttpResponseBase:
    actor = upload.created_by or upload.created_by_service  # the lease was granted to its owner
    outcome = data.get("outcome")
    if outcome == "type_refused":
        uploads.terminate(upload, actor=actor, reason="unsupported type", outcome=Outcome.DENIED)
        return _error(415, str(data.get("message", "This file type is not accepted.")))
    if outcome == "checksum_mismatch":
        return _error(460, "The body does not match its Upload-Checksum; it was discarded.")
    if outcome == "lease_lost":
        return _error(409, "This request no longer holds the upload; ask for its offset and resume.")
    if outcome == "conflict":
        return _error(423, "Another request is writing to this upload; retry shortly.")
    if outcome == "no_room":
        return _error(507, "The server has no room for this data right now; try later.")
    if outcome == "staging_lost":
        uploads.terminate(upload, actor=actor, reason="staging lost", outcome=Outcome.FAILURE)
        return _error(410, uploads.STAGING_LOST)
    if outcome != "appended":
        return _error(500, "The transfer failed; ask for the upload's offset and resume.")
    if actor is None or not policy.owned_uploads(Principal(actor)).filter(pk=upload.pk).exists():
        # The membership ended while the body was in flight: nothing it carried becomes a file.
        uploads.terminate(upload, actor=actor, reason="membership ended", outcome=Outcome.DENIED)
        return _error(403, "Your membership of this organization has ended.")
    # The client's credentials were checked at this body's lease; its membership, role and the
    # case's state are asked again by the version gate as the content is linked.
    result = uploads.commit(upload, token, actor, Appended.from_wire(data), _version_gate(upload, actor))
    return _upload_headers(HttpResponse(status=204), result.upload)
