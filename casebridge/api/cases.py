"""Cases over REST (/api/v1/cases): typed schemas in, cases.actions to change, the policy to see.

Handlers stay thin: resolve the caller's organization, fetch through the access helpers (404 for
outsiders), call one action, render. Every read of a case leaves a `case.viewed` event, every
page of the list one `patient.viewed` naming the patients on it."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.utils.dateparse import parse_datetime
from ninja import Field, Path, Query, Router, Schema
from ninja import Status as Reply
from ninja.errors import HttpError
from pydantic import AfterValidator, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from casebridge.access import policy
from casebridge.access.policy import OrgAccess, case_for, visible_cases
from casebridge.access.requests import principal_of
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.exposure import record_case_opened, record_patients_shown
from casebridge.cases import actions, teeth
from casebridge.cases.models import (
    Arch,
    Attachment,
    AttachmentKind,
    Case,
    Delivery,
    Material,
    Restoration,
    Status,
)
from casebridge.cases.queries import case_search
from casebridge.cases.templates import TEMPLATES, missing
from casebridge.deid import export as deid_export
from casebridge.deid.table import Options
from casebridge.imaging.actions import masks_for_files
from casebridge.imaging.models import IngestJob
from casebridge.orgs.models import Organization
from casebridge.vault import api as vault
from casebridge.vault import zipstream
from casebridge.vault.models import ObjectVersion

router = Router(tags=["cases"])

PAGE_MAX = 100
PAGE_DEFAULT = 50
# CB-2026-000123: constraining the path keeps odd strings out of the lookup (and the URL space).
NUMBER = r"^CB-\d{4}-\d{6,9}$"
CaseNumber = Annotated[str, Path(pattern=NUMBER, description="Case number, e.g. CB-2026-000123")]


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text: answer 422 here instead of failing in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Bounded text fields, NUL bytes refused (PostgreSQL text cannot hold them).
Text3Min1 = Annotated[str, StringConstraints(max_length=3, min_length=1), AfterValidator(_no_nul)]
Text10 = Annotated[str, StringConstraints(max_length=10), AfterValidator(_no_nul)]
Text40 = Annotated[str, StringConstraints(max_length=40), AfterValidator(_no_nul)]
Text60 = Annotated[str, StringConstraints(max_length=60), AfterValidator(_no_nul)]
Text80 = Annotated[str, StringConstraints(max_length=80), AfterValidator(_no_nul)]
Text100 = Annotated[str, StringConstraints(max_length=100), AfterValidator(_no_nul)]
Text150Min1 = Annotated[str, StringConstraints(max_length=150, min_length=1), AfterValidator(_no_nul)]
Text200 = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_nul)]
Text254Min3 = Annotated[str, StringConstraints(max_length=254, min_length=3), AfterValidator(_no_nul)]
Text500 = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)]
Text500Min3 = Annotated[str, StringConstraints(max_length=500, min_length=3), AfterValidator(_no_nul)]
Text2000 = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]
Text2000Min1 = Annotated[str, StringConstraints(max_length=2000, min_length=1), AfterValidator(_no_nul)]
Text5000 = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_no_nul)]
Text5000Min1 = Annotated[str, StringConstraints(max_length=5000, min_length=1), AfterValidator(_no_nul)]
Text10000Min1 = Annotated[str, StringConstraints(max_length=10000, min_length=1), AfterValidator(_no_nul)]


CaseType = Literal[tuple(TEMPLATES)]  # type: ignore[valid-type]
Notation = Literal["fdi", "universal", "palmer"]


# --- schemas -------------------------------------------------------------------------------
class OrgRef(Schema):
    slug: str
    name: str


class PatientIn(Schema):
    name: Text150Min1
    date_of_birth: date | None = None
    chart_number: Text40 = ""


class PatientOut(Schema):
    ref: str = Field(description="Internal patient reference, as written in the audit log")
    name: str
    date_of_birth: date | None
    chart_number: str


class ItemIn(Schema):
    """One restoration: on a tooth (FDI by default, or in the named notation) or on an arch."""

    tooth: int | Text3Min1 | None = Field(
        None, description="Tooth in `notation`: FDI 11-48/51-85, Universal 1-32/A-T, Palmer UR6/LLB"
    )
    notation: Notation = "fdi"
    arch: Arch | Literal[""] = ""
    restoration: Restoration
    material: Material | Literal[""] = ""
    shade: Text10 = ""
    stump_shade: Text10 = ""

    @model_validator(mode="after")
    def _tooth_in_fdi(self) -> ItemIn:
        if self.tooth is not None:
            try:
                self.tooth = teeth.parse(str(self.tooth), self.notation)
            except teeth.ToothError as exc:
                raise ValueError(f"tooth: {exc}") from None
            self.notation = "fdi"
        elif not self.arch:
            raise ValueError("tooth: each restoration needs a tooth or an arch")
        return self

    def as_action_input(self) -> actions.ItemInput:
        return actions.ItemInput(
            restoration=self.restoration,
            tooth=int(self.tooth) if self.tooth is not None else None,
            arch=self.arch,
            material=self.material,
            shade=self.shade,
            stump_shade=self.stump_shade,
        )


class ItemOut(Schema):
    tooth: int | None = Field(description="FDI / ISO 3950 code")
    tooth_universal: str | None
    tooth_palmer: str | None
    arch: str
    restoration: str
    material: str
    shade: str
    stump_shade: str


class CaseCreate(Schema):
    patient: PatientIn
    case_type: CaseType  # type: ignore[valid-type]
    lab: Text60 | None = Field(None, description="Slug of a connected lab")
    due_date: date | None = None
    delivery: Delivery = Delivery.SHIP
    ship_to: Text500 = ""
    notes: Text5000 = ""
    items: list[ItemIn] = Field(default_factory=list, max_length=64)


class CaseUpdate(Schema):
    """Draft fields to change; fields left out stay as they are. `items` replaces the list.
    `lab` and `due_date` may be null (no lab yet, no due date); `delivery`, `ship_to` and
    `notes` may not."""

    lab: Text60 | None = None
    due_date: date | None = None
    # None only as "not sent": the document says string, and an explicit null is refused below.
    delivery: Delivery | SkipJsonSchema[None] = None
    ship_to: Text500 | SkipJsonSchema[None] = None
    notes: Text5000 | SkipJsonSchema[None] = None
    items: list[ItemIn] | None = Field(None, max_length=64)

    @field_validator("delivery", "ship_to", "notes", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values sent (defaults are not validated): null used to reach the draft
        # action as None and fail there with a 500.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class HistoryOut(Schema):
    status: str
    actor: str
    note: str
    at: datetime


class CaseSummary(Schema):
    number: str
    status: str
    case_type: str
    practice: OrgRef
    lab: OrgRef | None
    patient: PatientOut
    due_date: date | None
    created_at: datetime
    submitted_at: datetime | None
    archived_at: datetime | None


class CaseDetail(CaseSummary):
    delivery: str
    ship_to: str
    notes: str
    tracking_number: str
    doctor: str | None
    received_at: datetime | None
    received_by: str | None
    completed_at: datetime | None
    lab_access_until: datetime | None
    lab_access_revoked_at: datetime | None
    remake_of: str | None
    items: list[ItemOut]
    history: list[HistoryOut]
    missing: list[str] = Field(description="What a draft still needs before it can be submitted")
    next_statuses: list[str] = Field(description="Statuses the lab may move the case to now")


class CasePage(Schema):
    results: list[CaseSummary]
    next: str | None = Field(description="URL of the next page (GET /cases), or null")
    next_cursor: str | None = Field(None, description="The `cursor` of the next page, or null on the last one")


class StatusChange(Schema):
    status: Status
    note: Text2000 = ""
    tracking_number: Text80 = ""


class Note(Schema):
    note: Text2000 = ""


class DesignDecision(Schema):
    approve: bool
    note: Text2000 = ""


class Question(Schema):
    question: Text5000Min1


class Answer(Schema):
    answer: Text5000Min1


class RemakeIn(Schema):
    reason: Text2000Min1


class CancelIn(Schema):
    reason: Text2000Min1 = Field(description="Why; kept in the case history (not in the audit log)")


class AttachmentIn(Schema):
    file_id: uuid.UUID = Field(description="The CaseBridge-File-Id header of the finished tus upload")
    kind: AttachmentKind
    label: Text40 = ""


class IngestOut(Schema):
    """The indexing of a DICOM file or archive into studies, done in the background after attach."""

    state: str = Field(description="queued, running, done or failed")
    total: int = Field(description="Entries to look at (1 for a single file)")
    processed: int
    imported: int = Field(description="Instances indexed")
    duplicates: int = Field(description="Instances already held (same SOP Instance UID)")
    errors: int = Field(description="Entries that could not be indexed; the case page says why")


class AttachmentOut(Schema):
    file_id: str
    name: str
    kind: str
    label: str
    mime_type: str
    current_version: int
    added_by_org: OrgRef
    added_at: datetime
    ingest: IngestOut | None = Field(None, description="For DICOM files and archives: their latest indexing")


class MessageIn(Schema):
    body: Text10000Min1
    question: bool = False
    files: list[uuid.UUID] = Field(default_factory=list, max_length=50, description="Files of this case to refer to")


class MessageOut(Schema):
    id: int
    author: str
    author_org: OrgRef
    body: str
    is_question: bool
    files: list[str]
    created_at: datetime


class CaseFilters(Schema):
    status: Status | None = None
    due_before: date | None = None
    due_after: date | None = None
    cursor: Text200 | None = Field(None, description="Opaque cursor from the `next` link")
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


class CaseSearch(CaseFilters):
    """A search by patient name travels in a request body, never in a URL."""

    q: Text100 | None = Field(
        None,
        description=(
            "Part of a case number; words of the patient's name; the chart number; the date of birth "
            "(1985-03-14, 03/14/1985 or 14.03.1985); part of the doctor's, lab's or practice's name"
        ),
    )

    @field_validator("q")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value else None


# --- who is asking ------------------------------------------------------------------------
def caller_access(request: HttpRequest, perm: Perm = Perm.CASES_VIEW) -> OrgAccess:
    """The caller's access in the token's organization (or the session's), 403 without `perm`."""
    principal = principal_of(request)
    if principal is None:
        raise Http404("no such organization")
    organization = principal.default_organization(
        "" if principal.token is not None else request.session.get("current_org", "")
    )
    if organization is None and len(principal.organizations()) > 1:
        raise HttpError(400, "Open the organization in CaseBridge first, or use an API token.")
    access: OrgAccess = principal.enter(organization, perm, via="api")
    return access


def _viewed(access: OrgAccess, case: Case, via: str) -> None:
    record_case_opened(access, case, via=via)


def _case(request: HttpRequest, number: str) -> tuple[OrgAccess, Case]:
    access = caller_access(request)
    return access, case_for(access, number)


def _connected_lab(access: OrgAccess, slug: str | None) -> Organization | None:
    if not slug:
        return None
    lab = Organization.objects.filter(slug=slug).first()
    if lab is None or policy.organization_connection(access.organization, lab) is None:
        raise ValidationError({"lab": [f"You are not connected with a lab called {slug!r}."]})
    return lab


# --- rendering ----------------------------------------------------------------------------
def _org(org: Organization) -> dict[str, str]:
    return {"slug": org.slug, "name": org.name}


def _summary(case: Case) -> dict[str, Any]:
    patient = case.patient
    return {
        "number": case.number,
        "status": case.status,
        "case_type": case.case_type,
        "practice": _org(case.practice),
        "lab": _org(case.lab) if case.lab else None,
        "patient": {
            "ref": str(patient.pk),
            "name": patient.name,
            "date_of_birth": patient.date_of_birth,
            "chart_number": patient.chart_number,
        },
        "due_date": case.due_date,
        "created_at": case.created_at,
        "submitted_at": case.submitted_at,
        "archived_at": case.archived_at,
    }


def _detail(access: OrgAccess, case: Case) -> dict[str, Any]:
    case = (
        Case.objects.select_related("patient", "practice", "lab", "doctor", "received_by", "remake_of")
        .prefetch_related("items", "events")
        .get(pk=case.pk)
    )
    side = policy.case_side(access, case)
    lab_side = side == "lab"
    if side == "imaging":
        # An imaging center needs the patient and its order (api/imaging_orders.py), not the lab's
        # prescription, notes or shipping address: minimum necessary.
        return {
            **_summary(case),
            **dict.fromkeys(("delivery", "ship_to", "notes", "tracking_number"), ""),
            **dict.fromkeys(("doctor", "received_at", "received_by", "completed_at"), None),
            **dict.fromkeys(("lab_access_until", "lab_access_revoked_at", "remake_of"), None),
            "items": [],
            "history": [],
            "missing": [],
            "next_statuses": [],
        }
    return {
        **_summary(case),
        "delivery": case.delivery,
        "ship_to": case.ship_to,
        "notes": case.notes,
        "tracking_number": case.tracking_number,
        "doctor": case.doctor.display_name if case.doctor else None,
        "received_at": case.received_at,
        "received_by": case.received_by.display_name if case.received_by else None,
        "completed_at": case.completed_at,
        "lab_access_until": case.lab_access_until,
        "lab_access_revoked_at": case.lab_access_revoked_at,
        "remake_of": case.remake_of.number if case.remake_of else None,
        "items": [
            {
                "tooth": item.tooth,
                "tooth_universal": teeth.to_universal(item.tooth) if item.tooth else None,
                "tooth_palmer": teeth.to_palmer(item.tooth) if item.tooth else None,
                "arch": item.arch,
                "restoration": item.restoration,
                "material": item.material,
                "shade": item.shade,
                "stump_shade": item.stump_shade,
            }
            for item in case.items.all()
        ],
        "history": [
            {"status": e.status, "actor": e.actor_label, "note": e.note, "at": e.at} for e in case.events.all()
        ],
        "missing": missing(case) if case.status == Status.DRAFT and not lab_side else [],
        "next_statuses": sorted(actions.LAB_TRANSITIONS.get(case.status, set())) if lab_side else [],
    }


def _attachments(case: Case) -> list[dict[str, Any]]:
    # Attachment.display_name numbers same-labelled files by re-reading the case's attachments;
    # done here in one pass instead of once per file.
    seen: dict[tuple[str, str], int] = {}
    ingests = {job.source_id: job for job in case.ingests.order_by("created_at")}  # the latest wins
    rows = []
    for a in case.attachments.select_related("stored_object", "added_by_org").order_by("kind", "added_at", "pk"):
        key = (a.kind, a.label)
        seen[key] = seen.get(key, 0) + 1
        stored = a.stored_object
        rows.append(
            {
                "file_id": str(stored.pk),
                "name": f"{case.number}_{a.label or a.kind}_{seen[key]}.{stored.extension}",
                "kind": a.kind,
                "label": a.label,
                "mime_type": stored.mime_type,
                "current_version": stored.current_version,
                "added_by_org": _org(a.added_by_org),
                "added_at": a.added_at,
                "ingest": _ingest(ingests.get(stored.pk)),
            }
        )
    return rows


def _ingest(job: IngestJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "state": job.state,
        "total": job.total,
        "processed": job.processed,
        "imported": job.imported,
        "duplicates": job.duplicates,
        "errors": len(job.errors),
    }


def _message(m: Any) -> dict[str, Any]:
    return {
        "id": m.pk,
        "author": m.author.display_name if m.author else "",
        "author_org": _org(m.author_org),
        "body": m.body,
        "is_question": m.is_question,
        "files": [str(a.stored_object_id) for a in m.attachments.all()],
        "created_at": m.created_at,
    }


# --- the list -----------------------------------------------------------------------------
def _encode_cursor(case: Case) -> str:
    raw = f"{case.created_at.isoformat()}|{case.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after_cursor(cases: QuerySet[Case], cursor: str) -> QuerySet[Case]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, pk = raw.partition("|")
        at = parse_datetime(stamp)
        if at is None or not pk:
            raise ValueError(cursor)
        key = uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HttpError(400, "The cursor is not one this API handed out; start from the first page.") from None
    return cases.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=key))


@router.get("/cases", response=CasePage, summary="List the cases your organization may see")
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> dict[str, Any]:
    if "q" in request.GET:
        # Silently ignoring it would list everything; honouring it would put a name in the URL.
        raise HttpError(400, "Search by name or number with POST /api/v1/cases/search (the term goes in the body).")
    access = caller_access(request)
    page = _case_page(access, filters, None, via="api.list")
    if page["next_cursor"]:
        params = {k: v for k, v in request.GET.items() if k != "cursor"}
        params["cursor"] = page["next_cursor"]
        page["next"] = request.build_absolute_uri(f"{request.path}?{urlencode(params)}")
    return page


@router.post("/cases/search", response=CasePage, summary="Search the cases your organization may see")
def search_cases(request: HttpRequest, body: CaseSearch) -> dict[str, Any]:
    """The same as GET /cases, with `q` (part of a case number or patient name). The next page is
    another POST with `next_cursor` as `cursor` and the same filters: nothing of the search goes
    into a URL."""
    return _case_page(caller_access(request), body, body.q, via="api.search")


def _case_page(access: OrgAccess, filters: CaseFilters, query: str | None, *, via: str) -> dict[str, Any]:
    cases = visible_cases(access).select_related("patient", "practice", "lab")
    if filters.status:
        cases = cases.filter(status=filters.status)
    if query:
        cases = cases.filter(case_search(query))
    if filters.due_before:
        cases = cases.filter(due_date__lt=filters.due_before)
    if filters.due_after:
        cases = cases.filter(due_date__gt=filters.due_after)
    if filters.cursor:
        cases = _after_cursor(cases, filters.cursor)
    page = list(cases.order_by("-created_at", "-pk")[: filters.limit + 1])
    shown, more = page[: filters.limit], len(page) > filters.limit
    # The page shows patient names: one event naming every patient on it (not one per case).
    record_patients_shown(
        actor=access.actor,
        organization=access.organization,
        cases=shown,
        via=via,
        searched=bool(query),
        status=str(filters.status) if filters.status else "",
    )
    return {
        "results": [_summary(c) for c in shown],
        "next": None,
        "next_cursor": _encode_cursor(shown[-1]) if more else None,
    }


# --- drafting -----------------------------------------------------------------------------
@router.post("/cases", response={201: CaseDetail}, summary="Create a draft case")
def create_case(request: HttpRequest, body: CaseCreate) -> Reply:
    access = caller_access(request, Perm.CASES_EDIT)
    case = actions.create_case(
        access,
        patient_name=body.patient.name,
        patient_dob=body.patient.date_of_birth,
        chart_number=body.patient.chart_number,
        case_type=body.case_type,
        lab=_connected_lab(access, body.lab),
        doctor=None,
        due_date=body.due_date,
        delivery=body.delivery,
        ship_to=body.ship_to,
        notes=body.notes,
        items=[i.as_action_input() for i in body.items],
    )
    return Reply(201, _detail(access, case))


@router.get("/cases/{number}", response=CaseDetail, summary="One case by its number")
def retrieve_case(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    _viewed(access, case, "api")
    return _detail(access, case)


@router.patch("/cases/{number}", response=CaseDetail, summary="Change a draft")
def update_case(request: HttpRequest, number: CaseNumber, body: CaseUpdate) -> dict[str, Any]:
    access, case = _case(request, number)
    sent = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {k: v for k, v in sent.items() if k not in ("lab", "items")}
    if "lab" in sent:
        changes["lab"] = _connected_lab(access, body.lab)
    if body.items is not None:
        changes["items"] = [i.as_action_input() for i in body.items]
    actions.update_draft(access, case, **changes)
    return _detail(access, case)


# --- the workflow -------------------------------------------------------------------------
@router.post("/cases/{number}/submit", response=CaseDetail, summary="Send a draft to its lab (practice)")
def submit_case(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.submit_case(access, case)
    return _detail(access, case)


@router.post("/cases/{number}/receive", response=CaseDetail, summary="Confirm receipt (lab)")
def receive_case(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.confirm_receipt(access, case)
    return _detail(access, case)


@router.post("/cases/{number}/status", response=CaseDetail, summary="Move the case through production (lab)")
def change_status(request: HttpRequest, number: CaseNumber, body: StatusChange) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.change_status(access, case, body.status, note=body.note, tracking_number=body.tracking_number)
    return _detail(access, case)


@router.post(
    "/cases/{number}/design-approval", response=CaseDetail, summary="Ask the practice to approve a design (lab)"
)
def request_design_approval(request: HttpRequest, number: CaseNumber, body: Note) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.request_design_approval(access, case, note=body.note)
    return _detail(access, case)


@router.post("/cases/{number}/design-decision", response=CaseDetail, summary="Approve or reject a design (practice)")
def decide_design(request: HttpRequest, number: CaseNumber, body: DesignDecision) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.decide_design(access, case, approve=body.approve, note=body.note)
    return _detail(access, case)


@router.post("/cases/{number}/hold", response=CaseDetail, summary="Put on hold with a question (lab)")
def hold_case(request: HttpRequest, number: CaseNumber, body: Question) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.put_on_hold(access, case, body.question)
    return _detail(access, case)


@router.post("/cases/{number}/answer", response=CaseDetail, summary="Answer the lab's question (practice)")
def answer_hold(request: HttpRequest, number: CaseNumber, body: Answer) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.answer_hold(access, case, body.answer)
    return _detail(access, case)


@router.post("/cases/{number}/complete", response=CaseDetail, summary="Complete a delivered case (lab)")
def complete_case(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.complete_case(access, case)
    return _detail(access, case)


@router.post("/cases/{number}/archive", response=CaseDetail, summary="Archive a closed case (practice)")
def archive_case(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.archive_case(access, case)
    return _detail(access, case)


@router.post(
    "/cases/{number}/cancel",
    response=CaseDetail,
    summary="Cancel a draft, or a case the lab has not yet received (practice); the lab's access ends",
)
def cancel_case(request: HttpRequest, number: CaseNumber, body: CancelIn) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.cancel_case(access, case, reason=body.reason)
    return _detail(access, case)


@router.post("/cases/{number}/revoke-lab-access", response=CaseDetail, summary="End the lab's access now (practice)")
def revoke_lab_access(request: HttpRequest, number: CaseNumber) -> dict[str, Any]:
    access, case = _case(request, number)
    actions.revoke_lab_access(access, case)
    return _detail(access, case)


@router.post("/cases/{number}/remake", response={201: CaseDetail}, summary="Start a remake (practice)")
def remake_case(request: HttpRequest, number: CaseNumber, body: RemakeIn) -> Reply:
    access, case = _case(request, number)
    remake = actions.create_remake(access, case, reason=body.reason)
    return Reply(201, _detail(access, remake))


# --- attachments and messages -------------------------------------------------------------
@router.get("/cases/{number}/attachments", response=list[AttachmentOut], summary="The case's files")
def list_attachments(request: HttpRequest, number: CaseNumber) -> list[dict[str, Any]]:
    access, case = _case(request, number)
    _viewed(access, case, "api.attachments")
    return _attachments(case)


@router.get(
    "/cases/{number}/files.zip",
    response={200: None},
    summary="Every current file of the case in one ZIP, streamed",
    openapi_extra={"responses": {"200": {"content": {"application/zip": {}}, "description": "The archive"}}},
)
def download_all(
    request: HttpRequest, number: CaseNumber, deidentified: bool = False, clean_pixel: bool = False
) -> HttpResponseBase:
    """The case's files as the lab needs them: each under its case name (CB-2026-000013_upper_1.stl),
    decrypted as the archive streams (nothing is written anywhere), by the transfer server when
    one runs (a 307 with a sealed single-use ticket, as single downloads). One audit event names
    every file in it and the patient, as single downloads do.

    `?deidentified=1`: the same files de-identified as they stream (DICOM by the Basic Profile of
    PS3.15 Annex E, photos and scans cleaned of metadata), files that cannot be de-identified
    left out and listed, and a report of what was removed in the ZIP (casebridge/deid/export.py).
    Always streamed from here: the transfer server cannot de-identify. With `&clean_pixel=1`
    (Clean Pixel Data), DICOM images of a device model your organization has a pixel mask for
    have its rectangles blanked (deid/pixels.py).

    An organization with De-identification on receipt gets the de-identified ZIP for the cases it
    received, whatever it asks for (the event says `on_receipt: true`)."""
    access, case = _case(request, number)
    entries = _readable_entries(access, case)
    on_receipt = policy.receives_deidentified(access.organization, case)
    if deidentified or on_receipt:
        work = deid_export.plan(entries, Options(), deid_export.case_secret(case))
        if clean_pixel:
            work.masks = masks_for_files(access.organization, [v.stored_object_id for _, v in entries])
        extra = {"on_receipt": True} if on_receipt else {}
        record_case_opened(access, case, "case.files_downloaded", **work.audit_details(), **extra)
        return deid_export.archive_response(work, f"{case.number}_deidentified.zip")
    record_case_opened(
        access,
        case,
        "case.files_downloaded",
        files=[str(v.stored_object_id) for _, v in entries],
        size=sum(v.size for _, v in entries),
    )
    return zipstream.archive_response(entries, f"{case.number}.zip")


def _readable_entries(access: OrgAccess, case: Case) -> list[tuple[str, ObjectVersion]]:
    """The case's current files the caller may read, under their case names."""
    # The same rule as one file's download (GET /api/v1/files/<id>/content): what the caller may read.
    readable = set(
        policy.readable_files(access.principal, access.organization)
        .filter(attachment__case=case)
        .values_list("pk", flat=True)
    )
    attachments = [
        a
        for a in case.attachments.select_related("stored_object", "case").order_by("kind", "added_at", "pk")
        if a.stored_object_id in readable
    ]
    entries = []
    for attachment in attachments:
        try:
            version = vault.get_version(attachment.stored_object)
        except vault.ObjectUnavailable:
            continue  # destroyed or shredded meanwhile: not in the archive
        entries.append((attachment.download_name(version.version), version))
    return entries


@router.post(
    "/cases/{number}/attachments", response={201: AttachmentOut}, summary="Attach a finished upload to the case"
)
def add_attachment(request: HttpRequest, number: CaseNumber, body: AttachmentIn) -> Reply:
    access, case = _case(request, number)
    own_uploads = policy.readable_files(access.principal, access.organization).filter(attached_at__isnull=True)
    stored = own_uploads.filter(pk=body.file_id).first()
    if stored is None:
        raise ValidationError({"file_id": ["No finished upload of yours has that id."]})
    attachment: Attachment = actions.attach_file(access, case, stored, kind=body.kind, label=body.label)
    return Reply(201, next(a for a in _attachments(case) if a["file_id"] == str(attachment.stored_object_id)))


@router.get("/cases/{number}/messages", response=list[MessageOut], summary="The conversation on the case")
def list_messages(request: HttpRequest, number: CaseNumber) -> list[dict[str, Any]]:
    access, case = _case(request, number)
    _viewed(access, case, "api.messages")
    rows = [_message(m) for m in case.messages.select_related("author", "author_org").prefetch_related("attachments")]
    if isinstance(access.actor, User):
        actions.mark_read(access.actor, case)
    return rows


@router.post("/cases/{number}/messages", response={201: MessageOut}, summary="Post a message")
def post_message(request: HttpRequest, number: CaseNumber, body: MessageIn) -> Reply:
    access, case = _case(request, number)
    wanted = {str(f) for f in body.files}
    chosen = [a for a in case.attachments.all() if str(a.stored_object_id) in wanted]
    if len(chosen) != len(wanted):
        raise ValidationError({"files": ["A message can only refer to files of this case."]})
    message = actions.post_message(access, case, body.body, question=body.question, attachments=chosen)
    return Reply(201, _message(message))


# --- external links (the practice shares chosen files with an outside recipient) ----------
class LinkIn(Schema):
    files: list[uuid.UUID] = Field(min_length=1, description="file ids of this case's attachments")
    recipient_email: Text254Min3
    purpose: Text500Min3
    expires_in_days: int = Field(7, ge=1, le=30)
    max_downloads: int = Field(5, ge=1, le=50)
    deidentified: bool = Field(True, description="the recipient gets de-identified copies (the default)")
    deid_options: list[str] = Field(
        default_factory=list,
        description="option keys kept beyond the Basic Profile (less strict: need a reason); "
        "clean_pixel (stricter, no reason): the practice's pixel masks blank burned-in text",
    )
    reason: str = Field("", max_length=500, description="why originals or more than the Basic Profile (audited)")


class LinkOut(Schema):
    id: uuid.UUID
    recipient_email: str
    created_at: datetime
    expires_at: datetime
    max_downloads: int
    downloads_used: int
    state: str = Field(description="active, or why the link no longer works")
    files: list[str]
    deidentified: bool
    deid_options: list[str]


def _link(link: Any) -> dict[str, Any]:
    from casebridge.sharing.actions import dead_reason, shared_files

    return {
        "id": link.pk,
        "recipient_email": link.recipient_email,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "downloads_used": link.downloads_used,
        "state": dead_reason(link) or "active",
        "files": [a.display_name for a in shared_files(link)],
        "deidentified": link.deidentify,
        "deid_options": list(link.deid_options),
    }


def _practice_case(request: HttpRequest, number: str) -> tuple[OrgAccess, Case]:
    access = caller_access(request, Perm.CASES_EDIT)
    case = case_for(access, number)
    policy.require_practice(access, case)
    return access, case


@router.get("/cases/{number}/links", response=list[LinkOut], summary="External links of the case (practice)")
def list_links(request: HttpRequest, number: CaseNumber) -> list[dict[str, Any]]:
    from casebridge.sharing.actions import links_of_case

    _access, case = _practice_case(request, number)
    return [_link(link) for link in links_of_case(case)]


@router.post(
    "/cases/{number}/links",
    response={201: LinkOut},
    summary="Share files with an outside recipient: the link and, separately, a one-time code are e-mailed",
)
def create_link(request: HttpRequest, number: CaseNumber, body: LinkIn) -> Reply:
    from casebridge.sharing.actions import create_link as share

    access, case = _practice_case(request, number)
    wanted = {str(f) for f in body.files}
    chosen = [a for a in case.attachments.all() if str(a.stored_object_id) in wanted]
    if len(chosen) != len(wanted):
        raise ValidationError({"files": ["Only files of this case can be shared."]})
    link = share(
        access,
        case,
        attachments=chosen,
        recipient_email=body.recipient_email,
        purpose=body.purpose,
        expires_in_days=body.expires_in_days,
        max_downloads=body.max_downloads,
        deidentify=body.deidentified,
        deid_options=body.deid_options,
        reason=body.reason,
    )
    return Reply(201, _link(link))


class PreviewQuery(Schema):
    files: list[uuid.UUID] = Field(default_factory=list, description="file ids; all the case's files without")
    deid_options: list[str] = Field(default_factory=list, description="option keys kept beyond the Basic Profile")


@router.get(
    "/cases/{number}/links/preview",
    response=dict[str, Any],
    summary="What de-identification removes from the chosen files, before sharing them (practice)",
)
def preview_link(request: HttpRequest, number: CaseNumber, query: Query[PreviewQuery]) -> dict[str, Any]:
    """The report a de-identified link's ZIP would carry (per file: what is removed, replaced or
    kept and why, or why it is left out); no value of the files. All the case's files without
    `files`. Audited as a look at the case's files."""
    access, case = _practice_case(request, number)
    wanted = {str(f) for f in query.files}
    chosen = [a for a in case.attachments.all() if not wanted or str(a.stored_object_id) in wanted]
    if wanted and len(chosen) != len(wanted):
        raise ValidationError({"files": ["Only files of this case can be shared."]})
    try:
        options = deid_export.options_from_names(query.deid_options)
    except ValueError as error:
        raise ValidationError({"deid_options": [str(error)]}) from None
    readable = {str(a.stored_object_id) for a in chosen}
    entries = [(name, v) for name, v in _readable_entries(access, case) if str(v.stored_object_id) in readable]
    report = deid_export.preview(deid_export.plan(entries, options, deid_export.case_secret(case)))
    record_case_opened(access, case, "case.deid_previewed", files=sorted(readable), options=report["options"])
    return report


@router.post("/cases/{number}/links/{link_id}/revoke", response=LinkOut, summary="Revoke an external link now")
def revoke_link(request: HttpRequest, number: CaseNumber, link_id: uuid.UUID) -> dict[str, Any]:
    from casebridge.sharing.actions import links_of_case
    from casebridge.sharing.actions import revoke_link as revoke

    access, case = _practice_case(request, number)
    link = links_of_case(case).filter(pk=link_id).first()
    if link is None:
        raise Http404("no such link")
    revoke(access, link)
    link.refresh_from_db()
    return _link(link)
