"""GET /api/v1/me follows the API's one rule for callers: a bearer token, or a session past MFA."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.access.policy import resolve
from casebridge.access.roles import Role
from casebridge.accounts.actions import create_api_token, create_service_account
from casebridge.core.testing import PASSWORD, Personas, add_member, make_user, signed_in_client

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"


def test_the_path_is_the_documented_one() -> None:
    assert reverse("api_me") == ME


def test_a_personal_token_answers_with_its_organization_role_and_scopes(personas: Personas) -> None:
    owner = personas.members["owner"]
    token, raw = create_api_token(
        organization=personas.practice, name="pms", scopes=["org:read"], days=1, actor=owner, user=owner
    )
    body = Client().get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert body["credential"] == "token"
    assert body["organization"]["slug"] == "smile-dental"
    assert body["actor"] == {"type": "user", "id": str(owner.pk)}
    assert body["role"] == Role.OWNER and body["scopes"] == ["org:read"]
    assert body["expires_at"] == token.expires_at.isoformat()


def test_a_service_account_token_says_it_is_a_service(personas: Personas) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    account, raw = create_service_account(owner, name="pms", role=Role.STAFF, scopes=["cases:read"], days=1)
    body = Client().get(ME, HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert body["actor"] == {"type": "service", "id": str(account.pk)} and body["role"] == Role.STAFF


def test_a_session_past_mfa_answers_as_the_person(personas: Personas) -> None:
    clinician = personas.members["clinician"]
    response = signed_in_client(clinician).get(ME)
    assert response.status_code == 200
    body = response.json()
    assert body["credential"] == "session" and body["scopes"] is None
    assert body["actor"] == {"type": "user", "id": str(clinician.pk)}
    assert body["organization"]["slug"] == "smile-dental" and body["role"] == Role.CLINICIAN
    assert body["expires_at"]


def test_a_session_in_several_organizations_acts_for_the_one_last_opened(personas: Personas) -> None:
    person = personas.members["staff"]
    add_member(personas.other_practice, person, Role.CLINICIAN)
    client = signed_in_client(person)
    body = client.get(ME).json()
    assert body["organization"] is None and body["role"] is None  # none opened yet: no guess
    assert client.get(reverse("org_home", args=["other-dental"])).status_code == 200
    body = client.get(ME).json()
    assert body["organization"]["slug"] == "other-dental" and body["role"] == Role.CLINICIAN


def test_an_anonymous_call_is_refused_with_401(db: None) -> None:
    response = Client().get(ME)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_password_without_its_second_factor_is_not_a_session(personas: Personas) -> None:
    client = Client()
    response = client.post(reverse("account_login"), {"login": "staff@smile.test", "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")  # the code was never entered
    assert client.get(ME).status_code == 401


def test_a_session_without_an_enrolled_second_factor_is_refused(personas: Personas) -> None:
    person = make_user("new@smile.test", mfa=False)
    add_member(personas.practice, person, Role.STAFF)
    response = signed_in_client(person).get(ME)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_only_get_is_answered(personas: Personas) -> None:
    response = signed_in_client(personas.members["staff"]).post(ME)
    assert response.status_code == 405
    owner = personas.members["owner"]
    _token, raw = create_api_token(
        organization=personas.practice, name="pms", scopes=["org:read"], days=1, actor=owner, user=owner
    )
    assert Client().post(ME, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 405
