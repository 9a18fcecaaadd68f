"""The hash chain: sealing committed events in order, signed checkpoints, offline verification.

hash(n) = SHA-256(hash(n-1) || canonical(event n, seq n)), with hash(0) = 64 zeros.

Order is the database's: the sealer takes the lock, reads the chain head and the queue of
committed-but-unsealed events (in insertion order), and appends their seals in one transaction.
PostgreSQL serializes sealers with an advisory lock; SQLite's IMMEDIATE transactions already
hold the single write lock, and there the pass runs inside the writer's own transaction just
before its commit (audit/db/sqlite3/base.py). On PostgreSQL requests never wait on the chain:
they only insert their event.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from django.db import connection, transaction
from django.db.models import Count, IntegerField, Max, Subquery, Value

from casebridge.audit import chunks, merkle, witness
from casebridge.audit.api import db_datetime
from casebridge.audit.models import SEALED_FIELDS, ArchiveSegment, Checkpoint, Event, PendingSeal, Seal, TreeHead
from casebridge.vault.keyring import get_keyring

GENESIS = "0" * 64
_SEALER_LOCK_KEY = 0x43424155  # "CBAU": arbitrary, fixed, project-wide
SEAL_BATCH = 5000
CHECKPOINT_EVERY = 1000


def canonical_values(row: Mapping[str, Any], seq: int) -> bytes:
    """Every recorded field, in a fixed JSON form (sorted keys, no spaces)."""
    payload = {name: row[name] for name in SEALED_FIELDS}
    payload["seq"] = seq
    payload["occurred_at"] = chunks.iso(row["occurred_at"])
    for name in ("organization_id", "emergency_access_id"):
        payload[name] = str(row[name]) if row[name] else None
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(event: Event, seq: int) -> bytes:
    return canonical_values({name: getattr(event, "pk" if name == "id" else name) for name in SEALED_FIELDS}, seq)


def link(prev_hash: str, event: Event, seq: int) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(event, seq)).hexdigest()


def _link_form(prev_hash: str, form: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + form).hexdigest()


def _insert_seals(seqs: list[int], event_ids: list[int], hashes: list[str], now: datetime) -> None:
    if connection.vendor == "postgresql":
        # Typed arrays, one statement: cheaper than compiling a placeholder per value.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_seal (seq, event_id, hash, sealed_at) "
                "SELECT s, e, h, %s FROM UNNEST(%s::bigint[], %s::bigint[], %s::text[]) AS u(s, e, h)",
                [now, seqs, event_ids, hashes],
            )
        return
    # SQLite: one prepared statement run for every row (executemany), without building a model
    # per seal: bulk_create's per-object work was a third of the sealer's time (profiled).
    sealed_at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO audit_seal (seq, event_id, hash, sealed_at) VALUES (%s, %s, %s, %s)",
            [(s, e, h, sealed_at) for s, e, h in zip(seqs, event_ids, hashes, strict=True)],
        )


def _take_sealer_lock(blocking: bool) -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite: the IMMEDIATE transaction already holds the only write lock
    with connection.cursor() as cursor:
        if blocking:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEALER_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEALER_LOCK_KEY])
        row = cursor.fetchone()
        return bool(row and row[0])


def seal_pending(*, blocking: bool = True, batch: int = SEAL_BATCH) -> int:
    """Chain every committed event that has no seal yet; returns how many were sealed."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return _seal_passes(blocking, batch, lock_each_pass=True)
    # Outside any transaction (the on-commit path): a session-level lock taken in autocommit
    # costs a sealer that loses the race one round trip instead of three (BEGIN, try, COMMIT),
    # and most do under load. It conflicts with the transaction-level lock on the same key.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {'pg_advisory_lock' if blocking else 'pg_try_advisory_lock'}(%s)", [_SEALER_LOCK_KEY])
        row = cursor.fetchone()
        if not blocking and not (row and row[0]):
            return 0
        try:
            return _seal_passes(blocking, batch, lock_each_pass=False)
        finally:
            # Each pass has committed before this: the next sealer sees its seals.
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_SEALER_LOCK_KEY])


def _seal_passes(blocking: bool, batch: int, *, lock_each_pass: bool) -> int:
    total = 0
    while True:
        with transaction.atomic():
            if lock_each_pass and not _take_sealer_lock(blocking):
                return total
            pending = _pending(batch)
            if not pending:
                return total
            first = pending[0]
            seq, prev = first["head_seq"] or 0, first["head_hash"] or GENESIS
            checkpointed, now = first["last_checkpoint"], first["now"]
            tree = _tree_head_at(first, seq)
            seqs, event_ids, hashes, leaves = [], [], [], []
            for row in pending:
                seq += 1
                # One canonical form per event: its chain link and its Merkle leaf.
                form = canonical_values(row, seq)
                prev = _link_form(prev, form)
                seqs.append(seq)
                event_ids.append(row["id"])
                hashes.append(prev)
                leaves.append(merkle.leaf_hash(form))
            _insert_seals(seqs, event_ids, hashes, now)
            if connection.vendor == "sqlite":  # no Collector and no query compiling per pass
                with connection.cursor() as cursor:
                    cursor.executemany("DELETE FROM audit_pending_seal WHERE event_id = %s", [(e,) for e in event_ids])
            else:
                PendingSeal.objects.filter(event_id__in=event_ids).delete()
            due = seq - (checkpointed or 0) >= CHECKPOINT_EVERY
            if tree is not None:
                for leaf in leaves:
                    tree.append(leaf)
            elif due or len(pending) >= TREE_HEAD_PASS:
                # The tree takes this pass's leaves as computed above instead of reading the
                # events back from the database (which was a third of the sealer's time).
                tree = frontier_at(seq, tail=(seqs[0], leaves))
            if due:
                _write_checkpoint(seq, prev, tree)
            if tree is not None and len(pending) >= TREE_HEAD_PASS:
                _store_tree_head(tree)
            total += len(pending)
        if len(pending) < batch:
            return total


# The next queued events (every field), each with the chain head, the last checkpoint's seq and
# the database's time, as one fixed statement per database: the pass runs after (PostgreSQL) or
# inside (SQLite, audit/db/sqlite3/base.py) every audited commit, and compiling the equivalent
# ORM query was most of its time (profiled: ~2 ms of a ~3 ms audited transaction on SQLite). The
# values are converted below exactly as the model's fields convert them.
#
# Driven from the small queue by primary key. A join instead lets PostgreSQL, with statistics
# that lag the ever-changing queue, hash-join it against a sequential scan of the whole event
# table on every pass (measured: 27 ms at 300k events). The head, the checkpoint and the time
# ride along on the same query (evaluated once, not per row): each round trip counts.
_PENDING_TEMPLATE = (
    "SELECT {columns}, (SELECT seq FROM audit_seal ORDER BY seq DESC LIMIT 1), "
    "(SELECT hash FROM audit_seal ORDER BY seq DESC LIMIT 1), "
    "(SELECT seq FROM audit_checkpoint ORDER BY seq DESC LIMIT 1), {now}, "
    "(SELECT seq FROM audit_tree_head WHERE id = 1), (SELECT frontier FROM audit_tree_head WHERE id = 1) "
    "FROM audit_event WHERE id IN (SELECT event_id FROM audit_pending_seal ORDER BY event_id LIMIT %s) ORDER BY id"
)
_NOW = {"postgresql": "STATEMENT_TIMESTAMP()", "sqlite": "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')"}
_PENDING = {vendor: _PENDING_TEMPLATE.format(columns=", ".join(SEALED_FIELDS), now=now) for vendor, now in _NOW.items()}


def _pending(batch: int) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(_PENDING[connection.vendor], [batch])
        fetched = cursor.fetchall()
    names = (*SEALED_FIELDS, "head_seq", "head_hash", "last_checkpoint", "now", "tree_seq", "tree_frontier")
    pending = [_as_django_converts(dict(zip(names, values, strict=True))) for values in fetched]
    for row in pending:
        row["now"] = db_datetime(row["now"])
    return pending


def _as_django_converts(row: dict[str, Any]) -> dict[str, Any]:
    """An event's column values as the driver returns them, converted as its fields convert
    them (what canonical_values is defined over): aware times, UUIDs, parsed JSON (both
    databases hand JSON over as text: Django keeps psycopg from parsing it)."""
    row["occurred_at"] = db_datetime(row["occurred_at"])
    for name in ("organization_id", "emergency_access_id"):
        value = row[name]
        row[name] = value if isinstance(value, uuid.UUID) or not value else uuid.UUID(value)
    row["details"] = json.loads(row["details"]) if row["details"] is not None else None
    return row


# The sealed events after..upto with their seals: what sealed_forms reads back for a checkpoint's
# Merkle tree, without a model per event (which was a tenth of the batched path).
_SEALED_CHUNK = 2000
_SEALED = (  # noqa: S608  (constant names only)
    "SELECT s.seq, s.hash, {columns} FROM audit_seal s JOIN audit_event e ON e.id = s.event_id "
    "WHERE s.seq > %s AND s.seq <= %s ORDER BY s.seq LIMIT {chunk}"
).format(columns=", ".join(f"e.{name}" for name in SEALED_FIELDS), chunk=_SEALED_CHUNK)


def _sealed_forms_hot(after: int, upto: int) -> Iterator[tuple[int, str, bytes]]:
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_SEALED, [after, upto])
            fetched = cursor.fetchall()
        for seq, stored_hash, *values in fetched:
            row = _as_django_converts(dict(zip(SEALED_FIELDS, values, strict=True)))
            yield seq, stored_hash, canonical_values(row, seq)
            after = seq
        if len(fetched) < _SEALED_CHUNK:
            return


def sealed_forms(after: int, upto: int) -> Iterator[tuple[int, str, bytes]]:
    """(seq, chain hash, canonical form) of the sealed events after..upto, in order: those in
    archive segments (audit/archive.py) first, then those in the hot tables."""
    from casebridge.audit import archive

    last = after
    for event in archive.forms(after, upto):
        yield event.seq, event.hash, event.form
        last = event.seq
    yield from _sealed_forms_hot(last, upto)


def hash_at(seq: int) -> str:
    """The chain hash at #seq (GENESIS before the first event), hot or archived."""
    if seq <= 0:
        return GENESIS
    found = Seal.objects.filter(seq=seq).values_list("hash", flat=True).first()
    if found is None:  # the last event of a destroyed segment: its row keeps the hash
        found = (
            ArchiveSegment.objects.filter(last_seq=seq, destroyed_at__isnull=False)
            .values_list("last_hash", flat=True)
            .first()
        )
    if found is None:
        found = next((stored for _seq, stored, _form in sealed_forms(seq - 1, seq)), None)
    if found is None:
        raise ValueError(f"no sealed event #{seq}")
    return found


def leaf_hashes(after: int, upto: int) -> Iterator[bytes]:
    """The Merkle leaf hashes of sealed events after..upto: each event's canonical form."""
    for _seq, _hash, form in sealed_forms(after, upto):
        yield merkle.leaf_hash(form)


def frontier_at(seq: int, tail: tuple[int, list[bytes]] | None = None) -> merkle.Frontier:
    """The Merkle tree over events 1..seq: from the last checkpoint at or before `seq` that kept
    its frontier, plus the events sealed since (the whole log only once, after an upgrade).
    `tail` = (first seq, leaf hashes of events first..seq) are leaves the caller has computed
    already: only those before them are read back."""
    start = Checkpoint.objects.filter(seq__lte=seq, frontier__isnull=False).order_by("-seq").values("frontier").first()
    frontier = merkle.Frontier.from_json(cast(dict[str, object], start["frontier"])) if start else merkle.Frontier()
    gone = destroyed_frontier(seq)
    if gone is not None and gone.size > frontier.size:  # the leaves before it were destroyed
        frontier = gone
    head = TreeHead.objects.filter(seq__lte=seq, seq__gt=frontier.size).values("seq", "frontier").first()
    kept = _kept_tree(head["seq"], head["frontier"]) if head is not None else None
    frontier = kept or frontier  # the last large pass's, later than that checkpoint
    first, known = tail if tail is not None else (seq + 1, [])
    for leaf in leaf_hashes(frontier.size, min(seq, first - 1)):
        frontier.append(leaf)
    for leaf in known[max(0, frontier.size + 1 - first) : seq + 1 - first]:
        frontier.append(leaf)
    if frontier.size != seq:
        raise ValueError(f"the Merkle tree reached #{frontier.size}, not #{seq}")
    return frontier


def destroyed_frontier(seq: int) -> merkle.Frontier | None:
    """The Merkle tree kept by the newest segment destroyed under retention that ends at or
    before #seq (its leaves are gone: a tree over them goes on from there), or None."""
    kept = (
        ArchiveSegment.objects.filter(destroyed_at__isnull=False, last_seq__lte=seq)
        .order_by("-last_seq")
        .values_list("frontier", flat=True)
        .first()
    )
    return merkle.Frontier.from_json(cast(dict[str, object], kept)) if kept is not None else None


# A pass sealing at least this many events keeps the tree head (models.TreeHead) for the next.
TREE_HEAD_PASS = 64
_STORE_TREE_HEAD = {
    "postgresql": "INSERT INTO audit_tree_head (id, seq, frontier) VALUES (1, %s, %s::jsonb) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, frontier = excluded.frontier",
    "sqlite": "INSERT INTO audit_tree_head (id, seq, frontier) VALUES (1, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, frontier = excluded.frontier",
}


def _tree_head_at(first: Mapping[str, Any], seq: int) -> merkle.Frontier | None:
    """The Merkle frontier at the chain head `seq`, when the tree head kept by the last large
    pass is at that seq (the pending query brings it along): None when it is older."""
    if first["tree_seq"] != seq or seq == 0:
        return None
    return _kept_tree(seq, first["tree_frontier"])


def _kept_tree(seq: int, stored: Any) -> merkle.Frontier | None:
    """The kept tree head's frontier (JSON text as a raw query returns it, or parsed as the ORM
    does) when it is one with `seq` leaves; None otherwise, and the tree is read back as
    without one."""
    try:
        tree = merkle.Frontier.from_json(json.loads(stored) if isinstance(stored, str | bytes) else stored)
    except (TypeError, ValueError):
        return None
    return tree if tree.size == seq else None


def _store_tree_head(tree: merkle.Frontier) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STORE_TREE_HEAD[connection.vendor], [tree.size, json.dumps(tree.to_json())])


def _write_checkpoint(seq: int, chain_hash: str, frontier: merkle.Frontier | None = None) -> Checkpoint:
    """Sign the head at #seq; `frontier`: the tree at seq when the caller has it already."""
    key = get_keyring().signing_key()
    if frontier is None:
        frontier = frontier_at(seq)
    elif frontier.size != seq:
        raise ValueError(f"the Merkle tree is at #{frontier.size}, not #{seq}")
    tree_root = frontier.root().hex()
    signature = key.private.sign(checkpoint_message(seq, chain_hash, tree_root))
    checkpoint = Checkpoint.objects.create(
        seq=seq,
        hash=chain_hash,
        key_id=key.key_id,
        signature=base64.b64encode(signature).decode(),
        tree_root=tree_root,
        frontier=frontier.to_json(),
    )
    head = signed_head(Checkpoint.objects.get(seq=seq))  # created_at as the database keeps it
    transaction.on_commit(lambda: witness.write_after_commit(head))
    return checkpoint


def signed_head(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as a third party sees it: the tree head, the chain head and the signature
    over the exact message (what proofs carry and the witness folder keeps)."""
    return {
        "tree_size": checkpoint.seq,
        "root": checkpoint.tree_root,
        "chain_hash": checkpoint.hash,
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
        "signed_message": checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.tree_root or None).decode(),
        "created_at": chunks.iso(checkpoint.created_at),
    }


def checkpoint_now() -> Checkpoint | None:
    """Seal what is pending, then sign the head (used by the periodic task and on demand)."""
    seal_pending()
    with transaction.atomic():
        _take_sealer_lock(blocking=True)
        head = Seal.objects.order_by("-seq").values_list("seq", "hash").first()
        if head is None or Checkpoint.objects.filter(seq=head[0]).exists():
            return None
        return _write_checkpoint(*head)


def checkpoint_message(seq: int, chain_hash: str, tree_root: str | None = None) -> bytes:
    """What a checkpoint's key signs. Since the Merkle tree: the chain head and the tree head
    (size = seq, root); before it, the chain head alone (still verified as such)."""
    if tree_root is None:
        return f"casebridge-audit-checkpoint:{seq}:{chain_hash}".encode()
    return f"casebridge-audit-checkpoint:v2:{seq}:{chain_hash}:{seq}:{tree_root}".encode()


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    pending: int
    problem: str = ""
    bad_seq: int | None = None
    bad_event_id: int | None = None
    processes: int = 1  # how many checked the hot table's events (audit/chunks.py)
    destroyed: int = 0  # events of the oldest segments, destroyed under retention: #1..#destroyed


def verify(*, witnesses: bool = True) -> VerifyResult:
    """Recompute the whole chain, archived segments first (audit/archive.py), and check every
    signed checkpoint against it, then (unless `witnesses` is False: a restore test checks an
    earlier copy on purpose) compare the checkpoints with their witness copies outside the
    database (audit/witness.py)."""
    from casebridge.audit import archive

    checkpoints = {c.seq: c for c in Checkpoint.objects.defer("frontier").order_by("seq")}
    top = Seal.objects.aggregate(top=Max("seq"))["top"] or 0  # seals after this wait for the next run
    keys = get_keyring().verification_keys()
    prev, expected_seq, checked, processes = GENESIS, 1, 0, 1
    seen_events: set[int] = set()
    tree = merkle.Frontier()
    destroyed = 0

    def fail(problem: str, seq: int | None, event_id: int | None) -> VerifyResult:
        return VerifyResult(False, checked, expected_seq - 1, prev, 0, problem, seq, event_id, processes, destroyed)

    def step(seq: int, stored_hash: str, event_id: int, form: bytes | None) -> str:
        """Chain one archived event and check the checkpoint signed at it; the problem, or ""."""
        nonlocal prev, expected_seq, checked
        if seq != expected_seq:
            return f"sequence gap: expected #{expected_seq}, found #{seq} (events deleted)"
        if event_id in seen_events:
            return f"#{seq} repeats event {event_id}"
        recomputed = "" if form is None else hashlib.sha256(bytes.fromhex(prev) + form).hexdigest()
        if form is None or recomputed != stored_hash:
            return f"#{seq} (event {event_id}) does not match its hash: edited, inserted or reordered"
        tree.append(merkle.leaf_hash(form))
        checkpoint = checkpoints.get(seq)
        if checkpoint is not None:
            problem = _check_checkpoint(checkpoint, stored_hash, tree.root(), keys)
            if problem:
                return problem
        seen_events.add(event_id)
        prev, expected_seq, checked = recomputed, seq + 1, checked + 1
        return ""

    for segment in ArchiveSegment.objects.order_by("first_seq"):
        if segment.first_seq != expected_seq:
            return fail(
                f"sequence gap: expected #{expected_seq}, the next archive segment starts at #{segment.first_seq}",
                expected_seq,
                None,
            )
        if segment.destroyed_at is not None:
            # Its row stands for its events: signed range and hashes, and the tree at its end.
            # Checkpoints signed inside it cannot be recomputed; the next one checks the tree.
            problem = (
                ""
                if destroyed == expected_seq - 1
                else f"archive segment #{segment.first_seq}-#{segment.last_seq} was destroyed out of order"
            )
            problem = problem or archive.destroyed_problem(segment, prev, keys)
            if problem:
                return fail(problem, segment.first_seq, None)
            tree = merkle.Frontier.from_json(cast(dict[str, object], segment.frontier))
            prev, expected_seq, destroyed = segment.last_hash, segment.last_seq + 1, segment.last_seq
            continue
        try:
            content, meta = archive.read(segment)  # decrypted once: the events, then the signature
            for event in archive.events(segment, content):
                event_id = int(event.values.get("id") or 0)
                problem = step(event.seq, event.hash, event_id, event.form)
                if problem:
                    return fail(problem, expected_seq if problem.startswith("sequence gap") else event.seq, event_id)
            problem = "" if expected_seq == segment.last_seq + 1 else f"#{expected_seq} is missing from its segment"
            problem = problem or archive.seal_problem(segment, content, meta, keys)
        except archive.ArchiveError as exc:
            problem = str(exc)
        if problem:
            return fail(problem, min(expected_seq, segment.last_seq), None)

    def missing() -> VerifyResult | None:
        """Seals the rows skipped at #expected_seq: a seal whose event is gone, or a gap."""
        seal = Seal.objects.filter(seq__gte=expected_seq).order_by("seq").values_list("seq", flat=True).first()
        if seal is None:
            return None
        if seal == expected_seq:
            return fail(f"#{seal} points to an event that no longer exists", seal, None)
        return fail(f"sequence gap: expected #{expected_seq}, found #{seal} (events deleted)", expected_seq, None)

    tasks = _hot_tasks(expected_seq, top, prev, tree, sorted(checkpoints))
    processes = chunks.processes_for(len(tasks))
    for number, part in enumerate(chunks.run(tasks, processes)):
        if part.prev != prev:
            return fail(f"#{part.lo - 1} changed while it was being verified", part.lo - 1, None)
        ids = part.event_ids
        repeat = _first_repeat(seen_events, part)
        passed = len(ids) if repeat is None else repeat - part.lo
        for seq, chain_hash, nodes in part.marks:
            if seq >= part.lo + passed:
                break
            root = (merkle.Frontier(seq, nodes) if number == 0 else _joined(tree, seq - tree.size, nodes)).root()
            problem = _check_checkpoint(checkpoints[seq], chain_hash, root, keys)
            if problem:
                return fail(problem, seq, ids[seq - part.lo])
        if repeat is not None:
            event_id = ids[passed] if passed < len(ids) else cast(tuple, part.problem)[2]
            return fail(f"#{repeat} repeats event {event_id}", repeat, event_id)
        tree = merkle.Frontier(part.size, part.nodes) if number == 0 else _joined(tree, part.size, part.nodes)
        checked, expected_seq, prev = checked + part.checked, part.lo + part.checked, part.last_hash
        if part.problem is not None:
            return fail(*part.problem)
        if part.stopped_at is not None:
            return missing() or fail(f"sequence gap: expected #{expected_seq}", expected_seq, None)

    head_seq = expected_seq - 1
    beyond = [s for s in checkpoints if s > head_seq]
    if beyond:
        return VerifyResult(
            False,
            checked,
            head_seq,
            prev,
            0,
            f"the chain ends at #{head_seq} but checkpoint #{min(beyond)} was signed: events removed from the end",
            head_seq + 1,
            None,
        )
    if witnesses:
        disagreements = witness.problems(head_seq, checkpoints, keys)
        if disagreements:
            seq, problem = disagreements[0]
            return VerifyResult(False, checked, head_seq, prev, 0, problem, seq or None, None)
    events, seals, pending = _counts()
    unsealed = None
    if events != seals + pending:  # only then look for the event: the anti-join reads every row
        unsealed = Event.objects.filter(seal__isnull=True, pendingseal__isnull=True).order_by("id").first()
    if unsealed is not None:
        return VerifyResult(
            False,
            checked,
            head_seq,
            prev,
            pending,
            f"event {unsealed.pk} is neither sealed nor queued for sealing: inserted outside CaseBridge",
            None,
            unsealed.pk,
        )
    return VerifyResult(True, checked, head_seq, prev, pending, processes=processes, destroyed=destroyed)


def _hot_tasks(lo: int, top: int, prev: str, tree: merkle.Frontier, marks: list[int]) -> list[chunks.Task]:
    """The hot table's seqs lo..top as chunks.check tasks: the first continues `tree` from `prev`
    up to the next multiple of chunks.CHUNK, every later one is one aligned chunk of its own."""
    tasks: list[chunks.Task] = []
    while lo <= top:
        hi = min(top, (lo - 1) // chunks.CHUNK * chunks.CHUNK + chunks.CHUNK)
        inside = marks[bisect.bisect_left(marks, lo) : bisect.bisect_right(marks, hi)]
        if tasks:
            tasks.append((lo, hi, None, (0, []), inside))
        else:
            tasks.append((lo, hi, prev, (tree.size, list(tree.nodes)), inside))
        lo = hi + 1
    return tasks


def _joined(tree: merkle.Frontier, size: int, nodes: list[bytes]) -> merkle.Frontier:
    """`tree` (a multiple of chunks.CHUNK leaves) followed by a chunk's own frontier (`size`
    leaves, at most one chunk)."""
    if size == chunks.CHUNK:
        joined = merkle.Frontier(tree.size, list(tree.nodes))
        joined.append_subtree(nodes[0], chunks.CHUNK_BITS)
        return joined
    return merkle.Frontier(tree.size + size, tree.nodes + nodes)


def _first_repeat(seen: set[int], part: chunks.Chunk) -> int | None:
    """The first seq of `part` whose event an earlier seq already sealed (the event that did not
    match its hash included: a repeat is reported first, as a walk from #1 finds it); with none,
    the part's events join `seen`."""
    fresh = set(part.event_ids)
    if part.problem is not None:
        fresh.add(part.problem[2])
    if len(fresh) == len(part.event_ids) + (part.problem is not None) and seen.isdisjoint(fresh):
        seen |= fresh
        return None
    ids = [*part.event_ids, *([part.problem[2]] if part.problem is not None else [])]
    earlier: set[int] = set()
    for offset, event_id in enumerate(ids):
        if event_id in seen or event_id in earlier:
            return part.lo + offset
        earlier.add(event_id)
    seen |= fresh
    return None


def _counts() -> tuple[int, int, int]:
    """(events, seals, queued events) in one statement, so in one snapshot. A seal is its own
    event's (the walk found each seal's event; the sealer deletes the queue row in the
    transaction that writes the seal), so equal sums leave no event neither sealed nor queued.
    A seal written since the walk began and pointing at no event could mask one; the next run's
    walk reports such a seal."""

    def count(model: type[Seal] | type[PendingSeal]) -> Subquery:
        rows = model.objects.annotate(one=Value(1)).values("one").annotate(n=Count("pk")).values("n")
        return Subquery(rows, output_field=IntegerField())

    query = Event.objects.annotate(one=Value(1)).values("one")
    query = query.annotate(n=Count("pk"), s=count(Seal), p=count(PendingSeal))
    return cast(tuple[int, int, int], query.values_list("n", "s", "p").get())


def _check_checkpoint(checkpoint: Checkpoint, chain_hash: str, root: bytes, keys: dict) -> str:
    """The problem with `checkpoint` given the chain hash and the Merkle root recomputed at its
    seq, or ""."""
    if checkpoint.hash != chain_hash:
        return f"checkpoint #{checkpoint.seq} was signed over a different chain: history rewritten"
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"checkpoint #{checkpoint.seq} is signed by unknown key {checkpoint.key_id!r}"
    try:
        key.verify(
            base64.b64decode(checkpoint.signature),
            checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.tree_root or None),
        )
    except (InvalidSignature, ValueError):
        return f"checkpoint #{checkpoint.seq} has an invalid signature"
    if checkpoint.tree_root and checkpoint.tree_root != root.hex():
        return f"checkpoint #{checkpoint.seq} signed a different Merkle tree: history rewritten"
    return ""
