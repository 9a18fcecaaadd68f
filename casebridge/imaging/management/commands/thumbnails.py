"""casebridge thumbnails: picture the case files and DICOM series that have no thumbnail yet.

New files are pictured by the worker as they join a case; this catches up the files attached
before thumbnails existed (after an upgrade) or whose task was lost. Idempotent: run it again and
it only makes what is still missing.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from casebridge.imaging import thumbnails


class Command(BaseCommand):
    help = "Make the thumbnails missing for case files and DICOM series (e.g. those attached before an upgrade)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what is missing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            files, series = thumbnails.missing()
            self.stdout.write(f"missing: {len(files)} file(s), {len(series)} series")
            return
        tty = sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if tty:
                sys.stderr.write(f"\r  thumbnails {done}/{total}" + ("\n" if done >= total else ""))
                sys.stderr.flush()

        made, failed = thumbnails.backfill(progress)
        self.stdout.write(f"made {made} thumbnail(s); {failed} could not be made (see the log for which files)")
