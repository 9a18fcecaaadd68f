"""Connections carry an agreement basis; emergency access is time-limited, notified and flagged."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.access.roles import Perm
from casebridge.audit.models import Event
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions
from casebridge.orgs.models import AgreementBasis, ConnectionStatus, EmergencyAccess, Membership

pytestmark = pytest.mark.django_db


def test_a_practice_connects_with_a_lab_which_accepts(personas: Personas) -> None:
    practice = resolve(personas.members["owner"], personas.practice)
    connection = actions.request_connection(
        practice, other_slug="precision-lab", basis=AgreementBasis.BAA, baa_signed_on=date(2026, 1, 15)
    )
    assert connection.status == ConnectionStatus.PENDING and not connection.can_carry_phi
    with pytest.raises(ValidationError, match="invited organization"):
        actions.accept_connection(practice, connection)
    actions.accept_connection(resolve(personas.lab_manager, personas.lab), connection)
    connection.refresh_from_db()
    assert connection.can_carry_phi
    assert list(
        Event.objects.filter(action__startswith="org.connection").order_by("id").values_list("action", flat=True)
    ) == [
        "org.connection.requested",
        "org.connection.accepted",
    ]


def test_a_connection_without_agreement_cannot_carry_phi(personas: Personas) -> None:
    practice = resolve(personas.members["owner"], personas.practice)
    connection = actions.request_connection(practice, other_slug="precision-lab", basis=AgreementBasis.NONE)
    actions.accept_connection(resolve(personas.lab_manager, personas.lab), connection)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.ACTIVE and not connection.can_carry_phi
    actions.change_connection_basis(practice, connection, basis=AgreementBasis.TREATMENT, baa_signed_on=None)
    connection.refresh_from_db()
    assert connection.can_carry_phi
    assert Event.objects.get(action="org.connection.changed").details["to"]["basis"] == "treatment"


@pytest.mark.parametrize(
    ("basis", "signed", "message"),
    [
        (AgreementBasis.BAA, None, "date"),
        (AgreementBasis.BAA, timezone.now().date() + timedelta(days=3), "future"),
        ("verbal", None, "must be one of"),
    ],
)
def test_bad_agreement_details_are_refused_and_change_nothing(
    personas: Personas, basis: str, signed: date | None, message: str
) -> None:
    practice = resolve(personas.members["owner"], personas.practice)
    with pytest.raises(ValidationError, match=message):
        actions.request_connection(practice, other_slug="precision-lab", basis=basis, baa_signed_on=signed)
    assert not personas.practice.connections_requested.exists()


def test_unknown_ids_and_self_connections_are_refused(personas: Personas) -> None:
    practice = resolve(personas.members["owner"], personas.practice)
    with pytest.raises(ValidationError, match="No organization"):
        actions.request_connection(practice, other_slug="smile-dental", basis=AgreementBasis.TREATMENT)
    with pytest.raises(ValidationError, match="No organization"):
        actions.request_connection(practice, other_slug="nobody", basis=AgreementBasis.TREATMENT)
    actions.request_connection(practice, other_slug="other-dental", basis=AgreementBasis.TREATMENT)
    with pytest.raises(ValidationError, match="already connected"):
        actions.request_connection(
            resolve(personas.outsider, personas.other_practice), other_slug="smile-dental", basis="treatment"
        )


def test_staff_cannot_manage_connections(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    response = client.post(
        reverse("connection_request", args=[personas.practice.slug]),
        {"other_slug": "precision-lab", "basis": "treatment"},
    )
    assert response.status_code == 403
    assert not personas.practice.connections_requested.exists()


def _grant(personas: Personas, hours: int = 2) -> EmergencyAccess:
    owner = resolve(personas.members["owner"], personas.practice)
    auditor = Membership.objects.get(user=personas.members["auditor"])
    return actions.grant_emergency_access(
        owner, auditor, reason="Dr. Smith is unreachable and the lab needs the case today.", hours=hours
    )


def test_emergency_access_elevates_notifies_and_flags_everything(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    auditor = personas.members["auditor"]
    before = resolve(auditor, personas.practice)
    assert not before.has(Perm.CASES_VIEW)
    with django_capture_on_commit_callbacks(execute=True):
        grant = _grant(personas)
    after = resolve(auditor, personas.practice)
    assert after.has(Perm.CASES_VIEW) and after.emergency == grant
    assert not after.has(Perm.MEMBERS_MANAGE)  # elevation covers patient data, not administration
    recipients = {address for message in mail.outbox for address in message.to}
    assert {"owner@smile.test", "admin@smile.test", "compliance_officer@smile.test"} <= recipients
    assert "auditor@smile.test" not in recipients
    # Everything the member does in the organization is now flagged with the grant.
    client = signed_in_client(auditor)
    client.get(reverse("audit_log", args=[personas.practice.slug]))
    viewed = Event.objects.filter(action="audit.viewed", actor_id=str(auditor.pk)).get()
    assert viewed.emergency_access_id == grant.pk


def test_emergency_access_expires_by_itself(personas: Personas) -> None:
    grant = _grant(personas)
    EmergencyAccess.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not resolve(personas.members["auditor"], personas.practice).has(Perm.CASES_VIEW)
    assert actions.record_expired_emergency_grants() == 1
    assert actions.record_expired_emergency_grants() == 0  # idempotent
    assert Event.objects.filter(action="breakglass.expired", target_id=str(grant.pk)).count() == 1


def test_emergency_access_needs_a_real_reason_and_bounded_duration(personas: Personas) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    member = Membership.objects.get(user=personas.members["staff"])
    with pytest.raises(ValidationError, match="reason"):
        actions.grant_emergency_access(owner, member, reason="because", hours=2)
    with pytest.raises(ValidationError, match="between"):
        actions.grant_emergency_access(owner, member, reason="x" * 40, hours=200)
    assert not EmergencyAccess.objects.exists()


def test_only_owners_and_admins_grant_emergency_access(personas: Personas) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    assert client.get(reverse("emergency", args=[personas.practice.slug])).status_code == 403


def test_revoked_emergency_access_stops_at_once(personas: Personas) -> None:
    grant = _grant(personas)
    actions.revoke_emergency_access(resolve(personas.members["owner"], personas.practice), grant)
    assert not resolve(personas.members["auditor"], personas.practice).has(Perm.CASES_VIEW)
    assert Event.objects.filter(action="breakglass.revoked").exists()
