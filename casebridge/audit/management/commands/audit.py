"""casebridge audit verify|seal|checkpoint|witness|public-key|prove|consistency: operate and check the
tamper-evident log, and hand out proofs a third party can check (audit/proofs.py)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from casebridge.audit import chain, proofs, witness
from casebridge.audit.api import record
from casebridge.audit.models import Checkpoint
from casebridge.vault.keyring import get_keyring


class Command(BaseCommand):
    help = "Verify, seal or checkpoint the audit hash chain."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="operation", required=True)
        sub.add_parser("verify", help="recompute the whole chain; exit 1 naming the first bad event")
        sub.add_parser("seal", help="chain every committed event not chained yet")
        sub.add_parser("checkpoint", help="seal, then sign the chain head")
        sub.add_parser("public-key", help="print the checkpoint verification key (PEM)")
        sub.add_parser("witness", help="write the witness copies (outside the database) of checkpoints that lack one")
        prove = sub.add_parser(
            "prove", help="print (JSON) the inclusion proof of one event against the latest checkpoint covering it"
        )
        prove.add_argument("seq", type=int, help="the event's sequence number in the chain (#N)")
        consistent = sub.add_parser(
            "consistency", help="print (JSON) the proof that checkpoint NEW extends checkpoint OLD"
        )
        consistent.add_argument("old", type=int, help="the older checkpoint's sequence number (tree size)")
        consistent.add_argument("new", type=int, help="the newer checkpoint's sequence number (tree size)")

    def handle(self, *args: Any, **options: Any) -> None:
        operation = options["operation"]
        if operation == "seal":
            self.stdout.write(f"sealed {chain.seal_pending()} event(s)")
        elif operation == "checkpoint":
            checkpoint = chain.checkpoint_now()
            self.stdout.write(f"checkpoint at #{checkpoint.seq}" if checkpoint else "head already checkpointed")
        elif operation == "witness":
            written = witness.catch_up(list(Checkpoint.objects.exclude(tree_root="").order_by("seq")))
            self.stdout.write(f"{written} witness cop{'y' if written == 1 else 'ies'} written to {witness.directory()}")
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
                raise CommandError(f"AUDIT CHAIN BROKEN at #{result.bad_seq}{where}: {result.problem}")
            record("audit.verified", details={"checked": result.checked, "head": result.head_seq})
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit chain intact: {result.checked} events, head #{result.head_seq} {result.head_hash[:16]}…"
                )
            )
