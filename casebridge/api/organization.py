"""The calling organization over REST: its profile and members (`org:read`) and its audit log
(`audit:read`), read-only. The organization is the token's (or the session's), resolved as
every API handler does (api/cases.caller_access)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q
from django.http import Http404, HttpRequest
from django.utils.dateparse import parse_datetime
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from pydantic import field_validator

from casebridge.access.roles import Perm
from casebridge.api.cases import NUMBER, Text100, Text200, caller_access
from casebridge.api.cursors import decode_cursor, encode_cursor
from casebridge.audit import archive, proofs
from casebridge.audit.api import record
from casebridge.audit.models import Event, Outcome
from casebridge.audit.queries import BadFilter, EventFilters, organization_events
from casebridge.orgs.models import Membership

router = Router()

PAGE_MAX = 200
PAGE_DEFAULT = 50


def _next_url(request: HttpRequest, cursor: str) -> str:
    params = {k: v for k, v in request.GET.items() if k != "cursor"}
    params["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{urlencode(params)}")


# --- the organization and its members ------------------------------------------------------
class OrganizationOut(Schema):
    slug: str = Field(description="The CaseBridge ID other organizations connect to")
    name: str
    kind: str
    idle_timeout_seconds: int
    lab_access_grace_days: int


class MemberOut(Schema):
    user: str = Field(description="Internal user id, as written in the audit log")
    email: str
    name: str
    role: str
    is_active: bool
    joined_at: datetime


class MemberPage(Schema):
    results: list[MemberOut]
    next: str | None = Field(description="URL of the next page, or null on the last one")


class MemberFilters(Schema):
    cursor: Text200 | None = Field(None, description="Opaque cursor from the `next` link")
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


@router.get("/organization", response=OrganizationOut, tags=["organization"], summary="The organization you act for")
def organization_detail(request: HttpRequest) -> dict[str, Any]:
    org = caller_access(request, Perm.ORG_VIEW).organization
    return {
        "slug": org.slug,
        "name": org.name,
        "kind": org.kind,
        "idle_timeout_seconds": org.idle_timeout_seconds,
        "lab_access_grace_days": org.lab_access_grace_days,
    }


@router.get(
    "/organization/members",
    response=MemberPage,
    tags=["organization"],
    summary="Members of your organization, active and deactivated, oldest first",
)
def organization_members(request: HttpRequest, filters: Query[MemberFilters]) -> dict[str, Any]:
    access = caller_access(request, Perm.ORG_VIEW)
    members = Membership.objects.filter(organization=access.organization).select_related("user")
    if filters.cursor:
        stamp, pk = decode_cursor(filters.cursor, 2)
        at = parse_datetime(stamp)
        try:
            key = uuid.UUID(pk)
        except ValueError:
            key = None
        if at is None or key is None:
            raise HttpError(400, "The cursor is not one this API handed out; start from the first page.")
        members = members.filter(Q(created_at__gt=at) | Q(created_at=at, pk__gt=key))
    page = list(members.order_by("created_at", "pk")[: filters.limit + 1])
    shown = page[: filters.limit]
    more = len(page) > filters.limit
    return {
        "results": [
            {
                "user": str(m.user_id),
                "email": m.user.email,
                "name": m.user.full_name,
                "role": m.role,
                "is_active": m.is_active,
                "joined_at": m.created_at,
            }
            for m in shown
        ],
        "next": _next_url(request, encode_cursor(shown[-1].created_at.isoformat(), shown[-1].pk)) if more else None,
    }


# --- the audit log -------------------------------------------------------------------------
class AuditEventOut(Schema):
    id: int
    occurred_at: datetime
    action: str
    outcome: str
    actor_type: str
    actor_id: str
    actor_label: str
    target_type: str
    target_id: str
    patient_ref: str = Field(description="Internal patient reference (never a name)")
    ip: str | None
    request_id: str
    emergency_access_id: str | None = Field(description="The emergency-access grant this was done under")
    details: dict[str, Any]


class AuditPage(Schema):
    results: list[AuditEventOut]
    next: str | None = Field(description="URL of the next (older) page, or null on the last one")


class AuditFilters(Schema):
    """The audit log page's filters (`/o/<org>/audit/`), plus a time range and a case."""

    since: datetime | None = Field(None, description="From this instant (inclusive); a date means its start; UTC")
    until: datetime | None = Field(None, description="Before this instant (exclusive)")
    action: Text100 = Field("", description="An action or a dotted prefix: `case.` for every case event")
    actor: Text100 = Field("", description="Part of the actor's label (e-mail, `service:NAME`, `operator:...`)")
    outcome: Outcome | None = None
    case: str | None = Field(None, pattern=NUMBER, description="Events about this case number")
    emergency: bool = Field(False, description="Only what was done under emergency access")
    patient: uuid.UUID | None = Field(None, description="Events about this patient (internal reference)")
    ip: Text100 = Field("", description="Events from this client IP address")
    cursor: Text200 | None = Field(None, description="Opaque cursor from the `next` link")
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)

    @field_validator("since", "until")
    @classmethod
    def _utc_unless_zoned(cls, value: datetime | None) -> datetime | None:
        from datetime import UTC

        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def as_event_filters(self) -> EventFilters:
        try:
            return EventFilters(
                action=self.action.strip(),
                actor=self.actor.strip(),
                outcome=self.outcome or "",
                case=self.case or "",
                since=self.since,
                until=self.until,
                emergency_only=self.emergency,
                patient=str(self.patient) if self.patient else "",
                ip=self.ip.strip(),
            )
        except BadFilter as exc:
            raise HttpError(422, str(exc)) from None


def _event(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "occurred_at": event.occurred_at,
        "action": event.action,
        "outcome": event.outcome,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "patient_ref": event.patient_ref,
        "ip": event.ip,
        "request_id": event.request_id,
        "emergency_access_id": str(event.emergency_access_id) if event.emergency_access_id else None,
        "details": event.details,
    }


@router.get(
    "/audit/events",
    response=AuditPage,
    tags=["audit"],
    summary="Your organization's audit log, newest first (AUDIT_VIEW and the audit:read scope)",
)
def audit_events(request: HttpRequest, filters: Query[AuditFilters]) -> dict[str, Any]:
    access = caller_access(request, Perm.AUDIT_VIEW)
    wanted = filters.as_event_filters()
    events = organization_events(access.organization.pk, wanted)
    if filters.cursor:
        (last_id,) = decode_cursor(filters.cursor, 1)
        if not last_id.isdigit():
            raise HttpError(400, "The cursor is not one this API handed out; start from the first page.")
        events = events.filter(id__lt=int(last_id))
    # Newest first by primary key, as the review page: constant cost however deep the log is.
    page = list(events.order_by("-id")[: filters.limit + 1])
    shown = page[: filters.limit]
    more = len(page) > filters.limit
    record(
        "audit.viewed",
        actor=access.actor,
        organization=access.organization,
        details={"filters": wanted.as_details(), "via": "api", "count": len(shown)},
    )
    return {
        "results": [_event(e) for e in shown],
        "next": _next_url(request, encode_cursor(shown[-1].pk)) if more else None,
    }


@router.get(
    "/audit/proofs/inclusion/{seq}",
    response=dict[str, Any],
    tags=["audit"],
    summary="RFC 9162 inclusion proof of one of your organization's events (#seq) against the latest checkpoint",
)
def audit_inclusion_proof(request: HttpRequest, seq: int) -> dict[str, Any]:
    """The event must be your organization's (404 otherwise, as for anything of another one).
    Check it with casebridge/audit/merkle.py and the key of `casebridge audit public-key`."""
    access = caller_access(request, Perm.AUDIT_VIEW)
    own = str(access.organization.pk)
    if not Event.objects.filter(organization_id=own, seal__seq=seq).exists():
        try:
            archived = archive.organization_of(seq)
        except archive.ArchiveError as exc:
            raise HttpError(409, str(exc)) from exc
        if archived != own:
            raise Http404("no such event")  # neither in the hot tables nor in an archive segment
    try:
        proof = proofs.inclusion(seq)
    except proofs.ProofError as exc:
        raise HttpError(409, str(exc)) from exc
    record("audit.proof.given", actor=access.actor, organization=access.organization, details={"seq": seq})
    return proof


@router.get(
    "/audit/proofs/consistency",
    response=dict[str, Any],
    tags=["audit"],
    summary="RFC 9162 consistency proof between two checkpoints (tree sizes old < new)",
)
def audit_consistency_proof(request: HttpRequest, old: int, new: int) -> dict[str, Any]:
    access = caller_access(request, Perm.AUDIT_VIEW)
    try:
        proof = proofs.consistency(old, new)
    except proofs.ProofError as exc:
        raise HttpError(409, str(exc)) from exc
    record("audit.proof.given", actor=access.actor, organization=access.organization, details={"old": old, "new": new})
    return proof
