"""Several processes appending at once keep one gap-free chain; rolled-back events leave no trace."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction

from casebridge.audit import chain
from casebridge.audit.api import record
from casebridge.audit.models import Checkpoint, Event, PendingSeal, Seal

WRITERS = 4
EVENTS_PER_WRITER = 300  # 1,200 in all: crosses a signed checkpoint (every 1,000)
ROLLBACK_EVERY = 10
TIMEOUT = 180


class _Abandon(Exception):
    pass


def _postgres_url() -> str:
    """The database the test runner created (test_<name>), so children see committed rows."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    host = s["HOST"] or "localhost"
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(s['NAME'], safe='')}"


@contextmanager
def _shared_database(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL the writer processes can open. PostgreSQL: the test database itself.
    SQLite's test database lives in this process's memory: the writers get a copy in a file
    (SQLite's online backup API), which is copied back here once they are done."""
    if connection.vendor == "postgresql":
        yield _postgres_url()
        return
    connection.ensure_connection()
    path = tmp_path / "shared.sqlite3"
    with closing(sqlite3.connect(path)) as shared:
        connection.connection.backup(shared)
        # In WAL mode before the writers open it, as the portal's database is from its first
        # migration: four processes switching a new file to WAL at once can get "database is
        # locked" at connect (changing the journal mode does not wait for the others).
        shared.execute("PRAGMA journal_mode=WAL")
    yield f"sqlite:///{path}"
    with closing(sqlite3.connect(path)) as shared:
        shared.backup(connection.connection)


def _run_writers(database_url: str) -> list[dict[str, list[int]]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "casebridge.settings",
        "CASEBRIDGE_AUDIT_WITNESS_DIR": str(settings.AUDIT_WITNESS_DIR),  # this test's own
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "casebridge.audit.tests.concurrent_writer",
                str(writer),
                str(EVENTS_PER_WRITER),
                str(ROLLBACK_EVERY),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(WRITERS)
    ]
    try:
        for proc in procs:  # every child has set Django up before any starts writing
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, f"writer exited with {proc.returncode}: {err}"
            # The unique seq and event columns would refuse a second sealer writing the same
            # links, so the chain survives without the lock; a failed pass here means the lock
            # does not serialize sealers and events wait for the periodic sealer.
            assert "audit sealing deferred" not in err, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# PostgreSQL: sealers race for the advisory lock after their commits. SQLite: each writer chains
# inside its own transaction, under the one write lock (audit/db/sqlite3/base.py).
@pytest.mark.usefixtures("transactional_db")
def test_concurrent_processes_keep_one_gap_free_verifiable_chain(tmp_path: Path) -> None:
    with _shared_database(tmp_path) as database_url:
        results = _run_writers(database_url)
    committed = [pk for r in results for pk in r["committed"]]
    rolled_back = [pk for r in results for pk in r["rolled_back"]]
    total = len(committed)
    assert total + len(rolled_back) == WRITERS * EVENTS_PER_WRITER and rolled_back
    written = {(e["writer"], e["n"]) for e in Event.objects.values_list("details", flat=True)}
    assert written == {(w, n) for w, r in enumerate(results) for n in r["committed_n"]}
    assert not written & {(w, n) for w, r in enumerate(results) for n in r["rolled_back_n"]}

    if connection.vendor == "sqlite":
        assert not PendingSeal.objects.exists(), "every commit chains its own events"
    # PostgreSQL: the writers' on-commit sealing may leave the last few for the periodic sealer.
    chain.seal_pending()

    seals = list(Seal.objects.order_by("seq").values_list("seq", "event_id"))
    assert [seq for seq, _ in seals] == list(range(1, total + 1)), "sequence has gaps or duplicates"
    sealed_events = [event_id for _, event_id in seals]
    assert len(set(sealed_events)) == total, "an event was sealed twice"
    assert sorted(sealed_events) == sorted(committed), "a committed event was not sealed"
    assert set(Event.objects.values_list("id", flat=True)) == set(committed)
    if connection.vendor == "postgresql":  # SQLite hands a rolled-back id out again
        assert not Event.objects.filter(id__in=rolled_back).exists()
    assert not PendingSeal.objects.exists()

    # Each writer committed its events one after another, so the chain keeps that order.
    seq_of = {event_id: seq for seq, event_id in seals}
    by_writer: dict[int, list[int]] = defaultdict(list)
    for writer, result in enumerate(results):
        by_writer[writer] = [seq_of[pk] for pk in result["committed"]]
    for writer, seqs in by_writer.items():
        assert seqs == sorted(seqs), f"writer {writer}'s events were chained out of commit order"

    result = chain.verify()
    assert result.ok, result.problem
    assert result.checked == total and result.head_seq == total and result.pending == 0
    assert Checkpoint.objects.filter(seq__gte=1000).exists(), "the checkpoint was not signed under load"


@pytest.mark.usefixtures("transactional_db")
def test_a_rolled_back_event_leaves_no_trace_and_no_gap() -> None:
    # Real commits (transactional_db), so the on-commit sealer runs as it does in production.
    before = record("org.created", details={"n": 1})
    with pytest.raises(_Abandon), transaction.atomic():
        record("org.created", details={"n": 2})
        raise _Abandon
    after = record("org.created", details={"n": 3})

    # By content, not id: SQLite hands the abandoned id out again to the next insert.
    assert sorted(e.details["n"] for e in Event.objects.all()) == [1, 3]
    assert not PendingSeal.objects.exists(), "committed events are sealed on commit"
    assert list(Seal.objects.order_by("seq").values_list("seq", "event_id")) == [(1, before.pk), (2, after.pk)]
    result = chain.verify()
    assert result.ok and result.checked == 2 and result.pending == 0
