"""Benchmark: durable audited events/s on PostgreSQL or SQLite, side by side with a plain unchained INSERT.

Usage: .venv/bin/python bench/audit_throughput.py [--rounds 5] [--db postgres|sqlite] [--alerts]
       [--url postgres://postgres@127.0.0.1:5432]

Creates its own database (casebridge_bench_<pid> on the server, or a SQLite file in WAL mode with
synchronous=FULL, the portal's settings), migrates it, runs every scenario with the same 4 writer
processes, then drops the database. Checkpoints are signed as in production (every 1,000 sealed
events, by the sealer). With --alerts the organization's alert rules run too, in their own
process as the worker runs them: `alerts.run()` each tick, which judges everything sealed since
the last (the worker ticks every 60 s; here every --judge-tick seconds, 1 by default, so the
rules judge while each round's writers write); a quarter of
the events are then downloads by a person (the mass-download rule counts that person's recent
downloads) and a quarter refused requests (the surge rule counts the organization's), so the rules
do their real queries. Scenarios:

  single  one event per transaction (the portal's shape: one request, one event)
  loop    500 events per transaction, record() called for each (a job auditing as it goes)
  bulk    500 events per transaction through record_many() (imports, bulk jobs)

Targets (issue 15): single >= 900 events/s, bulk >= 10,000 events/s; loop has none (a batch is
written with record_many()).

"ours" is casebridge.audit.api in the writer's transaction, sealed by the on-commit sealer; its
clock stops only once every event is chained (the parent drains the queue and that time counts),
so sealing is paid for. "peer" writes the same values into an unchained copy of audit_event
(same columns and indexes, no queue, no seal) with plain parametrized SQL through the same Django
connection: one INSERT per event for single/loop, one multi-row INSERT for bulk. Durability is the
server's own for both (synchronous_commit, fsync at each commit). Rounds alternate ours/peer so
background load on this shared machine hits both alike; medians and the ratio ours/peer are given.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WRITERS = 4
BATCH_SIZE = 500
# Events per writer and round, sized so that each scenario takes a second or two here.
EVENTS_PER_WRITER = {"single": 400, "loop": 1_000, "bulk": 5_000}
# Issue 15's targets: one event per transaction, and batched, which is record_many() (the loop of
# record() calls is shown for comparison: on PostgreSQL even its plain-INSERT peer runs at ~10,000).
TARGETS = {"single": 900, "bulk": 10_000}
LABELS = {
    "single": "1 event/transaction",
    "loop": f"{BATCH_SIZE}/transaction, record() each",
    "bulk": f"{BATCH_SIZE}/transaction, record_many()",
}
KINDS = ("single", "loop", "bulk")
ACTION = "org.member.role_changed"
ORG_ID = "8f14e45f-ceea-467f-a0e6-1c2b3d4e5f60"

PEER_TABLE = "bench_plain_event"
PEER_COLUMNS = (
    "actor_type, actor_id, actor_label, organization_id, action, target_type, target_id, patient_ref, "
    "ip, user_agent, request_id, outcome, emergency_access_id, details"
)
PEER_ROW = "(" + ", ".join(["%s"] * 14) + ")"


def _setup_django(database_url: str, home: str) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:  # the portal's own SQLite file under CASEBRIDGE_HOME
        os.environ.pop("DATABASE_URL", None)
    os.environ["CASEBRIDGE_HOME"] = home
    os.environ["DJANGO_SETTINGS_MODULE"] = "casebridge.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _action(n: int, alerts: bool) -> str:
    """The event's action: always ACTION, or with --alerts a mix the alert rules look into."""
    if not alerts:
        return ACTION
    return {0: "file.downloaded", 1: "access.denied"}.get(n % 4, ACTION)


def _event_fields(writer: int, n: int) -> dict[str, Any]:
    """What a typical request's event carries (an org-scoped action on a target, with details)."""
    return {
        "organization": ORG_ID,
        "target_type": "orgs.membership",
        "target_id": f"{writer}-{n}",
        "patient_ref": f"p{n % 97}",
        "details": {"writer": writer, "n": n, "role": "technician"},
        "actor_label": "bench@example.org",
    }


def _worker(writer: int, database_url: str, home: str, alerts: bool, go: Any, pipe: Connection) -> None:
    """One writer process: waits for a command, then for the barrier, runs it, reports its times."""
    _setup_django(database_url, home)
    import json

    from django.db import connection, transaction

    from casebridge.accounts.models import User
    from casebridge.audit.api import record, record_many
    from casebridge.core import context

    person = User.objects.get(email="bench@example.org") if alerts else None

    ctx = context.RequestContext(ip="203.0.113.7", user_agent="bench/1.0")
    context.activate(ctx)

    def actor(n: int) -> User | None:
        return person if _action(n, alerts) == "file.downloaded" else None

    def peer_row(n: int) -> list[Any]:
        """The values record() stores, in the order of PEER_COLUMNS."""
        f = _event_fields(writer, n)
        who = actor(n)
        return [
            "user" if who else "system",
            str(who.pk) if who else "",
            f["actor_label"],
            f["organization"],
            _action(n, alerts),
            f["target_type"],
            f["target_id"],
            f["patient_ref"],
            ctx.ip,
            ctx.user_agent,
            ctx.request_id,
            "success",
            None,
            json.dumps(f["details"]),
        ]

    def ours(kind: str, first: int, count: int) -> None:
        with transaction.atomic():
            if kind == "bulk":
                record_many(
                    {"action": _action(n, alerts), "actor": actor(n), **_event_fields(writer, n)}
                    for n in range(first, first + count)
                )
            else:
                for n in range(first, first + count):
                    record(_action(n, alerts), actor=actor(n), **_event_fields(writer, n))

    def peer(kind: str, first: int, count: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            if kind == "bulk":  # one multi-row INSERT, as bulk_create issues
                values = ", ".join([PEER_ROW] * count)
                params = [v for n in range(first, first + count) for v in peer_row(n)]
                cursor.execute(f"INSERT INTO {PEER_TABLE} ({PEER_COLUMNS}) VALUES {values}", params)
            else:
                for n in range(first, first + count):
                    cursor.execute(f"INSERT INTO {PEER_TABLE} ({PEER_COLUMNS}) VALUES {PEER_ROW}", peer_row(n))

    while True:
        command = pipe.recv()
        if command is None:
            return
        kind, side = command
        per_transaction = 1 if kind == "single" else BATCH_SIZE
        run = ours if side == "ours" else peer
        go.wait()
        start = time.monotonic()
        for first in range(0, EVENTS_PER_WRITER[kind], per_transaction):
            run(kind, first, per_transaction)
        pipe.send((start, time.monotonic()))


def _alert_judge(database_url: str, home: str, tick: float, running: Any, pipe: Connection) -> None:
    """The worker's alert job, in its own process: judges newly sealed events while `running` is
    set, then reports how many it judged and in how many seconds of its own loop."""
    _setup_django(database_url, home)
    from casebridge.audit import alerts

    while True:
        if pipe.recv() is None:
            return
        judged, busy = 0, 0.0
        while running.is_set():
            start = time.monotonic()
            judged += alerts.run()
            busy += time.monotonic() - start
            time.sleep(max(0.0, tick - (time.monotonic() - start)))  # the rest of the tick
        pipe.send((judged, busy))


def _admin_execute(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
        conn.execute(sql.encode())  # DDL on a name built here, not from input


def _run(args: argparse.Namespace) -> int:
    if args.sealer == "background":
        os.environ["CASEBRIDGE_AUDIT_SEAL_ON_COMMIT"] = "false"  # inherited by the spawned writers
    postgres = args.db == "postgres"
    db_name = f"casebridge_bench_{os.getpid()}"
    database_url = f"{args.url}/{db_name}" if postgres else ""
    home = tempfile.mkdtemp(prefix="casebridge-bench-", dir="/work" if Path("/work").is_dir() else None)
    if postgres:
        _admin_execute(args.url, f'CREATE DATABASE "{db_name}"')
    workers: list[Any] = []  # spawn-context processes
    began = time.monotonic()
    try:
        _setup_django(database_url, home)
        from django.core.management import call_command
        from django.db import connection

        from casebridge.audit import chain
        from casebridge.audit.models import PendingSeal
        from casebridge.vault.keyring import get_keyring

        call_command("migrate", verbosity=0)
        get_keyring()  # create the checkpoint signing key once, before the writers need it
        if args.alerts:
            from casebridge.accounts.models import User
            from casebridge.audit.models import AlertRule
            from casebridge.orgs.models import Organization

            org = Organization.objects.create(id=ORG_ID, name="Bench Dental", slug="bench-dental", kind="practice")
            User.objects.create_user(email="bench@example.org", password=None)
            # Every rule on, as an organization that switched outside-hours on would have them.
            AlertRule.objects.create(organization=org, kind="after_hours", enabled=True, start_hour=0, end_hour=24)
        with connection.cursor() as cursor:
            if postgres:
                # LIKE copies columns, defaults, identity and indexes; not the append-only
                # triggers, which fire only on UPDATE/DELETE anyway.
                cursor.execute(f"CREATE TABLE {PEER_TABLE} (LIKE audit_event INCLUDING ALL)")
                cursor.execute("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
                server_version, sync_commit = cursor.fetchone() or ("?", "?")
                engine = f"PostgreSQL {server_version} (synchronous_commit={sync_commit})"
            else:
                # The same columns and the same indexes, without the append-only triggers.
                cursor.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_event' AND sql IS NOT NULL")
                for (statement,) in cursor.fetchall():
                    if statement.startswith("CREATE TRIGGER"):
                        continue
                    statement = statement.replace('"audit_event"', PEER_TABLE)
                    cursor.execute(statement.replace('INDEX "', f'INDEX "{PEER_TABLE}_'))
                cursor.execute("SELECT sqlite_version()")
                engine = f"SQLite {cursor.fetchone()[0]} (WAL, synchronous=FULL)"

        spawn = mp.get_context("spawn")
        go = spawn.Barrier(WRITERS + 1)  # every writer connected and idle: start together
        pipes = []
        for writer in range(WRITERS):
            parent_end, child_end = spawn.Pipe()
            proc = spawn.Process(target=_worker, args=(writer, database_url, home, args.alerts, go, child_end))
            proc.start()
            workers.append(proc)
            pipes.append(parent_end)
        judging = spawn.Event()
        judge_pipe = None
        if args.alerts:
            judge_pipe, child_end = spawn.Pipe()
            proc = spawn.Process(target=_alert_judge, args=(database_url, home, args.judge_tick, judging, child_end))
            proc.start()
            workers.append(proc)
        judged: dict[str, list[tuple[int, float]]] = {kind: [] for kind in KINDS}

        def scenario(kind: str, side: str) -> tuple[float, int]:
            for pipe in pipes:
                pipe.send((kind, side))
            if judge_pipe is not None and side == "ours":
                judging.set()
                judge_pipe.send("go")
            go.wait()
            if side == "ours" and args.sealer == "background":
                # A dedicated sealer (as `casebridge worker` runs with on-commit sealing off)
                # chains the queue while the writers write.
                while not all(pipe.poll() for pipe in pipes):
                    chain.seal_pending()
                    time.sleep(0.02)
            times = [pipe.recv() for pipe in pipes]
            end = max(t[1] for t in times)
            left = 0
            if side == "ours":
                # Durable *and chained*: drain what the on-commit sealers left for the periodic
                # sealer, and count that time too.
                left = PendingSeal.objects.count()
                chain.seal_pending()
                end = time.monotonic()
            start = min(t[0] for t in times)
            if judge_pipe is not None and side == "ours":
                judging.clear()
                judged[kind].append(judge_pipe.recv())
            return WRITERS * EVENTS_PER_WRITER[kind] / (end - start), left

        results: dict[tuple[str, str], list[float]] = {}
        leftovers: dict[str, list[int]] = {kind: [] for kind in KINDS}
        for kind in KINDS:  # warm-up: connections, caches, plans, the signing key
            scenario(kind, "ours")
            scenario(kind, "peer")
        for round_no in range(args.rounds):
            for kind in KINDS:
                for side in ("ours", "peer") if round_no % 2 == 0 else ("peer", "ours"):
                    rate, left = scenario(kind, side)
                    results.setdefault((kind, side), []).append(rate)
                    if side == "ours":
                        leftovers[kind].append(left)
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        for pipe in pipes:
            pipe.send(None)
        if judge_pipe is not None:
            judge_pipe.send(None)
        for proc in workers:
            proc.join(timeout=30)
        lag = 0
        if args.alerts:
            from casebridge.audit.models import Alert, AlertCursor, Seal

            cursor_at = AlertCursor.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
            lag = Seal.objects.filter(seq__gt=cursor_at).count()
            raised = Alert.objects.count()

        verdict = chain.verify()
        load = os.getloadavg()[0]
        print(
            f"audit throughput, {engine}, {os.cpu_count()} cores, {platform.machine()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load:.1f}"
        )
        print(
            f"{WRITERS} writer processes; medians of {args.rounds} rounds; sealing: {args.sealer}; "
            f"checkpoints every {chain.CHECKPOINT_EVERY:,} events; alert rules: {'running' if args.alerts else 'off'}"
        )
        print(f"{'scenario':<38}{'ours ev/s':>11}{'peer ev/s':>11}{'ours/peer':>11}{'target':>9}")
        for kind in KINDS:
            ours = statistics.median(results[(kind, "ours")])
            peer = statistics.median(results[(kind, "peer")])
            mark = "-" if kind not in TARGETS else "ok" if ours >= TARGETS[kind] else "MISSED"
            print(f"{LABELS[kind]:<38}{ours:>11,.0f}{peer:>11,.0f}{ours / peer:>11.2f}{mark:>9}")
        for kind in KINDS:
            spread = ", ".join(f"{r:,.0f}" for r in results[(kind, "ours")])
            peer_spread = ", ".join(f"{r:,.0f}" for r in results[(kind, "peer")])
            print(f"  {kind}: ours [{spread}]  peer [{peer_spread}]  left for the drain {leftovers[kind]}")
        if args.alerts:
            for kind in KINDS:
                rates = [n / busy for n, busy in judged[kind] if busy]
                rate = f"{statistics.median(rates):,.0f} events/s of its own time" if rates else "-"
                print(f"  alert rules during {kind}: judged {[n for n, _ in judged[kind]]} ({rate})")
            print(f"  alerts raised {raised}; events not yet judged when the writers stopped for good: {lag}")
        state = "intact" if verdict.ok else f"BROKEN: {verdict.problem}"
        print(f"chain after the run: {state}, {verdict.checked} events; {time.monotonic() - began:.0f} s in all")
        connection.close()
        return 0 if verdict.ok else 1
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.kill()
                proc.join()
        if postgres:
            _admin_execute(args.url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="the database to write to")
    parser.add_argument("--url", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--alerts", action="store_true", help="run the alert rules beside the writers")
    parser.add_argument("--judge-tick", type=float, default=1.0, help="seconds between the rules' runs (--alerts)")
    parser.add_argument(
        "--sealer",
        choices=["on-commit", "background"],
        default="on-commit",
        help="who chains events: each writer after commit (default) or one dedicated sealer",
    )
    return _run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
