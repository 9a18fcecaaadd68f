"""Imaging orders: a practice refers the patient of a case to a connected imaging center for a
CBCT, panoramic, cephalometric or full-mouth study; the center confirms, adds the study (upload,
a dropped folder or STOW-RS from its scanner's software) and optionally its radiology report to
the case, and delivers. The practice, and the lab it sends the case to, view the study like any
file of the case.

Every change happens here, in one transaction with its audit event, whichever door it came
through (web page, REST API). The center's access follows the lab's rules (access.policy
.open_imaging_orders): from the order until the practice cancels or revokes it, or the practice's
grace period after delivery ends. Notifications carry the case number only."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from casebridge.access.policy import (
    OrgAccess,
    case_side,
    organization_connection,
    require_practice,
    require_sharing,
)
from casebridge.access.roles import Perm
from casebridge.accounts.models import NotifyTopic, User
from casebridge.cases import teeth
from casebridge.cases.actions import CLOSED, _audit, _history, _notify
from casebridge.cases.models import (
    AttachmentKind,
    Case,
    ImagingModality,
    ImagingOrder,
    ImagingOrderStatus,
    ImagingRegion,
)
from casebridge.cases.queries import connected
from casebridge.orgs.models import ConnectionStatus, Organization, OrgKind

QUESTION_LIMIT = 2000
# What the center delivers: at least one of these, added by the center, on the case.
RESULT_KINDS = (AttachmentKind.CBCT, AttachmentKind.REPORT, AttachmentKind.PHOTO)


def imaging_centers(practice: Organization) -> list[tuple[Organization, bool]]:
    """The imaging centers a practice is connected with, each with whether the connection may
    carry patient data (an agreement is recorded): the choices of the order form."""
    return [(choice.lab, choice.can_receive) for choice in connected(practice, OrgKind.IMAGING)]


def _parse_teeth(text: str) -> str:
    codes: list[int] = []
    for part in text.replace(";", ",").replace(" ", ",").split(","):
        if not part:
            continue
        try:
            codes.append(teeth.check(int(part)))
        except (ValueError, teeth.ToothError):
            message = f"{part!s:.10} is not a tooth: use FDI codes 11-48 (primary 51-85)."
            raise ValidationError({"teeth": message}) from None
    return ",".join(str(c) for c in sorted(set(codes)))


def order_imaging(
    access: OrgAccess,
    case: Case,
    *,
    center: Organization | None,
    modality: str,
    region: str,
    clinical_question: str,
    teeth_text: str = "",
) -> ImagingOrder:
    """The practice that owns ``case`` orders a study from a connected imaging center. Every
    field is checked before anything is written, so the form shows all problems at once."""
    require_sharing(access, case)
    if case.status in CLOSED or case.archived_at:
        raise ValidationError("Imaging is ordered for an open case; this one is closed.")
    errors: dict[str, str] = {}
    if center is None or center.kind != OrgKind.IMAGING:
        errors["center"] = "Choose one of your connected imaging centers."
    else:
        connection = organization_connection(access.organization, center)
        if connection is None or connection.status != ConnectionStatus.ACTIVE:
            errors["center"] = f"You are not connected with {center.name}. Connect first on the Connections page."
        elif not connection.can_carry_phi:
            errors["center"] = connection.phi_refusal(center.name)
    if modality not in ImagingModality.values:
        errors["modality"] = "Choose the study: CBCT, panoramic, cephalometric or a full-mouth series."
    if region not in ImagingRegion.values:
        errors["region"] = "Choose the region to image."
    question = clinical_question.strip()
    if not question:
        errors["clinical_question"] = "Write the clinical question: what the study should answer."
    elif len(question) > QUESTION_LIMIT:
        errors["clinical_question"] = f"Keep the clinical question under {QUESTION_LIMIT:,} characters."
    codes = ""
    try:
        codes = _parse_teeth(teeth_text)
    except ValidationError as exc:
        errors.update({k: v[0] for k, v in exc.message_dict.items()})
    if region == ImagingRegion.LOCALIZED and not codes and "teeth" not in errors:
        errors["teeth"] = "Name the teeth of a localized study (FDI codes, e.g. 36, 37)."
    if errors:
        raise ValidationError(errors)
    assert center is not None
    with transaction.atomic():
        order = ImagingOrder.objects.create(
            case=case,
            center=center,
            modality=modality,
            region=region,
            teeth=codes,
            clinical_question=question,
            ordered_by=access.actor if isinstance(access.actor, User) else None,
        )
        _history(case, access, note=f"{order.get_modality_display()} ordered from {center.name}")
        # The question is free text that may name the patient: it stays in the order, not in the log.
        _audit("case.imaging.ordered", access, case, order=str(order.pk), center=str(center.pk), modality=modality)
        _notify(case, center, "New imaging order", NotifyTopic.NEW_CASE, sender=case.practice)
    return order


def orders_for(access: OrgAccess, case: Case) -> QuerySet[ImagingOrder]:
    """The orders of ``case`` that ``access`` sees: all of them for the practice, its own for an
    imaging center (a center never learns of another center's order), none for the lab."""
    orders = case.imaging_orders.select_related("center", "ordered_by", "received_by")
    side = case_side(access, case)
    if side == "practice":
        return orders
    if side == "imaging":
        return orders.filter(center=access.organization)
    return orders.none()


def _locked(order: ImagingOrder) -> ImagingOrder:
    return ImagingOrder.objects.select_for_update().select_related("case", "center").get(pk=order.pk)


def _require_center(access: OrgAccess, order: ImagingOrder) -> None:
    # An imaging center's people hold a practice's roles (orgs/kinds.py): its clinicians and
    # staff work its orders with the case-editing permission.
    access.require(Perm.CASES_EDIT)
    if order.center_id != access.organization.pk or order.access_revoked_at is not None:
        raise ValidationError("Only the imaging center the order was sent to can do this.")


def receive_order(access: OrgAccess, order: ImagingOrder) -> None:
    """The center confirms it has the order: from now on it adds the study to the case."""
    _require_center(access, order)
    with transaction.atomic():
        order = _locked(order)  # the practice may cancel at this very moment: whoever locks first wins
        if order.status != ImagingOrderStatus.SENT:
            raise ValidationError("Only a newly sent order can be confirmed.")
        order.status = ImagingOrderStatus.RECEIVED
        order.received_at = timezone.now()
        order.received_by = access.actor if isinstance(access.actor, User) else None
        order.save(update_fields=["status", "received_at", "received_by"])
        _audit("case.imaging.received", access, order.case, order=str(order.pk))
        _notify(
            order.case,
            order.case.practice,
            "The imaging center confirmed the order",
            NotifyTopic.STATUS,
            sender=order.center,
        )


def deliver_order(access: OrgAccess, order: ImagingOrder) -> None:
    """The center delivers: the study (and report) it added are the practice's to view. The
    center keeps access for the practice's grace period, then loses it, as a lab does."""
    _require_center(access, order)
    with transaction.atomic():
        order = _locked(order)
        if order.status != ImagingOrderStatus.RECEIVED:
            raise ValidationError("An order is delivered after receipt, once.")
        results = order.case.attachments.filter(added_by_org=order.center, kind__in=RESULT_KINDS)
        if not results.exists():
            raise ValidationError("Add the study (or its report) to the case before delivering.")
        now = timezone.now()
        order.status = ImagingOrderStatus.DELIVERED
        order.delivered_at = now
        order.access_until = now + timedelta(days=order.case.practice.lab_access_grace_days)
        order.save(update_fields=["status", "delivered_at", "access_until"])
        _history(order.case, access, note=f"{order.get_modality_display()} delivered by {order.center.name}")
        _audit(
            "case.imaging.delivered",
            access,
            order.case,
            order=str(order.pk),
            files=[str(pk) for pk in results.values_list("stored_object_id", flat=True)],
            access_until=order.access_until.isoformat(),
        )
        _notify(order.case, order.case.practice, "Imaging results delivered", NotifyTopic.STATUS, sender=order.center)


def cancel_order(access: OrgAccess, order: ImagingOrder, *, reason: str) -> None:
    """The practice withdraws an order the center has not delivered: the center's access ends at
    once, and its members who follow status changes are told (case number only)."""
    require_practice(access, order.case)
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the order is cancelled; the reason is kept in the case history.")
    if len(reason) > QUESTION_LIMIT:
        raise ValidationError(f"Keep the reason under {QUESTION_LIMIT:,} characters.")
    with transaction.atomic():
        order = _locked(order)
        if order.status not in (ImagingOrderStatus.SENT, ImagingOrderStatus.RECEIVED):
            raise ValidationError("Only an order that was not yet delivered can be cancelled.")
        previous = order.status
        order.status = ImagingOrderStatus.CANCELLED
        order.access_revoked_at = timezone.now()
        order.save(update_fields=["status", "access_revoked_at"])
        _history(order.case, access, note=f"Imaging order cancelled: {reason}")
        _audit("case.imaging.cancelled", access, order.case, order=str(order.pk), previous_status=previous)
        _notify(
            order.case,
            order.center,
            "The practice cancelled an imaging order",
            NotifyTopic.STATUS,
            template="case_event",
        )


def revoke_center_access(access: OrgAccess, order: ImagingOrder) -> None:
    """The practice ends the center's access to the case now (before the grace period ends)."""
    require_practice(access, order.case)
    with transaction.atomic():
        order = _locked(order)
        if order.access_revoked_at is not None:
            raise ValidationError("The imaging center's access already ended.")
        order.access_revoked_at = timezone.now()
        order.save(update_fields=["access_revoked_at"])
        _audit("case.imaging.access_revoked", access, order.case, order=str(order.pk), center=str(order.center_id))
