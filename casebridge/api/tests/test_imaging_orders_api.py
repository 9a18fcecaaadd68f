"""Imaging orders over the REST API: the center's integration lists its orders (and its scanner
software can send the study by STOW-RS into the case), the case detail an imaging center gets
holds the patient, never the prescription; every list of patients is audited. The credential
matrix (test_credential_matrix.py) tries every state-changing operation with every wrong
credential."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from casebridge.access.policy import resolve
from casebridge.accounts.actions import create_api_token
from casebridge.accounts.models import User
from casebridge.api.tests.conftest import World, ready_case
from casebridge.audit.models import Event
from casebridge.core.testing import add_member, make_org, make_user
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Organization, OrgKind

pytestmark = pytest.mark.django_db

ORDER = {
    "center": "bright-imaging",
    "modality": "cbct",
    "region": "localized",
    "teeth": [36, 37],
    "clinical_question": "Bone height at 36",
}


class CenterApi:
    def __init__(self, user: User, org: Organization, scopes: list[str]) -> None:
        _token, raw = create_api_token(organization=org, name="scanner", scopes=scopes, days=1, actor=user, user=user)
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1/{path}", params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(f"/api/v1/{path}", json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def center(world: World) -> tuple[User, Organization]:
    org = make_org("Bright Imaging", OrgKind.IMAGING, slug="bright-imaging")
    user = make_user("tech@bright.test")
    add_member(org, user, "staff")
    manager = make_user("manager@bright.test")
    add_member(org, manager, "owner")
    owner = resolve(world.personas.members["owner"], world.practice)
    assert owner is not None
    connection = org_actions.request_connection(owner, other_slug=org.slug, basis=AgreementBasis.TREATMENT)
    accepting = resolve(manager, org)
    assert accepting is not None
    org_actions.accept_connection(accepting, connection)
    return user, org


def test_the_center_lists_its_orders_with_the_patient_and_the_listing_is_audited(
    world: World, center: tuple[User, Organization]
) -> None:
    number = ready_case(world)
    created = world.api().post(f"cases/{number}/imaging-orders", ORDER)
    assert created.status_code == 201, created.content
    assert created.json()["teeth"] == [36, 37] and created.json()["status"] == "sent"
    api = CenterApi(*center, ["cases:read"])
    listed = api.get("imaging-orders", status="sent")
    assert listed.status_code == 200
    [order] = listed.json()
    assert order["case"] == number and order["patient"]["name"] == "Jane Roe"
    shown = Event.objects.filter(action="patient.viewed", organization_id=center[1].pk).latest("occurred_at")
    assert shown.details["via"] == "api.imaging_orders" and shown.details["cases"] == [number]
    # The practice sees its orders too; the lab does not learn of them.
    assert [o["id"] for o in world.api().get("imaging-orders").json()] == [order["id"]]
    assert world.api().post(f"cases/{number}/submit").status_code == 200
    assert world.api("technician").get(f"cases/{number}/imaging-orders").json() == []


def test_a_center_gets_the_patient_without_the_prescription(world: World, center: tuple[User, Organization]) -> None:
    number = ready_case(world)
    world.api().post(f"cases/{number}/imaging-orders", ORDER)
    detail = CenterApi(*center, ["cases:read"]).get(f"cases/{number}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["patient"]["name"] == "Jane Roe"
    assert body["items"] == [] and body["ship_to"] == "" and body["history"] == []


def test_a_read_only_token_of_the_center_cannot_confirm(world: World, center: tuple[User, Organization]) -> None:
    number = ready_case(world)
    order = world.api().post(f"cases/{number}/imaging-orders", ORDER).json()
    refused = CenterApi(*center, ["cases:read"]).post(f"cases/{number}/imaging-orders/{order['id']}/receive")
    assert refused.status_code == 403
    confirmed = CenterApi(*center, ["cases:read", "cases:write"]).post(
        f"cases/{number}/imaging-orders/{order['id']}/receive"
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "received"


def test_other_organizations_get_404_and_an_unknown_center_a_clear_422(
    world: World, center: tuple[User, Organization]
) -> None:
    number = ready_case(world)
    unknown = world.api().post(f"cases/{number}/imaging-orders", {**ORDER, "center": "nobody"})
    assert unknown.status_code == 422 and "connected imaging centers" in unknown.content.decode()
    order = world.api().post(f"cases/{number}/imaging-orders", ORDER).json()
    other = make_org("Second Imaging", OrgKind.IMAGING, slug="second-imaging")
    stranger = make_user("s@second.test")
    add_member(other, stranger, "owner")
    api = CenterApi(stranger, other, ["cases:read", "cases:write"])
    assert api.get(f"cases/{number}").status_code == 404
    assert api.get("imaging-orders").json() == []
    assert api.post(f"cases/{number}/imaging-orders/{order['id']}/receive").status_code == 404
    # A lab cannot cancel the practice's order (it does not even see it).
    lab = world.api("technician")
    assert lab.post(f"cases/{number}/imaging-orders/{order['id']}/cancel", {"reason": "x"}).status_code == 404
