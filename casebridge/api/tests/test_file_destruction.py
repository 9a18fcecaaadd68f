"""Who may crypto-shred a file, and where the destruction is recorded."""

from __future__ import annotations

import json
from typing import Any

import pytest

from casebridge.api.tests.conftest import World, ready_case
from casebridge.audit.models import Event
from casebridge.core.testing import signed_in_client
from casebridge.vault.models import StoredObject

pytestmark = pytest.mark.django_db


def _destroy(client: Any, file_id: str) -> Any:
    return client.delete(
        f"/api/v1/files/{file_id}", json.dumps({"reason": "wrong patient's scan"}), content_type="application/json"
    )


def test_a_file_of_a_case_is_destroyed_in_the_practices_log_with_the_patient(world: World) -> None:
    number = ready_case(world)
    practice = world.api("owner")
    practice.post(f"cases/{number}/submit")
    file_id = practice.get(f"cases/{number}/attachments").json()[0]["file_id"]

    response = _destroy(signed_in_client(world.personas.members["owner"]), file_id)

    assert response.status_code == 204
    event = Event.objects.get(action="file.destroyed", target_id=file_id)
    case = StoredObject.objects.get(pk=file_id).attachment.case
    assert event.organization_id == world.practice.pk
    assert event.patient_ref == str(case.patient_id)
    assert event.details["case"] == number


def test_the_lab_cannot_destroy_a_file_of_the_practices_record_even_one_it_uploaded(world: World) -> None:
    number = ready_case(world)
    world.api("owner").post(f"cases/{number}/submit")
    lab = world.api("technician")
    lab.post(f"cases/{number}/receive")
    design = world.upload("technician")
    assert lab.post(f"cases/{number}/attachments", {"file_id": design, "kind": "design"}).status_code == 201
    lab_owner_session = signed_in_client(world.personas.lab_manager)

    assert _destroy(lab_owner_session, design).status_code == 403
    assert not StoredObject.objects.get(pk=design).is_destroyed


def test_a_clinician_cannot_destroy_a_file_of_a_case_only_owners_and_admins_can(world: World) -> None:
    number = ready_case(world)
    file_id = world.api().get(f"cases/{number}/attachments").json()[0]["file_id"]

    refused = _destroy(signed_in_client(world.personas.members["clinician"]), file_id)

    assert refused.status_code == 403
    assert not StoredObject.objects.get(pk=file_id).is_destroyed


def test_an_uploader_destroys_their_own_unattached_upload_with_a_write_token(world: World) -> None:
    file_id = world.upload("staff")

    assert _destroy(world.api("staff", ["cases:read"]).client, file_id).status_code == 403
    assert _destroy(world.api("staff").client, file_id).status_code == 204
    assert Event.objects.get(action="file.destroyed", target_id=file_id).organization_id == world.practice.pk


@pytest.mark.parametrize("reason", [False, 0, None, ["a reason in a list"], {"text": "nested reason"}])
def test_a_reason_that_is_not_text_destroys_nothing(world: World, reason: Any) -> None:
    file_id = world.upload("staff")
    response = world.api("staff").client.delete(
        f"/api/v1/files/{file_id}", json.dumps({"reason": reason}), content_type="application/json"
    )
    assert response.status_code == 400
    assert not StoredObject.objects.get(pk=file_id).is_destroyed


def test_a_file_of_a_case_downloads_under_its_case_name(world: World) -> None:
    number = ready_case(world)
    api = world.api()
    first = api.get(f"cases/{number}/attachments").json()[0]
    response = api.client.get(f"/api/v1/files/{first['file_id']}/content")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{first["name"]}"'
    assert first["name"].startswith(f"{number}_")
    loose = world.upload()  # not on a case: the vault's neutral name
    assert api.client.get(f"/api/v1/files/{loose}/content")["Content-Disposition"].startswith(
        'attachment; filename="file_'
    )


def test_a_file_under_legal_hold_is_not_destroyed_and_the_answer_says_why(world: World) -> None:
    from casebridge.access.policy import resolve
    from casebridge.cases.models import Case
    from casebridge.retention import policies

    number = ready_case(world)
    file_id = world.api("owner").get(f"cases/{number}/attachments").json()[0]["file_id"]
    owner = resolve(world.personas.members["owner"], world.practice)
    assert owner is not None
    hold = policies.place_hold(owner, reason="Records request 2026-3", case=Case.objects.get(number=number))

    refused = _destroy(signed_in_client(world.personas.members["owner"]), file_id)

    assert refused.status_code == 409 and "legal hold" in refused.json()["detail"]
    assert not StoredObject.objects.get(pk=file_id).is_destroyed
    policies.lift_hold(owner, hold, reason="Request answered")
    assert _destroy(signed_in_client(world.personas.members["owner"]), file_id).status_code == 204
