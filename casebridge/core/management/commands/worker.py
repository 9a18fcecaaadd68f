"""casebridge worker: runs background tasks and enqueues periodic housekeeping every minute."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections


class Command(BaseCommand):
    help = "Run the background task worker (mail, audit sealing and checkpoints, expiry)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tick", type=float, default=60.0, help="seconds between housekeeping runs")

    def handle(self, *args: Any, **options: Any) -> None:
        from casebridge.core.tasks import housekeeping

        def schedule() -> None:
            while True:
                try:
                    housekeeping.enqueue()
                finally:
                    close_old_connections()
                time.sleep(options["tick"])

        threading.Thread(target=schedule, name="housekeeping-ticker", daemon=True).start()
        call_command("db_worker", queue_name="*", interval=1)
