"""Writes that had no audit event: each now commits with its event, or not at all."""

from __future__ import annotations

import getpass
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from allauth.usersessions.models import UserSession
from django.core.management import call_command
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.audit.testing import audit_store_refusing_events
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import EmergencyAccess, Membership, Organization
from casebridge.vault import keystore
from casebridge.vault.models import OrgKey

pytestmark = pytest.mark.django_db


def _createadmin() -> None:
    call_command(
        "createadmin", "--email", "boss@new.test", "--org", "New Dental", "--kind", "practice", stdout=StringIO()
    )


def test_createadmin_audits_the_account_the_organization_and_the_link_as_the_operator() -> None:
    _createadmin()
    user = User.objects.get(email="boss@new.test")
    events = {e.action: e for e in Event.objects.all()}
    assert set(events) == {"auth.user.created", "org.created", "auth.setup_link.created"}
    assert events["auth.user.created"].target_id == str(user.pk)
    for event in events.values():
        assert event.actor_type == "operator"
        assert event.actor_label == f"operator:{getpass.getuser()} (casebridge createadmin)"


def test_createadmin_creates_nothing_when_its_events_cannot_be_written() -> None:
    with audit_store_refusing_events(), pytest.raises(DatabaseError):
        _createadmin()
    assert not User.objects.exists() and not Organization.objects.exists()


def _grant_to_staff(personas: Personas) -> EmergencyAccess:
    owner = resolve(personas.members["owner"], personas.practice)
    staff = Membership.objects.get(user=personas.members["staff"])
    return org_actions.grant_emergency_access(
        owner, staff, reason="Dr. Smith is unreachable and the lab needs the case today.", hours=2
    )


@pytest.mark.parametrize("operation", ["deactivate", "remove"])
def test_cutting_a_member_off_ends_their_emergency_access_with_an_event(personas: Personas, operation: str) -> None:
    grant = _grant_to_staff(personas)
    owner = resolve(personas.members["owner"], personas.practice)
    membership = Membership.objects.get(user=personas.members["staff"])
    getattr(org_actions, f"{operation}_member")(owner, membership)
    grant.refresh_from_db()
    assert grant.ended_at is not None
    ended = Event.objects.get(action="breakglass.revoked", target_id=str(grant.pk))
    assert ended.actor_id == str(personas.members["owner"].pk)
    assert ended.details["reason"] == f"member {operation}d"


def test_a_member_stays_active_with_their_grant_when_the_events_cannot_be_written(personas: Personas) -> None:
    grant = _grant_to_staff(personas)
    owner = resolve(personas.members["owner"], personas.practice)
    membership = Membership.objects.get(user=personas.members["staff"])
    with audit_store_refusing_events(), pytest.raises(DatabaseError):
        org_actions.deactivate_member(owner, membership)
    membership.refresh_from_db()
    grant.refresh_from_db()
    assert membership.is_active and grant.ended_at is None


def test_destroying_an_organizations_keys_is_audited_with_the_reason(personas: Personas, vault_home: Path) -> None:
    from casebridge.vault.keystore import current_org_key

    current_org_key(personas.practice.pk)
    assert keystore.destroy_org_keys(personas.practice.pk, actor=None, reason="BAA ended: destroy") == 1
    event = Event.objects.get(action="keys.organization_destroyed")
    assert event.organization_id == personas.practice.pk and event.details == {
        "org_keys": 1,
        "reason": "BAA ended: destroy",
    }
    with pytest.raises(ValueError, match="why"):
        keystore.destroy_org_keys(personas.other_practice.pk, actor=None, reason=" ")


def test_organization_keys_survive_when_their_destruction_cannot_be_audited(
    personas: Personas, vault_home: Path
) -> None:
    from casebridge.vault.keystore import current_org_key

    current_org_key(personas.practice.pk)
    with audit_store_refusing_events(), pytest.raises(DatabaseError):
        keystore.destroy_org_keys(personas.practice.pk, actor=None, reason="BAA ended: destroy")
    assert OrgKey.objects.filter(organization=personas.practice, destroyed_at__isnull=True).count() == 1


def _two_sessions(user: User) -> tuple[Client, UserSession]:
    laptop, phone = signed_in_client(user), signed_in_client(user)
    laptop.get(reverse("home"))
    phone.get(reverse("home"))
    other = UserSession.objects.get(user=user, session_key=phone.session.session_key)
    return laptop, other


def test_ending_another_session_is_audited(personas: Personas) -> None:
    user = personas.members["staff"]
    laptop, phone_session = _two_sessions(user)
    response = laptop.post(reverse("session_end", args=[phone_session.pk]))
    assert response.status_code == 302
    assert not UserSession.objects.filter(pk=phone_session.pk).exists()
    event = Event.objects.get(action="auth.session.revoked")
    assert event.actor_id == str(user.pk) and event.details == {"count": 1, "reason": "ended by user"}


def test_a_session_is_not_ended_when_its_event_cannot_be_written(personas: Personas) -> None:
    user = personas.members["staff"]
    laptop, phone_session = _two_sessions(user)
    with audit_store_refusing_events(), pytest.raises(DatabaseError):
        laptop.post(reverse("session_end", args=[phone_session.pk]))
    assert UserSession.objects.filter(pk=phone_session.pk).exists()


def test_expired_key_rows_are_not_touched(personas: Personas, vault_home: Path) -> None:
    """A second destruction finds nothing to destroy and writes no event."""
    from casebridge.vault.keystore import current_org_key

    current_org_key(personas.practice.pk)
    keystore.destroy_org_keys(personas.practice.pk, actor=None, reason="BAA ended: destroy")
    assert keystore.destroy_org_keys(personas.practice.pk, actor=None, reason="again") == 0
    assert Event.objects.filter(action="keys.organization_destroyed").count() == 1
    assert timezone.now() - timedelta(minutes=1) < OrgKey.objects.get().destroyed_at
