"""`audit verify` checks the hot table in chunks aligned to the Merkle tree, in worker processes
where it may. Put together in order, the chunks find exactly what one walk from #1 finds: every
signed tree root, and the first bad event wherever it sits against a chunk's edge."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection
from pytest_django.fixtures import Settings

from casebridge.audit import chain, chunks, merkle
from casebridge.audit.api import record, record_many
from casebridge.audit.models import Checkpoint, Event, Seal
from casebridge.audit.testing import tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 4 events and a checkpoint every 3: a dozen events cross several chunk edges,
    and checkpoints fall inside chunks and on their last event."""
    monkeypatch.setattr(chunks, "CHUNK_BITS", 2)
    monkeypatch.setattr(chunks, "CHUNK", 4)
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 3)


def _events(n: int) -> list[Event]:
    """n events, each sealed on its own (so checkpoints fall every CHECKPOINT_EVERY events)."""
    events = []
    for i in range(n):
        events.append(record("org.created", details={"n": i}))
        chain.seal_pending()
    return events


def test_appending_a_perfect_subtree_is_appending_its_leaves() -> None:
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for height in range(4):
        width = 1 << height
        for start in range(0, 70 - width + 1, width):
            one_by_one, whole = merkle.Frontier(), merkle.Frontier()
            for leaf in leaves[: start + width]:
                one_by_one.append(leaf)
            for leaf in leaves[:start]:
                whole.append(leaf)
            whole.append_subtree(merkle.root(leaves[start : start + width]), height)
            assert (whole.size, whole.nodes) == (one_by_one.size, one_by_one.nodes)
            assert whole.root() == merkle.root(leaves[: start + width])
    with pytest.raises(ValueError, match="multiple"):
        merkle.Frontier(3, [b"a" * 32, b"b" * 32]).append_subtree(b"c" * 32, 1)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9, 13, 17])
def test_every_signed_tree_root_is_found_again_across_chunk_edges(small_chunks: None, n: int) -> None:
    _events(n)
    chain.checkpoint_now()
    signed = list(Checkpoint.objects.exclude(tree_root="").order_by("seq").values_list("seq", flat=True))
    assert signed == ([*range(3, n, 3), n] if n % 3 else [*range(3, n + 1, 3)])
    result = chain.verify()
    assert result.ok and result.checked == n and result.head_seq == n, result.problem


def test_a_chunk_continues_the_tree_of_the_events_before_it(small_chunks: None) -> None:
    """Verification is also right when the hot table starts mid-chunk (after archived events):
    the first task carries the tree so far, the later ones start their own."""
    _events(6)
    seals = Seal.objects.select_related("event").order_by("seq")
    leaves = [merkle.leaf_hash(chain.canonical(seal.event, seal.seq)) for seal in seals]
    tree = merkle.Frontier()
    for leaf in leaves[:2]:
        tree.append(leaf)
    tasks = chain._hot_tasks(3, 6, Seal.objects.get(seq=2).hash, tree, [])
    assert [(t[0], t[1], t[2] is not None, t[3][0]) for t in tasks] == [(3, 4, True, 2), (5, 6, False, 0)]
    first, second = (chunks.check(*task) for task in tasks)
    whole = chain._joined(merkle.Frontier(first.size, first.nodes), second.size, second.nodes)
    assert whole.size == 6 and whole.root() == merkle.root(leaves)


@pytest.mark.parametrize("bad", range(1, 11))
def test_an_edited_event_is_named_wherever_it_sits(small_chunks: None, bad: int) -> None:
    events = _events(10)
    chain.checkpoint_now()
    tamper("UPDATE audit_event SET actor_label = 'someone else' WHERE id = %s", [events[bad - 1].pk])
    result = chain.verify()
    assert not result.ok and result.bad_seq == bad and result.bad_event_id == events[bad - 1].pk
    assert "does not match its hash" in result.problem


@pytest.mark.parametrize("bad", [1, 4, 5, 8, 9])
def test_a_deleted_event_is_a_gap_at_its_seq(small_chunks: None, bad: int) -> None:
    events = _events(10)
    tamper("DELETE FROM audit_seal WHERE event_id = %s", [events[bad - 1].pk])
    tamper("DELETE FROM audit_event WHERE id = %s", [events[bad - 1].pk])
    result = chain.verify()
    assert not result.ok and result.bad_seq == bad and "gap" in result.problem


@pytest.mark.parametrize("first", [3, 4, 8])
def test_events_swapped_across_a_chunk_edge_are_found_at_the_first(small_chunks: None, first: int) -> None:
    events = _events(10)
    a, b = events[first - 1].pk, events[first].pk
    tamper("UPDATE audit_seal SET event_id = -1 WHERE event_id = %s", [a])
    tamper("UPDATE audit_seal SET event_id = %s WHERE event_id = %s", [a, b])
    tamper("UPDATE audit_seal SET event_id = %s WHERE event_id = -1", [b])
    result = chain.verify()
    assert not result.ok and result.bad_seq == first


def test_a_history_rewritten_in_a_later_chunk_fails_at_its_first_checkpoint(small_chunks: None) -> None:
    """The attacker edits #6 and recomputes every hash after it: the chain is whole again, but
    checkpoint #6 (inside the second chunk) signed the old tree and chain."""
    events = _events(10)
    chain.checkpoint_now()
    tamper("UPDATE audit_event SET outcome = 'denied' WHERE id = %s", [events[5].pk])
    prev = Seal.objects.get(seq=5).hash
    for seal in Seal.objects.select_related("event").filter(seq__gte=6).order_by("seq"):
        prev = chain.link(prev, seal.event, seal.seq)
        tamper("UPDATE audit_seal SET hash = %s WHERE seq = %s", [prev, seal.seq])
    result = chain.verify()
    assert not result.ok and result.bad_seq == 6 and "checkpoint #6" in result.problem


def test_a_forged_checkpoint_signature_in_a_later_chunk_is_named(small_chunks: None) -> None:
    _events(10)
    chain.checkpoint_now()
    tamper("UPDATE audit_checkpoint SET signature = %s WHERE seq = 9", ["A" * 88])
    result = chain.verify()
    assert not result.ok and result.bad_seq == 9 and "invalid signature" in result.problem


def test_a_test_transaction_verifies_in_this_process() -> None:
    """Workers open connections of their own: they could not see this test's transaction."""
    assert connection.in_atomic_block and chunks.processes_for(100) == 1


def test_a_process_with_other_threads_verifies_in_itself(
    transactional_db: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threaded server (gunicorn's gthread workers) is never forked: a lock another thread
    holds would stay held in the child for ever."""
    settings.AUDIT_VERIFY_PROCESSES = 2
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert chunks.processes_for(100) == 1
        monkeypatch.setattr(chunks, "_threaded", lambda: False)  # the thread was the only reason
        assert chunks.processes_for(100) == (2 if connection.vendor == "postgresql" else 1)  # SQLite's in memory
    finally:
        stop.set()
        other.join()


@pytest.mark.postgres_only
def test_worker_processes_find_what_one_process_finds(
    transactional_db: None, small_chunks: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AUDIT_VERIFY_PROCESSES = 2
    # The suite's session-wide servers (live server, S3, SMTP) are idle daemon threads, which a
    # forked worker cannot trip over; the refusal itself is the test below.
    monkeypatch.setattr(chunks, "_threaded", lambda: False)
    events = _events(11)
    chain.checkpoint_now()
    result = chain.verify()
    assert result.ok and result.checked == 11 and result.processes == 2, result.problem
    tamper("UPDATE audit_event SET actor_label = 'someone else' WHERE id = %s", [events[6].pk])
    result = chain.verify()
    assert not result.ok and result.bad_seq == 7 and result.bad_event_id == events[6].pk
    assert result.processes == 2
    assert record("org.created").pk  # this process's own connection is still open and usable


@pytest.mark.sqlite_pass_only
@pytest.mark.slow
def test_audit_verify_on_an_installation_uses_its_cpus_and_names_the_edited_event(tmp_path: Path) -> None:
    """`casebridge audit verify` on a SQLite installation, as an operator runs it: 20,000 events
    (three chunks) checked in two processes; an event edited in the last chunk is named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEBRIDGE_", "DATABASE_URL"))}
    env.update(
        CASEBRIDGE_HOME=str(tmp_path),
        DJANGO_SETTINGS_MODULE="casebridge.settings",
        CASEBRIDGE_AUDIT_VERIFY_PROCESSES="2",
    )

    def casebridge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "casebridge.cli", *args], env=env, capture_output=True, text=True, timeout=300
        )

    assert casebridge("migrate", "--verbosity", "0").returncode == 0
    write = (
        "from casebridge.audit import chain; from casebridge.audit.api import record_many; "
        "[record_many({'action': 'org.created', 'details': {'n': n}} for n in range(k, k + 5000)) "
        "for k in range(0, 20000, 5000)]; chain.checkpoint_now()"
    )
    assert casebridge("shell", "-c", write).returncode == 0
    done = casebridge("audit", "verify")
    assert done.returncode == 0 and "intact: 20000 events" in done.stdout and "in 2 processes" in done.stdout
    with sqlite3.connect(tmp_path / "casebridge.sqlite3") as db:  # an attacker with the file
        seq, event_id = db.execute("SELECT seq, event_id FROM audit_seal WHERE seq = 19000").fetchone()
        for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{trigger}"')
        db.execute("UPDATE audit_event SET actor_label = 'someone else' WHERE id = ?", [event_id])
    done = casebridge("audit", "verify")
    assert done.returncode != 0 and f"AUDIT CHAIN BROKEN at #{seq} (event {event_id})" in done.stderr


def test_record_many_events_verify_in_one_chunk_too() -> None:
    record_many({"action": "org.created", "details": {"n": n}} for n in range(50))
    chain.seal_pending()
    result = chain.verify()
    assert result.ok and result.checked == 50 and result.processes == 1
