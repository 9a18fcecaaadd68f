"""Old events move into signed, compressed, encrypted archive segments and leave the hot tables:
nothing is lost, `audit verify` reads them event by event, an archived event is still proved
against the signed tree, the archive is searched from the command line, and a changed segment
is caught with the first bad event named."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from casebridge.audit import archive, chain, merkle
from casebridge.audit.api import record
from casebridge.audit.models import ArchiveSegment, Checkpoint, Event, Seal
from casebridge.kernel.crypto.streaming import associated_data
from casebridge.kernel.pipeline import ChunkReader, seal_to_blob
from casebridge.retention import backup
from casebridge.vault.config import blob_store, key_provider
from casebridge.vault.keys import WrappedKey

pytestmark = pytest.mark.django_db

LATER = timedelta(days=400)  # "now" for archiving: every event of the test is then 13 months old


def _log(n: int, **fields: Any) -> None:
    for i in range(n):
        record("org.created", details={"n": i}, **fields)
    chain.seal_pending()


def _every_event() -> list[tuple[int, str, bytes]]:
    head = Seal.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return list(chain.sealed_forms(0, head))


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def archived() -> ArchiveSegment:
    """30 events, a checkpoint at #20, the rest after it: #1-#20 archived (a segment ends at a
    signed checkpoint), #21-#30 stay hot (as the chain's head must)."""
    _log(20)
    assert chain.checkpoint_now() is not None
    _log(10)
    [segment] = archive.archive(now=timezone.now() + LATER)
    return segment


def test_nothing_is_lost_and_the_hot_tables_keep_only_the_recent_events() -> None:
    _log(20)
    first_checkpoint = chain.checkpoint_now()
    assert first_checkpoint is not None
    _log(10)
    before = _every_event()
    hot_before = Event.objects.count()
    assert archive.archive() == []  # nothing is 13 months old yet

    made = archive.archive(now=timezone.now() + LATER, max_events=8)

    assert [(s.first_seq, s.last_seq, s.events) for s in made] == [(1, 8, 8), (9, 16, 8), (17, 20, 4)]
    assert _every_event() == before  # every number, hash and canonical form, in order
    assert not Seal.objects.filter(seq__lte=20).exists()
    archived_event = Event.objects.filter(action="audit.archived").order_by("id")
    assert Event.objects.count() == hot_before - 20 + archived_event.count()
    assert [e.details["last_seq"] for e in archived_event] == [8, 16, 20]
    chain.seal_pending()  # the three audit.archived events
    result = chain.verify()
    assert result.ok and result.checked == len(before) + 3
    # Encrypted: the stored blob is neither a readable ZIP nor does it show any event text.
    blob = blob_store().read_range(made[0].blob_name, 0, made[0].ciphertext_size)
    assert not blob.startswith(b"PK") and b"org.created" not in blob
    assert made[0].events == len(archive.read(made[0])[0].splitlines())


def test_the_head_and_events_after_the_last_checkpoint_stay_hot(archived: ArchiveSegment) -> None:
    assert (archived.first_seq, archived.last_seq) == (1, 20)
    assert archive.archive(now=timezone.now() + LATER) == []  # #21.. are not covered by a checkpoint
    assert chain.checkpoint_now() is not None
    [again] = archive.archive(now=timezone.now() + LATER)
    head = Seal.objects.order_by("-seq").values_list("seq", flat=True).first()
    assert again.first_seq == 21 and head is not None and again.last_seq == head - 1
    _log(3)  # the sealer carries on from the hot head
    assert chain.verify().ok


def test_an_archived_event_is_proved_against_the_signed_tree(archived: ArchiveSegment) -> None:
    proof = json.loads(_command("prove", "5"))
    head = proof["checkpoint"]
    assert proof["seq"] == 5 and head["tree_size"] >= 20
    leaf = merkle.leaf_hash(proof["leaf"].encode())
    path = [bytes.fromhex(node) for node in proof["path"]]
    assert merkle.verify_inclusion(4, head["tree_size"], leaf, path, bytes.fromhex(head["root"]))
    assert json.loads(proof["leaf"])["seq"] == 5
    assert chain.checkpoint_now() is not None
    later = Checkpoint.objects.order_by("-seq").first()
    assert later is not None
    consistency = json.loads(_command("consistency", "20", str(later.seq)))
    assert consistency["old"]["tree_size"] == 20


def test_an_archived_range_exports_and_verifies_offline(archived: ArchiveSegment, tmp_path: Any) -> None:
    from casebridge.audit import export

    manifest = export.export(tmp_path / "out")
    assert manifest["first_seq"] == 1 and manifest["events"] == manifest["last_seq"]
    public = _command("public-key").encode()
    assert export.verify_export(tmp_path / "out", public).ok
    today = timezone.now().date()  # by date: the archived events are found by their time too
    dated = export.export(tmp_path / "today", start=today, end=today)
    assert dated["first_seq"] == 1 and export.verify_export(tmp_path / "today", public).ok
    with pytest.raises(ValueError, match="no sealed events"):
        export.export(tmp_path / "past", start=today - timedelta(days=9), end=today - timedelta(days=8))


def _rewrite(segment: ArchiveSegment, change: Any) -> None:
    """Someone holding the keys decrypts the segment, changes its events and encrypts it again."""
    content, meta = archive.read(segment)
    lines = [json.loads(line) for line in content.splitlines()]
    change(lines)
    content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("events.jsonl", content)
        out.writestr("segment.json", json.dumps(meta))
    data = buffer.getvalue()
    key = key_provider().unwrap(WrappedKey.from_json(segment.wrapped_key), archive._context(segment.pk))
    name = segment.blob_name + "-forged"
    sealed = seal_to_blob(
        blob_store(), name, key, associated_data(segment.pk, 1), ChunkReader([data]).readinto, len(data)
    )
    ArchiveSegment.objects.filter(pk=segment.pk).update(blob_name=name, ciphertext_size=sealed.ciphertext_size)


def _edit_event_7(lines: list[dict[str, Any]]) -> None:
    event = json.loads(lines[6]["event"])
    event["action"] = "org.deleted"
    lines[6]["event"] = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_an_event_edited_inside_a_segment_is_named(archived: ArchiveSegment) -> None:
    _rewrite(archived, _edit_event_7)
    result = chain.verify()
    assert not result.ok and result.bad_seq == 7
    assert "#7 (event" in result.problem and "does not match its hash" in result.problem


def test_an_event_removed_from_a_segment_is_a_gap_named_there(archived: ArchiveSegment) -> None:
    _rewrite(archived, lambda lines: lines.pop(11))
    result = chain.verify()
    assert not result.ok and result.bad_seq == 12 and "sequence gap: expected #12, found #13" in result.problem


def test_a_segment_rewritten_with_every_later_hash_recomputed_fails_at_the_checkpoint(
    archived: ArchiveSegment,
) -> None:
    def rehash(lines: list[dict[str, Any]]) -> None:  # edit #7 and recompute every later hash
        _edit_event_7(lines)
        prev = lines[5]["hash"]
        for line in lines[6:]:
            prev = line["hash"] = hashlib.sha256(bytes.fromhex(prev) + line["event"].encode()).hexdigest()

    _rewrite(archived, rehash)
    result = chain.verify()
    assert not result.ok and result.bad_seq == 20 and "checkpoint #20" in result.problem


def test_a_changed_byte_of_the_stored_segment_is_caught_at_its_first_event(archived: ArchiveSegment) -> None:
    store = blob_store()
    data = bytearray(store.read_range(archived.blob_name, 0, archived.ciphertext_size))
    data[len(data) // 2] ^= 0x01
    store.put(archived.blob_name + "-flipped", [bytes(data)])
    ArchiveSegment.objects.filter(pk=archived.pk).update(blob_name=archived.blob_name + "-flipped")

    result = chain.verify()

    assert not result.ok and result.bad_seq == 1
    assert result.problem.startswith("archive segment #1-#20 cannot be read") and "damaged" in result.problem
    with pytest.raises(CommandError, match=r"AUDIT CHAIN BROKEN at #1: archive segment #1-#20 cannot be read"):
        _command("verify")


def test_a_missing_segment_is_a_gap(archived: ArchiveSegment) -> None:
    ArchiveSegment.objects.filter(pk=archived.pk).delete()
    result = chain.verify()
    assert not result.ok and result.bad_seq == 1 and "sequence gap: expected #1, found #21" in result.problem


def test_the_archive_is_searched_from_the_command_line_and_the_search_is_audited(personas: Any) -> None:
    practice = personas.practice
    _log(3, organization=practice, patient_ref="P-1001")
    record("patient.viewed", organization=practice, details={"patients": ["P-2002", "P-3003"]})
    _log(2)
    assert chain.checkpoint_now() is not None
    _log(1)
    assert archive.archive(now=timezone.now() + LATER)

    found = [json.loads(line) for line in _command("search", "--archived", "--patient", "P-1001").splitlines()]
    assert len(found) == 3 and {e["patient_ref"] for e in found} == {"P-1001"} and all(e["archived"] for e in found)
    [listed] = [json.loads(line) for line in _command("search", "--archived", "--patient", "P-3003").splitlines()]
    assert listed["action"] == "patient.viewed"
    by_org = _command("search", "--archived", "--organization", str(practice.pk), "--action", "patient.")
    assert [json.loads(line)["action"] for line in by_org.splitlines()] == ["patient.viewed"]
    today = timezone.now().date()
    assert _command("search", "--archived", "--to", str(today - timedelta(days=1))) == ""
    viewed = Event.objects.filter(action="audit.viewed").order_by("-id").first()
    assert viewed is not None and viewed.details["via"] == "archive search" and viewed.details["found"] == 0
    # Without --archived the same filters search the hot tables: the archiving itself is there.
    hot = [json.loads(line) for line in _command("search", "--action", "audit.").splitlines()]
    assert "audit.archived" in {e["action"] for e in hot} and not any(e["archived"] for e in hot)
    assert _command("search", "--patient", "P-1001") == ""  # all three were archived
    record("case.viewed", organization=practice, patient_ref="P-1001")
    [recent] = [json.loads(line) for line in _command("search", "--patient", "P-1001").splitlines()]
    assert recent["action"] == "case.viewed" and recent["organization_id"] == str(practice.pk)
    with pytest.raises(CommandError, match="UUID"):
        _command("search", "--organization", "smile-dental")


def test_the_command_and_the_setting_refuse_what_is_not_an_age(settings: Any) -> None:
    _log(3)
    chain.checkpoint_now()
    _log(1)
    with pytest.raises(CommandError, match="at least 1"):
        _command("archive", "--older-than-days", "0")
    assert _command("archive").startswith("no sealed events old enough")
    settings.AUDIT_ARCHIVE_AFTER_DAYS = 0
    assert archive.archive(now=timezone.now() + LATER) == []


def test_outside_the_archiving_transaction_the_tables_stay_append_only(archived: ArchiveSegment) -> None:
    for sql in ("DELETE FROM audit_event", "DELETE FROM audit_seal", "UPDATE audit_event SET action = 'x'"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert chain.verify().ok


def test_backups_carry_the_segments_and_rotation_rewraps_their_keys(archived: ArchiveSegment) -> None:
    with connection.cursor() as cursor:
        cursor.execute(backup._LIVE_BLOBS)
        assert (archived.blob_name, archived.ciphertext_size) in [(n, int(s)) for n, s in cursor.fetchall()]
    provider = key_provider()
    if not hasattr(provider, "rotate"):
        pytest.fail("the local key provider rotates")
    from casebridge.vault import keystore

    new = provider.rotate()
    keystore.rewrap_all()
    assert ArchiveSegment.objects.get(pk=archived.pk).kek_version == new
    assert chain.verify().ok


def test_a_segment_whose_signature_or_description_was_changed_is_named(archived: ArchiveSegment) -> None:
    forged = ArchiveSegment.objects.get(pk=archived.pk).signature[::-1]
    ArchiveSegment.objects.filter(pk=archived.pk).update(signature=forged)
    result = chain.verify()
    assert not result.ok and result.bad_seq == 20
    assert result.problem == "archive segment #1-#20 has an invalid signature or one by an unknown key"

    ArchiveSegment.objects.filter(pk=archived.pk).update(signature=archived.signature, content_sha256="0" * 64)
    assert chain.verify().problem == "archive segment #1-#20 holds other events than it was signed for"
