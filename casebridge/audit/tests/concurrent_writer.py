"""A separate OS process that records audit events, for the multi-process chain tests.

Run as `python -m casebridge.audit.tests.concurrent_writer WRITER EVENTS ROLLBACK_EVERY` with
DATABASE_URL naming the test database. It prints "ready", waits for a line on stdin so that
every writer starts at the same moment, then records EVENTS events, one transaction each
(writer 3: ten per transaction through record_many); every ROLLBACK_EVERY-th transaction is
rolled back after recording. At the end it prints one JSON line:
{"committed": [event ids], "rolled_back": [event ids], "committed_n": [n...], "rolled_back_n": [n...]}
(the `n` in each event's details: SQLite hands a rolled-back id out again, so content tells).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casebridge.audit.models import Event


BULK_WRITER = 3


class _Abandon(Exception):
    """Raised inside a transaction to roll it back, as a failing request would."""


def main(argv: list[str]) -> int:
    writer, events, rollback_every = (int(arg) for arg in argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casebridge.settings")
    import django

    django.setup()
    from django.db import transaction

    from casebridge.audit import chain
    from casebridge.audit.api import record, record_many

    committed: list[int] = []
    rolled_back: list[int] = []
    committed_n: list[int] = []
    rolled_back_n: list[int] = []
    print("ready", flush=True)
    sys.stdin.readline()
    # The last writer uses the bulk path, ten events per transaction, against the others.
    step = 10 if writer == BULK_WRITER else 1

    def write(entries: list[dict[str, Any]]) -> list[Event]:
        return record_many(entries) if step > 1 else [record(**entries[0])]

    for first in range(0, events, step):
        entries = [{"action": "org.created", "details": {"writer": writer, "n": n}} for n in range(first, first + step)]
        if rollback_every and (first // step) % rollback_every == rollback_every - 1:
            try:
                with transaction.atomic():
                    rolled_back.extend(event.pk for event in write(entries))
                    rolled_back_n.extend(entry["details"]["n"] for entry in entries)
                    raise _Abandon
            except _Abandon:
                pass
            continue
        # Each commit runs the non-blocking sealer (on_commit), so sealers race all the time.
        with transaction.atomic():
            committed.extend(event.pk for event in write(entries))
        committed_n.extend(entry["details"]["n"] for entry in entries)
        if writer == 0 and first % 50 == 49:
            # A periodic task sealing with the blocking lock, as housekeeping does.
            chain.seal_pending(blocking=True)
    result = {
        "committed": committed,
        "rolled_back": rolled_back,
        "committed_n": committed_n,
        "rolled_back_n": rolled_back_n,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
