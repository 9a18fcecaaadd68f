"""A BAA with an end date gates the data plane: after it, sending a case or an imaging order
over the connection is refused with the reason and the fix, both sides are told once, and a
recorded renewal opens it again."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.access.policy import organization_connection, resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.tests.test_workflow import _access, _lab, _ready_crown
from casebridge.core.testing import Personas
from casebridge.orgs import actions as org_actions
from casebridge.orgs.agreements import notify_expired
from casebridge.orgs.models import AgreementBasis, Connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(personas: Personas, vault_home: Path) -> Connection:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    signed = timezone.localdate() - timedelta(days=400)
    made = org_actions.request_connection(
        owner,
        other_slug=personas.lab.slug,
        basis=AgreementBasis.BAA,
        baa_signed_on=signed,
        baa_expires_on=timezone.localdate() + timedelta(days=10),
    )
    org_actions.accept_connection(_lab(personas), made)
    return made


def _expire(connection: Connection) -> None:
    Connection.objects.filter(pk=connection.pk).update(baa_expires_on=timezone.localdate() - timedelta(days=1))


def test_an_expired_baa_refuses_new_cases_with_the_reason(personas: Personas, connection: Connection) -> None:
    case = _ready_crown(personas)
    _expire(connection)
    problems = actions.submission_problems(case)
    assert any("expired on" in p and "Connections page" in p for p in problems)
    with pytest.raises(ValidationError, match="expired on"):
        actions.submit_case(_access(personas), case)
    current = organization_connection(personas.practice, personas.lab)
    assert current is not None and not current.can_carry_phi


def test_both_sides_are_told_once_and_a_renewal_opens_it_again(
    personas: Personas, connection: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    _expire(connection)
    with django_capture_on_commit_callbacks(execute=True):
        assert notify_expired() == 1
        assert notify_expired() == 0
    told = [m for m in mail.outbox if "agreement with" in m.subject]
    assert sorted(m.subject.split("] ", 1)[1] for m in told) == [
        "Business associate agreement with Precision Lab expired",
        "Business associate agreement with Smile Dental expired",
    ]
    assert Event.objects.filter(action="org.connection.baa_expired").count() == 2
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    connection.refresh_from_db()
    org_actions.change_connection_basis(
        owner,
        connection,
        basis=AgreementBasis.BAA,
        baa_signed_on=timezone.localdate(),
        baa_expires_on=timezone.localdate() + timedelta(days=365),
    )
    case = _ready_crown(personas)
    actions.submit_case(_access(personas), case)
    connection.refresh_from_db()
    assert connection.baa_expiry_notified_on is None  # the renewal is watched afresh


def test_an_agreement_cannot_end_before_it_was_signed(personas: Personas, vault_home: Path) -> None:
    owner = resolve(personas.members["owner"], personas.practice)
    assert owner is not None
    with pytest.raises(ValidationError, match="end after it was signed"):
        org_actions.request_connection(
            owner,
            other_slug=personas.lab.slug,
            basis=AgreementBasis.BAA,
            baa_signed_on=date(2026, 5, 1),
            baa_expires_on=date(2026, 4, 1),
        )
