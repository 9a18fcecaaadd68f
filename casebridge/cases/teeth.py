"""Tooth numbering: stored canonically as FDI / ISO 3950 codes, shown in each person's notation.

FDI codes are two digits: quadrant (1-4 permanent, 5-8 primary; clockwise from the patient's upper
right) and position from the midline (1-8 permanent, 1-5 primary). Universal numbers permanent teeth
1-32 from the upper right third molar and primary teeth A-T. Palmer names the quadrant and the
position; written here as UR/UL/LL/LR + position (digits permanent, letters primary), which reads
out loud the way the grid symbols do.
"""

from __future__ import annotations

PERMANENT = tuple(q * 10 + p for q in (1, 2, 3, 4) for p in range(1, 9))
PRIMARY = tuple(q * 10 + p for q in (5, 6, 7, 8) for p in range(1, 6))
ALL_TEETH = frozenset(PERMANENT + PRIMARY)

_QUADRANT_NAMES = {1: "UR", 2: "UL", 3: "LL", 4: "LR", 5: "UR", 6: "UL", 7: "LL", 8: "LR"}
_PRIMARY_LETTERS = "ABCDE"


class ToothError(ValueError):
    pass


def check(fdi: int) -> int:
    if fdi not in ALL_TEETH:
        raise ToothError(f"{fdi} is not a tooth (FDI codes 11-48, primary 51-85)")
    return fdi


def is_upper(fdi: int) -> bool:
    return check(fdi) // 10 in (1, 2, 5, 6)


def to_universal(fdi: int) -> str:
    quadrant, position = divmod(check(fdi), 10)
    if quadrant <= 4:
        number = {1: 9 - position, 2: 8 + position, 3: 25 - position, 4: 24 + position}[quadrant]
        return str(number)
    # Primary: A (upper right second molar) .. J (upper left), K (lower left) .. T (lower right).
    index = {5: 5 - position, 6: 4 + position, 7: 15 - position, 8: 14 + position}[quadrant]
    return "ABCDEFGHIJKLMNOPQRST"[index]


def from_universal(label: str) -> int:
    text = label.strip().upper()
    if text.isdigit():
        number = int(text)
        if not 1 <= number <= 32:
            raise ToothError(f"Universal tooth numbers run 1-32, not {label!r}")
        if number <= 8:
            return 10 + (9 - number)
        if number <= 16:
            return 20 + (number - 8)
        if number <= 24:
            return 30 + (25 - number)
        return 40 + (number - 24)
    letters = "ABCDEFGHIJKLMNOPQRST"
    if len(text) != 1 or text not in letters:
        raise ToothError(f"{label!r} is not a Universal tooth number (1-32) or letter (A-T)")
    index = letters.index(text)
    if index < 5:
        return 50 + (5 - index)
    if index < 10:
        return 60 + (index - 4)
    if index < 15:
        return 70 + (15 - index)
    return 80 + (index - 14)


def to_palmer(fdi: int) -> str:
    quadrant, position = divmod(check(fdi), 10)
    mark = str(position) if quadrant <= 4 else _PRIMARY_LETTERS[position - 1]
    return f"{_QUADRANT_NAMES[quadrant]}{mark}"


def from_palmer(label: str) -> int:
    text = label.strip().upper()
    if len(text) != 3 or text[:2] not in {"UR", "UL", "LL", "LR"}:
        raise ToothError(f"{label!r} is not a Palmer tooth (e.g. UR6, LLB)")
    quadrant = {"UR": 1, "UL": 2, "LL": 3, "LR": 4}[text[:2]]
    mark = text[2]
    if mark.isdigit() and 1 <= int(mark) <= 8:
        return quadrant * 10 + int(mark)
    if mark in _PRIMARY_LETTERS:
        return (quadrant + 4) * 10 + _PRIMARY_LETTERS.index(mark) + 1
    raise ToothError(f"{label!r} is not a Palmer tooth (e.g. UR6, LLB)")


def display(fdi: int, notation: str) -> str:
    if notation == "universal":
        return to_universal(fdi)
    if notation == "palmer":
        return to_palmer(fdi)
    return str(check(fdi))


def parse(label: str, notation: str) -> int:
    if notation == "universal":
        return from_universal(label)
    if notation == "palmer":
        return from_palmer(label)
    try:
        return check(int(label))
    except ValueError:
        raise ToothError(f"{label!r} is not an FDI tooth number (11-48, 51-85)") from None


_PERMANENT_NAMES = {
    1: "central incisor",
    2: "lateral incisor",
    3: "canine",
    4: "first premolar",
    5: "second premolar",
    6: "first molar",
    7: "second molar",
    8: "third molar",
}
_PRIMARY_NAMES = {1: "central incisor", 2: "lateral incisor", 3: "canine", 4: "first molar", 5: "second molar"}
_SIDES = {1: "upper right", 2: "upper left", 3: "lower left", 4: "lower right"}


def name(fdi: int) -> str:
    """Plain words for screen readers and tooltips: "upper right first molar"."""
    quadrant, position = divmod(check(fdi), 10)
    if quadrant <= 4:
        return f"{_SIDES[quadrant]} {_PERMANENT_NAMES[position]}"
    return f"{_SIDES[quadrant - 4]} primary {_PRIMARY_NAMES[position]}"


def chart_rows(primary: bool = False) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Upper and lower rows as a chart draws them, facing the patient: their right on our left."""
    if primary:
        return (
            tuple(50 + p for p in range(5, 0, -1)) + tuple(60 + p for p in range(1, 6)),
            tuple(80 + p for p in range(5, 0, -1)) + tuple(70 + p for p in range(1, 6)),
        )
    return (
        tuple(10 + p for p in range(8, 0, -1)) + tuple(20 + p for p in range(1, 9)),
        tuple(40 + p for p in range(8, 0, -1)) + tuple(30 + p for p in range(1, 9)),
    )
