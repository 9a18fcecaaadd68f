"""Case pages: the new-case form, attaching files on the case page, what is missing, the dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, CaseItem, Patient, Status
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _file
from casebridge.core.testing import Personas, make_org, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, OrgKind
from casebridge.vault import api as vault
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _new_url(p: Personas) -> str:
    return reverse("case_new", args=[p.practice.slug])


def _form(p: Personas, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "patient_name": "Jane Roe",
        "patient_dob": "1961-04-02",
        "chart_number": "A-77",
        "case_type": "bridge",
        "lab": str(p.lab.pk),
        "doctor": str(p.members["clinician"].pk),
        "due_date": (timezone.now().date() + timedelta(days=10)).isoformat(),
        "delivery": "ship",
        "ship_to": "1 Main St",
        "notes": "Light occlusal contact.",
        "item_tooth": ["3", "4", "5"],  # Universal: upper right first molar .. second premolar
        "item_restoration": ["bridge_abutment", "bridge_pontic", "bridge_abutment"],
        "item_material": ["zirconia_full"] * 3,
        "item_shade": ["a2", "A2", "2M2"],
        "item_stump_shade": ["", "", "ND2"],
    }
    data.update(overrides)
    return data


def _clinician(p: Personas, notation: str = "universal") -> Client:
    user = p.members["clinician"]
    user.tooth_notation = notation
    user.save(update_fields=["tooth_notation"])
    return signed_in_client(user)


def test_a_clinician_creates_a_case_with_teeth_in_their_notation(world: Personas) -> None:
    response = _clinician(world).post(_new_url(world), _form(world))
    case = Case.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/cases/{case.number}/")
    items = sorted(case.items.values_list("tooth", "restoration", "shade", "stump_shade"))
    assert items == [
        (14, "bridge_abutment", "2M2", "ND2"),
        (15, "bridge_pontic", "A2", ""),
        (16, "bridge_abutment", "A2", ""),
    ]  # stored as FDI
    assert (case.lab, case.doctor, case.status) == (world.lab, world.members["clinician"], Status.DRAFT)
    assert case.patient.chart_number == "A-77" and str(case.patient.date_of_birth) == "1961-04-02"
    page = _clinician(world, "palmer").get(reverse("case_detail", args=[world.practice.slug, case.number]))
    assert b"UR6" in page.content and b"Send to lab" in page.content


def test_fdi_users_post_fdi_numbers(world: Personas) -> None:
    data = _form(world, item_tooth=["16", "15", "14"])
    _clinician(world, "fdi").post(_new_url(world), data)
    assert sorted(CaseItem.objects.values_list("tooth", flat=True)) == [14, 15, 16]


def test_arch_cases_choose_an_arch_instead_of_teeth(world: Personas) -> None:
    data = _form(world, case_type="night_guard", arch="upper", arch_restoration="night_guard", arch_material="acrylic")
    _clinician(world).post(_new_url(world), data)
    assert list(CaseItem.objects.values_list("tooth", "arch", "restoration")) == [(None, "upper", "night_guard")]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"patient_name": " "}, "patient_name", "This field is required"),
        ({"patient_dob": "2999-01-01"}, "patient_dob", "cannot be in the future"),
        ({"item_restoration": ["crown", "bridge_pontic", "bridge_abutment"]}, "items", "Crown is not part of a bridge"),
        ({"item_tooth": ["3", "33", "5"]}, "items", "Universal tooth numbers run 1-32"),
        ({"item_shade": ["Z9", "A2", "A2"]}, "items", "Z9 is not a VITA"),
        ({"doctor": "00000000-0000-0000-0000-000000000000"}, "doctor", "Select a valid choice"),
    ],
)
def test_validation_errors_are_shown_by_the_field_and_nothing_is_created(
    world: Personas, overrides: dict[str, Any], field: str, message: str
) -> None:
    events = Event.objects.filter(action__startswith="case.").count()
    response = _clinician(world).post(_new_url(world), _form(world, **overrides))
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert not Case.objects.exists() and not Patient.objects.exists() and not CaseItem.objects.exists()
    assert Event.objects.filter(action__startswith="case.").count() == events
    if field != "items":
        assert f'id="id_{field}"' in html and "invalid" in html
    # The chosen teeth are shown again, pressed, with their rows.
    if "item_tooth" not in overrides:
        assert html.count('aria-pressed="true"') == 3


def test_only_connected_labs_are_offered(world: Personas) -> None:
    stranger = make_org("Faraway Lab", OrgKind.LAB)
    no_agreement = make_org("Handshake Lab", OrgKind.LAB)
    owner = resolve(world.members["owner"], world.practice)
    assert owner is not None
    org_actions.request_connection(owner, other_slug=no_agreement.slug, basis=AgreementBasis.NONE)
    pending_html = _clinician(world).get(_new_url(world)).content.decode()
    assert "Precision Lab" in pending_html and "Faraway Lab" not in pending_html
    assert "Handshake Lab" not in pending_html  # not accepted yet
    from casebridge.orgs.models import Connection, ConnectionStatus

    Connection.objects.filter(recipient=no_agreement).update(status=ConnectionStatus.ACTIVE)
    html = _clinician(world).get(_new_url(world)).content.decode()
    assert "Handshake Lab — no agreement recorded, cannot receive cases" in html
    assert f'value="{no_agreement.pk}" disabled' in html
    for lab in (stranger, no_agreement):
        response = _clinician(world).post(_new_url(world), _form(world, lab=str(lab.pk)))
        assert response.status_code == 200 and not Case.objects.exists()
    # The action refuses an unconnected lab whatever door the request came through.
    with pytest.raises(actions.ValidationError) as excinfo:
        actions.create_case(_access(world), patient_name="X", case_type="digital_crown", lab=stranger)
    assert "connected labs" in excinfo.value.message_dict["lab"][0]


def test_a_lab_member_gets_403_and_an_outsider_404(world: Personas) -> None:
    assert signed_in_client(world.lab_manager).get(reverse("case_new", args=[world.lab.slug])).status_code == 403
    assert signed_in_client(world.outsider).get(_new_url(world)).status_code == 404
    assert signed_in_client(world.members["auditor"]).get(_new_url(world)).status_code == 403


def _draft(p: Personas) -> Case:
    return actions.create_case(
        _access(p),
        patient_name="Jane Roe",
        case_type="digital_crown",
        lab=p.lab,
        due_date=timezone.now().date() + timedelta(days=7),
        ship_to="1 Main St",
        items=[ItemInput("crown", tooth=36)],
    )


def test_attaching_files_shrinks_the_missing_list_until_the_case_can_be_sent(world: Personas) -> None:
    case = _draft(world)
    client = _clinician(world)
    detail = reverse("case_detail", args=[world.practice.slug, case.number])
    attach = reverse("case_attach", args=[world.practice.slug, case.number])
    files = reverse("case_files", args=[world.practice.slug, case.number])
    html = client.get(detail).content.decode()
    assert "Add 3 more scan file(s)" in html and 'value="submit" class="primary" disabled' in html
    for kind, label in (("scan", "upper"), ("scan", "lower"), ("scan", "bite"), ("photo", "shade")):
        stored = _file(_access(world))
        response = client.post(attach, {"file": str(stored.pk), "kind": kind, "label": label})
        assert response.status_code == 200, response.content
    assert response.json()["name"] == f"{case.number}_shade_1.stl"
    partial = client.get(files).content.decode()
    assert f"{case.number}_upper_1.stl" in partial and 'hx-swap-oob="true"' in partial
    assert "Add 1 more photo file(s)" in partial and "scan file" not in partial
    stored = _file(_access(world))
    client.post(attach, {"file": str(stored.pk), "kind": "photo", "label": "shade"})
    partial = client.get(files).content.decode()
    assert "Ready to send" in partial and "disabled" not in partial
    client.post(reverse("case_action", args=[world.practice.slug, case.number]), {"operation": "submit"})
    case.refresh_from_db()
    assert case.status == Status.SUBMITTED


def test_attach_refuses_other_peoples_files_phi_labels_and_designs_from_the_practice(world: Personas) -> None:
    case = _draft(world)
    client = _clinician(world)
    attach = reverse("case_attach", args=[world.practice.slug, case.number])
    outsider_access = resolve(world.outsider, world.other_practice)
    assert outsider_access is not None
    foreign = vault.put_stream(
        organization=world.other_practice, actor=world.outsider, chunks=[binary_stl(500)], length=len(binary_stl(500))
    ).stored_object
    assert client.post(attach, {"file": str(foreign.pk), "kind": "scan"}).status_code == 404
    mine = _file(_access(world))
    refused = client.post(attach, {"file": str(mine.pk), "kind": "scan", "label": "jane_roe"})
    assert refused.status_code == 400 and "Choose a label" in refused.json()["detail"]
    refused = client.post(attach, {"file": str(mine.pk), "kind": "design"})
    assert refused.status_code == 400 and "by the lab" in refused.json()["detail"]
    assert not case.attachments.exists()
    assert signed_in_client(world.outsider).post(attach, {"file": str(mine.pk), "kind": "scan"}).status_code == 404


def test_the_practice_cannot_attach_to_a_case_it_already_sent(world: Personas) -> None:
    case = test_workflow._ready_crown(world)
    actions.submit_case(_access(world), case)
    client = _clinician(world)
    page = client.get(reverse("case_detail", args=[world.practice.slug, case.number])).content.decode()
    assert "data-attach-url" not in page  # no drop zone: the page asks the same rule as the action
    stored = _file(_access(world))
    before = case.attachments.count()
    refused = client.post(
        reverse("case_attach", args=[world.practice.slug, case.number]),
        {"file": str(stored.pk), "kind": "photo", "label": "shade"},
    )
    assert refused.status_code == 400 and "already sent to the lab" in refused.json()["detail"]
    stored.refresh_from_db()
    assert case.attachments.count() == before and stored.attached_at is None


def test_the_lab_attaches_only_while_it_works_on_the_case(world: Personas) -> None:
    case = test_workflow._ready_crown(world)
    actions.submit_case(_access(world), case)
    lab = test_workflow._lab(world)
    with pytest.raises(ValidationError, match="while it works on the case"):
        actions.attach_file(lab, case, _file(lab), kind="design")  # submitted, not yet received
    actions.confirm_receipt(lab, case)
    assert actions.may_attach(lab, case)
    actions.attach_file(lab, case, _file(lab), kind="design")
    actions.revoke_lab_access(_access(world), case)
    case.refresh_from_db()
    assert not actions.may_attach(lab, case)
    with pytest.raises(ValidationError, match="while it works on the case"):
        actions.attach_file(lab, case, _file(lab), kind="other")


def test_the_dashboard_uses_the_same_number_of_queries_for_1_and_10_cases(world: Personas) -> None:
    client = _clinician(world)
    url = reverse("case_list", args=[world.practice.slug])
    _draft(world)
    client.get(url)  # warm up session and caches

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    few = count()
    for _ in range(9):
        _draft(world)
    assert count() == few
    assert b"New case" in client.get(url).content
