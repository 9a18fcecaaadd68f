"""Imaging centers take part: a practice orders a CBCT for a case from a connected imaging
center; the center sees the case (patient and order, not the prescription) from the order until
delivery plus the grace period, adds the study and a report while it works on the order, and
delivers; the practice and its lab view the study. Same policy, audit and revocation rules as
a lab's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import Forbidden, OrgAccess, case_for, readable_files, resolve, visible_studies
from casebridge.access.principal import Principal
from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.cases import actions, imaging_orders
from casebridge.cases.models import AttachmentKind, Case, ImagingOrder, ImagingOrderStatus, Status
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas, add_member, make_org, make_user, signed_in_client
from casebridge.imaging.synthetic import cbct_series
from casebridge.imaging.tests.cases import attach, zipped
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Organization, OrgKind

pytestmark = pytest.mark.django_db

QUESTION = "Bone volume at 36 before an implant; the inferior alveolar canal."
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class Center:
    def __init__(self, org: Organization, radiographer: User, reader: User) -> None:
        self.org, self.radiographer, self.reader = org, radiographer, reader

    def access(self, who: str = "radiographer") -> OrgAccess:
        access = resolve(getattr(self, who), self.org)
        assert access is not None
        return access


def _connect(p: Personas, org: Organization, manager: User, basis: str = AgreementBasis.BAA) -> None:
    owner = resolve(p.members["owner"], p.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=org.slug, basis=basis, baa_signed_on=timezone.now().date()
    )
    other = resolve(manager, org)
    assert other is not None
    org_actions.accept_connection(other, connection)


@pytest.fixture
def center(personas: Personas, vault_home: Path) -> Center:
    """A connected imaging center under a BAA (a radiographer and a read-only viewer), and the
    practice's lab connected too."""
    org = make_org("Clear Imaging", OrgKind.IMAGING, slug="clear-imaging")
    owner = make_user("owner@clear.test")
    add_member(org, owner, "owner")
    radiographer = make_user("radiographer@clear.test")  # a technologist: staff
    add_member(org, radiographer, "staff")
    reader = make_user("reader@clear.test")
    add_member(org, reader, "auditor")
    _connect(personas, org, owner)
    _connect(personas, personas.lab, personas.lab_manager)
    return Center(org, radiographer, reader)


def _order(p: Personas, center: Center, case: Case | None = None, **fields: Any) -> ImagingOrder:
    case = case or _ready_crown(p)
    values: dict[str, Any] = {"modality": "cbct", "region": "localized", "teeth_text": "36, 37"}
    values.update(fields)
    return imaging_orders.order_imaging(_access(p), case, center=center.org, clinical_question=QUESTION, **values)


def _study(center: Center, case: Case, slices: int = 4) -> None:
    series = cbct_series("order", slices=slices, size=16)
    attach(center.access(), case, zipped({f"s{i}.dcm": s for i, s in enumerate(series)}), AttachmentKind.CBCT)


def test_an_order_opens_the_case_to_the_center_and_tells_it(
    personas: Personas, center: Center, django_capture_on_commit_callbacks: Any
) -> None:
    case = _ready_crown(personas)
    assert not case_for_center(center, case)
    with django_capture_on_commit_callbacks(execute=True):
        order = _order(personas, center, case)
    assert order.status == ImagingOrderStatus.SENT and order.teeth == "36,37"
    assert case_for_center(center, case)
    event = Event.objects.get(action="case.imaging.ordered")
    assert event.details == {
        "case": case.number,
        "order": str(order.pk),
        "center": str(center.org.pk),
        "modality": "cbct",
    }
    assert QUESTION not in str(event.details)  # free text stays in the order, not in the log
    [message] = [m for m in mail.outbox if center.radiographer.email in m.to]
    assert case.number in message.body and "Jane" not in message.body + message.subject
    # The draft stays the practice's: its lab (named, not yet sent) sees nothing yet.
    assert not actions.visible_cases(_lab(personas)).filter(pk=case.pk).exists()


def case_for_center(center: Center, case: Case) -> bool:
    return actions.visible_cases(center.access()).filter(pk=case.pk).exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"modality": "mri"}, "modality"),
        ({"region": "elbow"}, "region"),
        ({"teeth_text": ""}, "teeth"),  # a localized study names its teeth
        ({"teeth_text": "36, 99"}, "teeth"),
        ({"clinical_question": "  "}, "clinical_question"),
        ({"clinical_question": "x" * 2001}, "clinical_question"),
    ],
)
def test_a_bad_order_is_refused_field_by_field_and_nothing_changes(
    personas: Personas, center: Center, fields: dict[str, str], field: str
) -> None:
    case = _ready_crown(personas)
    values: dict[str, Any] = {
        "modality": "cbct",
        "region": "localized",
        "teeth_text": "36",
        "clinical_question": QUESTION,
    }
    values.update(fields)
    with pytest.raises(ValidationError) as refused:
        imaging_orders.order_imaging(_access(personas), case, center=center.org, **values)
    assert field in refused.value.message_dict
    assert not ImagingOrder.objects.exists() and not case_for_center(center, case)


def test_only_a_connected_center_with_an_agreement_can_receive_an_order(personas: Personas, center: Center) -> None:
    stranger = make_org("Far Imaging", OrgKind.IMAGING, slug="far-imaging")
    unconnected_manager = make_user("m@far.test")
    add_member(stranger, unconnected_manager, "owner")
    case = _ready_crown(personas)
    for org in (stranger, personas.lab, None):
        with pytest.raises(ValidationError) as refused:
            imaging_orders.order_imaging(
                _access(personas), case, center=org, modality="cbct", region="mandible", clinical_question=QUESTION
            )
        assert "center" in refused.value.message_dict
    nobaa = make_org("Quick Scan", OrgKind.IMAGING, slug="quick-scan")
    manager = make_user("m@quick.test")
    add_member(nobaa, manager, "owner")
    _connect(personas, nobaa, manager, basis=AgreementBasis.NONE)
    with pytest.raises(ValidationError, match="No agreement is recorded"):
        imaging_orders.order_imaging(
            _access(personas), case, center=nobaa, modality="cbct", region="mandible", clinical_question=QUESTION
        )
    assert not ImagingOrder.objects.exists()


def test_only_the_practice_orders(personas: Personas, center: Center) -> None:
    case = _ready_crown(personas)
    actions.submit_case(_access(personas), case)
    with pytest.raises(Forbidden):
        imaging_orders.order_imaging(
            _lab(personas), case, center=center.org, modality="cbct", region="mandible", clinical_question=QUESTION
        )
    with pytest.raises(Forbidden):  # read-only role of the practice
        imaging_orders.order_imaging(
            _access(personas, "auditor"),
            case,
            center=center.org,
            modality="cbct",
            region="mandible",
            clinical_question=QUESTION,
        )


def test_the_center_confirms_uploads_the_study_and_a_report_and_delivers(
    personas: Personas, center: Center, django_capture_on_commit_callbacks: Any
) -> None:
    order = _order(personas, center)
    case = order.case
    # Before it confirms, the center adds nothing.
    with pytest.raises(ValidationError, match="from receipt until the images are delivered"):
        actions.require_attach(center.access(), case)
    with pytest.raises(ValidationError, match="Add the study"):
        imaging_orders.receive_order(center.access(), order)
        imaging_orders.deliver_order(center.access(), order)
    order.refresh_from_db()
    assert order.status == ImagingOrderStatus.RECEIVED
    _study(center, case)
    attach(center.access(), case, PDF, AttachmentKind.REPORT, "other")
    # The center adds studies and reports, never designs or prescriptions.
    with pytest.raises(ValidationError, match="Designs are added by the lab"):
        attach(center.access(), case, PDF, AttachmentKind.DESIGN)
    with pytest.raises(ValidationError, match="imaging center"):
        attach(_access(personas), case, PDF, AttachmentKind.REPORT)
    with django_capture_on_commit_callbacks(execute=True):
        imaging_orders.deliver_order(center.access(), order)
    order.refresh_from_db()
    assert order.status == ImagingOrderStatus.DELIVERED
    grace = timedelta(days=personas.practice.lab_access_grace_days)
    assert order.access_until is not None and abs(order.access_until - (timezone.now() + grace)) < timedelta(minutes=1)
    delivered = Event.objects.get(action="case.imaging.delivered")
    assert len(delivered.details["files"]) == 2
    assert any(personas.members["clinician"].email in m.to for m in mail.outbox if "delivered" in m.body)
    # Delivered: the center adds nothing more and cannot deliver twice.
    with pytest.raises(ValidationError):
        actions.require_attach(center.access(), case)
    with pytest.raises(ValidationError):
        imaging_orders.deliver_order(center.access(), order)


def test_the_practice_and_then_its_lab_view_the_study_the_center_added(
    personas: Personas, center: Center, django_capture_on_commit_callbacks: Any
) -> None:
    order = _order(personas, center)
    imaging_orders.receive_order(center.access(), order)
    case = order.case
    with django_capture_on_commit_callbacks(execute=True):  # the background ingest, inline here
        _study(center, case)
    imaging_orders.deliver_order(center.access(), order)
    practice = Principal(personas.members["staff"])
    lab = Principal(personas.lab_manager)
    assert visible_studies(practice).filter(case=case).count() == 1
    assert not visible_studies(lab).filter(case=case).exists()  # not sent to the lab yet
    actions.submit_case(_access(personas), case)
    assert visible_studies(lab).filter(case=case).count() == 1
    study_file = case.attachments.get(kind=AttachmentKind.CBCT).stored_object
    assert readable_files(lab).filter(pk=study_file.pk).exists()
    # The lab does not learn of the order itself.
    assert not imaging_orders.orders_for(_lab(personas), case).exists()


def test_the_center_sees_the_patient_and_its_order_never_the_prescription_or_the_slip(
    personas: Personas, center: Center
) -> None:
    order = _order(personas, center)
    client = signed_in_client(center.radiographer)
    page = client.get(reverse("case_detail", args=[center.org.slug, order.case.number]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Jane Roe" in body and QUESTION.replace("; ", ";") in body.replace("; ", ";")
    assert "Confirm order" in body
    assert "Prescription" not in body and "1 Main St" not in body and "Print lab slip" not in body
    slip = client.get(reverse("case_slip", args=[center.org.slug, order.case.number]))
    assert slip.status_code == 404


def test_the_center_works_the_order_from_the_case_page(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    client = signed_in_client(center.radiographer)
    url = reverse("case_action", args=[center.org.slug, order.case.number])
    client.post(url, {"operation": "imaging_receive", "order": str(order.pk)})
    order.refresh_from_db()
    assert order.status == ImagingOrderStatus.RECEIVED
    page = client.get(reverse("case_detail", args=[center.org.slug, order.case.number])).content.decode()
    assert "Deliver to the practice" in page and f"/dicomweb/cases/{order.case.number}/studies" in page
    assert 'id="upload' in page or "uppy" in page  # the drop zone is offered while it works on the order
    # A read-only member of the center sees the case but cannot act on the order.
    reader = signed_in_client(center.reader)
    assert reader.post(url, {"operation": "imaging_deliver", "order": str(order.pk)}).status_code == 403


def test_the_practice_orders_from_the_case_page_with_errors_beside_their_fields(
    personas: Personas, center: Center
) -> None:
    case = _ready_crown(personas)
    client = signed_in_client(personas.members["clinician"])
    page = client.get(reverse("case_detail", args=[personas.practice.slug, case.number])).content.decode()
    assert "Order a CBCT or X-ray" in page and "Clear Imaging" in page
    url = reverse("case_imaging_order", args=[personas.practice.slug, case.number])
    incomplete = {"imaging-center": "clear-imaging", "imaging-modality": "cbct", "imaging-region": "localized"}
    refused = client.post(url, incomplete)
    assert refused.status_code == 400
    body = refused.content.decode()
    assert 'id="id_imaging-clinical_question_errors"' in body and "aria-describedby" in body
    # The form is whole; the action's own checks answer beside their field too.
    no_teeth = client.post(url, {**incomplete, "imaging-clinical_question": QUESTION})
    assert no_teeth.status_code == 400 and 'id="id_imaging-teeth_errors"' in no_teeth.content.decode()
    assert not ImagingOrder.objects.exists()
    sent = client.post(
        url,
        {
            "imaging-center": "clear-imaging",
            "imaging-modality": "panoramic",
            "imaging-region": "both_arches",
            "imaging-clinical_question": QUESTION,
        },
    )
    assert sent.status_code == 302
    assert ImagingOrder.objects.get().modality == "panoramic"


def test_another_organization_cannot_order_or_touch_an_order(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    outsider = signed_in_client(personas.outsider)
    slug = personas.other_practice.slug
    assert outsider.post(reverse("case_imaging_order", args=[slug, order.case.number]), {}).status_code == 404
    response = outsider.post(
        reverse("case_action", args=[slug, order.case.number]), {"operation": "imaging_cancel", "order": str(order.pk)}
    )
    assert response.status_code == 404
    # A second center never sees another center's order, nor the case.
    other = make_org("Other Imaging", OrgKind.IMAGING, slug="other-imaging")
    manager = make_user("m@other-imaging.test")
    add_member(other, manager, "owner")
    _connect(personas, other, manager)
    other_access = resolve(manager, other)
    assert other_access is not None
    with pytest.raises(Http404):
        case_for(other_access, order.case.number)
    order.refresh_from_db()
    assert order.status == ImagingOrderStatus.SENT


def test_cancelling_or_revoking_ends_the_centers_access_at_once(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    imaging_orders.receive_order(center.access(), order)
    with pytest.raises(ValidationError, match="Say why"):
        imaging_orders.cancel_order(_access(personas), order, reason=" ")
    imaging_orders.cancel_order(_access(personas), order, reason="Patient had a CBCT elsewhere.")
    assert not case_for_center(center, order.case)
    with pytest.raises(ValidationError):
        imaging_orders.receive_order(center.access(), order)
    assert Event.objects.filter(action="case.imaging.cancelled").count() == 1

    second = _order(personas, center)
    imaging_orders.receive_order(center.access(), second)
    _study(center, second.case)
    imaging_orders.deliver_order(center.access(), second)
    assert case_for_center(center, second.case)  # the grace period after delivery
    imaging_orders.revoke_center_access(_access(personas), second)
    assert not case_for_center(center, second.case)
    assert not readable_files(Principal(center.radiographer)).exists()
    assert not visible_studies(Principal(center.radiographer)).exists()


def test_the_grace_period_after_delivery_ends_the_centers_access(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    imaging_orders.receive_order(center.access(), order)
    _study(center, order.case)
    imaging_orders.deliver_order(center.access(), order)
    ImagingOrder.objects.filter(pk=order.pk).update(access_until=timezone.now() - timedelta(seconds=1))
    assert not case_for_center(center, order.case)


def test_a_deactivated_member_of_the_center_sees_nothing(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    membership = center.org.memberships.get(user=center.radiographer)
    membership.is_active = False
    membership.save()
    assert resolve(center.radiographer, center.org) is None
    client = signed_in_client(center.radiographer)
    assert client.get(reverse("case_detail", args=[center.org.slug, order.case.number])).status_code == 404


def test_messages_between_the_center_and_the_practice_name_the_sender(
    personas: Personas, center: Center, django_capture_on_commit_callbacks: Any
) -> None:
    order = _order(personas, center)
    with django_capture_on_commit_callbacks(execute=True):
        actions.post_message(center.access(), order.case, "Is a 5x5 cm field of view enough?", question=True)
    [to_practice] = [m for m in mail.outbox if personas.members["clinician"].email in m.to]
    assert "Clear Imaging" in to_practice.body and "5x5" not in to_practice.body
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        actions.post_message(_access(personas), order.case, "Yes, the lower left molars only.")
    assert any(center.radiographer.email in m.to for m in mail.outbox)
    with pytest.raises(Forbidden):  # a read-only member of the center
        actions.post_message(center.access("reader"), order.case, "hello")


def test_an_imaging_order_fills_the_cbct_the_surgical_guide_needs(personas: Personas, center: Center) -> None:
    case = actions.create_case(
        _access(personas),
        patient_name="Sam Poe",
        case_type="surgical_guide",
        lab=personas.lab,
        due_date=timezone.now().date() + timedelta(days=9),
        ship_to="1 Main St",
        items=[actions.ItemInput("surgical_guide", arch="lower")],
    )
    assert any("CBCT" in problem for problem in actions.submission_problems(case))
    order = _order(personas, center, case, region="mandible", teeth_text="")
    imaging_orders.receive_order(center.access(), order)
    _study(center, case)
    imaging_orders.deliver_order(center.access(), order)
    assert not any("CBCT" in problem for problem in actions.submission_problems(case))
    assert case.status == Status.DRAFT


def test_the_center_lists_its_cases_on_the_case_list(personas: Personas, center: Center) -> None:
    order = _order(personas, center)
    client = signed_in_client(center.radiographer)
    page = client.get(reverse("case_list", args=[center.org.slug]) + "?view=all")
    body = page.content.decode()
    assert order.case.number in body and "Sent to the imaging center" in body and "Smile Dental" in body
    waiting = client.get(reverse("case_list", args=[center.org.slug]) + "?view=waiting")
    assert order.case.number in waiting.content.decode()  # a new order waits on the center
    home = client.get(reverse("org_home", args=[center.org.slug]))
    assert home.status_code == 200 and order.case.number in home.content.decode()
    files = client.get(reverse("files", args=[center.org.slug]))
    assert files.status_code == 200


def test_no_order_for_a_patient_who_restricted_sharing(personas: Personas, center: Center) -> None:
    """An imaging order sends the patient's data to the center: a restriction agreed with the
    patient (compliance/subject_requests.py) refuses it through the policy, with the reason."""
    from casebridge.compliance import subject_requests
    from casebridge.compliance.models import RequestKind

    case = _ready_crown(personas)
    officer = resolve(personas.members["compliance_officer"], personas.practice)
    assert officer is not None
    made = subject_requests.register(
        officer, patient=case.patient, kind=RequestKind.RESTRICTION, received_on=timezone.localdate(), under_gdpr=False
    )
    subject_requests.restrict(officer, made, "No sharing outside the practice.")
    with pytest.raises(Forbidden, match="restrict the sharing"):
        _order(personas, center, case)
    assert not ImagingOrder.objects.exists()
    subject_requests.lift(officer, made, "The patient consents to the scan.")
    assert _order(personas, center, case).status == ImagingOrderStatus.SENT
