"""An independent checker of PS3.15 Table E.1-1, written from the table and the standard's text, not
from the engine: it reads the JSON itself, knows nothing of casebridge.deid's compiled maps, and
judges an output only by comparing it with the original, attribute by attribute, at every depth.

For each attribute of the original that a row lists, the outcome in the output is observed (gone,
empty, unchanged, changed) and must be one that the row's action allows under the option set:

- a selected option's K wins, then its C, else the Basic Profile code; a combined code (X/Z, X/D,
  X/Z/D, Z/D, X/Z/U*) allows any of its parts, as IOD conformance may ask for a later one.
- X: gone. Z: present and empty, or changed (Z allows a dummy). D: present, not empty, changed.
  U: every UID changed to a 2.25 UID. K: unchanged (a sequence: its items checked in turn).
  C: a date moved by the case's one shift, or text without the patient's identifiers in it.
- private attributes (odd groups): gone, unless Retain Safe Private keeps them by (creator, group,
  element offset); attributes the table does not list: unchanged, pixel data included.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

TABLE = Path(__file__).resolve().parents[1] / "data" / "dicom-ps3.15-table-e1-1.json"
OPTION_COLUMNS = {
    "retain_safe_private": "rtnSafePrivOpt",
    "retain_uids": "rtnUIDsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "full_dates": "rtnLongFullDatesOpt",
    "modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}
ADDED = {0x00120062, 0x00120063, 0x00120064, 0x00280303}
UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]{0,38})$")


@dataclass(frozen=True)
class Rule:
    name: str
    allowed: frozenset[str]


def load_rows() -> list[dict[str, str]]:
    return json.loads(TABLE.read_text())


def rules(columns: set[str]) -> tuple[dict[int, Rule], dict[str, Rule]]:
    """(exact tag -> rule, masked pattern -> rule) for the option columns selected."""
    exact: dict[int, Rule] = {}
    masked: dict[str, Rule] = {}
    for row in load_rows():
        values = {row[c] for c in columns if c in row}
        if "K" in values:
            allowed = {"K"}
        elif "C" in values:
            allowed = {"C"}
        else:
            allowed = {part.rstrip("*") for part in row["basicProfile"].split("/")}
        rule = Rule(" ".join(row["name"].split()), frozenset(allowed))
        tag = row["tag"]
        if "X" in tag[1:10] or "WHERE" in tag:
            masked[tag] = rule
        else:
            exact[int(tag[1:5] + tag[6:10], 16)] = rule
    return exact, masked


def _empty(value: object) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, list | Sequence) and len(value) == 0)


def _texts(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [str(value)]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


class Checker:
    def __init__(self, columns: set[str], safe_private: set[tuple[str, int, int]] | None = None) -> None:
        self.columns = columns
        self.exact, masked = rules(columns)
        self.curve = masked["(50XX,XXXX)"]
        self.overlay_data = masked["(60XX,3000)"]
        self.overlay_comments = masked["(60XX,4000)"]
        self.safe_private = safe_private or set()
        self.shifts: set[int] = set()  # day differences seen on dates under Modified Dates
        self.identifiers: set[str] = set()
        self.problems: list[str] = []
        self.rows_checked: set[str] = set()
        self.cleaning = 0  # > 0 inside a sequence whose action is C: unlisted text may be cleaned

    def rule_for(self, tag: int) -> Rule | None:
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        group, element = tag >> 16, tag & 0xFFFF
        if group & 0xFF00 == 0x5000:
            return self.curve
        if group & 0xFF00 == 0x6000 and element == 0x3000:
            return self.overlay_data
        if group & 0xFF00 == 0x6000 and element == 0x4000:
            return self.overlay_comments
        return None

    def check(self, original: Dataset, output: Dataset) -> list[str]:
        self.problems = []
        self.identifiers = set()
        self.collect(original)
        self.compare(original, output, "")
        meta_in, meta_out = getattr(original, "file_meta", None), getattr(output, "file_meta", None)
        if meta_in is not None and meta_out is not None:
            self.compare(meta_in, meta_out, "meta.")
            replaced = "rtnUIDsOpt" not in self.columns
            both = "SOPInstanceUID" in output and "MediaStorageSOPInstanceUID" in meta_out
            if replaced and both and meta_out.MediaStorageSOPInstanceUID != output.SOPInstanceUID:
                self.problems.append("Media Storage SOP Instance UID does not follow SOP Instance UID")
        if output.get("PatientIdentityRemoved") != "YES":
            self.problems.append("Patient Identity Removed is not YES")
        codes = [item.CodeValue for item in output.get("DeidentificationMethodCodeSequence", [])]
        if "113100" not in codes or not output.get("DeidentificationMethod"):
            self.problems.append(f"De-identification Method (Code Sequence) incomplete: {codes}")
        return self.problems

    def collect(self, ds: Dataset) -> None:
        """The patient's identifiers, as Clean must not leave them in text."""
        for keyword in ("PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate"):
            for text in _texts(ds.get(keyword)):
                for part in re.split(r"[\^=\\]", text):
                    if len(part.strip()) >= 3:
                        self.identifiers.add(part.strip().lower())

    def compare(self, original: Dataset, output: Dataset, path: str) -> None:
        for elem in original:
            tag = int(elem.tag)
            where = f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if tag >> 16 & 1:
                continue  # private: judged on the output below
            rule = self.rule_for(tag)
            if rule is None:
                if path == "" and tag in ADDED:
                    continue
                if tag >> 16 == 0x0002 or tag & 0xFFFF == 0:
                    continue  # file meta outside the table, group lengths: the writer redoes them
                self.unlisted(elem, output, where, original)
                continue
            self.rows_checked.add(rule.name)
            self.listed(rule, elem, output, where)
        for elem in output:
            tag = int(elem.tag)
            if tag >> 16 & 1 and tag & 0xFFFF >= 0x1000:
                creator_tag = (tag & 0xFFFF0000) | (tag & 0xFF00) >> 8
                creator = str(output[creator_tag].value).strip() if creator_tag in output else ""
                if (creator, tag >> 16, tag & 0xFF) not in self.safe_private:
                    self.problems.append(f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X}) private attribute kept")

    def unlisted(self, elem: Any, output: Dataset, where: str, original: Dataset) -> None:
        tag = elem.tag
        if tag not in output:
            # an overlay plane may go with its Overlay Data (X), which the plane needs (Type 1)
            overlay_data = (tag & 0xFFFF0000) | 0x3000
            plane = tag >> 24 == 0x60 and overlay_data in original and overlay_data not in output
            if not (plane and "X" in self.overlay_data.allowed):
                self.problems.append(f"{where} not in the table but removed")
            return
        out = output[tag]
        if elem.VR == "SQ" and isinstance(out.value, Sequence):
            self.items(elem.value, out.value, where)
        elif out.value != elem.value:
            if self.cleaning and elem.VR in ("LO", "LT", "SH", "ST", "UT", "UC", "PN", "CS"):
                self.no_identifier(out.value, where, "cleaned text")
            else:
                self.problems.append(f"{where} not in the table but changed")
        elif self.cleaning:
            self.no_identifier(out.value, where, "text in a cleaned sequence")

    def no_identifier(self, value: object, where: str, what: str) -> None:
        for text in _texts(value):
            low = text.lower()
            if any(identifier in low for identifier in self.identifiers):
                self.problems.append(f"{where} {what} still holds an identifier")

    def items(self, before: Sequence, after: Sequence, where: str) -> None:
        if len(before) != len(after):
            self.problems.append(f"{where} items {len(before)} -> {len(after)}")
            return
        for index, (a, b) in enumerate(zip(before, after, strict=True)):
            self.compare(a, b, f"{where}[{index}].")

    def listed(self, rule: Rule, elem: Any, output: Dataset, where: str) -> None:
        allowed = rule.allowed
        tag, vr, value = elem.tag, elem.VR, elem.value
        if tag not in output:
            if "X" not in allowed:
                self.problems.append(f"{where} {rule.name}: removed, allowed {sorted(allowed)}")
            return
        new = output[tag].value
        if vr == "SQ" or isinstance(value, Sequence):
            if _empty(new):
                if not ({"Z"} & allowed or (_empty(value) and allowed & {"K", "C", "U"})):
                    self.problems.append(f"{where} {rule.name}: emptied, allowed {sorted(allowed)}")
            elif allowed & {"K", "C", "U"} and len(new) == len(value):
                self.cleaning += "C" in allowed
                try:
                    self.items(value, new, where)
                finally:
                    self.cleaning -= "C" in allowed
            elif "D" not in allowed:
                self.problems.append(f"{where} {rule.name}: items replaced, allowed {sorted(allowed)}")
            return
        if _empty(new):
            if "Z" in allowed or (_empty(value) and allowed & {"K", "C", "U"}):
                return
            self.problems.append(f"{where} {rule.name}: emptied, allowed {sorted(allowed)}")
            return
        unchanged = new == value
        if "K" in allowed:
            if not unchanged:
                self.problems.append(f"{where} {rule.name}: changed under K")
            return
        if "U" in allowed and vr == "UI":
            for before, after in zip(_texts(value), _texts(new), strict=False):
                if before == after or not UID_RE.match(after):
                    self.problems.append(f"{where} {rule.name}: UID {after!r} not replaced by a 2.25 UID")
            return
        if "C" in allowed:
            self.cleaned(rule, vr, value, new, where)
            return
        if allowed & {"D", "Z"}:  # Z also allows "a non-zero length value that may be a dummy"
            if unchanged and not _empty(value):
                self.problems.append(f"{where} {rule.name}: {'/'.join(sorted(allowed))} left the value as it was")
            return
        self.problems.append(f"{where} {rule.name}: present with a value, allowed {sorted(allowed)}")

    def cleaned(self, rule: Rule, vr: str, value: object, new: object, where: str) -> None:
        if vr in ("DA", "DT") and "modified_dates" in self.columns_selected():
            for before, after in zip(_texts(value), _texts(new), strict=False):
                if len(before) >= 8 and before[:8].isdigit() and after:
                    try:
                        a = dt.date(int(before[:4]), int(before[4:6]), int(before[6:8]))
                        b = dt.date(int(after[:4]), int(after[4:6]), int(after[6:8]))
                    except ValueError:
                        continue
                    self.shifts.add((a - b).days)
            return
        self.no_identifier(new, where, f"{rule.name}: cleaned text")

    def columns_selected(self) -> set[str]:
        return {key for key, column in OPTION_COLUMNS.items() if column in self.columns}
