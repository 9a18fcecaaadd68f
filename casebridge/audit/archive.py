"""Archive segments: sealed events older than AUDIT_ARCHIVE_AFTER_DAYS (default 13 months) leave
the hot tables for compressed, signed files in the blob store, encrypted like every file.

A segment holds a run of consecutive sealed events #first..#last, as a ZIP (the vault accepts
ZIP; its members are DEFLATE-compressed, gzip's algorithm):

- `events.jsonl`: per event, in chain order, its number, the exact canonical text the chain and
  the Merkle tree hash (chain.canonical) and its stored chain hash: the lines of an offline
  export (audit/export.py);
- `segment.json`: the range, the chain hash before #first and at #last, the SHA-256 of
  `events.jsonl`, and the Ed25519 signature (the keyring's audit key) over
  `casebridge-audit-archive:v1:{first}:{last}:{previous hash}:{last hash}:{sha256}`.

The ZIP is encrypted with the vault's streaming AEAD under a data key of its own, wrapped by the
key provider's KEK (as organization keys are: no organization owns the audit log, so no
organization's key destruction can take archived events with it) and rewrapped with them on KEK
rotation. Backups carry segment blobs with the files' (retention/backup.py).

Nothing is lost: the segment is written, read back and compared before, in one transaction, its
row is inserted and the events and seals it holds are deleted (the append-only triggers let only
that transaction do so: audit/triggers.py). A segment ends at a signed checkpoint and never takes
the chain's head, so the sealer and the next checkpoint carry on from the hot tables.
`audit verify` reads the segments first, event by event (naming the first bad one), then the hot
tables; proofs and `audit search --archived` read them too. Archiving is not deletion: audit
events are kept at least six years (retention/policies.py refuses shorter), and segments until
every organization's audit-event policy lets them go (`destroy`, run by retention enforcement):
then the wrapped key is erased and the blob deleted, and the row, signed range and hashes, with
the Merkle frontier at its end, carries the chain over what it held.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from casebridge.audit.models import ArchiveGate, ArchiveSegment, Checkpoint, Seal

FORMAT = "casebridge-audit-archive/1"
SEGMENT_EVENTS = 50_000
GENESIS = "0" * 64


class ArchiveError(Exception):
    """A segment that cannot be read or does not hold what its row says (named by its range)."""


@dataclass(frozen=True)
class ArchivedEvent:
    seq: int
    hash: str
    form: bytes  # the canonical text the chain and the tree hash

    @property
    def values(self) -> dict[str, Any]:
        return dict(json.loads(self.form))


def segment_message(first: int, last: int, previous_hash: str, last_hash: str, content_sha256: str) -> bytes:
    return f"casebridge-audit-archive:v1:{first}:{last}:{previous_hash}:{last_hash}:{content_sha256}".encode()


def _context(segment_id: UUID | str) -> dict[str, str]:
    return {"purpose": "casebridge.audit-archive", "segment": str(segment_id)}


def _associated(segment_id: UUID | str) -> bytes:
    from casebridge.kernel.crypto.streaming import associated_data

    return associated_data(segment_id, 1)


def _label(segment: ArchiveSegment) -> str:
    return f"archive segment #{segment.first_seq}-#{segment.last_seq}"


def read(segment: ArchiveSegment) -> tuple[bytes, dict[str, Any]]:
    """The segment's `events.jsonl` and `segment.json`, decrypted (every tag checked)."""
    from casebridge.kernel.crypto.streaming import decrypt_range
    from casebridge.vault.config import blob_store, key_provider
    from casebridge.vault.keys import WrappedKey

    if segment.destroyed_at is not None:
        raise ArchiveError(
            f"{_label(segment)} was destroyed under the audit-event retention policies on "
            f"{segment.destroyed_at:%Y-%m-%d}: its events can no longer be read or proved"
        )
    try:
        key = key_provider().unwrap(WrappedKey.from_json(segment.wrapped_key), _context(segment.pk))
        store = blob_store()
        parts = decrypt_range(
            lambda lo, hi: store.read_range(segment.blob_name, lo, hi),
            segment.ciphertext_size,
            key,
            _associated(segment.pk),
        )
        data = b"".join(bytes(part) for part in parts)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read("events.jsonl"), json.loads(archive.read("segment.json"))
    except Exception as exc:  # a missing blob, a changed byte, a wrong key: all mean unreadable
        raise ArchiveError(f"{_label(segment)} cannot be read ({type(exc).__name__}): damaged or replaced") from exc


def events(segment: ArchiveSegment, content: bytes | None = None) -> Iterator[ArchivedEvent]:
    """The segment's events in order, from its `events.jsonl` when the caller read it already
    (ArchiveError when it cannot be read or parsed)."""
    if content is None:
        content, _meta = read(segment)
    for number, line in enumerate(content.splitlines(), 1):
        try:
            row = json.loads(line)
            yield ArchivedEvent(int(row["seq"]), str(row["hash"]), str(row["event"]).encode())
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{_label(segment)}: line {number} is not an archived event") from exc


def seal_problem(segment: ArchiveSegment, content: bytes, meta: dict[str, Any], keys: dict[str, Any]) -> str:
    """What is wrong with the segment as a whole (its content's digest, its signature, the copy
    of its description inside), once its events chained correctly; "" when nothing."""
    digest = hashlib.sha256(content).hexdigest()
    if digest != segment.content_sha256:
        return f"{_label(segment)} holds other events than it was signed for"
    problem = _signature_problem(segment, keys)
    if problem:
        return problem
    message = _signed_message(segment)
    if meta.get("signed_message") != message.decode() or meta.get("signature") != segment.signature:
        return f"{_label(segment)} does not describe itself as its row does"
    return ""


def _signed_message(segment: ArchiveSegment) -> bytes:
    return segment_message(
        segment.first_seq, segment.last_seq, segment.previous_hash, segment.last_hash, segment.content_sha256
    )


def _signature_problem(segment: ArchiveSegment, keys: dict[str, Any]) -> str:
    from cryptography.exceptions import InvalidSignature

    key = keys.get(segment.key_id)
    try:
        if key is None:
            raise InvalidSignature
        key.verify(base64.b64decode(segment.signature), _signed_message(segment))
    except (InvalidSignature, ValueError):
        return f"{_label(segment)} has an invalid signature or one by an unknown key"
    return ""


def destroyed_problem(segment: ArchiveSegment, previous_hash: str, keys: dict[str, Any]) -> str:
    """What is wrong with a destroyed segment's row, which now stands for its events: it must
    carry on from the chain hash before it, be signed as archived (so its last hash is the one
    the events chained to), and keep the Merkle frontier at its last event; "" when nothing. The
    frontier itself is checked by the next signed checkpoint, whose root it must lead to."""
    if segment.previous_hash != previous_hash:
        return f"{_label(segment)} (destroyed) does not carry on from the chain hash before it"
    problem = _signature_problem(segment, keys)
    if problem:
        return problem
    from casebridge.audit import merkle

    try:
        size = merkle.Frontier.from_json(segment.frontier if isinstance(segment.frontier, dict) else {}).size
    except (TypeError, ValueError):
        size = -1
    if size != segment.last_seq:
        return f"{_label(segment)} (destroyed) does not keep the Merkle tree at its last event"
    return ""


def containing(seq: int) -> ArchiveSegment | None:
    return ArchiveSegment.objects.filter(first_seq__lte=seq, last_seq__gte=seq).first()


def forms(after: int, upto: int) -> Iterator[ArchivedEvent]:
    """Archived events after..upto, in order."""
    for segment in ArchiveSegment.objects.filter(last_seq__gt=after, first_seq__lte=upto).order_by("first_seq"):
        for event in events(segment):
            if after < event.seq <= upto:
                yield event


def seq_bounds(start: datetime | None, end: datetime | None) -> tuple[int, int] | None:
    """The first and last archived event that occurred in [start, end), or None."""
    seqs = [event["seq"] for event in search(Filters(start=start, end=end))]
    return (min(seqs), max(seqs)) if seqs else None


def organization_of(seq: int) -> str | None:
    """The organization (its id as text) of archived event #seq, None if none or not archived."""
    segment = containing(seq)
    if segment is None:
        return None
    return next((e.values["organization_id"] for e in events(segment) if e.seq == seq), None)


# --- Moving events into segments ----------------------------------------------------------


def _range(cutoff: datetime, max_events: int) -> tuple[int, int] | None:
    """The next run of sealed events to archive: from the first hot one, all older than the
    cutoff, ending at a signed checkpoint and before the chain's head."""
    oldest = Seal.objects.order_by("seq").values_list("seq", "event__occurred_at").first()
    if oldest is None or oldest[1] >= cutoff:
        return None
    start = oldest[0]
    head = Seal.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    checkpoint = Checkpoint.objects.filter(seq__lte=head).order_by("-seq").values_list("seq", flat=True).first()
    signed = min(checkpoint or 0, head - 1)  # covered by a signed tree head, and never the head itself
    young = (
        Seal.objects.filter(seq__gte=start, seq__lte=signed, event__occurred_at__gte=cutoff)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    upto = min(signed, start + max_events - 1, young - 1 if young is not None else signed)
    return (start, upto) if upto >= start else None


def _previous_hash(start: int) -> str:
    if start == 1:
        return GENESIS
    before = ArchiveSegment.objects.filter(last_seq=start - 1).values_list("last_hash", flat=True).first()
    if before is None:
        raise ArchiveError(f"the chain hash before #{start} is in no segment: run `casebridge audit verify`")
    return before


def _build(start: int, upto: int) -> tuple[bytes, bytes, dict[str, Any], list[int], datetime, datetime]:
    """events.jsonl, the ZIP, segment.json, the event ids, the earliest and latest time."""
    from casebridge.audit import chain
    from casebridge.vault.keyring import get_keyring

    previous = prev = _previous_hash(start)
    lines, ids, times = [], [], []
    seals = Seal.objects.filter(seq__gte=start, seq__lte=upto).select_related("event").order_by("seq")
    expected = start
    for seal in seals.iterator(chunk_size=2000):
        form = chain.canonical(seal.event, seal.seq)
        prev = hashlib.sha256(bytes.fromhex(prev) + form).hexdigest()
        if seal.seq != expected or prev != seal.hash:
            raise ArchiveError(f"#{seal.seq} does not chain: nothing archived (run `casebridge audit verify`)")
        lines.append(json.dumps({"seq": seal.seq, "event": form.decode(), "hash": seal.hash}, ensure_ascii=False))
        ids.append(seal.event_id)
        times.append(seal.event.occurred_at)
        expected += 1
    if expected != upto + 1:
        raise ArchiveError(f"#{expected} is missing: nothing archived (run `casebridge audit verify`)")
    content = ("\n".join(lines) + "\n").encode()
    digest = hashlib.sha256(content).hexdigest()
    message = segment_message(start, upto, previous, prev, digest)
    key = get_keyring().signing_key()
    meta = {
        "format": FORMAT,
        "first_seq": start,
        "last_seq": upto,
        "events": len(lines),
        "previous_hash": previous,
        "last_hash": prev,
        "content_sha256": digest,
        "key_id": key.key_id,
        "signature": base64.b64encode(key.private.sign(message)).decode(),
        "signed_message": message.decode(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("events.jsonl", content)
        archive.writestr("segment.json", json.dumps(meta, indent=1))
    return content, buffer.getvalue(), meta, ids, min(times), max(times)


def _archive_one(cutoff: datetime, max_events: int) -> ArchiveSegment | None:
    from casebridge.audit.api import record
    from casebridge.kernel.pipeline import ChunkReader, seal_to_blob
    from casebridge.vault.config import blob_store, key_provider
    from casebridge.vault.keys.hierarchy import generate_dek

    bounds = _range(cutoff, max_events)
    if bounds is None:
        return None
    start, upto = bounds
    content, data, meta, ids, first_at, last_at = _build(start, upto)
    segment_id = uuid4()
    dek = generate_dek()
    wrapped = key_provider().wrap(dek, _context(segment_id))
    store = blob_store()
    blob_name = f"audit-archive/{segment_id}-{secrets.token_hex(6)}"
    sealed = seal_to_blob(store, blob_name, dek, _associated(segment_id), ChunkReader([data]).readinto, len(data))
    segment = ArchiveSegment(
        id=segment_id,
        first_seq=start,
        last_seq=upto,
        events=len(ids),
        first_at=first_at,
        last_at=last_at,
        **{name: meta[name] for name in ("previous_hash", "last_hash", "content_sha256", "key_id", "signature")},
        blob_name=blob_name,
        size=len(data),
        ciphertext_size=sealed.ciphertext_size,
        wrapped_key=wrapped.to_json(),
        kek_version=wrapped.version,
    )
    try:
        if read(segment) != (content, meta):  # read back before anything leaves the hot tables
            raise ArchiveError(f"{_label(segment)} did not read back as written: nothing archived")
        with transaction.atomic():
            try:
                with transaction.atomic():
                    segment.save(force_insert=True)
            except IntegrityError:  # another worker archived this range first
                store.delete(blob_name)
                return None
            ArchiveGate.objects.create()
            with connection.cursor() as cursor:
                # Events first (the seals name them): both foreign keys are checked at commit.
                cursor.execute(
                    "DELETE FROM audit_event WHERE id IN "
                    "(SELECT event_id FROM audit_seal WHERE seq >= %s AND seq <= %s)",
                    [start, upto],
                )
                moved = cursor.rowcount
                cursor.execute("DELETE FROM audit_seal WHERE seq >= %s AND seq <= %s", [start, upto])
            ArchiveGate.objects.all().delete()
            if moved != len(ids):
                raise ArchiveError(f"{_label(segment)}: {moved} events left the table for {len(ids)} archived")
            record(
                "audit.archived",
                details={"first_seq": start, "last_seq": upto, "events": len(ids), "segment": str(segment_id)},
            )
    except BaseException:
        store.delete(blob_name)
        raise
    return segment


def archive(*, now: datetime | None = None, max_events: int = SEGMENT_EVENTS) -> list[ArchiveSegment]:
    """Move every sealed event older than AUDIT_ARCHIVE_AFTER_DAYS into segments of at most
    `max_events` (0 days: archiving is off). Returns the segments written."""
    if settings.AUDIT_ARCHIVE_AFTER_DAYS <= 0:
        return []
    from casebridge.audit import chain

    chain.seal_pending()
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_ARCHIVE_AFTER_DAYS)
    made = []
    while (segment := _archive_one(cutoff, max_events)) is not None:
        made.append(segment)
    from casebridge.audit import partitions

    partitions.drop_emptied(cutoff)  # PostgreSQL: the months that no longer hold an event
    return made


def archive_due() -> int:
    """The worker's periodic entry: one query when nothing is old enough."""
    return len(archive())


def rewrap_all() -> int:
    """Wrap every segment's data key with the key provider's current KEK version (keys rotate)."""
    from casebridge.vault.config import key_provider
    from casebridge.vault.keys import WrappedKey

    provider = key_provider()
    current = provider.current_version()
    done = 0
    live = ArchiveSegment.objects.filter(destroyed_at__isnull=True)
    for segment in live.exclude(kek_version=current).order_by("first_seq"):
        context = _context(segment.pk)
        wrapped = provider.wrap(provider.unwrap(WrappedKey.from_json(segment.wrapped_key), context), context)
        # The segment row is not an audit table: its key may be rewrapped like an organization's.
        ArchiveSegment.objects.filter(pk=segment.pk, kek_version=segment.kek_version).update(
            wrapped_key=wrapped.to_json(), kek_version=wrapped.version
        )
        done += 1
    return done


# --- Searching (archived events, and the hot tables with the same filters) -------------------


@dataclass(frozen=True)
class Filters:
    """What `casebridge audit search` asks for. action: exact, or a dotted prefix ending in ".";
    patient: the event's patient, or one of a list's `details.patients` (audit/reports.py)."""

    start: datetime | None = None
    end: datetime | None = None
    action: str = ""
    actor: str = ""
    organization: str = ""
    patient: str = ""
    outcome: str = ""
    # The review screen's own filters (audit/queries.py EventFilters.for_archive), so its
    # "include the archive" asks the segments exactly what it asks the hot tables:
    patient_ref: str = ""  # the event's own patient only (not lists)
    action_starts: str = ""  # any action starting with this text
    actor_part: str = ""  # part of the actor's label, any case
    case: str = ""  # details.case
    ip: str = ""
    emergency_only: bool = False
    before_id: int | None = None  # events with a smaller id only (the page's cursor)

    def match(self, values: dict[str, Any]) -> bool:
        occurred = values["occurred_at"]
        if isinstance(occurred, str):
            occurred = datetime.fromisoformat(occurred)
        name, details = values["action"], values.get("details")
        listed = details.get("patients") if isinstance(details, dict) else None
        return not (
            (self.start is not None and occurred < self.start)
            or (self.end is not None and occurred >= self.end)
            or (
                self.action
                and not (name == self.action or (self.action.endswith(".") and name.startswith(self.action)))
            )
            or (self.actor and self.actor not in (values["actor_id"], values["actor_label"]))
            or (self.organization and str(values["organization_id"] or "") != self.organization)
            or (self.outcome and values["outcome"] != self.outcome)
            or (self.patient and values["patient_ref"] != self.patient and self.patient not in (listed or []))
            or (self.patient_ref and values["patient_ref"] != self.patient_ref)
            or (self.action_starts and not name.startswith(self.action_starts))
            or (self.actor_part and self.actor_part.lower() not in (values["actor_label"] or "").lower())
            or (self.case and not (isinstance(details, dict) and details.get("case") == self.case))
            or (self.ip and values["ip"] != self.ip)
            or (self.emergency_only and not values["emergency_access_id"])
            or (self.before_id is not None and values["id"] >= self.before_id)
        )


def search(
    filters: Filters | Sequence[Filters],
    *,
    progress: Any = None,
    upto_seq: int | None = None,
    after_seq: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Archived events matching every filter (of one of several `Filters`: each segment is still
    read once), oldest first. Reads only the segments whose time span meets [start, end) (and,
    when given, that end at or before `upto_seq` or begin after `after_seq`);
    `progress(done, total)` after each segment."""
    alternatives = [filters] if isinstance(filters, Filters) else list(filters)
    segments = ArchiveSegment.objects.filter(destroyed_at__isnull=True).order_by("first_seq")
    if upto_seq is not None:
        segments = segments.filter(last_seq__lte=upto_seq)
    if after_seq is not None:
        segments = segments.filter(first_seq__gt=after_seq)
    starts, ends = [f.start for f in alternatives], [f.end for f in alternatives]
    if alternatives and all(start is not None for start in starts):
        segments = segments.filter(last_at__gte=min(start for start in starts if start is not None))
    if alternatives and all(end is not None for end in ends):
        segments = segments.filter(first_at__lt=max(end for end in ends if end is not None))
    chosen = list(segments)
    if callable(progress):
        progress(0, len(chosen))  # the total, before the first (slow) segment
    for done, segment in enumerate(chosen, 1):
        for event in events(segment):
            values = event.values
            if any(alternative.match(values) for alternative in alternatives):
                yield {**values, "seq": event.seq, "archived": True}
        if callable(progress):
            progress(done, len(chosen))


def search_hot(filters: Filters) -> Iterator[dict[str, Any]]:
    """Sealed events still in the hot tables matching every filter, oldest first: the database
    narrows by time, action, actor, organization and outcome; the patient is checked here (lists
    keep theirs in `details`), in the canonical form the chain hashes."""
    from django.db.models import Q

    from casebridge.audit import chain
    from casebridge.audit.reports import LISTS

    seals = Seal.objects.select_related("event").order_by("seq")
    if filters.start is not None:
        seals = seals.filter(event__occurred_at__gte=filters.start)
    if filters.end is not None:
        seals = seals.filter(event__occurred_at__lt=filters.end)
    if filters.action:
        prefix = filters.action.endswith(".")
        seals = seals.filter(**{"event__action__startswith" if prefix else "event__action": filters.action})
    if filters.actor:
        seals = seals.filter(Q(event__actor_id=filters.actor) | Q(event__actor_label=filters.actor))
    if filters.organization:
        seals = seals.filter(event__organization_id=filters.organization)
    if filters.outcome:
        seals = seals.filter(event__outcome=filters.outcome)
    if filters.patient:
        seals = seals.filter(Q(event__patient_ref=filters.patient) | Q(event__action__in=LISTS))
    for seal in seals.iterator(chunk_size=2000):
        values = json.loads(chain.canonical(seal.event, seal.seq))
        if filters.match(values):
            yield {**values, "archived": False}


# --- Destruction under retention ------------------------------------------------------------


def destroy(segment: ArchiveSegment, *, now: datetime | None = None) -> ArchiveSegment:
    """Crypto-shred one segment: keep the Merkle frontier at its last event on its row, erase
    its wrapped key, then delete its blob (as the vault destroys a file). Only the chain's oldest
    live segment goes: a destroyed range is always where the chain starts."""
    from casebridge.audit import chain
    from casebridge.vault.config import blob_store

    first_live = ArchiveSegment.objects.filter(destroyed_at__isnull=True).order_by("first_seq").first()
    if first_live is None or first_live.pk != segment.pk:
        raise ValueError(f"{_label(segment)} is not the oldest live segment: segments are destroyed in order")
    frontier = chain.frontier_at(segment.last_seq)  # read while the segment can still be read
    now = now or timezone.now()
    with transaction.atomic():
        updated = ArchiveSegment.objects.filter(pk=segment.pk, destroyed_at__isnull=True).update(
            destroyed_at=now, wrapped_key="", frontier=frontier.to_json()
        )
        if updated != 1:
            raise ValueError(f"{_label(segment)} was destroyed meanwhile")
    blob_store().delete(segment.blob_name)
    segment.refresh_from_db()
    return segment
