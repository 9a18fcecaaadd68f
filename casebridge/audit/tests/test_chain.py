"""The audit log is append-only, chained and verifiable; tampering is found and named."""

from __future__ import annotations

import types
import uuid
from datetime import datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from casebridge.audit import chain, chunks, triggers
from casebridge.audit.api import record, record_many
from casebridge.audit.catalog import UnknownAuditAction, register
from casebridge.audit.models import Checkpoint, Event, PendingSeal, Seal
from casebridge.core import context
from casebridge.core.context import RequestContext

pytestmark = pytest.mark.django_db


def _events(n: int) -> list[Event]:
    events = [record("org.created", details={"n": i}) for i in range(n)]
    chain.seal_pending()
    return events


def _raw(sql: str, params: list | None = None) -> None:
    """Tamper directly in the database, as an attacker with SQL access would."""
    triggers.remove(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])


def test_it_seals_events_in_a_gap_free_chain() -> None:
    _events(5)
    assert list(Seal.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4, 5]
    assert PendingSeal.objects.count() == 0
    result = chain.verify()
    assert result.ok and result.checked == 5


def test_record_many_appends_a_batch_in_order_with_the_same_checks() -> None:
    first = record("org.created", details={"n": 0})
    batch = record_many({"action": "org.created", "details": {"n": n}} for n in range(1, 4))
    assert [e.pk for e in batch] == sorted(e.pk for e in batch)
    assert all(isinstance(e.occurred_at, datetime) for e in batch)
    chain.seal_pending()
    sealed = list(Seal.objects.order_by("seq").values_list("seq", "event_id"))
    assert sealed == [(1, first.pk)] + [(n + 2, e.pk) for n, e in enumerate(batch)]
    assert chain.verify().ok
    assert record_many([]) == []
    with pytest.raises(ValueError, match="PHI"):
        record_many([{"action": "org.created"}, {"action": "org.created", "details": {"dob": "1970-01-01"}}])
    assert Event.objects.count() == 4, "a refused batch writes nothing"


def test_it_refuses_unknown_actions() -> None:
    with pytest.raises(UnknownAuditAction):
        record("auth.made.up")


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="twice"):
        register("auth.login.failed", "again")


def test_details_refuse_phi_fields() -> None:
    with pytest.raises(ValueError, match="PHI"):
        record("org.created", details={"patient_name": "Jane Roe"})


@pytest.mark.parametrize("table", ["audit_event", "audit_seal"])
def test_database_refuses_update_and_delete(table: str) -> None:
    _events(2)
    column = "action" if table == "audit_event" else "hash"
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")


def test_orm_update_is_refused_too() -> None:
    (event,) = _events(1)
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(outcome="failure")


def _every_column_filled(details: dict) -> Event:
    """An event with an organization, an address, a browser and an emergency-access grant."""
    organization = uuid.uuid4()
    grant = types.SimpleNamespace(pk=uuid.uuid4(), organization_id=organization)
    token = context.activate(RequestContext(ip="2001:db8::7", user_agent="Chromium é", emergency_access=grant))
    try:
        return record("org.created", organization=organization, details=details)
    finally:
        context.deactivate(token)


def test_verify_reads_every_column_the_quick_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification rebuilds each event's form from the raw rows; the slower reference path
    (Django's field conversions) is never needed for ordinary events."""
    _every_column_filled({"case": "CB-2026-000001", "nested": {"b": [1, None, True], "a": "\u2028\x1f"}})
    _events(3)
    used = []
    monkeypatch.setattr(chunks, "_reference_form", lambda *a: used.append(a) or None)
    result = chain.verify()
    assert result.ok and result.checked == 4 and used == []


@pytest.mark.parametrize("value", [1e-07, 2**70, 1.5e300, -0.0])
def test_values_the_quick_form_writes_otherwise_still_verify_and_tampering_is_still_found(value: object) -> None:
    event = _every_column_filled({"value": value, "list": [value]})
    _events(2)
    assert chain.verify().ok
    _raw("UPDATE audit_event SET actor_label = %s WHERE id = %s", ["someone else", event.pk])
    result = chain.verify()
    assert not result.ok and result.bad_event_id == event.pk and "does not match its hash" in result.problem


def test_verify_finds_an_edited_event() -> None:
    events = _events(5)
    _raw("UPDATE audit_event SET actor_label = 'someone else' WHERE id = %s", [events[2].pk])
    result = chain.verify()
    assert not result.ok
    assert result.bad_seq == 3 and result.bad_event_id == events[2].pk
    assert "does not match" in result.problem


def test_verify_finds_a_deleted_event() -> None:
    events = _events(5)
    _raw("DELETE FROM audit_seal WHERE event_id = %s", [events[1].pk])
    _raw("DELETE FROM audit_event WHERE id = %s", [events[1].pk])
    result = chain.verify()
    assert not result.ok and result.bad_seq == 2
    assert "gap" in result.problem


def test_verify_finds_an_inserted_event() -> None:
    events = _events(4)
    forged = Event.objects.create(actor_type="user", action="org.member.role_changed", details={})
    # Splice the forged event in at #3 by shifting later seals, keeping their hashes.
    _raw("DELETE FROM audit_pending_seal")
    _raw("UPDATE audit_seal SET seq = seq + 10 WHERE seq >= 3")
    _raw("UPDATE audit_seal SET seq = seq - 9 WHERE seq >= 13")
    _raw(
        "INSERT INTO audit_seal (seq, event_id, hash, sealed_at) VALUES (3, %s, %s, CURRENT_TIMESTAMP)",
        [forged.pk, "0" * 64],
    )
    result = chain.verify()
    assert not result.ok and result.bad_seq == 3 and result.bad_event_id == forged.pk
    assert events  # the genuine events are still there, after the forgery


def test_verify_finds_an_event_slipped_in_without_a_seal() -> None:
    _events(2)
    forged = Event.objects.create(actor_type="user", action="org.created", details={})
    result = chain.verify()
    assert not result.ok and result.bad_event_id == forged.pk


def test_verify_finds_reordered_events() -> None:
    events = _events(4)
    a, b = events[1].pk, events[2].pk
    _raw("UPDATE audit_seal SET event_id = -1 WHERE event_id = %s", [a])
    _raw("UPDATE audit_seal SET event_id = %s WHERE event_id = %s", [a, b])
    _raw("UPDATE audit_seal SET event_id = %s WHERE event_id = -1", [b])
    result = chain.verify()
    assert not result.ok and result.bad_seq == 2


def test_verify_finds_a_rewritten_history_through_the_signed_checkpoint() -> None:
    events = _events(3)
    chain.checkpoint_now()
    # The attacker edits an event and recomputes every hash after it: the chain is consistent
    # again, but no longer matches what was signed.
    _raw("UPDATE audit_event SET outcome = 'denied' WHERE id = %s", [events[0].pk])
    prev = chain.GENESIS
    for seal in Seal.objects.select_related("event").order_by("seq"):
        prev = chain.link(prev, seal.event, seal.seq)
        _raw("UPDATE audit_seal SET hash = %s WHERE seq = %s", [prev, seal.seq])
    result = chain.verify()
    assert not result.ok and "checkpoint" in result.problem


def test_verify_finds_events_removed_from_the_end() -> None:
    events = _events(3)
    chain.checkpoint_now()
    _raw("DELETE FROM audit_seal WHERE event_id = %s", [events[2].pk])
    _raw("DELETE FROM audit_event WHERE id = %s", [events[2].pk])
    result = chain.verify()
    assert not result.ok and "removed from the end" in result.problem


def test_checkpoint_with_forged_signature_is_rejected() -> None:
    _events(2)
    checkpoint = chain.checkpoint_now()
    assert checkpoint is not None
    _raw("UPDATE audit_checkpoint SET signature = %s", ["AAAA" + checkpoint.signature[4:]])
    result = chain.verify()
    assert not result.ok and "signature" in result.problem
    assert Checkpoint.objects.count() == 1


def test_command_exits_nonzero_naming_the_bad_event(capsys: pytest.CaptureFixture[str]) -> None:
    events = _events(3)
    call_command("audit", "verify")
    assert "intact" in capsys.readouterr().out
    _raw("UPDATE audit_event SET ip = '10.9.9.9' WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError, match=rf"#2 \(event {events[1].pk}\)"):
        call_command("audit", "verify")
