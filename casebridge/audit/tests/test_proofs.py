"""Checkpoints sign the RFC 9162 tree head; `casebridge audit prove` and `consistency` hand out
proofs that a third party checks with audit/merkle.py and the public key alone; a checkpoint
signed over another tree, or an event changed after it, is caught."""

from __future__ import annotations

import base64
import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from casebridge.audit import chain, merkle, proofs, triggers
from casebridge.audit.api import record, record_many
from casebridge.audit.models import Checkpoint, TreeHead

pytestmark = pytest.mark.django_db


def _events(n: int) -> None:
    for i in range(n):
        record("org.created", details={"n": i})
    chain.seal_pending()


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out)
    return out.getvalue()


def _check_signature(signed: dict[str, object]) -> None:
    """What an outside verifier does with the public key."""
    key = load_pem_public_key(_command("public-key").encode())
    assert isinstance(key, Ed25519PublicKey)
    key.verify(base64.b64decode(str(signed["signature"])), str(signed["signed_message"]).encode())
    assert f":{signed['tree_size']}:{signed['root']}" in str(signed["signed_message"])


def test_a_checkpoint_signs_the_merkle_root_of_every_event_so_far() -> None:
    _events(7)
    checkpoint = chain.checkpoint_now()
    assert checkpoint is not None and checkpoint.seq == 7
    leaves = list(chain.leaf_hashes(0, 7))
    assert checkpoint.tree_root == merkle.root(leaves).hex()
    assert merkle.Frontier.from_json(checkpoint.frontier).root().hex() == checkpoint.tree_root
    # The next checkpoint appends to the kept frontier and agrees with the definition.
    _events(5)
    later = chain.checkpoint_now()
    assert later is not None and later.tree_root == merkle.root(list(chain.leaf_hashes(0, 12))).hex()
    assert chain.verify().ok


def test_the_sealers_own_checkpoints_sign_the_same_tree_whatever_its_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sealer hands each checkpoint the leaves of its pass and only reads back those sealed
    # by earlier passes since the last checkpoint: passes of 5 with a checkpoint every 7 events
    # mix both, at every offset.
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 7)
    for i in range(40):
        record("org.created", details={"n": i})
    chain.seal_pending(batch=5)
    checkpoints = list(Checkpoint.objects.order_by("seq"))
    assert [c.seq for c in checkpoints] == [10, 20, 30, 40]
    for checkpoint in checkpoints:
        assert checkpoint.tree_root == merkle.root(list(chain.leaf_hashes(0, checkpoint.seq))).hex()
    assert chain.verify().ok


def _batch(first: int, count: int) -> None:
    """`count` events committed together: one seal pass seals them all."""
    with transaction.atomic():
        record_many({"action": "org.created", "details": {"n": n}} for n in range(first, first + count))
    chain.seal_pending()


def test_large_passes_extend_the_kept_tree_head_instead_of_reading_events_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 100)
    _batch(0, 70)  # a first large pass: reads nothing back (no events before it), keeps the head
    assert TreeHead.objects.get().seq == 70
    read_back: list[tuple[int, int]] = []
    real = chain.leaf_hashes
    monkeypatch.setattr(chain, "leaf_hashes", lambda a, b: read_back.append((a, b)) or real(a, b))
    _batch(70, 70)  # checkpoint #140 from the kept head and this pass's own leaves
    _batch(140, 100)  # and checkpoint #240 from the head that pass kept
    assert [c.seq for c in Checkpoint.objects.order_by("seq")] == [140, 240]
    assert all(a == b for a, b in read_back), read_back  # no event was read back for the tree
    assert TreeHead.objects.get().seq == 240
    for checkpoint in Checkpoint.objects.all():
        assert checkpoint.tree_root == merkle.root(list(real(0, checkpoint.seq))).hex()
    assert chain.verify().ok


def test_a_stale_tree_head_is_not_used_and_small_passes_leave_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 100)
    _batch(0, 70)
    _events(20)  # one event per pass: the head stays at #70, behind the chain
    assert TreeHead.objects.get().seq == 70
    read_back: list[tuple[int, int]] = []
    real = chain.leaf_hashes
    monkeypatch.setattr(chain, "leaf_hashes", lambda a, b: read_back.append((a, b)) or real(a, b))
    _batch(90, 64)  # checkpoint #154: only #71..#90 are read back, from the head on; kept again
    assert read_back == [(70, 90)]
    assert TreeHead.objects.get().seq == 154
    checkpoint = Checkpoint.objects.get()
    assert checkpoint.seq == 154 and checkpoint.tree_root == merkle.root(list(real(0, 154))).hex()
    assert chain.verify().ok


def test_a_tampered_tree_head_cannot_hide_anything_verify_recomputes_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept head is a cache: a forged one makes the next checkpoint sign a root that is not
    the log's tree, and verification, which rebuilds the tree from the events, names it."""
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 100)
    _batch(0, 70)
    forged = merkle.Frontier()
    for n in range(70):
        forged.append(merkle.leaf_hash(f"another history {n}".encode()))
    _raw("UPDATE audit_tree_head SET frontier = %s", [json.dumps(forged.to_json())])
    _batch(70, 70)
    result = chain.verify()
    assert not result.ok and "signed a different Merkle tree" in result.problem and result.bad_seq == 140


def test_an_inclusion_proof_checks_out_with_the_public_key_and_merkle_alone() -> None:
    _events(10)
    chain.checkpoint_now()
    proof = json.loads(_command("prove", "4"))
    assert proof["kind"] == "inclusion" and proof["leaf_index"] == 3
    assert merkle.leaf_hash(proof["leaf"].encode()).hex() == proof["leaf_hash"]
    assert merkle.verify_document(proof)
    _check_signature(proof["checkpoint"])
    tampered = {**proof, "leaf": proof["leaf"].replace('"n":3', '"n":4')}
    assert not merkle.verify_document(tampered)


def test_a_consistency_proof_links_two_checkpoints() -> None:
    _events(5)
    chain.checkpoint_now()
    _events(9)
    chain.checkpoint_now()
    proof = json.loads(_command("consistency", "5", "14"))
    assert merkle.verify_document(proof)
    _check_signature(proof["old"])
    _check_signature(proof["new"])


def test_proofs_that_cannot_be_given_say_why() -> None:
    _events(3)
    with pytest.raises(CommandError, match="no checkpoint covers #2"):
        _command("prove", "2")
    chain.checkpoint_now()
    with pytest.raises(CommandError, match="no sealed event #9"):
        _command("prove", "9")
    with pytest.raises(CommandError, match="no checkpoint with a Merkle tree at #2"):
        _command("consistency", "2", "3")
    with pytest.raises(CommandError, match="older first"):
        _command("consistency", "3", "2")


def _raw(sql: str, params: list[object]) -> None:
    triggers.remove(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_an_event_edited_after_its_checkpoint_gets_no_proof_and_fails_verification() -> None:
    _events(6)
    chain.checkpoint_now()
    first = Checkpoint.objects.get()
    _raw(
        "UPDATE audit_event SET details = %s WHERE id = (SELECT event_id FROM audit_seal WHERE seq = 3)", ['{"n": 99}']
    )
    with pytest.raises(proofs.ProofError, match="does not match checkpoint #6"):
        proofs.inclusion(3)
    assert not chain.verify().ok
    assert first.tree_root  # the signed root still names the honest tree


def test_a_checkpoint_re_signed_over_another_tree_is_named() -> None:
    """Even with the signing key, a checkpoint whose root is not the log's tree is caught."""
    _events(4)
    chain.checkpoint_now()
    forged_root = merkle.leaf_hash(b"another history").hex()
    checkpoint = Checkpoint.objects.get()
    key = chain.get_keyring().signing_key()
    signature = base64.b64encode(key.private.sign(chain.checkpoint_message(4, checkpoint.hash, forged_root))).decode()
    _raw("UPDATE audit_checkpoint SET tree_root = %s, signature = %s", [forged_root, signature])
    result = chain.verify()
    assert not result.ok and "signed a different Merkle tree" in result.problem and result.bad_seq == 4


def test_checkpoints_from_before_the_tree_still_verify() -> None:
    """A checkpoint written before this upgrade signed the chain head alone; it stays valid and
    the first new checkpoint builds the tree over the whole log."""
    _events(3)
    key = chain.get_keyring().signing_key()
    head = chain.Seal.objects.get(seq=3)
    Checkpoint.objects.create(
        seq=3,
        hash=head.hash,
        key_id=key.key_id,
        signature=base64.b64encode(key.private.sign(chain.checkpoint_message(3, head.hash))).decode(),
    )
    assert chain.verify().ok
    _events(2)
    new = chain.checkpoint_now()
    assert new is not None and new.tree_root == merkle.root(list(chain.leaf_hashes(0, 5))).hex()
    with pytest.raises(proofs.ProofError):
        proofs.consistency(3, 5)  # the old checkpoint signed no tree
    assert chain.verify().ok
