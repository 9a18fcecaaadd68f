"""Imaging orders over REST: a practice orders a study for a case from a connected imaging
center; the center lists its orders (its scanner software can poll them), confirms, adds the
study (uploads, or STOW-RS into the case at /dicomweb/cases/{number}/studies) and delivers.

Thin handlers, as in api/cases.py: the caller's access, the case through the policy (404 for
outsiders), one action from cases.imaging_orders."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema
from ninja import Status as Reply
from pydantic import StringConstraints

from casebridge.access.policy import OrgAccess, open_imaging_orders, visible_cases
from casebridge.api.cases import CaseNumber, OrgRef, _case, _org, caller_access
from casebridge.audit.exposure import record_case_opened, record_patients_shown
from casebridge.cases import imaging_orders
from casebridge.cases.models import ImagingModality, ImagingOrder, ImagingOrderStatus, ImagingRegion
from casebridge.orgs.models import Organization, OrgKind

router = Router(tags=["imaging orders"])

Text = Annotated[str, StringConstraints(max_length=imaging_orders.QUESTION_LIMIT)]


class PatientRef(Schema):
    ref: str
    name: str
    date_of_birth: Any = None


class ImagingOrderOut(Schema):
    id: uuid.UUID
    case: str
    practice: OrgRef
    center: OrgRef
    patient: PatientRef
    modality: ImagingModality
    region: ImagingRegion
    teeth: list[int]
    clinical_question: str
    status: ImagingOrderStatus
    created_at: datetime
    received_at: datetime | None
    delivered_at: datetime | None
    access_until: datetime | None
    access_revoked_at: datetime | None


class ImagingOrderIn(Schema):
    center: Annotated[str, StringConstraints(max_length=100)] = Field(
        description="The imaging center's CaseBridge ID (slug), as on its Connections page"
    )
    modality: ImagingModality
    region: ImagingRegion
    teeth: list[int] = Field(default_factory=list, max_length=32, description="FDI codes (localized studies)")
    clinical_question: Text


class ReasonIn(Schema):
    reason: Text


class OrderFilters(Schema):
    status: ImagingOrderStatus | None = None
    limit: int = Field(50, ge=1, le=100)


def _out(order: ImagingOrder) -> dict[str, Any]:
    case = order.case
    return {
        "id": order.pk,
        "case": case.number,
        "practice": _org(case.practice),
        "center": _org(order.center),
        "patient": {
            "ref": str(case.patient_id),
            "name": case.patient.name,
            "date_of_birth": case.patient.date_of_birth,
        },
        "modality": order.modality,
        "region": order.region,
        "teeth": [int(t) for t in order.teeth.split(",") if t],
        "clinical_question": order.clinical_question,
        "status": order.status,
        "created_at": order.created_at,
        "received_at": order.received_at,
        "delivered_at": order.delivered_at,
        "access_until": order.access_until,
        "access_revoked_at": order.access_revoked_at,
    }


def _order(access: OrgAccess, number: str, order_id: uuid.UUID) -> ImagingOrder:
    case = visible_cases(access).filter(number=number).first()
    order = None
    if case is not None:
        order = imaging_orders.orders_for(access, case).filter(pk=order_id).select_related("case__patient").first()
    if order is None:
        raise Http404("no such imaging order")
    return order


def _on_order(
    request: HttpRequest, number: str, order_id: uuid.UUID, act: Callable[[OrgAccess, ImagingOrder], None]
) -> dict[str, Any]:
    """One action on one order the caller sees (404 otherwise), answered with the order."""
    access = caller_access(request)
    order = _order(access, number, order_id)
    act(access, order)
    return _done(access, order, "api.imaging_order")


def _done(access: OrgAccess, order: ImagingOrder, via: str) -> dict[str, Any]:
    order.refresh_from_db()
    record_case_opened(access, order.case, via=via)
    return _out(order)


@router.get("/imaging-orders", response=list[ImagingOrderOut], summary="Your organization's imaging orders")
def list_orders(request: HttpRequest, filters: Query[OrderFilters]) -> list[dict[str, Any]]:
    """For an imaging center, the orders sent to it that it may still see (newest first); for a
    practice, the orders it sent. The patients shown are recorded in the audit log."""
    access = caller_access(request)
    org = access.organization
    if org.kind == OrgKind.IMAGING:
        orders = open_imaging_orders(org)
    else:
        orders = ImagingOrder.objects.filter(case__in=visible_cases(access).filter(practice=org))
    if filters.status:
        orders = orders.filter(status=filters.status)
    page = list(
        orders.select_related("case__patient", "case__practice", "center").order_by("-created_at")[: filters.limit]
    )
    record_patients_shown(actor=access.actor, organization=org, cases=[o.case for o in page], via="api.imaging_orders")
    return [_out(o) for o in page]


@router.get("/cases/{number}/imaging-orders", response=list[ImagingOrderOut], summary="The imaging orders of a case")
def case_orders(request: HttpRequest, number: CaseNumber) -> list[dict[str, Any]]:
    access, case = _case(request, number)
    record_case_opened(access, case, via="api.imaging_orders")
    return [_out(o) for o in imaging_orders.orders_for(access, case).select_related("case__patient", "case__practice")]


@router.post(
    "/cases/{number}/imaging-orders",
    response={201: ImagingOrderOut},
    summary="Order a study from a connected imaging center (practice)",
)
def create_order(request: HttpRequest, number: CaseNumber, body: ImagingOrderIn) -> Reply:
    access, case = _case(request, number)
    center = Organization.objects.filter(slug=body.center).first()
    order = imaging_orders.order_imaging(
        access,
        case,
        center=center,
        modality=body.modality,
        region=body.region,
        teeth_text=",".join(str(t) for t in body.teeth),
        clinical_question=body.clinical_question,
    )
    return Reply(201, _done(access, order, "api.imaging_order"))


@router.post(
    "/cases/{number}/imaging-orders/{order_id}/receive",
    response=ImagingOrderOut,
    summary="Confirm an imaging order (imaging center)",
)
def receive_order(request: HttpRequest, number: CaseNumber, order_id: uuid.UUID) -> dict[str, Any]:
    return _on_order(request, number, order_id, imaging_orders.receive_order)


@router.post(
    "/cases/{number}/imaging-orders/{order_id}/deliver",
    response=ImagingOrderOut,
    summary="Deliver the study added to the case (imaging center)",
)
def deliver_order(request: HttpRequest, number: CaseNumber, order_id: uuid.UUID) -> dict[str, Any]:
    return _on_order(request, number, order_id, imaging_orders.deliver_order)


@router.post(
    "/cases/{number}/imaging-orders/{order_id}/cancel",
    response=ImagingOrderOut,
    summary="Cancel an order not yet delivered (practice); the center's access ends",
)
def cancel_order(request: HttpRequest, number: CaseNumber, order_id: uuid.UUID, body: ReasonIn) -> dict[str, Any]:
    return _on_order(
        request, number, order_id, lambda access, order: imaging_orders.cancel_order(access, order, reason=body.reason)
    )


@router.post(
    "/cases/{number}/imaging-orders/{order_id}/revoke-access",
    response=ImagingOrderOut,
    summary="End the imaging center's access to the case now (practice)",
)
def revoke_access(request: HttpRequest, number: CaseNumber, order_id: uuid.UUID) -> dict[str, Any]:
    return _on_order(request, number, order_id, imaging_orders.revoke_center_access)
