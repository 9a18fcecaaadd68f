"""RFC 9162 Merkle trees: for every tree size from 1 to 300, the root by definition equals the
incrementally kept frontier's, every inclusion and every consistency proof verifies, and an
altered proof, leaf, index, size or root fails. Known answers pin the hashing itself."""

from __future__ import annotations

import hashlib

import pytest

from casebridge.audit import merkle

SIZES = range(1, 301)
LEAVES = [merkle.leaf_hash(f"event {i}".encode()) for i in range(300)]
TREE = merkle.Tree(LEAVES)


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_hashing_follows_rfc_9162_domain_separation() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b, c = LEAVES[:3]
    assert merkle.root([a]) == a
    assert merkle.root([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    # Three leaves split 2 + 1 (the largest power of two below 3).
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)
    # A leaf can never pass for an interior node: the prefixes differ.
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)


def test_the_frontier_root_equals_the_definition_at_every_size() -> None:
    frontier = merkle.Frontier()
    for n in SIZES:
        frontier.append(LEAVES[n - 1])
        assert frontier.size == n
        assert frontier.root() == merkle.root(LEAVES[:n]) == TREE.root(0, n)
        assert merkle.Frontier.from_json(frontier.to_json()) == frontier


def test_every_inclusion_proof_verifies_and_every_alteration_fails() -> None:
    for n in SIZES:
        expected = TREE.root(0, n)
        for m in range(n):
            proof = TREE.inclusion(m, n)
            assert merkle.verify_inclusion(m, n, LEAVES[m], proof, expected), (m, n)
            if m % 7 == 0 or m == n - 1:  # alterations on a sample keep the test quick
                assert not merkle.verify_inclusion(m, n, _flip(LEAVES[m]), proof, expected)
                assert not merkle.verify_inclusion(m, n, LEAVES[m], proof, _flip(expected))
                assert not merkle.verify_inclusion(m, n, LEAVES[m], [*proof, LEAVES[0]], expected)
                if n > 1:
                    assert not merkle.verify_inclusion((m + 1) % n, n, LEAVES[m], proof, expected)
                    assert not merkle.verify_inclusion(m, n, LEAVES[m], proof[:-1], expected)
                    for i in range(len(proof)):
                        altered = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
                        assert not merkle.verify_inclusion(m, n, LEAVES[m], altered, expected)


def test_every_consistency_proof_verifies_and_every_alteration_fails() -> None:
    for n in SIZES:
        new_root = TREE.root(0, n)
        for m in range(1, n + 1):
            old_root = TREE.root(0, m)
            proof = TREE.consistency(m, n)
            assert merkle.verify_consistency(m, n, old_root, new_root, proof), (m, n)
            if m == n:
                assert proof == []
                continue
            if m % 5 == 0 or m == n - 1:
                assert not merkle.verify_consistency(m, n, _flip(old_root), new_root, proof)
                assert not merkle.verify_consistency(m, n, old_root, _flip(new_root), proof)
                assert not merkle.verify_consistency(m, n, old_root, new_root, [*proof, LEAVES[0]])
                assert not merkle.verify_consistency(m, n, old_root, new_root, [])
                for i in range(len(proof)):
                    altered = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
                    assert not merkle.verify_consistency(m, n, old_root, new_root, altered)


def test_a_rewritten_history_has_no_consistency_proof() -> None:
    rewritten = [*LEAVES[:100]]
    rewritten[41] = merkle.leaf_hash(b"edited")
    honest_old = TREE.root(0, 60)
    proof = merkle.Tree([*rewritten, *LEAVES[100:]]).consistency(60, 200)
    assert not merkle.verify_consistency(60, 200, honest_old, TREE.root(0, 200), proof)


@pytest.mark.parametrize("bad", [(0, 0), (5, 5), (-1, 3)])
def test_impossible_requests_are_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        TREE.inclusion(*bad)
    assert not merkle.verify_inclusion(bad[0], bad[1], LEAVES[0], [], LEAVES[0])


def test_the_module_functions_match_the_tree() -> None:
    assert merkle.inclusion_proof(3, LEAVES[:10]) == TREE.inclusion(3, 10)
    assert merkle.consistency_proof(3, LEAVES[:10]) == TREE.consistency(3, 10)
    with pytest.raises(ValueError):
        merkle.Frontier.from_json({"size": 3, "nodes": ["00"]})
