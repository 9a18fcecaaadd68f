"""Tooth numbering round-trips between FDI (stored), Universal and Palmer (shown)."""

from __future__ import annotations

import pytest

from casebridge.cases import teeth


@pytest.mark.parametrize(
    ("fdi", "universal", "palmer"),
    [
        (18, "1", "UR8"),
        (11, "8", "UR1"),
        (21, "9", "UL1"),
        (28, "16", "UL8"),
        (38, "17", "LL8"),
        (31, "24", "LL1"),
        (41, "25", "LR1"),
        (48, "32", "LR8"),
        (36, "19", "LL6"),
        (55, "A", "URE"),
        (51, "E", "URA"),
        (61, "F", "ULA"),
        (65, "J", "ULE"),
        (75, "K", "LLE"),
        (71, "O", "LLA"),
        (81, "P", "LRA"),
        (85, "T", "LRE"),
    ],
)
def test_known_teeth_in_every_notation(fdi: int, universal: str, palmer: str) -> None:
    assert teeth.to_universal(fdi) == universal
    assert teeth.to_palmer(fdi) == palmer
    assert teeth.from_universal(universal) == fdi
    assert teeth.from_palmer(palmer) == fdi


def test_every_tooth_round_trips() -> None:
    for fdi in teeth.ALL_TEETH:
        for notation in ("fdi", "universal", "palmer"):
            assert teeth.parse(teeth.display(fdi, notation), notation) == fdi
    assert len({teeth.to_universal(f) for f in teeth.ALL_TEETH}) == 52


@pytest.mark.parametrize("bad", ["0", "33", "U", "19x", ""])
def test_bad_universal_labels_are_refused(bad: str) -> None:
    with pytest.raises(teeth.ToothError):
        teeth.from_universal(bad)


@pytest.mark.parametrize("bad", [10, 19, 49, 56, 86, 0])
def test_bad_fdi_codes_are_refused(bad: int) -> None:
    with pytest.raises(teeth.ToothError):
        teeth.check(bad)
