"""Offline verification: an export of the audit log that a third party checks with nothing but
its files and the log's public key (no database, no keyring, no CaseBridge settings).

`export(dir)` writes, for the events in a range (all by default, or by date):

- `events.jsonl`: one line per sealed event, in chain order: its sequence number, the exact
  canonical text the chain and the Merkle tree hash (the event's recorded fields as JSON), and
  its stored chain hash;
- `checkpoints.jsonl`: the signed heads of the checkpoints in the range (chain.signed_head);
- `manifest.json`: the range, counts, each file's SHA-256, and where the range starts: the chain
  hash before its first event and the Merkle tree's right border there (audit/merkle.Frontier),
  so that a range in the middle of the log verifies against the checkpoints it contains.

`verify_export(dir, public_key_pem)` recomputes the chain and the tree from the events and
checks every checkpoint's signature, chain hash and root against them. An edited, deleted,
inserted or reordered event, a truncated file or a changed manifest is reported with the first
bad sequence number. What follows the last checkpoint of an export is chained but not signed:
`export` therefore writes a checkpoint at the head first, so a full export ends on one.

This module imports no Django model at verification time: `verify_export` runs anywhere the
`cryptography` package does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from casebridge.audit import merkle

FORMAT = "casebridge-audit-export/1"
GENESIS = "0" * 64


@dataclass
class ExportResult:
    ok: bool
    checked: int
    checkpoints: int
    problem: str = ""
    bad_seq: int | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _day_start(day: date) -> datetime:
    from django.utils import timezone

    return timezone.make_aware(datetime.combine(day, time.min))


def export(folder: Path, *, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """Write the export of events that occurred from `start` to `end` (inclusive days, UTC) into
    `folder`, which must be empty or absent. Returns the manifest."""
    from casebridge.audit import archive, chain
    from casebridge.audit.models import Checkpoint, Seal

    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    chain.checkpoint_now()  # a full export then ends on a signed head
    seals = Seal.objects.order_by("seq")
    if start is not None:
        seals = seals.filter(event__occurred_at__gte=_day_start(start))
    if end is not None:
        seals = seals.filter(event__occurred_at__lt=_day_start(end + timedelta(days=1)))
    bounds = seals.values_list("seq", flat=True)
    hot = [bounds.order_by("seq").first(), bounds.order_by("-seq").first()]
    archived = archive.seq_bounds(
        _day_start(start) if start else None, _day_start(end + timedelta(days=1)) if end else None
    )
    found = [seq for seq in [*hot, *(archived or ())] if seq is not None]
    if not found:
        raise ValueError("no sealed events in that range")
    first, last = min(found), max(found)
    previous = chain.hash_at(first - 1)
    frontier = chain.frontier_at(first - 1)
    count = 0
    with (folder / "events.jsonl").open("w") as out:
        for seq, stored_hash, form in chain.sealed_forms(first - 1, last):  # archived ones too
            out.write(json.dumps({"seq": seq, "event": form.decode(), "hash": stored_hash}, ensure_ascii=False) + "\n")
            count += 1
    heads = [chain.signed_head(c) for c in Checkpoint.objects.filter(seq__gte=first, seq__lte=last).order_by("seq")]
    with (folder / "checkpoints.jsonl").open("w") as out:
        for head in heads:
            out.write(json.dumps(head) + "\n")
    manifest = {
        "format": FORMAT,
        "first_seq": first,
        "last_seq": last,
        "events": count,
        "checkpoints": len(heads),
        "previous_hash": previous,
        "start_frontier": frontier.to_json(),
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "files": {name: _sha256(folder / name) for name in ("events.jsonl", "checkpoints.jsonl")},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    from casebridge.audit.api import record

    kept = ("first_seq", "last_seq", "events", "from", "to")
    record("audit.exported", details={"via": "offline export", **{k: manifest[k] for k in kept}})
    return manifest


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verify_export(folder: Path, public_key_pem: bytes) -> ExportResult:
    """Check an export with its files and the public key alone."""
    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        return ExportResult(False, 0, 0, "the public key is not the log's Ed25519 key")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        events = _read_lines(folder / "events.jsonl")
        heads = _read_lines(folder / "checkpoints.jsonl")
        frontier = merkle.Frontier.from_json(manifest["start_frontier"])
    except (OSError, ValueError, KeyError) as exc:
        return ExportResult(False, 0, 0, f"the export cannot be read: {exc}")
    if manifest.get("format") != FORMAT:
        return ExportResult(False, 0, 0, "not a CaseBridge audit export")
    signed: dict[int, dict[str, Any]] = {}
    for head in heads:
        seq = int(head.get("tree_size", 0))
        try:
            key.verify(base64.b64decode(head["signature"]), str(head["signed_message"]).encode())
        except (InvalidSignature, KeyError, ValueError):
            return ExportResult(False, 0, 0, f"checkpoint #{seq} has an invalid signature", seq)
        expected = (
            f"casebridge-audit-checkpoint:v2:{seq}:{head['chain_hash']}:{seq}:{head['root']}"
            if head["root"]
            else f"casebridge-audit-checkpoint:{seq}:{head['chain_hash']}"
        )
        if head["signed_message"] != expected:
            return ExportResult(False, 0, 0, f"checkpoint #{seq}: the signed message does not match its fields", seq)
        signed[seq] = head
    prev, expected_seq, checked = manifest["previous_hash"], manifest["first_seq"], 0
    if frontier.size != expected_seq - 1:
        return ExportResult(False, 0, 0, "the manifest's starting tree does not end before the first event")
    for row in events:
        number = row.get("seq")
        if number != expected_seq:
            if not isinstance(number, int) or number < expected_seq:
                what = "repeated or inserted"
            elif any(later.get("seq") == expected_seq for later in events[checked:]):
                what = "out of order"
            else:
                what = "missing (deleted)"
            problem = f"expected event #{expected_seq}, found #{number}: {what}"
            return ExportResult(False, checked, 0, problem, expected_seq)
        text = str(row["event"]).encode()
        prev = hashlib.sha256(bytes.fromhex(prev) + text).hexdigest()
        if prev != row["hash"]:
            return ExportResult(
                False, checked, 0, f"event #{expected_seq} does not match its chain hash: edited", expected_seq
            )
        frontier.append(merkle.leaf_hash(text))
        signed_here = signed.get(expected_seq)
        if signed_here is not None:
            if signed_here["chain_hash"] != prev:
                return ExportResult(
                    False, checked, 0, f"checkpoint #{expected_seq} signed a different chain", expected_seq
                )
            if signed_here["root"] and signed_here["root"] != frontier.root().hex():
                return ExportResult(
                    False, checked, 0, f"checkpoint #{expected_seq} signed a different Merkle tree", expected_seq
                )
        expected_seq, checked = expected_seq + 1, checked + 1
    last = expected_seq - 1
    beyond = [s for s in signed if s > last]
    if beyond:
        return ExportResult(
            False,
            checked,
            0,
            f"the events end at #{last} but checkpoint #{min(beyond)} was signed: truncated",
            last + 1,
        )
    if last != manifest["last_seq"] or checked != manifest["events"]:
        return ExportResult(
            False, checked, 0, f"the manifest names events up to #{manifest['last_seq']}; found #{last}"
        )
    for name, digest in manifest["files"].items():
        if _sha256(folder / name) != digest:
            return ExportResult(False, checked, len(signed), f"{name} differs from the manifest")
    if not signed:
        return ExportResult(False, checked, 0, "no signed checkpoint in the export: nothing vouches for it")
    return ExportResult(True, checked, len(signed))
