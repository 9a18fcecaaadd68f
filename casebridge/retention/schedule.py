"""The daily backup and the weekly restore test, started by the worker's housekeeping tick.

Each runs as `casebridge backup create|verify` in a process of its own, so a long backup never
holds up the worker's other tasks (mail, audit sealing, ingest); the command records its own run.
A run is due when the last successful one is older than its interval; after a failure the next
attempt waits an hour rather than a minute. The destination's lock keeps two from overlapping.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from casebridge.retention.models import BackupRun, RunKind

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(hours=1)
STILL_RUNNING = timedelta(hours=12)  # a run older than this without an end was killed


def due(kind: str, every_hours: int) -> bool:
    now = timezone.now()
    runs = BackupRun.objects.filter(kind=kind)
    if runs.filter(finished_at__isnull=True, started_at__gt=now - STILL_RUNNING).exists():
        return False
    last_try = runs.order_by("-started_at").first()
    if last_try is not None and not last_try.ok and now - (last_try.finished_at or last_try.started_at) < RETRY_AFTER:
        return False
    last_good = runs.filter(ok=True).order_by("-started_at").first()
    return last_good is None or now - last_good.started_at >= timedelta(hours=every_hours)


def restore_tests_configured() -> bool:
    return bool(settings.BACKUP_KEYS_FILE and settings.BACKUP_KEYS_PASSPHRASE_FILE)


def run_due() -> None:
    destination = settings.BACKUP_DESTINATION
    if not destination:
        return
    if due(RunKind.BACKUP, settings.BACKUP_EVERY_HOURS):
        _start(["backup", "create", destination])
    elif restore_tests_configured() and due(RunKind.RESTORE_TEST, settings.RESTORE_TEST_EVERY_HOURS):
        _start(
            [
                "backup",
                "verify",
                destination,
                "--keys",
                settings.BACKUP_KEYS_FILE,
                "--passphrase-file",
                settings.BACKUP_KEYS_PASSPHRASE_FILE,
            ]
        )


def _start(args: list[str]) -> None:
    log.info("starting scheduled casebridge %s %s", args[0], args[1])
    subprocess.Popen(  # noqa: S603 - our interpreter and command; the paths come from our settings
        [sys.executable, "-m", "casebridge.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the tick; the worker's shutdown does not cut it short
    )
