"""Editing a draft on the page: the new-case form filled in from the draft, saved through
cases.actions.update_draft (audited by field name), only for the practice's own drafts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.access.roles import Role
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _draft(p: Personas) -> Case:
    return actions.create_case(
        _access(p),
        patient_name="Jane Roe",
        patient_dob=timezone.now().date().replace(year=1961),
        chart_number="A-77",
        case_type="digital_crown",
        lab=p.lab,
        doctor=p.members["clinician"],
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        notes="Light contacts.",
        items=[ItemInput("crown", tooth=36, material="zirconia_full", shade="A2")],
    )


def _url(p: Personas, case: Case) -> str:
    return reverse("case_edit", args=[p.practice.slug, case.number])


def _client(p: Personas, notation: str = "fdi") -> Client:
    user = p.members["clinician"]
    user.tooth_notation = notation
    user.save(update_fields=["tooth_notation"])
    return signed_in_client(user)


def _form(p: Personas, case: Case, **overrides: Any) -> dict[str, Any]:
    """What the page posts for ``case`` unchanged (FDI notation); disabled patient fields are not posted."""
    data: dict[str, Any] = {
        "case_type": case.case_type,
        "lab": str(p.lab.pk),
        "doctor": str(p.members["clinician"].pk),
        "due_date": case.due_date.isoformat() if case.due_date else "",
        "delivery": case.delivery,
        "ship_to": case.ship_to,
        "notes": case.notes,
        "item_tooth": ["36"],
        "item_restoration": ["crown"],
        "item_material": ["zirconia_full"],
        "item_shade": ["A2"],
        "item_stump_shade": [""],
    }
    data.update(overrides)
    return data


def _snapshot(case: Case) -> tuple[Any, ...]:
    case = Case.objects.get(pk=case.pk)
    return (
        case.case_type,
        case.lab_id,
        case.doctor_id,
        case.due_date,
        case.delivery,
        case.ship_to,
        case.notes,
        case.status,
        case.patient_id,
        sorted(case.items.values_list("tooth", "arch", "restoration", "material", "shade", "stump_shade")),
    )


def test_the_form_is_filled_in_from_the_draft_with_the_patient_read_only(world: Personas) -> None:
    case = _draft(world)
    detail = _client(world, "palmer").get(reverse("case_detail", args=[world.practice.slug, case.number]))
    assert _url(world, case) in detail.content.decode() and "Edit draft" in detail.content.decode()
    html = _client(world, "palmer").get(_url(world, case)).content.decode()
    assert f"Edit draft {case.number}" in html and "Save draft" in html and f'action="{_url(world, case)}"' in html
    assert "patient of a draft cannot be changed" in html
    assert 'name="patient_name" value="Jane Roe"' in html and "disabled" in html.split('name="patient_name"')[1][:200]
    assert 'value="A-77"' in html and 'value="1 Main St"' not in html  # ship_to is a textarea
    assert "1 Main St</textarea>" in html and "Light contacts.</textarea>" in html
    assert f'value="{case.due_date.isoformat()}"' in html
    assert 'data-restorations="crown" selected>Digital single crown' in html
    assert f'<option value="{world.lab.pk}" selected>' in html
    assert f'<option value="{world.members["clinician"].pk}" selected>' in html
    # Tooth 36 in Palmer is LL6: pressed on the chart, with its row and choices.
    assert html.count('aria-pressed="true"') == 1 and 'data-label="LL6"' in html
    assert 'name="item_tooth" value="LL6"' in html
    assert '<option value="zirconia_full" selected>' in html and "<option selected>A2</option>" in html
    assert signed_in_client(world.members["staff"]).get(_url(world, case)).status_code == 200


def test_changing_teeth_material_and_due_date_is_saved_and_audited_by_field_name(world: Personas) -> None:
    case = _draft(world)
    patient = case.patient_id
    due = timezone.now().date() + timedelta(days=21)
    data = _form(
        world,
        case,
        due_date=due.isoformat(),
        item_tooth=["36", "37"],
        item_restoration=["crown", "crown"],
        item_material=["emax", "emax"],
        item_shade=["a3", "A3"],
        item_stump_shade=["", "ND2"],
        patient_name="Someone Else",  # disabled on the page; ignored if posted anyway
    )
    response = _client(world).post(_url(world, case), data)
    assert response.status_code == 302 and response["Location"].endswith(f"/cases/{case.number}/")
    case.refresh_from_db()
    assert case.due_date == due and case.status == Status.DRAFT and case.patient_id == patient
    assert case.patient.name == "Jane Roe"
    assert sorted(case.items.values_list("tooth", "material", "shade", "stump_shade")) == [
        (36, "emax", "A3", ""),
        (37, "emax", "A3", "ND2"),
    ]
    event = Event.objects.get(action="case.updated")
    assert event.details == {"case": case.number, "fields": ["due_date", "items"]}
    assert event.patient_ref == str(patient)
    assert "Jane" not in str(event.details) and "A3" not in str(event.details) and "emax" not in str(event.details)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"{case.number} was saved."]


def test_changing_doctor_case_type_and_delivery(world: Personas) -> None:
    case = _draft(world)
    other = make_user("second@smile.test")
    add_member(world.practice, other, Role.CLINICIAN)
    Membership.objects.filter(user=other).update(is_prescriber=True, license_state="IL", license_number="019-7")
    data = _form(
        world,
        case,
        case_type="bridge",
        doctor=str(other.pk),
        delivery="pickup",
        item_tooth=["35", "36", "37"],
        item_restoration=["bridge_abutment", "bridge_pontic", "bridge_abutment"],
        item_material=["zirconia_full"] * 3,
        item_shade=["A2"] * 3,
        item_stump_shade=[""] * 3,
    )
    assert _client(world).post(_url(world, case), data).status_code == 302
    case.refresh_from_db()
    assert (case.case_type, case.doctor, case.delivery) == ("bridge", other, "pickup")
    assert case.items.count() == 3
    assert Event.objects.get(action="case.updated").details["fields"] == ["case_type", "delivery", "doctor", "items"]


def test_saving_unchanged_changes_and_audits_nothing(world: Personas) -> None:
    case = _draft(world)
    before = _snapshot(case)
    response = _client(world).post(_url(world, case), _form(world, case))
    assert response.status_code == 302 and _snapshot(case) == before
    assert not Event.objects.filter(action="case.updated").exists()
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Nothing was changed."]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"item_restoration": ["bridge_pontic"]}, "items", "Bridge pontic is not part of a digital single crown"),
        ({"item_tooth": ["99"]}, "items", "FDI"),
        ({"item_shade": ["Z9"]}, "items", "Z9 is not a VITA"),
        ({"item_material": ["gold_leaf"]}, "items", "Choose a material from the list"),
        ({"due_date": "not-a-date"}, "due_date", "Enter a valid date"),
        ({"doctor": "00000000-0000-0000-0000-000000000000"}, "doctor", "Select a valid choice"),
        ({"case_type": "bridge"}, "items", "Crown is not part of a bridge case (tooth 36)"),
        ({"lab": ""}, "lab", "This field is required"),
        ({"delivery": "drone"}, "delivery", "Select a valid choice"),
    ],
)
def test_invalid_input_is_shown_by_the_field_and_changes_nothing(
    world: Personas, overrides: dict[str, Any], field: str, message: str
) -> None:
    case = _draft(world)
    before = _snapshot(case)
    events = Event.objects.filter(action__startswith="case.").exclude(action="case.viewed").count()
    later = (timezone.now().date() + timedelta(days=30)).isoformat()
    data = _form(world, case, **{"due_date": later, **overrides})  # a valid change alongside the invalid one
    response = _client(world).post(_url(world, case), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html and "Nothing was changed" in html
    assert _snapshot(case) == before
    assert Event.objects.filter(action__startswith="case.").exclude(action="case.viewed").count() == events
    if field != "items":
        assert f'id="id_{field}' in html and "invalid" in html


def test_the_action_refuses_a_doctor_or_lab_that_is_not_the_practices(world: Personas) -> None:
    case = _draft(world)
    before = _snapshot(case)
    with pytest.raises(ValidationError) as excinfo:
        actions.update_draft(_access(world), case, doctor=world.outsider, lab=world.other_practice)
    assert set(excinfo.value.message_dict) == {"doctor", "lab"}
    with pytest.raises(ValidationError) as excinfo:
        actions.update_draft(_access(world), case, case_type="night_guard")  # the crown does not fit
    assert "items" in excinfo.value.message_dict
    assert _snapshot(case) == before and not Event.objects.filter(action="case.updated").exists()


def test_a_submitted_case_cannot_be_edited(world: Personas) -> None:
    case = test_workflow._ready_crown(world)
    actions.submit_case(_access(world), case)
    before = _snapshot(case)
    for response in (
        _client(world).get(_url(world, case)),
        _client(world).post(_url(world, case), _form(world, case, notes="x")),
    ):
        assert response.status_code == 302 and response["Location"].endswith(f"/cases/{case.number}/")
        assert [str(m) for m in get_messages(response.wsgi_request)] == [
            f"{case.number} was already sent to the lab (Submitted), so it can no longer be edited."
        ]
    assert _snapshot(case) == before and not Event.objects.filter(action="case.updated").exists()
    detail = _client(world).get(reverse("case_detail", args=[world.practice.slug, case.number])).content.decode()
    assert "Edit draft" not in detail


def test_a_lab_member_gets_403_and_an_outsider_404(world: Personas) -> None:
    case = _draft(world)
    url = _url(world, case)
    assert signed_in_client(world.lab_manager).get(url).status_code == 404  # not a member of the practice
    assert (
        signed_in_client(world.lab_manager).get(reverse("case_edit", args=[world.lab.slug, case.number])).status_code
        == 403
    )
    lab_owner = make_user("owner@lab.test")
    add_member(world.lab, lab_owner, Role.OWNER)  # has every permission, but the lab edits no drafts
    assert signed_in_client(lab_owner).get(reverse("case_edit", args=[world.lab.slug, case.number])).status_code == 403
    assert signed_in_client(world.outsider).get(url).status_code == 404
    other = reverse("case_edit", args=[world.other_practice.slug, case.number])
    assert signed_in_client(world.outsider).get(other).status_code == 404  # not their case
    assert signed_in_client(world.outsider).post(other, _form(world, case, notes="x")).status_code == 404
    assert signed_in_client(world.members["auditor"]).get(url).status_code == 403
    assert _snapshot(case)[6] == "Light contacts."  # none of them changed anything


def test_arch_cases_show_their_arch_and_warn_about_what_the_form_cannot_show(world: Personas) -> None:
    case = actions.create_case(
        _access(world),
        patient_name="Jane Roe",
        case_type="night_guard",
        lab=world.lab,
        items=[ItemInput("night_guard", arch="upper", material="acrylic")],
    )
    html = _client(world).get(_url(world, case)).content.decode()
    assert 'name="arch" value="upper" checked' in html and '<option value="acrylic" selected>' in html
    assert "cannot be shown on this form" not in html
    actions.update_draft(
        _access(world),
        case,
        items=[ItemInput("night_guard", arch="upper"), ItemInput("night_guard", arch="lower")],
    )
    html = _client(world).get(_url(world, case)).content.decode()
    assert "1 restoration(s) of this draft cannot be shown on this form" in html
