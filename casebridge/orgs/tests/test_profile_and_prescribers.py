"""A practice's profile (address, phone) and its prescribers: who may change them, what is
refused, what is audited, and what they change on a new case."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.access.roles import Role
from casebridge.audit.models import Event
from casebridge.cases import actions as case_actions
from casebridge.cases.queries import prescribers
from casebridge.cases.tests import test_workflow
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client
from casebridge.orgs import actions
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: the practice connected to its lab under a BAA

ADDRESS = "100 Market Street, Suite 2\nSpringfield, IL 62701"


def _as(p: Personas, role: str) -> OrgAccess:
    access = resolve(p.members[role], p.practice)
    assert access is not None
    return access


def _membership(p: Personas, role: str) -> Membership:
    return Membership.objects.get(organization=p.practice, user=p.members[role])


# --- profile ----------------------------------------------------------------------------------
def test_an_owner_sets_the_address_and_phone_on_the_settings_page(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    url = reverse("org_settings", args=[personas.practice.slug])
    response = client.post(url, {"section": "profile", "address": f"  {ADDRESS}\n\n", "phone": "(217) 555-0142"})
    assert response.status_code == 302
    personas.practice.refresh_from_db()
    assert personas.practice.address == ADDRESS and personas.practice.phone == "(217) 555-0142"
    event = Event.objects.get(action="org.profile.changed")
    assert event.details == {"address": ["", ADDRESS], "phone": ["", "(217) 555-0142"]}
    page = client.get(url).content.decode()
    assert "Springfield, IL 62701" in page and 'value="(217) 555-0142"' in page


def test_a_bad_phone_is_shown_next_to_the_field_and_changes_nothing(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    url = reverse("org_settings", args=[personas.practice.slug])
    response = client.post(url, {"section": "profile", "address": ADDRESS, "phone": "call me maybe"})
    assert response.status_code == 400
    assert "Enter a phone number of 7 to 15 digits" in response.content.decode()
    personas.practice.refresh_from_db()
    assert personas.practice.address == "" and personas.practice.phone == ""
    assert not Event.objects.filter(action="org.profile.changed").exists()


def test_saving_the_profile_leaves_the_security_settings_alone(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    url = reverse("org_settings", args=[personas.practice.slug])
    client.post(url, {"section": "profile", "address": ADDRESS, "phone": ""})
    assert not Event.objects.filter(action="org.setting.changed").exists()


def test_only_owners_and_admins_change_the_profile(personas: Personas) -> None:
    for role in (Role.CLINICIAN, Role.STAFF, Role.COMPLIANCE_OFFICER):
        with pytest.raises(Forbidden):
            actions.update_profile(_as(personas, role), address=ADDRESS, phone="")
        url = reverse("org_settings", args=[personas.practice.slug])
        response = signed_in_client(personas.members[role]).post(url, {"section": "profile", "address": ADDRESS})
        assert response.status_code == 403
    personas.practice.refresh_from_db()
    assert personas.practice.address == ""
    actions.update_profile(_as(personas, Role.ADMIN), address=ADDRESS, phone="")


def test_the_practice_address_is_the_default_ship_to(world: Personas) -> None:
    actions.update_profile(_as(world, Role.OWNER), address=ADDRESS, phone="")
    page = signed_in_client(world.members["clinician"]).get(reverse("case_new", args=[world.practice.slug]))
    assert "100 Market Street, Suite 2\nSpringfield, IL 62701</textarea>" in page.content.decode()
    # Through the API or any other door: shipping with no address given goes to the practice.
    case = case_actions.create_case(
        _as(world, Role.CLINICIAN), patient_name="Jane Roe", case_type="digital_crown", delivery="ship"
    )
    assert case.ship_to == ADDRESS
    pickup = case_actions.create_case(
        _as(world, Role.CLINICIAN), patient_name="Jane Roe", case_type="digital_crown", delivery="pickup"
    )
    assert pickup.ship_to == ""


# --- prescribers ------------------------------------------------------------------------------
def test_an_owner_dentist_marked_as_prescriber_can_be_the_doctor(world: Personas) -> None:
    owner = world.members["owner"]
    assert owner not in prescribers(world.practice)
    client = signed_in_client(owner)
    url = reverse("member_update", args=[world.practice.slug, _membership(world, Role.OWNER).pk])
    page = client.post(
        url, {"operation": "prescriber", "license_state": "CA", "license_number": " d 12345 "}, follow=True
    )
    assert "can be named as the doctor on cases (CA-D 12345)" in page.content.decode()
    membership = _membership(world, Role.OWNER)
    assert membership.is_prescriber and membership.license == "CA-D 12345"
    event = Event.objects.get(action="org.member.prescriber_set")
    assert event.details == {"user": str(owner.pk), "from": "", "to": "CA-D 12345"}
    assert owner in prescribers(world.practice)
    new_case = client.get(reverse("case_new", args=[world.practice.slug])).content.decode()
    assert f'<option value="{owner.pk}" selected>' in new_case  # the owner prescribes: their own name first
    case = case_actions.create_case(
        _as(world, Role.OWNER), patient_name="Jane Roe", case_type="digital_crown", doctor=owner
    )
    assert case.doctor == owner


def test_a_member_who_is_not_a_prescriber_cannot_be_the_doctor(world: Personas) -> None:
    staff = world.members["staff"]
    with pytest.raises(ValidationError) as refused:
        case_actions.create_case(
            _as(world, Role.CLINICIAN), patient_name="Jane Roe", case_type="digital_crown", doctor=staff
        )
    assert "prescribers" in refused.value.message_dict["doctor"][0]
    assert staff not in prescribers(world.practice)


def test_a_prescriber_needs_a_state_and_a_license_number(personas: Personas) -> None:
    staff = _membership(personas, Role.STAFF)
    for number, state, field in (("", "CA", "license_number"), ("12345", "ZZ", "license_state"), ("1;DROP", "CA", "")):
        with pytest.raises(ValidationError) as refused:
            actions.set_prescriber(_as(personas, Role.OWNER), staff, license_number=number, license_state=state)
        if field:
            assert field in refused.value.message_dict
    staff.refresh_from_db()
    assert not staff.is_prescriber
    assert not Event.objects.filter(action="org.member.prescriber_set").exists()


def test_only_members_managers_mark_prescribers(personas: Personas) -> None:
    staff = _membership(personas, Role.STAFF)
    with pytest.raises(Forbidden):
        actions.set_prescriber(_as(personas, Role.CLINICIAN), staff, license_number="1", license_state="CA")
    url = reverse("member_update", args=[personas.practice.slug, staff.pk])
    body = {"operation": "prescriber", "license_state": "CA", "license_number": "1"}
    assert signed_in_client(personas.members["clinician"]).post(url, body).status_code == 403
    # Another organization's owner: the member does not exist for them.
    outsider_url = reverse("member_update", args=[personas.other_practice.slug, staff.pk])
    assert signed_in_client(personas.outsider).post(outsider_url, body).status_code == 404
    staff.refresh_from_db()
    assert not staff.is_prescriber


def test_a_lab_has_no_prescribers(personas: Personas) -> None:
    owner = make_user("owner@lab.test")
    add_member(personas.lab, owner, Role.OWNER)
    lab = resolve(owner, personas.lab)
    assert lab is not None
    manager = Membership.objects.get(organization=personas.lab, user=personas.lab_manager)
    with pytest.raises(ValidationError, match="members of a dental practice"):
        actions.set_prescriber(lab, manager, license_number="1", license_state="CA")


def test_removing_a_prescriber_takes_them_off_the_doctor_list_and_stops_sending(world: Personas) -> None:
    clinician = world.members["clinician"]
    case = case_actions.create_case(
        _as(world, Role.CLINICIAN), patient_name="Jane Roe", case_type="digital_crown", doctor=clinician
    )
    actions.remove_prescriber(_as(world, Role.OWNER), _membership(world, Role.CLINICIAN))
    assert clinician not in prescribers(world.practice)
    event = Event.objects.get(action="org.member.prescriber_removed")
    assert event.details == {"user": str(clinician.pk), "license": "IL-019-012345"}
    problems = case_actions.submission_problems(case)
    assert f"{clinician.display_name} is no longer a prescriber here" in " ".join(problems)


def test_the_members_page_shows_and_offers_prescribers_to_managers_only(personas: Personas) -> None:
    url = reverse("members", args=[personas.practice.slug])
    as_owner = signed_in_client(personas.members["owner"]).get(url).content.decode()
    assert "License IL-019-012345" in as_owner and "Mark as prescriber" in as_owner
    as_staff = signed_in_client(personas.members["staff"]).get(url).content.decode()
    assert "License IL-019-012345" in as_staff and "Mark as prescriber" not in as_staff


def test_a_settings_post_without_a_section_still_changes_the_security_settings(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    url = reverse("org_settings", args=[personas.practice.slug])
    response = client.post(url, {"idle_timeout_minutes": 10, "lab_access_grace_days": 30})
    assert response.status_code == 302
    personas.practice.refresh_from_db()
    assert personas.practice.idle_timeout_seconds == 600
    assert not Event.objects.filter(action="org.profile.changed").exists()
