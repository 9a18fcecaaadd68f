"""Auditors fetch proofs over the API: their own organization's events only (404 for another's),
with the audit permission and the audit:read scope; each proof handed out is an audit event."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from casebridge.accounts.actions import create_api_token
from casebridge.accounts.models import User
from casebridge.audit import chain, merkle
from casebridge.audit.api import record
from casebridge.audit.models import Event
from casebridge.core.testing import Personas
from casebridge.orgs.models import Organization

pytestmark = pytest.mark.django_db


def _client(user: User, org: Organization, scopes: list[str]) -> Client:
    _token, raw = create_api_token(organization=org, name="auditor", scopes=scopes, days=1, actor=user, user=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture
def log(personas: Personas, vault_home: Path) -> tuple[int, int]:
    """One event of the practice, one of the other practice, sealed and checkpointed."""
    record("org.created", organization=personas.practice)
    record("org.created", organization=personas.other_practice)
    chain.seal_pending()
    chain.checkpoint_now()
    ours = Event.objects.get(organization_id=personas.practice.pk, action="org.created").seal.seq
    theirs = Event.objects.get(organization_id=personas.other_practice.pk, action="org.created").seal.seq
    return ours, theirs


def test_an_auditor_gets_a_proof_of_an_event_of_their_organization(personas: Personas, log: tuple[int, int]) -> None:
    ours, _theirs = log
    client = _client(personas.members["auditor"], personas.practice, ["audit:read"])
    response = client.get(f"/api/v1/audit/proofs/inclusion/{ours}")
    assert response.status_code == 200, response.content
    proof = response.json()
    assert merkle.verify_document(proof)
    assert Event.objects.filter(action="audit.proof.given", organization_id=personas.practice.pk).count() == 1


def test_another_organizations_event_is_404_and_a_missing_scope_or_role_403(
    personas: Personas, log: tuple[int, int]
) -> None:
    ours, theirs = log
    auditor = _client(personas.members["auditor"], personas.practice, ["audit:read"])
    assert auditor.get(f"/api/v1/audit/proofs/inclusion/{theirs}").status_code == 404
    assert auditor.get("/api/v1/audit/proofs/inclusion/999").status_code == 404
    no_scope = _client(personas.members["auditor"], personas.practice, ["org:read"])
    assert no_scope.get(f"/api/v1/audit/proofs/inclusion/{ours}").status_code == 403
    staff = _client(personas.members["staff"], personas.practice, ["audit:read", "cases:read"])
    assert staff.get(f"/api/v1/audit/proofs/inclusion/{ours}").status_code == 403
    assert Client().get(f"/api/v1/audit/proofs/inclusion/{ours}").status_code == 401


def test_a_consistency_proof_between_checkpoints(personas: Personas, log: tuple[int, int]) -> None:
    first = chain.Checkpoint.objects.order_by("seq").last()
    assert first is not None
    for _ in range(3):
        record("org.created", organization=personas.practice)
    chain.checkpoint_now()
    second = chain.Checkpoint.objects.order_by("seq").last()
    assert second is not None and second.seq > first.seq
    client = _client(personas.members["auditor"], personas.practice, ["audit:read"])
    response = client.get("/api/v1/audit/proofs/consistency", {"old": first.seq, "new": second.seq})
    assert response.status_code == 200, response.content
    proof = response.json()
    assert merkle.verify_document(proof)
    refused = client.get("/api/v1/audit/proofs/consistency", {"old": second.seq, "new": first.seq})
    assert refused.status_code == 409 and "older first" in refused.content.decode()


def test_an_archived_event_is_still_proved_and_still_only_to_its_organization(
    personas: Personas, log: tuple[int, int]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from casebridge.audit import archive

    ours, theirs = log
    record("org.created", organization=personas.practice)  # the head, which stays hot
    chain.checkpoint_now()
    assert archive.archive(now=timezone.now() + timedelta(days=400))
    assert not Event.objects.filter(seal__seq__in=[ours, theirs]).exists()
    auditor = _client(personas.members["auditor"], personas.practice, ["audit:read"])
    response = auditor.get(f"/api/v1/audit/proofs/inclusion/{ours}")
    assert response.status_code == 200, response.content
    assert merkle.verify_document(response.json())
    assert auditor.get(f"/api/v1/audit/proofs/inclusion/{theirs}").status_code == 404


def test_a_destroyed_event_gets_a_409_that_says_so_and_a_later_one_its_proof(
    personas: Personas, vault_home: Path
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from casebridge.audit import archive

    for _ in range(5):
        record("org.created", organization=personas.practice)
    chain.seal_pending()
    chain.checkpoint_now()
    for _ in range(3):
        record("org.created", organization=personas.practice)
    chain.seal_pending()
    [segment] = archive.archive(now=timezone.now() + timedelta(days=400))
    chain.checkpoint_now()
    archive.destroy(segment)
    client = _client(personas.members["auditor"], personas.practice, ["audit:read"])

    gone = client.get(f"/api/v1/audit/proofs/inclusion/{segment.first_seq}")
    assert gone.status_code == 409 and "destroyed" in gone.json()["detail"]
    later = client.get(f"/api/v1/audit/proofs/inclusion/{segment.last_seq + 1}")
    assert later.status_code == 200 and merkle.verify_document(later.json())
