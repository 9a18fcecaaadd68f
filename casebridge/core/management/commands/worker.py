"""casebridge worker: runs background tasks and enqueues periodic housekeeping every minute."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from casebridge.core import forking


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

        # Quiet when forking: they work holding forking.busy(), so the ingest may fork helpers.
        threading.Thread(target=schedule, name=f"{forking.QUIET_THREAD} housekeeping", daemon=True).start()
        if not settings.AUDIT_SEAL_ON_COMMIT:
            threading.Thread(target=seal, name=f"{forking.QUIET_THREAD} audit sealer", daemon=True).start()
        call_command("db_worker", queue_name="*", interval=0.2)
