"""Several processes appending at once keep one gap-free chain; rolled-back events leave no trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from urllib.parse import quote

import pytest
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


def _test_database_url() -> str:
    """The database the test runner created (test_<name>), so children see committed rows."""
    s = connection.settings_dict
    user = quote(s["USER"] or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    host = s["HOST"] or "localhost"
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(s['NAME'], safe='')}"


def _run_writers() -> list[dict[str, list[int]]]:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "DJANGO_SETTINGS_MODULE": "casebridge.settings"}
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


# SQLite has a single writer by design, so there is no concurrent sealing to test there.
@pytest.mark.postgres_only
@pytest.mark.usefixtures("transactional_db")
def test_concurrent_processes_keep_one_gap_free_verifiable_chain() -> None:
    results = _run_writers()
    committed = [pk for r in results for pk in r["committed"]]
    rolled_back = [pk for r in results for pk in r["rolled_back"]]
    total = len(committed)
    assert total + len(rolled_back) == WRITERS * EVENTS_PER_WRITER and rolled_back

    # The writers' on-commit sealing may leave the last few for the periodic sealer: drain them.
    chain.seal_pending()

    seals = list(Seal.objects.order_by("seq").values_list("seq", "event_id"))
    assert [seq for seq, _ in seals] == list(range(1, total + 1)), "sequence has gaps or duplicates"
    sealed_events = [event_id for _, event_id in seals]
    assert len(set(sealed_events)) == total, "an event was sealed twice"
    assert sorted(sealed_events) == sorted(committed), "a committed event was not sealed"
    assert set(Event.objects.values_list("id", flat=True)) == set(committed)
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
