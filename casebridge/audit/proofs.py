"""Proofs a third party can check against a signed checkpoint (RFC 9162 Merkle tree heads):

- inclusion: event #seq is leaf seq-1 of the tree the latest checkpoint signed;
- consistency: the tree of an older checkpoint is a prefix of a newer one's (nothing rewritten).

Each proof carries the checkpoint it is against (sizes, roots, chain hash, key id, signature and
the exact signed message), so `audit/merkle.py` and the public key (`casebridge audit
public-key`) are all a verifier needs. Building a proof reads the events up to the checkpoint
(their canonical forms are the leaves): seconds for millions of events, on demand only.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Max

from casebridge.audit import merkle
from casebridge.audit.chain import destroyed_frontier, leaf_hashes, sealed_forms, signed_head
from casebridge.audit.models import ArchiveSegment, Checkpoint


class ProofError(ValueError):
    """No proof can be given (no such event, no checkpoint covering it): the message says why."""


def _tree(size: int) -> merkle.Tree:
    """The tree of the first `size` events; after a destroyed prefix, from its kept frontier."""
    frontier = destroyed_frontier(size)
    if frontier is None:
        return merkle.Tree(list(leaf_hashes(0, size)))
    return merkle.Tree.pruned(frontier, list(leaf_hashes(frontier.size, size)))


def _destroyed_through() -> int:
    """The last event of the destroyed prefix of the chain (0: none)."""
    last = ArchiveSegment.objects.filter(destroyed_at__isnull=False).aggregate(last=Max("last_seq"))["last"]
    return int(last or 0)


def _checkpoints() -> Any:
    return Checkpoint.objects.exclude(tree_root="")


def inclusion(seq: int) -> dict[str, Any]:
    """The inclusion proof of event #seq against the latest checkpoint that covers it."""
    if 0 < seq <= _destroyed_through():
        raise ProofError(f"event #{seq} was destroyed under the audit-event retention policies: nothing proves it")
    found = next(sealed_forms(seq - 1, seq), None) if seq > 0 else None  # hot or archived
    if found is None:
        raise ProofError(f"no sealed event #{seq}")
    form = found[2]
    checkpoint = _checkpoints().filter(seq__gte=seq).order_by("-seq").first()
    if checkpoint is None:
        raise ProofError(f"no checkpoint covers #{seq} yet: run `casebridge audit checkpoint`")
    leaf = merkle.leaf_hash(form)
    path = _tree(checkpoint.seq).inclusion(seq - 1, checkpoint.seq)
    if not merkle.verify_inclusion(seq - 1, checkpoint.seq, leaf, path, bytes.fromhex(checkpoint.tree_root)):
        raise ProofError(f"event #{seq} does not match checkpoint #{checkpoint.seq}: run `casebridge audit verify`")
    return {
        "kind": "inclusion",
        "seq": seq,
        "event_id": json.loads(form)["id"],
        "leaf_index": seq - 1,
        "leaf_hash": leaf.hex(),
        "leaf": form.decode(),
        "path": [node.hex() for node in path],
        "checkpoint": signed_head(checkpoint),
    }


def consistency(old: int, new: int) -> dict[str, Any]:
    """The consistency proof between the checkpoints at tree sizes `old` and `new`."""
    if not 0 < old <= new:
        raise ProofError("give two checkpoint sizes, the older first")
    destroyed = _destroyed_through()
    if old <= destroyed:
        raise ProofError(
            f"the events up to #{destroyed} were destroyed under the audit-event retention policies: "
            "a consistency proof starts from a later checkpoint"
        )
    found = {c.seq: c for c in _checkpoints().filter(seq__in=[old, new])}
    missing = [size for size in (old, new) if size not in found]
    if missing:
        raise ProofError(f"no checkpoint with a Merkle tree at #{missing[0]}")
    path = _tree(new).consistency(old, new)
    old_root, new_root = bytes.fromhex(found[old].tree_root), bytes.fromhex(found[new].tree_root)
    if not merkle.verify_consistency(old, new, old_root, new_root, path):
        raise ProofError(f"checkpoint #{new} does not extend checkpoint #{old}: the log was rewritten")
    return {
        "kind": "consistency",
        "old": signed_head(found[old]),
        "new": signed_head(found[new]),
        "path": [node.hex() for node in path],
    }
