"""Merkle trees as Certificate Transparency defines them (RFC 9162, section 2.1), nothing else.

Dependency-free on purpose (hashlib only): an auditor can read and run this file alone to check
an inclusion proof ("this event is in the log the checkpoint signed") or a consistency proof
("the log of the later checkpoint extends the earlier one; nothing was rewritten").

- leaf hash  = SHA-256(0x00 || leaf bytes)        (the leaf bytes: an event's canonical form)
- node hash  = SHA-256(0x01 || left || right)
- MTH of n leaves splits at k, the largest power of two below n.

`Frontier` appends leaves one by one and yields the root of everything appended so far in
O(log n) memory: the roots of the perfect subtrees of the binary decomposition of n. Proofs are
built from the list of leaf hashes (`inclusion_proof`, `consistency_proof`) and checked by
`verify_inclusion` / `verify_consistency`, which follow the RFC's algorithms step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 2.1.1), by the definition (the reference the faster
    `Tree` and `Frontier` are tested against)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


@dataclass
class Frontier:
    """The right border of a growing tree: one perfect-subtree root per set bit of `size`,
    largest first. Enough to append and to compute the root; serializable as hex strings."""

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        node, size = leaf, self.size
        # Merge equal-sized perfect subtrees, as a binary counter carries.
        while size & 1:
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def append_subtree(self, node: bytes, height: int) -> None:
        """Append the root of a perfect subtree of 2**height leaves; the tree's size must be a
        multiple of that (the subtree starts at an aligned leaf)."""
        if self.size % (1 << height):
            raise ValueError("the subtree does not start at a multiple of its size")
        carry = self.size >> height
        while carry & 1:
            node = node_hash(self.nodes.pop(), node)
            carry >>= 1
        self.nodes.append(node)
        self.size += 1 << height

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        result = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            result = node_hash(node, result)
        return result

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "nodes": [n.hex() for n in self.nodes]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Frontier:
        nodes = data.get("nodes", [])
        size = data.get("size", 0)
        if not isinstance(nodes, list) or not isinstance(size, int) or len(nodes) != bin(size).count("1"):
            raise ValueError("not a Merkle frontier")
        return cls(size, [bytes.fromhex(str(n)) for n in nodes])


# --- proofs (RFC 9162 2.1.3.1 and 2.1.4.1) ---------------------------------------------------
class Tree:
    """Proofs over a list of leaf hashes. Every subtree is a range of that list, whatever the
    tree size asked about, so subtree roots are computed once and shared by all proofs."""

    def __init__(self, leaves: Sequence[bytes | None]) -> None:
        self.leaves = leaves
        self._roots: dict[tuple[int, int], bytes] = {}

    @classmethod
    def pruned(cls, frontier: Frontier, later: Sequence[bytes]) -> Tree:
        """The tree whose first `frontier.size` leaves are gone (destroyed under retention) but
        whose frontier was kept, followed by the leaves `later`. Its frontier's nodes are the roots
        of the perfect subtrees that cover the gone leaves, so every subtree a proof about a later
        leaf (or between sizes past the frontier) needs is still known; one inside them is not."""
        leaves: list[bytes | None] = [None] * frontier.size + list(later)
        tree = cls(leaves)
        lo = 0
        for bit, node in zip(
            (b for b in reversed(range(frontier.size.bit_length())) if frontier.size >> b & 1),
            frontier.nodes,
            strict=True,
        ):
            hi = lo + (1 << bit)
            if hi - lo == 1:
                leaves[lo] = node
            else:
                tree._roots[(lo, hi)] = node
            lo = hi
        return tree

    def root(self, lo: int, hi: int) -> bytes:
        """MTH of leaves[lo:hi]."""
        if hi - lo == 1:
            leaf = self.leaves[lo]
            if leaf is None:
                raise ValueError(f"leaf {lo} was destroyed: no proof reaches inside the destroyed leaves")
            return leaf
        cached = self._roots.get((lo, hi))
        if cached is None:
            k = lo + _split(hi - lo)
            cached = self._roots[(lo, hi)] = node_hash(self.root(lo, k), self.root(k, hi))
        return cached

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]): the audit path of leaf `index` in the tree of the first `size` leaves."""
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError(f"leaf {index} is not in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = lo + _split(hi - lo)
        if m < k:
            return [*self._path(m, lo, k), self.root(k, hi)]
        return [*self._path(m, k, hi), self.root(lo, k)]

    def consistency(self, old_size: int, size: int) -> list[bytes]:
        """PROOF(old_size, D[size]): that the first `old_size` leaves are a prefix of the first `size`."""
        if not 0 < old_size <= size <= len(self.leaves):
            raise ValueError(f"no consistency proof from {old_size} to {size} leaves")
        return [] if old_size == size else self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        if m == hi:
            return [] if complete else [self.root(lo, hi)]
        k = lo + _split(hi - lo)
        if m <= k:
            return [*self._subproof(m, lo, k, complete), self.root(k, hi)]
        return [*self._subproof(m, k, hi, False), self.root(lo, k)]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    return Tree(leaves).inclusion(index, len(leaves))


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    return Tree(leaves).consistency(old_size, len(leaves))


# --- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ---------------------------------------------
def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size` with `expected_root`."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(p, result)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == expected_root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows the tree of `old_size` leaves (`old_root`) is a prefix of the tree
    of `new_size` leaves (`new_root`)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def verify_document(proof: Mapping[str, Any]) -> bool:
    """Check a proof as `casebridge audit prove` / `consistency` print it (JSON, hex hashes)
    against the tree heads it names. The heads' signatures are checked separately, with the
    public key, over each head's `signed_message`."""
    path = [bytes.fromhex(node) for node in proof["path"]]
    if proof["kind"] == "inclusion":
        head = proof["checkpoint"]
        leaf = bytes.fromhex(proof["leaf_hash"])
        if "leaf" in proof and leaf_hash(str(proof["leaf"]).encode()) != leaf:
            return False
        return verify_inclusion(proof["leaf_index"], head["tree_size"], leaf, path, bytes.fromhex(head["root"]))
    old, new = proof["old"], proof["new"]
    return verify_consistency(
        old["tree_size"], new["tree_size"], bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), path
    )
