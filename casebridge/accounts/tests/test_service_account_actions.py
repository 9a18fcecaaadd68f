"""Service-account and token actions check the acting principal themselves; the command line acts
as an audited operator, never as nobody."""

from __future__ import annotations

import getpass
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from casebridge.access.operator import Operator, operator_access
from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.access.roles import Perm
from casebridge.accounts import actions
from casebridge.accounts.models import ApiToken, ServiceAccount
from casebridge.audit.models import Event
from casebridge.core.testing import Personas

pytestmark = pytest.mark.django_db


def _access(personas: Personas, role: str, org: str = "practice") -> OrgAccess:
    user = personas.members[role] if org == "practice" else personas.outsider
    access = resolve(user, personas.practice if org == "practice" else personas.other_practice)
    assert access is not None
    return access


def _create(access: OrgAccess, name: str = "pms-sync") -> tuple[ServiceAccount, str]:
    return actions.create_service_account(access, name=name, role="staff", scopes=["cases:read"], days=30)


@pytest.mark.parametrize("role", ["staff", "clinician", "compliance_officer", "auditor"])
def test_members_without_the_permission_cannot_create_service_accounts(personas: Personas, role: str) -> None:
    with pytest.raises(Forbidden):
        _create(_access(personas, role))
    assert not ServiceAccount.objects.exists() and not ApiToken.objects.exists()


def test_a_token_never_creates_service_accounts_even_the_owners(personas: Personas) -> None:
    owner = personas.members["owner"]
    token, _raw = actions.create_api_token(
        organization=personas.practice, name="all", scopes=["org:read", "cases:write"], days=7, actor=owner, user=owner
    )
    access = resolve(owner, personas.practice, token)
    assert access is not None
    with pytest.raises(Forbidden):
        _create(access)
    assert not ServiceAccount.objects.exists()


def test_an_owner_creates_and_deactivates_a_service_account(personas: Personas) -> None:
    access = _access(personas, "owner")
    account, raw = _create(access)
    assert account.organization == personas.practice and raw.startswith("cb_")
    actions.deactivate_service_account(access, account)
    account.refresh_from_db()
    assert not account.is_active and not account.tokens.filter(revoked_at__isnull=True).exists()
    assert Event.objects.filter(
        action="service_account.deactivated", actor_id=str(personas.members["owner"].pk)
    ).exists()


def test_no_one_deactivates_another_organizations_service_account(personas: Personas) -> None:
    account, _raw = _create(_access(personas, "owner"))
    with pytest.raises(ValidationError, match="another organization"):
        actions.deactivate_service_account(_access(personas, "owner", org="other"), account)
    with pytest.raises(Forbidden):
        actions.deactivate_service_account(_access(personas, "staff"), account)
    account.refresh_from_db()
    assert account.is_active and account.tokens.filter(revoked_at__isnull=True).count() == 1


def test_the_command_acts_as_the_operator_and_is_audited_so(personas: Personas) -> None:
    out = StringIO()
    call_command(
        "serviceaccount",
        *("create", "--org", "smile-dental", "--name", "pms-sync", "--role", "staff"),
        stdout=out,
        stderr=StringIO(),
    )
    created = Event.objects.get(action="service_account.created")
    assert created.actor_type == "operator" and created.actor_id == ""
    assert created.actor_label == f"operator:{getpass.getuser()} (casebridge serviceaccount create)"
    assert Event.objects.get(action="token.created").actor_type == "operator"
    call_command("serviceaccount", "deactivate", "--org", "smile-dental", "--name", "pms-sync", stdout=StringIO())
    deactivated = Event.objects.get(action="service_account.deactivated")
    assert deactivated.actor_label.endswith("(casebridge serviceaccount deactivate)")


def test_the_operator_holds_only_the_permission_its_command_needs(personas: Personas) -> None:
    access = operator_access(Operator.running("serviceaccount create"), personas.practice, Perm.SERVICE_ACCOUNTS_MANAGE)
    assert access.permissions == {Perm.SERVICE_ACCOUNTS_MANAGE}
    with pytest.raises(Forbidden):
        actions.revoke_tokens_of(access, personas.members["staff"])
    other = operator_access(Operator.running("createadmin"), personas.practice)
    with pytest.raises(Forbidden):
        _create(other)


def test_personal_tokens_only_for_oneself_and_where_one_is_an_active_member(personas: Personas) -> None:
    owner, staff = personas.members["owner"], personas.members["staff"]
    with pytest.raises(ValidationError, match="person it belongs to"):
        actions.create_api_token(
            organization=personas.practice, name="x", scopes=["org:read"], days=7, actor=owner, user=staff
        )
    with pytest.raises(ValidationError, match="not an active member"):
        actions.create_api_token(
            organization=personas.other_practice, name="x", scopes=["org:read"], days=7, actor=owner, user=owner
        )
    gone = personas.deactivated
    with pytest.raises(ValidationError, match="not an active member"):
        actions.create_api_token(
            organization=personas.practice, name="x", scopes=["org:read"], days=7, actor=gone, user=gone
        )
    assert not ApiToken.objects.exists()


def test_people_revoke_only_their_own_tokens(personas: Personas) -> None:
    staff = personas.members["staff"]
    token, _raw = actions.create_api_token(
        organization=personas.practice, name="x", scopes=["org:read"], days=7, actor=staff, user=staff
    )
    with pytest.raises(ValidationError, match="your own"):
        actions.revoke_api_token(token, actor=personas.members["owner"])
    with pytest.raises(Forbidden):
        actions.revoke_tokens_of(_access(personas, "clinician"), staff)
    token.refresh_from_db()
    assert token.revoked_at is None
    assert actions.revoke_tokens_of(_access(personas, "admin"), staff) == 1
