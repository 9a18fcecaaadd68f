"""The printable lab slip: what it shows, what it leaves out, who may print it."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from casebridge.access.policy import resolve
from casebridge.access.roles import Role
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _file, _lab
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _sent_bridge(p: Personas) -> Case:
    access = _access(p)
    case = actions.create_case(
        access,
        patient_name="Jane Roe",
        patient_dob=date(1961, 4, 2),
        chart_number="CHART-7731",
        case_type="bridge",
        lab=p.lab,
        doctor=p.members["clinician"],
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St, Springfield",
        notes="Light occlusal contact, please.",
        items=[
            ItemInput("bridge_abutment", tooth=14, material="zirconia_full", shade="A2"),
            ItemInput("bridge_pontic", tooth=15, material="zirconia_full", shade="A2"),
            ItemInput("bridge_abutment", tooth=16, material="emax", shade="2M2", stump_shade="ND3"),
        ],
    )
    for label in ("upper", "lower", "bite"):
        actions.attach_file(access, case, _file(access), kind="scan", label=label)
    for _ in range(2):
        actions.attach_file(access, case, _file(access), kind="photo", label="shade")
    actions.submit_case(access, case)
    return case


def _url(p: Personas, case: Case, org_slug: str | None = None) -> str:
    return reverse("case_slip", args=[org_slug or p.practice.slug, case.number])


def _text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_it_prints_what_the_lab_needs_and_no_more(world: Personas) -> None:
    case = _sent_bridge(world)
    manager = world.lab_manager
    manager.tooth_notation = "universal"
    manager.save()
    response = signed_in_client(manager).get(_url(world, case, world.lab.slug))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{case.number}_slip.pdf"'
    assert response["Cache-Control"] == "no-store"
    content = response.content
    assert content.startswith(b"%PDF-")
    text = _text(content)
    assert case.number in text
    assert "Jane Roe" in text and "Smile Dental" in text and "1 Main St, Springfield" in text
    # Tooth 16 (FDI) is 3 in Universal, with its material and both shades.
    assert "16" in text and "Universal" in text and "Lithium disilicate (e.max)" in text
    assert "2M2" in text and "ND3" in text and "Zirconia, full-contour" in text and "A2" in text
    assert "Light occlusal contact" in text
    assert f"{case.number}_upper_1.stl" in text and f"{case.number}_shade_2.stl" in text
    # Minimum necessary: neither the date of birth nor the chart number, in the text or the bytes.
    for secret in ("1961", "04-02", "CHART-7731", "7731"):
        assert secret not in text
    assert b"Jane" not in PdfReader(io.BytesIO(content)).metadata.title.encode()
    assert Event.objects.filter(
        action="case.slip.printed", patient_ref=str(case.patient_id), organization_id=world.lab.pk
    ).exists()


def test_the_reader_sees_their_own_notation_beside_fdi(world: Personas) -> None:
    case = _sent_bridge(world)
    clinician = world.members["clinician"]
    clinician.tooth_notation = "palmer"
    clinician.save()
    text = _text(signed_in_client(clinician).get(_url(world, case)).content)
    assert "Tooth (Palmer)" in text and "UR6" in text and "Tooth (FDI)" in text


def test_it_answers_outsiders_with_404(world: Personas) -> None:
    case = _sent_bridge(world)
    response = signed_in_client(world.outsider).get(_url(world, case))
    assert response.status_code == 404
    # Their own organization's URL for someone else's case: the same answer.
    response = signed_in_client(world.outsider).get(_url(world, case, world.other_practice.slug))
    assert response.status_code == 404
    assert not Event.objects.filter(action="case.slip.printed").exists()


def test_it_refuses_members_without_case_access(world: Personas) -> None:
    case = _sent_bridge(world)
    response = signed_in_client(world.members[Role.AUDITOR]).get(_url(world, case))
    assert response.status_code == 403


def test_the_lab_cannot_print_after_its_access_window(world: Personas) -> None:
    case = _sent_bridge(world)
    Case.objects.filter(pk=case.pk).update(lab_access_until=timezone.now() - timedelta(seconds=1))
    response = signed_in_client(world.lab_manager).get(_url(world, case, world.lab.slug))
    assert response.status_code == 404
    assert _lab(world) is not None


def test_the_case_page_links_to_the_slip(world: Personas) -> None:
    case = _sent_bridge(world)
    page = signed_in_client(world.members["clinician"]).get(
        reverse("case_detail", args=[world.practice.slug, case.number])
    )
    assert _url(world, case).encode() in page.content


def test_names_outside_latin_1_still_print() -> None:
    from casebridge.cases.slip import _pdf_text

    assert _pdf_text("Zoë Dvořák 王") == "Zoë Dvorák ?"


# --- prescriber, license and electronic signature --------------------------------------------
def test_the_slip_carries_the_license_and_the_signature_recorded_at_sending(world: Personas) -> None:
    from casebridge.orgs import actions as org_actions

    owner = resolve(world.members["owner"], world.practice)
    assert owner is not None
    org_actions.update_profile(owner, address="100 Market Street\nSpringfield, IL 62701", phone="(217) 555-0142")
    case = _sent_bridge(world)
    case.refresh_from_db()
    assert case.signed_license == "IL-019-012345" and case.signed_at == case.submitted_at
    event = Event.objects.get(action="case.submitted", target_id=str(case.pk))
    assert event.details["signed_by"] == str(world.members["clinician"].pk)
    assert event.details["license"] == "IL-019-012345"

    text = _text(signed_in_client(world.lab_manager).get(_url(world, case, world.lab.slug)).content)
    name = world.members["clinician"].display_name
    assert f"Dr. {name}, license IL-019-012345" in text
    signed_on = f"{case.signed_at:%Y-%m-%d %H:%M} UTC"
    assert f"Electronically signed by Dr. {name}, license IL-019-012345, on {signed_on}" in " ".join(text.split())
    assert "100 Market Street" in text and "(217) 555-0142" in text


def test_a_later_license_change_does_not_rewrite_a_sent_prescription(world: Personas) -> None:
    from casebridge.orgs import actions as org_actions
    from casebridge.orgs.models import Membership

    case = _sent_bridge(world)
    owner = resolve(world.members["owner"], world.practice)
    assert owner is not None
    membership = Membership.objects.get(organization=world.practice, user=world.members["clinician"])
    org_actions.set_prescriber(owner, membership, license_number="999", license_state="CA")
    text = " ".join(_text(signed_in_client(world.lab_manager).get(_url(world, case, world.lab.slug)).content).split())
    assert "license IL-019-012345, on" in text and "CA-999" not in text


def test_a_draft_slip_says_it_is_not_signed_yet(world: Personas) -> None:
    access = _access(world)
    case = actions.create_case(
        access, patient_name="Jane Roe", case_type="digital_crown", doctor=world.members["clinician"]
    )
    text = " ".join(_text(signed_in_client(world.members["clinician"]).get(_url(world, case)).content).split())
    assert "Not signed: the case has not been sent" in text
    assert "Electronically signed" not in text
    # The doctor's current license is still shown beside their name.
    assert "license IL-019-012345" in text


def test_the_case_page_shows_the_prescriber_and_the_signature(world: Personas) -> None:
    case = _sent_bridge(world)
    case.refresh_from_db()
    page = signed_in_client(world.lab_manager).get(reverse("case_detail", args=[world.lab.slug, case.number]))
    text = page.content.decode()
    name = world.members["clinician"].display_name
    assert f"Prescribed by Dr. {name}, license IL-019-012345" in text
    assert f"Electronically signed by Dr. {name}, license IL-019-012345, on {case.signed_at:%Y-%m-%d %H:%M} UTC" in text
    assert "1 Main St, Springfield" in text  # where the lab ships the work


def test_a_draft_without_a_doctor_warns_that_it_will_go_unsigned(world: Personas) -> None:
    access = _access(world)
    unsigned = actions.create_case(access, patient_name="Jane Roe", case_type="digital_crown")
    signed = actions.create_case(
        access, patient_name="Jane Roe", case_type="digital_crown", doctor=world.members["clinician"]
    )
    client = signed_in_client(world.members["clinician"])
    page = client.get(reverse("case_detail", args=[world.practice.slug, unsigned.number])).content.decode()
    assert "No prescribing doctor is named:</strong> the lab slip will say the prescription is not signed." in page
    page = client.get(reverse("case_detail", args=[world.practice.slug, signed.number])).content.decode()
    assert 'id="unsigned-note"' not in page


def test_the_signature_says_who_sent_the_case_when_it_was_not_the_doctor(world: Personas) -> None:
    staff = _access(world, "staff")
    case = actions.create_case(
        staff,
        patient_name="Jane Roe",
        case_type="digital_crown",
        lab=world.lab,
        doctor=world.members["clinician"],
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )
    for label in ("upper", "lower", "bite"):
        actions.attach_file(staff, case, _file(staff), kind="scan", label=label)
    for _ in range(2):
        actions.attach_file(staff, case, _file(staff), kind="photo", label="shade")
    actions.submit_case(staff, case)
    text = " ".join(_text(signed_in_client(world.lab_manager).get(_url(world, case, world.lab.slug)).content).split())
    sender = world.members["staff"].display_name
    assert "Electronically signed by Dr. " in text and f"UTC (sent by {sender})" in text
    # When the doctor sends it themselves, nothing is added.
    own = _sent_bridge(world)
    text = " ".join(_text(signed_in_client(world.lab_manager).get(_url(world, own, world.lab.slug)).content).split())
    assert "(sent by" not in text
