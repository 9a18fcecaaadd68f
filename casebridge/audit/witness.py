"""Witness copies of the signed checkpoints, outside the database.

Each checkpoint, once committed, is also written as one JSON object (its signed head: tree size,
Merkle root, chain hash, key id, signature, signed message) to every configured witness: the
folder `AUDIT_WITNESS_DIR` (default CASEBRIDGE_HOME/audit-witness; point it at another disk or a
mounted share) and, when `AUDIT_WITNESS_S3` names one, an S3-compatible bucket, where each object
gets an object-lock retention (AUDIT_WITNESS_S3_LOCK_MODE for AUDIT_WITNESS_S3_LOCK_DAYS) if the
bucket has object lock enabled. The copies are written once, never changed. `audit verify`
compares each witness with the database, with the same code for both kinds, and reports:

- rollback: a witnessed checkpoint beyond the database's last event (an older copy of the
  whole database was put back, or events were cut from the end with their checkpoints);
- a checkpoint missing from the database although its witness copy exists;
- a database checkpoint that differs from its witness copy;
- a witness copy whose signature does not verify (planted or damaged), or a witness that cannot
  be read at all.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from casebridge.audit.models import Checkpoint

log = logging.getLogger(__name__)
_NAME = "checkpoint-{seq:012d}.json"
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


class WitnessUnavailable(OSError):
    """A witness could not be written or read (unreachable bucket, refused request)."""


class Witness(Protocol):
    label: str

    def names(self) -> set[str]: ...

    def read(self, name: str) -> bytes: ...

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` under `name` unless something is there already (then False)."""
        ...


def directory() -> Path:
    return Path(settings.AUDIT_WITNESS_DIR)


class Folder:
    label = "the witness folder"

    def __init__(self, path: Path) -> None:
        self.path = path

    def names(self) -> set[str]:
        return {p.name for p in self.path.glob("checkpoint-*.json")} if self.path.is_dir() else set()

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()

    def create(self, name: str, data: bytes) -> bool:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True


@dataclass
class S3Bucket:
    """`s3://bucket/prefix` at AUDIT_WITNESS_S3_ENDPOINT (empty: AWS), credentials from boto3's
    usual places. Errors from the bucket become WitnessUnavailable (an OSError)."""

    url: str
    label: str = field(init=False)

    def __post_init__(self) -> None:
        from casebridge.retention.backup import BackupError
        from casebridge.retention.s3 import Bucket

        if settings.AUDIT_WITNESS_S3_LOCK_MODE not in LOCK_MODES:
            raise ImproperlyConfigured(
                f"CASEBRIDGE_AUDIT_WITNESS_S3_LOCK_MODE must be COMPLIANCE or GOVERNANCE, "
                f"not {settings.AUDIT_WITNESS_S3_LOCK_MODE!r}"
            )
        try:
            self.bucket = Bucket.parse(
                self.url, endpoint=settings.AUDIT_WITNESS_S3_ENDPOINT, region=settings.AUDIT_WITNESS_S3_REGION
            )
        except BackupError as exc:
            raise ImproperlyConfigured(f"CASEBRIDGE_AUDIT_WITNESS_S3: {exc}") from exc
        self.label = f"the S3 witness {self.bucket.label}"

    def _call(self, what: str, run: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return run()
        except (BotoCoreError, ClientError) as exc:
            raise WitnessUnavailable(f"{self.label} could not {what}: {exc}") from exc

    def names(self) -> set[str]:
        def listing() -> set[str]:
            pages = self.bucket.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket.bucket, Prefix=self.bucket.key("checkpoint-")
            )
            return {item["Key"].rsplit("/", 1)[-1] for page in pages for item in page.get("Contents", [])}

        return set(self._call("be listed", listing))

    def read(self, name: str) -> bytes:
        client, bucket, key = self.bucket.client, self.bucket.bucket, self.bucket.key(name)
        return bytes(self._call(f"give {name}", lambda: client.get_object(Bucket=bucket, Key=key)["Body"].read()))

    def create(self, name: str, data: bytes) -> bool:
        key = self.bucket.key(name)
        if self._call(f"look up {name}", lambda: self.bucket.head(key)) is not None:
            return False
        lock: dict[str, Any] = {}
        if settings.AUDIT_WITNESS_S3_LOCK_DAYS > 0 and self._call("report its object lock", self.bucket.lock_enabled):
            until = datetime.now(UTC) + timedelta(days=settings.AUDIT_WITNESS_S3_LOCK_DAYS)
            lock = {
                "ObjectLockMode": settings.AUDIT_WITNESS_S3_LOCK_MODE,
                "ObjectLockRetainUntilDate": until.replace(microsecond=0),
            }
        self._call(
            f"store {name}",
            lambda: self.bucket.client.put_object(
                Bucket=self.bucket.bucket, Key=key, Body=data, ContentType="application/json", **lock
            ),
        )
        return True


def witnesses() -> list[Witness]:
    """Every configured witness: the folder always, the S3 bucket when one is named."""
    found: list[Witness] = [Folder(directory())]
    if settings.AUDIT_WITNESS_S3:
        found.append(S3Bucket(settings.AUDIT_WITNESS_S3))
    return found


def _encoded(head: dict[str, Any]) -> bytes:
    return json.dumps(head, sort_keys=True, indent=1).encode()


def write_to(where: Witness, head: dict[str, Any]) -> bool:
    """One checkpoint's signed head (chain.signed_head), durably, once. A second write of the
    same head is a no-op (False); a different head under the same number is refused loudly."""
    name, data = _NAME.format(seq=head["tree_size"]), _encoded(head)
    if where.create(name, data):
        return True
    if where.read(name) != data:
        raise RuntimeError(f"{where.label} already holds a different checkpoint #{head['tree_size']}")
    return False


def write(head: dict[str, Any]) -> None:
    for where in witnesses():
        write_to(where, head)


def write_after_commit(head: dict[str, Any]) -> None:
    """Called once the checkpoint's transaction committed. A witness that cannot be written
    (full disk, unmounted share, unreachable bucket) must not undo the checkpoint nor keep the
    other witnesses from their copy: it is logged, and `casebridge audit witness` writes the
    missing copies once it is back."""
    for where in witnesses():
        try:
            write_to(where, head)
        except OSError:
            log.exception("audit witness: checkpoint #%s could not be written to %s", head["tree_size"], where.label)


def heads(where: Witness) -> list[dict[str, Any]]:
    found = []
    for name in sorted(where.names()):
        try:
            found.append(json.loads(where.read(name)))
        except (OSError, ValueError):
            found.append({"tree_size": None, "unreadable": name})
    return found


def problems(head_seq: int, checkpoints: dict[int, Checkpoint], keys: dict[str, Any]) -> list[tuple[int, str]]:
    """Where the database and any witness disagree: (checkpoint number, what), in order. The
    same comparison for every kind of witness."""
    from casebridge.audit.chain import signed_head

    found: list[tuple[int, str]] = []
    try:
        every = witnesses()
    except ImproperlyConfigured as exc:
        return [(0, f"a witness is misconfigured: {exc}")]
    for where in every:
        try:
            copies = heads(where)
        except OSError as exc:
            found.append((0, f"{where.label} cannot be read: {exc}"))
            continue
        for head in copies:
            seq = head.get("tree_size")
            if not isinstance(seq, int):
                found.append((0, f"witness copy {head.get('unreadable', '?')} in {where.label} cannot be read"))
                continue
            key = keys.get(str(head.get("key_id", "")))
            try:
                if key is None:
                    raise InvalidSignature
                key.verify(base64.b64decode(head["signature"]), str(head["signed_message"]).encode())
            except (InvalidSignature, KeyError, ValueError):
                found.append((seq, f"the copy of checkpoint #{seq} in {where.label} is not signed by this log's key"))
                continue
            if seq > head_seq:
                found.append(
                    (
                        seq,
                        f"rollback: checkpoint #{seq} was witnessed outside the database ({where.label}) but the "
                        f"database ends at #{head_seq} (an older copy of the database was restored, or events "
                        f"were removed)",
                    )
                )
            elif seq not in checkpoints:
                problem = f"checkpoint #{seq} is missing from the database (its copy in {where.label} exists)"
                found.append((seq, problem))
            elif signed_head(checkpoints[seq]) != head:
                found.append((seq, f"checkpoint #{seq} in the database differs from its copy in {where.label}"))
    return sorted(found)


def catch_up(checkpoints: list[Checkpoint]) -> dict[str, int]:
    """Write the witness copies of checkpoints that some witness lacks (after an outage or a new
    witness). Returns how many each witness was given, by label."""
    from casebridge.audit.chain import signed_head

    written: dict[str, int] = {}
    for where in witnesses():
        there = where.names()
        written[where.label] = 0
        for checkpoint in checkpoints:
            if _NAME.format(seq=checkpoint.seq) not in there:
                written[where.label] += write_to(where, signed_head(checkpoint))
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
