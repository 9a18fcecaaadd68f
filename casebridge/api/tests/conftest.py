"""Fixtures for the REST API tests: a practice and a lab with a BAA, tokens, API clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.accounts.actions import create_api_token
from casebridge.accounts.models import User
from casebridge.core.testing import Personas, add_member, make_user
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Organization
from casebridge.vault import api as vault
from casebridge.vault.tests.samples import binary_stl

ALL_CASE_SCOPES = ["cases:read", "cases:write"]


class Api:
    """A bearer-token client speaking JSON to /api/v1/."""

    def __init__(self, raw_token: str) -> None:
        self.raw = raw_token
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1/{path}", params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(f"/api/v1/{path}", json.dumps(body or {}), content_type="application/json")

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.patch(f"/api/v1/{path}", json.dumps(body), content_type="application/json")


@dataclass
class World:
    personas: Personas
    technician: User
    token: Callable[..., str]

    @property
    def practice(self) -> Organization:
        return self.personas.practice

    @property
    def lab(self) -> Organization:
        return self.personas.lab

    def api(self, who: str = "clinician", scopes: list[str] | None = None) -> Api:
        return Api(self.token(who, scopes or ALL_CASE_SCOPES))

    def upload(self, who: str = "clinician", size: int = 3000) -> str:
        """A finished upload of `who`, as the tus endpoint leaves it: its CaseBridge-File-Id."""
        user, org = self.user_and_org(who)
        content = binary_stl(size)
        result = vault.put_stream(organization=org, actor=user, chunks=[content], length=len(content))
        return str(result.stored_object.pk)

    def user_and_org(self, who: str) -> tuple[User, Organization]:
        if who == "technician":
            return self.technician, self.lab
        if who == "lab_manager":
            return self.personas.lab_manager, self.lab
        if who == "outsider":
            return self.personas.outsider, self.personas.other_practice
        return self.personas.members[who], self.practice


@pytest.fixture
def world(personas: Personas, vault_home: Path) -> World:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection = org_actions.request_connection(
        owner, other_slug=personas.lab.slug, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
    )
    lab_access = resolve(personas.lab_manager, personas.lab)
    assert lab_access is not None
    org_actions.accept_connection(lab_access, connection)
    technician = make_user("tech@lab.test")
    add_member(personas.lab, technician, "technician")

    def token(who: str, scopes: list[str], days: int = 1) -> str:
        user, org = w.user_and_org(who)
        _token, raw = create_api_token(
            organization=org, name="api test", scopes=scopes, days=days, actor=user, user=user
        )
        return raw

    w = World(personas, technician, token)
    return w


def draft_body(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {"name": "Jane Roe", "date_of_birth": "1980-04-01", "chart_number": "C-17"},
        "case_type": "digital_crown",
        "lab": world.lab.slug,
        "due_date": (timezone.now().date() + timedelta(days=7)).isoformat(),
        "delivery": "ship",
        "ship_to": "1 Main St",
        "items": [
            {"tooth": "19", "notation": "universal", "restoration": "crown", "material": "zirconia_full", "shade": "A2"}
        ],
    }
    body.update(overrides)
    return body


def ready_case(world: World, api: Api | None = None) -> str:
    """A draft with everything a digital crown needs, created and completed through the API."""
    api = api or world.api()
    response = api.post("cases", draft_body(world))
    assert response.status_code == 201, response.content
    number = response.json()["number"]
    for kind, label in (("scan", "upper"), ("scan", "lower"), ("scan", "bite"), ("photo", "shade"), ("photo", "shade")):
        added = api.post(f"cases/{number}/attachments", {"file_id": world.upload(), "kind": kind, "label": label})
        assert added.status_code == 201, added.content
    return str(number)
