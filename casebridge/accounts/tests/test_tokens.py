"""API tokens and service accounts: shown once, stored hashed, scoped, expiring, revocable."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.access.roles import Perm
from casebridge.accounts import actions
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.accounts.models import ApiToken, ServiceAccount
from casebridge.audit.models import Event
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _token(
    personas: Personas, role: str = "owner", scopes: list[str] | None = None, days: int = 7
) -> tuple[ApiToken, str]:
    user = personas.members[role]
    return actions.create_api_token(
        organization=personas.practice,
        name="integration",
        scopes=scopes or ["org:read"],
        days=days,
        actor=user,
        user=user,
    )


def _me(raw: str) -> tuple[int, dict]:
    response = Client().get(reverse("api_me"), HTTP_AUTHORIZATION=f"Bearer {raw}")
    return response.status_code, response.json()


def test_a_token_is_stored_only_as_a_digest(personas: Personas) -> None:
    token, raw = _token(personas)
    assert raw.startswith(f"cb_{token.prefix}_")
    assert raw not in (token.digest, token.prefix) and len(token.digest) == 64
    status, body = _me(raw)
    assert status == 200 and body["organization"]["slug"] == "smile-dental" and body["scopes"] == ["org:read"]


def test_every_token_use_is_attributed(personas: Personas) -> None:
    token, raw = _token(personas)
    _me(raw)
    event = Event.objects.get(action="token.used")
    assert event.actor_id == str(personas.members["owner"].pk)
    assert event.details["token"] == str(token.pk) and event.details["route"] == "api_me"
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_use_and_its_event_commit_together(personas: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    token, _raw = _token(personas)

    def cannot_write(*_args: object, **_kwargs: object) -> None:
        raise DatabaseError("the audit log cannot be written")

    monkeypatch.setattr(actions, "record", cannot_write)
    with pytest.raises(DatabaseError):
        actions.mark_token_used(token, method="GET", path_name="api_me")
    token.refresh_from_db()
    assert token.last_used_at is None  # no use recorded without its event


@pytest.mark.parametrize("tamper", ["revoked", "expired", "wrong-secret", "owner-deactivated", "garbage"])
def test_unusable_tokens_are_refused_with_401(personas: Personas, tamper: str) -> None:
    token, raw = _token(personas)
    if tamper == "revoked":
        actions.revoke_api_token(token, actor=personas.members["owner"])
    elif tamper == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif tamper == "wrong-secret":
        raw = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    elif tamper == "owner-deactivated":
        user = personas.members["owner"]
        user.is_active = False
        user.save()
    else:
        raw = "cb_nothing"
    response = Client().get(reverse("api_me"), HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert Event.objects.filter(action="token.rejected", outcome="denied").exists()


def test_a_token_never_exceeds_its_scopes_or_its_owners_role(personas: Personas) -> None:
    token, _raw = _token(personas, role="owner", scopes=["org:read"])
    access = resolve(personas.members["owner"], personas.practice, token)
    assert access is not None
    assert access.has(Perm.ORG_VIEW) and not access.has(Perm.AUDIT_VIEW)
    assert not access.has(Perm.MEMBERS_MANAGE)  # never available to tokens
    staff_token, _ = _token(personas, role="staff", scopes=["audit:read", "org:read"])
    staff_access = resolve(personas.members["staff"], personas.practice, staff_token)
    assert staff_access is not None and not staff_access.has(Perm.AUDIT_VIEW)


def test_a_token_for_one_organization_is_useless_in_another(personas: Personas) -> None:
    token, _raw = _token(personas)
    assert resolve(personas.members["owner"], personas.other_practice, token) is None


def test_tokens_cannot_use_browser_pages(personas: Personas) -> None:
    _token_obj, raw = _token(personas, scopes=["org:read", "audit:read"])
    response = Client().get(reverse("audit_log", args=["smile-dental"]), HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403


def test_bad_token_requests_change_nothing(personas: Personas) -> None:
    user = personas.members["owner"]
    for scopes, days in ((["everything"], 7), ([], 7), (["org:read"], 0), (["org:read"], 10_000)):
        with pytest.raises(ValidationError):
            actions.create_api_token(
                organization=personas.practice, name="x", scopes=scopes, days=days, actor=user, user=user
            )
    assert not ApiToken.objects.exists()


def test_token_creation_in_the_ui_needs_recent_reauthentication(personas: Personas) -> None:
    user = personas.members["clinician"]
    client = signed_in_client(user, reauthenticated=False)
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 600  # signed in ten minutes ago
    session.save()
    data = {"organization": "smile-dental", "name": "scanner", "scopes": ["cases:read"], "days": "30"}
    response = client.post(reverse("token_create"), data)
    assert response.status_code == 302 and "/reauthenticate/" in response["Location"]
    assert not ApiToken.objects.exists()
    fresh = signed_in_client(user)
    response = fresh.post(reverse("token_create"), data)
    assert response.status_code == 302
    page = fresh.get(reverse("security")).content.decode()
    token = ApiToken.objects.get()
    assert f"cb_{token.prefix}_" in page  # shown once...
    assert f"cb_{token.prefix}_" not in fresh.get(reverse("security")).content.decode()  # ...and never again


def test_people_cannot_revoke_someone_elses_token(personas: Personas) -> None:
    token, _raw = _token(personas, role="owner")
    client = signed_in_client(personas.members["admin"])
    assert client.post(reverse("token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_service_account_command_prints_the_token_once_and_it_works(personas: Personas) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "serviceaccount",
        "create",
        "--org",
        "smile-dental",
        "--name",
        "pms-sync",
        "--role",
        "staff",
        "--scope",
        "cases:read",
        stdout=out,
        stderr=err,
    )
    raw = out.getvalue().strip()
    status, body = _me(raw)
    assert status == 200 and body["actor"]["type"] == "service" and body["role"] == "staff"
    account = ServiceAccount.objects.get(name="pms-sync")
    assert Event.objects.filter(action="token.used", actor_type="service", actor_id=str(account.pk)).exists()
    call_command("serviceaccount", "deactivate", "--org", "smile-dental", "--name", "pms-sync", stdout=StringIO())
    assert _me(raw)[0] == 401


def test_service_account_command_refuses_bad_input(personas: Personas) -> None:
    with pytest.raises(CommandError, match="organization"):
        call_command("serviceaccount", "create", "--org", "nope", "--name", "a", "--role", "staff")
    with pytest.raises(CommandError, match="Role must be"):
        call_command("serviceaccount", "create", "--org", "smile-dental", "--name", "a", "--role", "owner")
    assert not ServiceAccount.objects.exists()
