"""casebridge worker: runs background tasks and enqueues periodic housekeeping every minute."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from casebridge.core import forking, wakeup


class Command(BaseCommand):
    help = "Run the background task worker (mail, audit sealing and checkpoints, expiry)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tick", type=float, default=60.0, help="seconds between housekeeping runs")
        parser.add_argument(
            "--seal-interval",
            type=float,
            default=0.2,
            help="seconds between audit sealer passes when CASEBRIDGE_AUDIT_SEAL_ON_COMMIT is off",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=0.2,
            help="seconds between looks for queued tasks; a task queued on this machine wakes the worker at once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from casebridge.core.tasks import housekeeping

        def schedule() -> None:
            while True:
                try:
                    with forking.busy():
                        housekeeping.enqueue()
                finally:
                    close_old_connections()
                time.sleep(options["tick"])

        def seal() -> None:
            from casebridge.audit.chain import seal_pending

            while True:
                try:
                    with forking.busy():
                        seal_pending(blocking=True)
                except Exception:  # logged; the next pass picks the queue up again
                    logging.getLogger(__name__).exception("audit sealer pass failed")
                finally:
                    close_old_connections()
                time.sleep(options["seal_interval"])

        # Before the threads start: binding the socket narrows the process's umask for a moment.
        listener = wakeup.Listener.open()
        preload()
        # Quiet when forking: they work holding forking.busy(), so the ingest may fork helpers.
        threading.Thread(target=schedule, name=f"{forking.QUIET_THREAD} housekeeping", daemon=True).start()
        if not settings.AUDIT_SEAL_ON_COMMIT:
            threading.Thread(target=seal, name=f"{forking.QUIET_THREAD} audit sealer", daemon=True).start()
        try:
            with waking_on_enqueue(listener) if listener is not None else nullcontext():
                call_command("db_worker", queue_name="*", interval=options["poll_interval"])
        finally:
            if listener is not None:
                listener.close()


class _Clock:
    """The time module as the task library's loop sees it, its sleep between polls ended early
    by a wake-up."""

    def __init__(self, listener: wakeup.Listener) -> None:
        self.sleep = listener.sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def waking_on_enqueue(listener: wakeup.Listener) -> Iterator[None]:
    """django_tasks_db's worker loop waits with time.sleep(interval) and offers no other hook:
    its module's `time` is replaced while the loop runs (test_worker checks it still wakes)."""
    from django_tasks_db.management.commands import db_worker

    module = vars(db_worker)
    original = module["time"]
    module["time"] = _Clock(listener)
    try:
        yield
    finally:
        module["time"] = original


def preload() -> None:
    """Import every app's tasks, and what they import (pydicom, the codecs), now rather than at
    the first task, then move all that into the collector's permanent generation: a full
    collection during a task would otherwise walk the whole import-time heap again (0.11 s of a
    400-slice CBCT's ingest, once per job, measured). The ingest's helpers, forked from here,
    inherit the frozen heap."""
    for app in apps.get_app_configs():
        if find_spec(f"{app.name}.tasks") is not None:
            import_module(f"{app.name}.tasks")
    gc.collect()
    gc.freeze()
