"""Files over HTTP: download with single-range support, version history, crypto-shredding."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.dateparse import parse_datetime

from casebridge.access import policy
from casebridge.access.principal import Principal
from casebridge.access.requests import actor_of, principal_of
from casebridge.api.auth import api_actor, problem
from casebridge.audit.api import record
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Attachment
from casebridge.deid import export as deid_export
from casebridge.retention.policies import UnderLegalHold
from casebridge.vault import api as vault
from casebridge.vault.http import ByteRange, version_response
from casebridge.vault.models import ObjectVersion, StoredObject


def _principal(request: HttpRequest) -> Principal:
    principal = principal_of(request)
    assert principal is not None  # api_actor: someone is signed in or sent a token
    return principal


def _file(request: HttpRequest, file_id: str) -> StoredObject | None:
    return policy.readable_files(_principal(request)).filter(pk=file_id).first()


@api_actor
def file_content(request: HttpRequest, file_id: str) -> HttpResponseBase:
    if request.method not in ("GET", "HEAD"):
        return problem(405, "Method Not Allowed", "Use GET.")
    stored = _file(request, file_id)
    if stored is None:
        return problem(404, "Not Found", "no such file")
    raw_version = request.GET.get("version")
    number = None
    if raw_version is not None:
        # 1, 2, ...: `0` used to fall through to the current version, a huge number to the database.
        if not (raw_version.isascii() and raw_version.isdigit() and len(raw_version) <= 9 and int(raw_version) >= 1):
            return problem(400, "Bad Request", "`version` must be a version number: 1, 2, ...")
        number = int(raw_version)
    try:
        version = vault.get_version(stored, number)
    except vault.ObjectUnavailable:
        return problem(404, "Not Found", "no such version")

    attached = Attachment.objects.filter(stored_object=stored).select_related("case", "stored_object").first()
    case = attached.case if attached is not None else None

    def audit(byte_range: ByteRange, action: str = "file.downloaded", **extra: object) -> None:
        # A file of a case is PHI: the event names the patient, so the patient's access report
        # (and the case's) finds every download, whoever made it.
        record(
            action,
            actor=actor_of(request),
            organization=stored.organization_id,
            target=stored,
            patient_ref=str(case.patient_id) if case is not None else "",
            details={
                "version": version.version,
                "range": list(byte_range) if byte_range else None,
                "size": version.size,
                **({"case": case.number} if case is not None else {}),
                **extra,
            },
        )

    name = attached.download_name(version.version) if attached is not None else None
    if attached is not None and case is not None and policy.originals_withheld(_principal(request), case):
        return _deidentified(request, attached, version, audit)
    if request.method == "HEAD":
        # No bytes, but the size, checksum, type and the case's file name of a patient's file.
        audit(None, "file.inspected")
    return version_response(request, stored, version, before_body=audit, refuse=problem, filename=name)


def _deidentified(
    request: HttpRequest, attached: Attachment, version: ObjectVersion, audit: Callable[..., None]
) -> HttpResponseBase:
    """A file of a case the caller's organization received with De-identification on receipt:
    the de-identified copy, made now by deid/export.py exactly as the case's de-identified ZIP and
    external links make it (Basic Profile, the case secret; nothing stored, the original
    untouched), whole (a copy has no stable byte offsets to resume from), or a 409 naming why the
    file cannot be de-identified safely (never the original)."""
    name = attached.download_name(version.version)
    work = deid_export.plan([(name, version)], deid_export.ON_RECEIPT, deid_export.case_secret(attached.case))
    details = {
        key: value for key, value in work.audit_details().items() if key in ("deidentified", "profile", "options")
    }
    try:
        if not work.files:
            raise deid_export.NotDeidentifiable(work.left_out[0]["reason"])
        if request.method == "HEAD":
            audit(None, "file.inspected", on_receipt=True, **details)
            return deid_export.file_response(iter(()), name)
        content = deid_export.single_file(work)
    except deid_export.NotDeidentifiable as refusal:
        return problem(
            409,
            "Conflict",
            f"This file cannot be de-identified safely ({refusal}); your organization receives only "
            "de-identified copies of the files of cases sent to it.",
        )
    audit(None, on_receipt=True, **details)
    return deid_export.file_response(content, name)


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
    principal = _principal(request)
    stored = policy.destroyable_files(principal).filter(pk=file_id).first()
    if stored is None:
        if _file(request, file_id) is not None:
            return problem(
                403,
                "Forbidden",
                "Only its uploader or an owner/administrator can destroy an upload; a file attached to a case "
                "only an owner or administrator of the practice, signed in.",
            )
        return problem(404, "Not Found", "no such file")
    try:
        reason = json.loads(request.body or b"{}").get("reason", "")
    except (ValueError, AttributeError):
        reason = ""
    if not isinstance(reason, str):  # {"reason": false} is no reason, not the text "False"
        reason = ""
    try:
        case_actions.destroy_file(principal, stored, reason=reason)
    except UnderLegalHold as exc:
        return problem(409, "Conflict", exc.messages[0])
    except ValidationError:
        return problem(400, "Bad Request", 'Give a reason (JSON body {"reason": "..."}); it is kept in the audit log.')
    return HttpResponse(status=204)


@api_actor
def file_list(request: HttpRequest) -> HttpResponseBase:
    """The caller's own files, newest first, cursor-paginated (?before=<created_at ISO>)."""
    files = policy.readable_files(_principal(request)).order_by("-created_at", "-pk")
    before = request.GET.get("before")
    if before is not None:
        at = _parse_before(before)
        if at is None:
            # The value is not echoed: whatever a client sent does not belong in a response or log.
            return problem(
                400, "Bad Request", "`before` must be an ISO 8601 date-time with a time zone, as `next_before` gives."
            )
        files = files.filter(created_at__lt=at)
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


def _parse_before(value: str) -> datetime | None:
    """The list's cursor, a time-zone-aware ISO 8601 date-time, or None for anything else."""
    try:
        at = parse_datetime(value)
    except ValueError:  # well formed but impossible, e.g. a 25th hour
        return None
    if at is None or at.tzinfo is None:
        return None
    try:
        # In UTC: PostgreSQL refuses offsets Python accepts (up to 24 h, e.g. -18:48).
        return at.astimezone(UTC)
    except OverflowError:  # the first or last representable instant, moved past its year
        return None
