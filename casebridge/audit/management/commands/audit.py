"""casebridge audit verify|seal|checkpoint|witness|export|public-key|prove|consistency|archive|search: operate
and check the tamper-evident log, hand out proofs a third party can check (audit/proofs.py), move
old events into archive segments and search them (audit/archive.py)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import override_settings

from casebridge.audit import alerts, archive, chain, proofs, witness
from casebridge.audit import export as audit_export
from casebridge.audit.api import record
from casebridge.audit.models import Checkpoint
from casebridge.vault.keyring import get_keyring


class Command(BaseCommand):
    help = "Verify, seal or checkpoint the audit hash chain."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="operation", required=True)
        verify = sub.add_parser(
            "verify",
            help="recompute the whole chain (or, with --export, an export alone); exit 1 naming the first bad event",
        )
        verify.add_argument("--export", type=Path, help="verify this export folder instead of the database")
        verify.add_argument("--public-key", type=Path, help="the log's public key (PEM), with --export")
        exporting = sub.add_parser(
            "export", help="write events, checkpoints and a manifest (JSON Lines) for offline verification"
        )
        exporting.add_argument("dir", type=Path, help="an empty or new folder")
        exporting.add_argument("--from", dest="start", type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC)")
        exporting.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (YYYY-MM-DD, UTC)")
        sub.add_parser("seal", help="chain every committed event not chained yet")
        sub.add_parser("checkpoint", help="seal, then sign the chain head")
        sub.add_parser("public-key", help="print the checkpoint verification key (PEM)")
        sub.add_parser(
            "witness", help="write the witness copies (folder, S3 bucket) of checkpoints that a witness lacks"
        )
        prove = sub.add_parser(
            "prove", help="print (JSON) the inclusion proof of one event against the latest checkpoint covering it"
        )
        prove.add_argument("seq", type=int, help="the event's sequence number in the chain (#N)")
        consistent = sub.add_parser(
            "consistency", help="print (JSON) the proof that checkpoint NEW extends checkpoint OLD"
        )
        consistent.add_argument("old", type=int, help="the older checkpoint's sequence number (tree size)")
        consistent.add_argument("new", type=int, help="the newer checkpoint's sequence number (tree size)")
        archiving = sub.add_parser(
            "archive", help="move sealed events older than CASEBRIDGE_AUDIT_ARCHIVE_AFTER_DAYS into archive segments"
        )
        archiving.add_argument(
            "--older-than-days",
            type=int,
            help="this age instead of the setting (at least 1; the worker uses the setting)",
        )
        searching = sub.add_parser(
            "search", help="print matching events as JSON Lines (oldest first); --archived: in the archive segments"
        )
        searching.add_argument(
            "--archived", action="store_true", help="search the archive segments (slower) instead of the hot tables"
        )
        searching.add_argument("--action", default="", help="an action, or a dotted prefix such as case.")
        searching.add_argument("--actor", default="", help="the actor's id or label (e-mail)")
        searching.add_argument("--organization", default="", help="the organization's id (UUID)")
        searching.add_argument("--patient", default="", help="an internal patient id (also found in lists)")
        searching.add_argument("--outcome", default="", choices=["", "success", "failure", "denied"])
        searching.add_argument("--from", dest="start", type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC)")
        searching.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (YYYY-MM-DD, UTC)")

    def handle(self, *args: Any, **options: Any) -> None:
        operation = options["operation"]
        if operation == "seal":
            self.stdout.write(f"sealed {chain.seal_pending()} event(s)")
        elif operation == "checkpoint":
            checkpoint = chain.checkpoint_now()
            self.stdout.write(f"checkpoint at #{checkpoint.seq}" if checkpoint else "head already checkpointed")
        elif operation == "export":
            try:
                manifest = audit_export.export(options["dir"], start=options["start"], end=options["end"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                f"exported events #{manifest['first_seq']}-#{manifest['last_seq']} "
                f"({manifest['events']} events, {manifest['checkpoints']} checkpoints) to {options['dir']}"
            )
        elif operation == "verify" and options["export"]:
            if options["public_key"] is None:
                raise CommandError("--export needs --public-key FILE (from `casebridge audit public-key`)")
            checked = audit_export.verify_export(options["export"], options["public_key"].read_bytes())
            if not checked.ok:
                where = f" at #{checked.bad_seq}" if checked.bad_seq else ""
                raise CommandError(f"AUDIT EXPORT BROKEN{where}: {checked.problem}")
            self.stdout.write(
                self.style.SUCCESS(f"export intact: {checked.checked} events, {checked.checkpoints} signed checkpoints")
            )
        elif operation == "witness":
            try:
                written = witness.catch_up(list(Checkpoint.objects.exclude(tree_root="").order_by("seq")))
            except (OSError, ImproperlyConfigured) as exc:
                raise CommandError(str(exc)) from exc
            for label, count in written.items():
                self.stdout.write(f"{count} witness cop{'y' if count == 1 else 'ies'} written to {label}")
        elif operation == "archive":
            self._archive(options["older_than_days"])
        elif operation == "search":
            self._search(options)
        elif operation == "public-key":
            self.stdout.write(get_keyring().signing_key().public_pem())
        elif operation in ("prove", "consistency"):
            try:
                proof = (
                    proofs.inclusion(options["seq"])
                    if operation == "prove"
                    else proofs.consistency(options["old"], options["new"])
                )
            except proofs.ProofError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(json.dumps(proof, indent=2))
        else:
            chain.seal_pending()
            result = chain.verify()
            if not result.ok:
                where = f" (event {result.bad_event_id})" if result.bad_event_id else ""
                alerts.raise_audit_failure(f"#{result.bad_seq}{where}: {result.problem}")
                raise CommandError(f"AUDIT CHAIN BROKEN at #{result.bad_seq}{where}: {result.problem}")
            record("audit.verified", details={"checked": result.checked, "head": result.head_seq})
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit chain intact: {result.checked} events, head #{result.head_seq} {result.head_hash[:16]}…"
                    + (f" (checked in {result.processes} processes)" if result.processes > 1 else "")
                    + (
                        f"; #1-#{result.destroyed} destroyed under the retention policies, the chain carried "
                        "over them by their segments' signed hashes"
                        if result.destroyed
                        else ""
                    )
                )
            )

    def _archive(self, days: int | None) -> None:
        if days is not None and days < 1:
            raise CommandError("--older-than-days must be at least 1")
        try:
            if days is None:
                made = archive.archive()
            else:
                with override_settings(AUDIT_ARCHIVE_AFTER_DAYS=days):
                    made = archive.archive()
        except archive.ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        if not made:
            self.stdout.write("no sealed events old enough to archive (the chain's head always stays)")
        for segment in made:
            self.stdout.write(
                f"archived #{segment.first_seq}-#{segment.last_seq} ({segment.events} events, "
                f"{segment.size} bytes compressed) into segment {segment.pk}"
            )

    def _search(self, options: dict[str, Any]) -> None:
        from casebridge.audit.export import _day_start

        start = _day_start(options["start"]) if options["start"] else None
        end = _day_start(options["end"] + timedelta(days=1)) if options["end"] else None
        chosen = {k: options[k] for k in ("action", "actor", "organization", "patient", "outcome") if options[k]}
        if chosen.get("organization"):
            try:
                chosen["organization"] = str(uuid.UUID(chosen["organization"]))
            except ValueError as exc:
                raise CommandError("--organization takes the organization's id (a UUID)") from exc
        filters = archive.Filters(start=start, end=end, **chosen)

        def progress(done: int, total: int) -> None:
            self.stderr.write(f"\rsegments read: {done}/{total}", ending="")

        chain.seal_pending()  # what was just recorded is searched too
        found = 0
        try:
            matching = (
                archive.search(filters, progress=progress) if options["archived"] else archive.search_hot(filters)
            )
            for event in matching:
                self.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True))
                found += 1
        except archive.ArchiveError as exc:
            raise CommandError(str(exc)) from exc
        where = "archived" if options["archived"] else "hot"
        self.stderr.write(f"\n{found} {where} event(s) found")
        shown = {**chosen, "from": options["start"] and options["start"].isoformat()}
        shown["to"] = options["end"] and options["end"].isoformat()
        via = "archive search" if options["archived"] else "command-line search"
        record("audit.viewed", details={"via": via, "filters": shown, "found": found})
