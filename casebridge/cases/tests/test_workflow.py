"""The case workflow from draft to completion, and who may do what at each step."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.http import Http404
from django.utils import timezone

from casebridge.access.policy import OrgAccess, case_for, readable_files, resolve
from casebridge.access.principal import Principal
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.core.testing import Personas, add_member, make_user
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(personas: Personas, vault_home: Path) -> Personas:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug="precision-lab", basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    lab_access = resolve(personas.lab_manager, personas.lab)
    assert lab_access is not None
    org_actions.accept_connection(lab_access, connection)
    return personas


def _access(p: Personas, role: str = "clinician") -> OrgAccess:
    access = resolve(p.members[role], p.practice)
    assert access is not None
    return access


def _lab(p: Personas) -> OrgAccess:
    access = resolve(p.lab_manager, p.lab)
    assert access is not None
    return access


def _file(access: OrgAccess, size: int = 3000) -> StoredObject:
    content = binary_stl(size)
    return vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    ).stored_object


def _ready_crown(p: Personas) -> Case:
    access = _access(p)
    case = actions.create_case(
        access,
        patient_name="Jane Roe",
        case_type="digital_crown",
        lab=p.lab,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )
    for label in ("upper", "lower", "bite"):
        actions.attach_file(access, case, _file(access), kind="scan", label=label)
    for _ in range(2):
        actions.attach_file(access, case, _file(access), kind="photo", label="shade")
    return case


def test_case_numbers_carry_no_phi_and_count_up(world: Personas) -> None:
    first = _ready_crown(world)
    second = _ready_crown(world)
    year = timezone.now().year
    assert first.number == f"CB-{year}-000001" and second.number == f"CB-{year}-000002"


def test_submit_lists_what_is_missing(world: Personas) -> None:
    access = _access(world)
    case = actions.create_case(
        access,
        patient_name="Jane Roe",
        case_type="implant_crown",
        lab=world.lab,
        items=[ItemInput("implant_crown", tooth=36)],
    )
    with pytest.raises(ValidationError) as excinfo:
        actions.submit_case(access, case)
    text = " ".join(excinfo.value.messages)
    assert "CBCT" in text and "scan" in text and "due date" in text
    case.refresh_from_db()
    assert case.status == Status.DRAFT


def test_submission_needs_an_agreement_on_the_connection(personas: Personas, vault_home: Path) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(owner, other_slug="precision-lab", basis=AgreementBasis.NONE)
    org_actions.accept_connection(_lab(personas), connection)
    case = _ready_crown(personas)
    with pytest.raises(ValidationError, match="No agreement is recorded"):
        actions.submit_case(_access(personas), case)
    case.refresh_from_db()
    assert case.status == Status.DRAFT and not Event.objects.filter(action="case.submitted").exists()


def test_the_whole_story(world: Personas, django_capture_on_commit_callbacks) -> None:
    practice, lab = _access(world), _lab(world)
    case = _ready_crown(world)
    with django_capture_on_commit_callbacks(execute=True):
        actions.submit_case(practice, case)
    assert mail.outbox and "CB-" in mail.outbox[-1].subject
    assert all("Jane" not in m.subject and "Jane" not in m.body for m in mail.outbox)  # no PHI in e-mail
    seen = case_for(lab, case.number)
    actions.confirm_receipt(lab, seen)
    assert Event.objects.filter(action="case.received", patient_ref=str(case.patient_id)).exists()
    actions.put_on_hold(lab, seen, "Which shade: A2 or A3?")
    seen.refresh_from_db()
    assert seen.status == Status.ON_HOLD
    actions.answer_hold(practice, case_for(practice, case.number), "A2, please.")
    seen.refresh_from_db()
    assert seen.status == Status.RECEIVED
    actions.change_status(lab, seen, Status.IN_DESIGN)
    with pytest.raises(ValidationError, match="design file"):
        actions.request_design_approval(lab, seen)
    actions.attach_file(lab, seen, _file(lab), kind="design")
    actions.request_design_approval(lab, seen)
    actions.decide_design(practice, case_for(practice, case.number), approve=True)
    seen.refresh_from_db()
    for status in (Status.IN_PRODUCTION, Status.QUALITY_CHECK):
        actions.change_status(lab, seen, status)
    with pytest.raises(ValidationError, match="tracking"):
        actions.change_status(lab, seen, Status.SHIPPED)
    actions.change_status(lab, seen, Status.SHIPPED, tracking_number="1Z999")
    actions.change_status(lab, seen, Status.DELIVERED)
    actions.complete_case(lab, seen)
    seen.refresh_from_db()
    assert seen.lab_access_until is not None
    assert [e.status for e in seen.events.all()][:3] == ["draft", "submitted", "received"]
    # After the grace period the lab can no longer open the case or its files.
    Case.objects.filter(pk=case.pk).update(lab_access_until=timezone.now() - timedelta(seconds=1))
    with pytest.raises(Http404):
        case_for(lab, case.number)
    assert not readable_files(Principal(world.lab_manager)).filter(attachment__case=case).exists()
    assert readable_files(Principal(world.members["clinician"])).filter(attachment__case=case).count() == 6


def test_labs_never_see_drafts_or_other_labs_cases(world: Personas) -> None:
    case = _ready_crown(world)
    with pytest.raises(Http404):
        case_for(_lab(world), case.number)
    other_lab = world.other_practice  # any organization that is not the case's lab
    stranger = make_user("tech@elsewhere.test")
    add_member(other_lab, stranger, "technician")
    actions.submit_case(_access(world), case)
    access = resolve(stranger, other_lab)
    assert access is not None
    with pytest.raises(Http404):
        case_for(access, case.number)
    assert not readable_files(Principal(stranger)).filter(attachment__case=case).exists()


def test_the_practice_can_revoke_the_labs_access_at_any_time(world: Personas) -> None:
    case = _ready_crown(world)
    actions.submit_case(_access(world), case)
    actions.revoke_lab_access(_access(world), case)
    with pytest.raises(Http404):
        case_for(_lab(world), case.number)
    assert Event.objects.filter(action="case.lab_access_revoked").exists()


def test_roles_are_enforced(world: Personas) -> None:
    case = _ready_crown(world)
    auditor = resolve(world.members["auditor"], world.practice)
    assert auditor is not None
    with pytest.raises(Exception, match="role does not allow"):
        actions.submit_case(auditor, case)
    technician = make_user("tech@lab.test")
    add_member(world.lab, technician, "technician")
    actions.submit_case(_access(world), case)
    tech = resolve(technician, world.lab)
    assert tech is not None
    actions.confirm_receipt(tech, case_for(tech, case.number))
    with pytest.raises(ValidationError, match="can move to"):
        actions.change_status(tech, case_for(tech, case.number), Status.SHIPPED)


def test_a_file_can_be_attached_once_and_only_by_its_organization(world: Personas) -> None:
    case = _ready_crown(world)
    stored = _file(_access(world))
    actions.attach_file(_access(world), case, stored, kind="other")
    stored.refresh_from_db()
    with pytest.raises(ValidationError):
        actions.attach_file(_access(world), case, stored, kind="other")
    lab_file = _file(_lab(world))
    with pytest.raises(ValidationError):
        actions.attach_file(_access(world), case, lab_file, kind="other")


def test_attachment_names_are_neutral(world: Personas) -> None:
    case = _ready_crown(world)
    names = sorted(a.display_name for a in case.attachments.all())
    assert f"{case.number}_upper_1.stl" in names and f"{case.number}_shade_2.stl" in names
    assert all("Jane" not in n and "Roe" not in n for n in names)


def test_remakes_link_to_the_original(world: Personas) -> None:
    practice, lab = _access(world), _lab(world)
    case = _ready_crown(world)
    actions.submit_case(practice, case)
    seen = case_for(lab, case.number)
    actions.confirm_receipt(lab, seen)
    for status in (Status.IN_PRODUCTION, Status.QUALITY_CHECK):
        actions.change_status(lab, seen, status)
    actions.change_status(lab, seen, Status.SHIPPED, tracking_number="T1")
    actions.change_status(lab, seen, Status.DELIVERED)
    case.refresh_from_db()
    remake = actions.create_remake(practice, case, reason="open margin on the distal")
    assert remake.remake_of == case and remake.status == Status.DRAFT
    assert list(remake.items.values_list("tooth", flat=True)) == [36]
