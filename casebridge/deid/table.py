"""DICOM PS3.15 Table E.1-1 (edition 2024b) read as data, and the rule that turns a row and a set of
options into one action.

The table is package data (data/dicom-ps3.15-table-e1-1.json, a byte-for-byte copy of the
innolitics/dicom-standard export, MIT). Each row has the Basic Profile action and, where an option
changes it, that option's action (K or C).

Rules this module fixes, because the standard leaves them to the implementation:

- Combined codes (X/Z, X/D, X/Z/D, Z/D, X/Z/U*) say "the first action unless IOD conformance needs
  a later one". Which attributes are Type 1 or 2 depends on the SOP class and the module, which we
  do not model, so an attribute that is present is given the last action of its code, the one that
  keeps every IOD valid: X/Z -> Z, X/D and X/Z/D and Z/D -> D, X/Z/U* -> U (the sequence stays and
  the UIDs in it are replaced). Z and D both remove the information; only the presence of the
  attribute is kept.
- Several options on one row: K wins over C, C wins over the Basic Profile action.
- Retain Longitudinal Temporal Information with Full Dates and with Modified Dates exclude each
  other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import Literal

Dates = Literal["remove", "full", "modified"]

# option column in the JSON -> the Options attribute that selects it
COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "dates=full",
    "rtnLongModifDatesOpt": "dates=modified",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}

# CID 7050 De-identification Method, coding scheme DCM
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel": ("113101", "Clean Pixel Data Option"),
    "clean_visual": ("113102", "Clean Recognizable Visual Features Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "dates=full": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "dates=modified": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

# A starting safe list: diffusion and mosaic parameters of the kind PS3.15 Table E.3.10-1 lists,
# as (private creator, group, element offset). Not checked entry by entry against the 2024b
# table: a site extends or replaces it with Options.safe_private.
DEFAULT_SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset(
    {
        ("SIEMENS MR HEADER", 0x0019, 0x0A),  # NumberOfImagesInMosaic
        ("SIEMENS MR HEADER", 0x0019, 0x0B),  # SliceMeasurementDuration
        ("SIEMENS MR HEADER", 0x0019, 0x0C),  # B_value
        ("SIEMENS MR HEADER", 0x0019, 0x0D),  # DiffusionDirectionality
        ("SIEMENS MR HEADER", 0x0019, 0x0E),  # DiffusionGradientDirection
        ("SIEMENS MR HEADER", 0x0019, 0x27),  # B_matrix
        ("GEMS_PARM_01", 0x0043, 0x39),  # slop_int_6..9 (b value)
        ("Philips Imaging DD 001", 0x2001, 0x03),  # diffusion b-factor
    }
)


@dataclass(frozen=True)
class Options:
    """The options of PS3.15 Annex E.3 that a de-identification applies on top of the Basic Profile.

    dates: "remove" (the Basic Profile), "full" (Retain Longitudinal Temporal Information with Full
    Dates) or "modified" (... with Modified Dates: every date moves by one shift per case).
    safe_private: (private creator, group, element offset 0x00-0xFF) kept under retain_safe_private;
    known_private_creators: creators whose blocks are simply removed under retain_safe_private
    instead of refusing the file.
    """

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = False
    dates: Dates = "remove"
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    safe_private: frozenset[tuple[str, int, int]] = DEFAULT_SAFE_PRIVATE
    known_private_creators: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.dates not in ("remove", "full", "modified"):
            raise ValueError(f"dates must be remove, full or modified, not {self.dates!r}")

    def selected(self) -> list[str]:
        """The option keys (as in COLUMNS' values and CODES) this set applies, in the table's order."""
        chosen = []
        for key in COLUMNS.values():
            if key.startswith("dates="):
                if self.dates == key.split("=", 1)[1]:
                    chosen.append(key)
            elif getattr(self, key):
                chosen.append(key)
        return chosen


@dataclass(frozen=True)
class Row:
    tag: str  # "(GGGG,EEEE)" as in the table, X for a masked digit
    name: str
    basic: str
    options: dict[str, str]  # option key -> K or C


@cache
def rows() -> tuple[Row, ...]:
    text = resources.files("casebridge.deid").joinpath("data/dicom-ps3.15-table-e1-1.json").read_text("ascii")
    out = []
    for entry in json.loads(text):
        opts = {COLUMNS[k]: v for k, v in entry.items() if k in COLUMNS}
        out.append(Row(entry["tag"], " ".join(entry["name"].split()), entry["basicProfile"], opts))
    return tuple(out)


def resolve(code: str) -> str:
    """The one action this module applies for a (possibly combined) code: its last part."""
    return code.split("/")[-1].rstrip("*")


def row_action(row: Row, options: Options) -> tuple[str, str]:
    """(action, why) for one row under these options: K over C over the Basic Profile."""
    chosen = options.selected()
    applied = {row.options[k]: k for k in chosen if k in row.options}
    if "K" in applied:
        return "K", CODES[applied["K"]][1]
    if "C" in applied:
        return "C", CODES[applied["C"]][1]
    return resolve(row.basic), f"Basic Profile {row.basic}"


@dataclass(frozen=True)
class Compiled:
    """Tag -> (action, why) for every exact row, plus the masked rows, for one set of options."""

    exact: dict[int, tuple[str, str]]
    curve: tuple[str, str]  # (50XX,XXXX)
    overlay_data: tuple[str, str]  # (60XX,3000)
    overlay_comments: tuple[str, str]  # (60XX,4000)
    private: tuple[str, str]  # (GGGG,EEEE) where GGGG is odd
    cleans: bool  # some row's action is C: the walk remembers identifiers for it


@lru_cache(maxsize=64)
def compile_options(options: Options) -> Compiled:
    exact: dict[int, tuple[str, str]] = {}
    masked: dict[str, tuple[str, str]] = {}
    for row in rows():
        action = row_action(row, options)
        if "X" in row.tag[1:10] or "WHERE" in row.tag:
            masked[row.tag] = action
        else:
            exact[int(row.tag[1:5] + row.tag[6:10], 16)] = action
    return Compiled(
        exact=exact,
        curve=masked["(50XX,XXXX)"],
        overlay_data=masked["(60XX,3000)"],
        overlay_comments=masked["(60XX,4000)"],
        private=masked["(GGGG,EEEE) WHERE GGGG IS ODD"],
        cleans=any(action == "C" for action, _ in [*exact.values(), *masked.values()]),
    )
