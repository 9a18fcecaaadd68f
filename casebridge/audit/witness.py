"""Witness copies of the signed checkpoints, outside the database.

Each checkpoint, once committed, is also written as one JSON file (its signed head: tree size,
Merkle root, chain hash, key id, signature, signed message) to `AUDIT_WITNESS_DIR` (default
CASEBRIDGE_HOME/audit-witness; point it at another disk or a mounted share). The files are
written once, never changed. `audit verify` compares them with the database and reports:

- rollback: a witnessed checkpoint beyond the database's last event (an older copy of the
  whole database was put back, or events were cut from the end with their checkpoints);
- a checkpoint missing from the database although its witness copy exists;
- a database checkpoint that differs from its witness copy;
- a witness file whose signature does not verify (planted or damaged).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from django.conf import settings

from casebridge.audit.models import Checkpoint

log = logging.getLogger(__name__)
_NAME = "checkpoint-{seq:012d}.json"


def directory() -> Path:
    return Path(settings.AUDIT_WITNESS_DIR)


def write(head: dict[str, Any]) -> Path:
    """Write one checkpoint's signed head (chain.signed_head) durably, once. A second write of
    the same head is a no-op; a different head under the same number is refused loudly."""
    folder = directory()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / _NAME.format(seq=head["tree_size"])
    data = json.dumps(head, sort_keys=True, indent=1).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.read_bytes() != data:
            raise RuntimeError(f"{path} already holds a different checkpoint #{head['tree_size']}") from None
        return path
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def write_after_commit(head: dict[str, Any]) -> None:
    """Called once the checkpoint's transaction committed. A witness that cannot be written
    (full disk, unmounted share) must not undo the checkpoint: it is logged, and
    `casebridge audit witness` writes the missing copies once the folder is back."""
    try:
        write(head)
    except OSError:
        log.exception("audit witness: checkpoint #%s could not be written outside the database", head["tree_size"])


def heads() -> list[dict[str, Any]]:
    folder = directory()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("checkpoint-*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            found.append({"tree_size": None, "unreadable": path.name})
    return found


def problems(head_seq: int, checkpoints: dict[int, Checkpoint], keys: dict[str, Any]) -> list[tuple[int, str]]:
    """Where the database and the witness copies disagree: (checkpoint number, what), in order."""
    from casebridge.audit.chain import signed_head

    found: list[tuple[int, str]] = []
    for head in heads():
        seq = head.get("tree_size")
        if not isinstance(seq, int):
            found.append((0, f"witness file {head.get('unreadable', '?')} cannot be read"))
            continue
        key = keys.get(str(head.get("key_id", "")))
        try:
            if key is None:
                raise InvalidSignature
            key.verify(base64.b64decode(head["signature"]), str(head["signed_message"]).encode())
        except (InvalidSignature, KeyError, ValueError):
            found.append((seq, f"the witness copy of checkpoint #{seq} is not signed by this log's key"))
            continue
        if seq > head_seq:
            found.append(
                (
                    seq,
                    f"rollback: checkpoint #{seq} was witnessed outside the database but the database ends at "
                    f"#{head_seq} (an older copy of the database was restored, or events were removed)",
                )
            )
        elif seq not in checkpoints:
            found.append((seq, f"checkpoint #{seq} is missing from the database (its witness copy exists)"))
        elif signed_head(checkpoints[seq]) != head:
            found.append((seq, f"checkpoint #{seq} in the database differs from its witness copy"))
    return sorted(found)


def catch_up(checkpoints: list[Checkpoint]) -> int:
    """Write the witness copies of checkpoints that have none yet (after a witness outage or a
    new witness folder). Returns how many were written."""
    from casebridge.audit.chain import signed_head

    written = 0
    for checkpoint in checkpoints:
        if not (directory() / _NAME.format(seq=checkpoint.seq)).exists():
            write(signed_head(checkpoint))
            written += 1
    return written


def send_digest() -> int:
    """Once a day, when enabled: e-mail every organization's compliance officers (owners and
    admins when none) the signed heads of the checkpoints written since the last digest. No
    patient data: sizes, hashes, signatures. Returns how many checkpoints were sent."""
    from django.db import transaction
    from django.utils import timezone

    from casebridge.audit.chain import signed_head
    from casebridge.audit.models import DigestState
    from casebridge.core.mail import queue_mail
    from casebridge.orgs.models import Organization
    from casebridge.orgs.queries import compliance_recipients

    if not settings.AUDIT_CHECKPOINT_DIGEST:
        return 0
    with transaction.atomic():
        state, _ = DigestState.objects.select_for_update().get_or_create(pk=1)
        now = timezone.now()
        if state.sent_at is not None and (now - state.sent_at).total_seconds() < 23 * 3600:
            return 0
        new = list(Checkpoint.objects.filter(seq__gt=state.last_seq).exclude(tree_root="").order_by("seq"))
        if not new:
            return 0
        heads = [signed_head(c) for c in new]
        for organization in Organization.objects.all():
            to = compliance_recipients(organization)
            queue_mail(to, "checkpoint_digest", {"organization": organization.name, "heads": heads})
        state.last_seq, state.sent_at = new[-1].seq, now
        state.save(update_fields=["last_seq", "sent_at"])
    return len(new)
