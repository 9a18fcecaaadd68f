"""Destroying the oldest archive segments under retention: the chain still verifies from their
rows (signed range and hashes, the Merkle frontier at their end), later events are still proved
against the signed tree, nothing of the destroyed events can be read, and a destroyed row that
was tampered with, or a segment destroyed out of order, is named."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from casebridge.audit import archive, chain, merkle, proofs
from casebridge.audit.api import record
from casebridge.audit.models import ArchiveSegment, Checkpoint, Seal
from casebridge.retention import backup
from casebridge.vault.config import blob_store

pytestmark = pytest.mark.django_db

LATER = timedelta(days=400)


def _log(n: int) -> None:
    for i in range(n):
        record("org.created", details={"n": i})
    chain.seal_pending()


@pytest.fixture
def segments() -> list[ArchiveSegment]:
    """#1-#20 archived in segments of 8 (#1-#8, #9-#16, #17-#20) under a checkpoint at #20,
    #21-#30 and the archiving's own events hot, another checkpoint at the head."""
    _log(20)
    assert chain.checkpoint_now() is not None
    _log(10)
    made = archive.archive(now=timezone.now() + LATER, max_events=8)
    assert [(s.first_seq, s.last_seq) for s in made] == [(1, 8), (9, 16), (17, 20)]
    assert chain.checkpoint_now() is not None
    return made


def test_the_chain_verifies_over_destroyed_segments_and_later_events_are_still_proved(
    segments: list[ArchiveSegment],
) -> None:
    first, second, _third = segments
    before = chain.verify()
    assert before.ok and before.destroyed == 0

    archive.destroy(first)
    archive.destroy(second)

    result = chain.verify()
    assert result.ok and result.destroyed == 16 and result.checked == before.checked - 16
    assert result.head_hash == before.head_hash
    gone = ArchiveSegment.objects.get(pk=first.pk)
    assert gone.wrapped_key == "" and gone.destroyed_at is not None and not blob_store().exists(first.blob_name)
    with pytest.raises(archive.ArchiveError, match="destroyed under the audit-event retention policies"):
        archive.read(gone)
    assert [e["seq"] for e in archive.search(archive.Filters())] == [17, 18, 19, 20]

    proof = proofs.inclusion(18)  # in the live segment after them, against the tree they shared
    head = proof["checkpoint"]
    path = [bytes.fromhex(n) for n in proof["path"]]
    assert merkle.verify_inclusion(
        17, head["tree_size"], bytes.fromhex(proof["leaf_hash"]), path, bytes.fromhex(head["root"])
    )
    latest = Checkpoint.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert latest is not None and latest > 20
    assert proofs.consistency(20, latest)["new"]["tree_size"] == latest
    with pytest.raises(proofs.ProofError, match="destroyed"):
        proofs.inclusion(5)
    _log(3)  # the sealer and the next checkpoint carry on
    assert chain.checkpoint_now() is not None and chain.verify().ok


def test_a_backup_carries_only_the_live_segments(segments: list[ArchiveSegment]) -> None:
    archive.destroy(segments[0])
    with connection.cursor() as cursor:
        cursor.execute(backup._LIVE_BLOBS)
        names = {name for name, _size in cursor.fetchall()}
    assert segments[0].blob_name not in names and segments[1].blob_name in names


def test_segments_are_destroyed_oldest_first_only(segments: list[ArchiveSegment]) -> None:
    with pytest.raises(ValueError, match="not the oldest live segment"):
        archive.destroy(segments[1])
    assert ArchiveSegment.objects.filter(destroyed_at__isnull=False).count() == 0
    # Marked destroyed behind the code's back, a later segment reads as out of order.
    ArchiveSegment.objects.filter(pk=segments[1].pk).update(destroyed_at=timezone.now())
    result = chain.verify()
    assert not result.ok and "destroyed out of order" in result.problem and result.bad_seq == 9


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"last_hash": "ab" * 32}, "invalid signature"),
        ({"previous_hash": "cd" * 32}, "does not carry on from the chain hash before it"),
        ({"frontier": None}, "does not keep the Merkle tree at its last event"),
        ({"frontier": {"size": 8, "nodes": ["00" * 32, "11" * 32]}}, "does not keep the Merkle tree at its last event"),
        ({"frontier": {"size": 8, "nodes": ["not hex"]}}, "does not keep the Merkle tree at its last event"),
    ],
)
def test_a_destroyed_row_that_was_changed_is_named(
    segments: list[ArchiveSegment], change: dict[str, Any], problem: str
) -> None:
    archive.destroy(segments[0])
    ArchiveSegment.objects.filter(pk=segments[0].pk).update(**change)
    result = chain.verify()
    assert not result.ok and problem in result.problem and result.bad_seq == 1


def test_a_forged_frontier_is_caught_by_the_next_signed_checkpoint(segments: list[ArchiveSegment]) -> None:
    archive.destroy(segments[0])
    gone = ArchiveSegment.objects.get(pk=segments[0].pk)
    forged = {"size": 8, "nodes": ["00" * 32]}
    ArchiveSegment.objects.filter(pk=gone.pk).update(frontier=forged)
    result = chain.verify()
    assert not result.ok and result.bad_seq == 20 and "tree" in result.problem.lower()


def test_the_last_hash_of_a_destroyed_segment_still_starts_an_export(
    segments: list[ArchiveSegment], tmp_path: Any
) -> None:
    from casebridge.audit import export

    archive.destroy(segments[0])
    assert chain.hash_at(8) == segments[0].last_hash
    manifest = export.export(tmp_path / "out")
    assert manifest["first_seq"] == 9
    lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    head = Seal.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert json.loads(lines[0])["seq"] == 9 and json.loads(lines[-1])["seq"] == head and len(lines) == head - 8
    public = io.StringIO()
    call_command("audit", "public-key", stdout=public)
    assert export.verify_export(tmp_path / "out", public.getvalue().encode()).ok  # checked offline from #9


def test_the_reports_say_until_when_events_were_destroyed(segments: list[ArchiveSegment]) -> None:
    from casebridge.audit import history

    before = history.archived(archive.Filters(), limit=100)
    assert "destroyed" not in before.note and before.archived == 20
    archive.destroy(segments[0])

    reading = history.archived(archive.Filters(), limit=100)

    assert reading.archived == 12  # #9-#20 still archived
    last = ArchiveSegment.objects.get(pk=segments[0].pk).last_at
    assert reading.note.endswith(f"; events up to {last:%Y-%m-%d} were destroyed under the retention policies")
