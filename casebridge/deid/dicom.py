"""De-identification of one DICOM instance by PS3.15 Annex E: the Basic Application Level
Confidentiality Profile and its options, every row of Table E.1-1, at every depth of every
sequence and in the file meta information.

    result = deidentify(part10_bytes, Options(dates="modified"), case_secret)
    result.data      # the de-identified Part 10 file (None when a Dataset was passed)
    result.dataset   # the de-identified pydicom Dataset
    result.report    # what happened to each listed attribute and why, the options applied

A file that cannot be de-identified safely raises Refused(reason): it is never passed through.

One walk over the dataset: every element is looked up once in a tag -> action map compiled for
the options (table.compile_options, cached); elements the table does not list are left as read
(raw, not even decoded), so the pixel data is untouched. UIDs are replaced by
2.25.<128-bit integer> from HMAC-SHA256(case_secret, uid): the same UID maps the same way in one
case and differently in any other. Modified dates move back by one number of days per case,
derived from the case secret too.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import io
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pydicom
from pydicom import config
from pydicom.charset import default_encoding
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_sequence
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from casebridge.deid.table import CODES, Compiled, Options, compile_options

__all__ = ["Change", "Options", "Refused", "Report", "Result", "deidentify", "new_uid"]

PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303
SOP_INSTANCE_UID = 0x00080018
METHOD_NAME = "CaseBridge PS3.15 E.1 2024b"
DIRECTORY_RECORD_SEQUENCE = 0x00041220
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

_SQ_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
_UNDEFINED = 0xFFFFFFFF
# Values of these attributes (and every PN) are what Clean (C) looks for in the text it keeps.
_IDENTITY_TAGS = frozenset(
    {
        0x00080050,  # Accession Number
        0x00080080,  # Institution Name
        0x00080081,  # Institution Address
        0x00081010,  # Station Name
        0x00081040,  # Institutional Department Name
        0x00100020,  # Patient ID
        0x00100030,  # Patient's Birth Date
        0x00101000,  # Other Patient IDs
        0x00101040,  # Patient's Address
        0x00102154,  # Patient's Telephone Numbers
        0x00200010,  # Study ID
    }
)
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN", "CS"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})
_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_DUMMY: dict[str, Any] = {
    "AE": "DEIDENTIFIED",
    "AS": "000Y",
    "CS": "DEIDENTIFIED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "UR": "urn:deidentified",
}


class Refused(Exception):
    """The instance cannot be de-identified safely; `reason` says why (it holds no PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Change:
    parent: str  # the data set holding it: "" top level, "meta." file meta, "(0008,1140)[0]." an item
    tag: int
    action: str  # removed, emptied, replaced, kept, cleaned, added
    why: str
    label: str = ""  # private attributes: "creator:offset" (they have no keyword)

    @property
    def path(self) -> str:
        """Where in the data set, e.g. "(0008,1140)[0].(0008,1155)"."""
        return _where(self.parent, self.tag)

    @property
    def keyword(self) -> str:
        return self.label or _name(self.tag)


@dataclass
class Report:
    options: list[str]  # option keys applied (Options.selected())
    methods: list[tuple[str, str]]  # (DCM code, meaning) written to the Code Sequence
    changes: list[Change] = field(default_factory=list)
    untouched: int = 0  # attributes the table does not list, left as they were
    uids_replaced: int = 0
    date_shift_days: int | None = None  # how far dates moved back (modified dates only)

    def as_dict(self, *, include_date_shift: bool = False) -> dict[str, Any]:
        """A JSON-ready copy. The date shift is left out unless asked for: whoever holds it can
        undo Modified Dates, so it must never travel with the de-identified files."""
        out: dict[str, Any] = {
            "profile": METHOD_NAME,
            "options": list(self.options),
            "methods": [{"code": code, "scheme": "DCM", "meaning": meaning} for code, meaning in self.methods],
            "counts": self.counts(),
            "untouched": self.untouched,
            "uids_replaced": self.uids_replaced,
            "changes": [
                {"path": c.path, "attribute": c.keyword, "action": c.action, "why": c.why} for c in self.changes
            ],
        }
        if include_date_shift:
            out["date_shift_days"] = self.date_shift_days
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self.changes:
            out[change.action] = out.get(change.action, 0) + 1
        return out


@dataclass
class Result:
    dataset: Dataset
    data: bytes | None
    report: Report


def new_uid(uid: str, case_secret: bytes) -> str:
    """2.25.<n>: n is HMAC-SHA256(case_secret, uid) cut to 128 bits and shaped as a version 8 UUID."""
    n = int.from_bytes(hmac.new(case_secret, uid.encode("ascii", "replace"), hashlib.sha256).digest()[:16], "big")
    n = (n & ~(0xF << 76)) | (0x8 << 76)
    n = (n & ~(0x3 << 62)) | (0x2 << 62)
    return f"2.25.{n}"


def date_shift_days(case_secret: bytes) -> int:
    """Days every date moves back under Modified Dates: 1 to 10 years, the same for a whole case."""
    digest = hmac.new(case_secret, b"casebridge/deid/date-shift", hashlib.sha256).digest()
    return 365 + int.from_bytes(digest[:4], "big") % 3286


def deidentify(source: bytes | bytearray | memoryview | Dataset, options: Options, case_secret: bytes) -> Result:
    """De-identify one instance. Bytes in, bytes out (and the dataset); a Dataset is copied first."""
    if len(case_secret) < 16:
        # the UIDs and the date shift are only as unguessable as this secret
        raise ValueError("case_secret must hold at least 16 random bytes")
    if isinstance(source, Dataset):
        ds = copy.deepcopy(source)
        as_bytes = False
    else:
        ds = _read(bytes(source))
        as_bytes = True
    meta = getattr(ds, "file_meta", None)
    if DIRECTORY_RECORD_SEQUENCE in ds or (meta is not None and meta.get(0x00020002) == MEDIA_STORAGE_DIRECTORY):
        raise Refused(
            "a DICOMDIR indexes other files by byte offsets that de-identification would break: "
            "de-identify the files it lists and build a new DICOMDIR from them"
        )
    walker = _Walker(compile_options(options), options, case_secret)
    try:
        walker.run(ds)
    except Refused:
        raise
    except Exception as exc:
        raise Refused(f"corrupt data set: {type(exc).__name__} while reading its elements") from exc
    data = None
    if as_bytes:
        data = _write(ds)
    return Result(ds, data, walker.report)


def _write(ds: Dataset) -> bytes:
    out = io.BytesIO()
    try:
        ds.save_as(out)
    except TypeError:
        # pydicom cannot write a still-raw element whose VR it never learnt (a file whose transfer
        # syntax says explicit VR but is encoded implicitly): decode every element, then again
        for _ in ds.iterall():
            pass
        out = io.BytesIO()
        try:
            ds.save_as(out)
        except Exception as exc:
            raise Refused(f"the de-identified data set cannot be written: {type(exc).__name__}") from exc
    except Exception as exc:
        raise Refused(f"the de-identified data set cannot be written: {type(exc).__name__}") from exc
    return out.getvalue()


def _read(data: bytes) -> Dataset:
    if len(data) < 8:
        raise Refused("not a DICOM file: fewer than 8 bytes")
    force = False
    if data[128:132] != b"DICM":
        # no preamble: pydicom wants force=True; accept it only when the data starts like a data
        # set (file meta or an identifying group, either byte order), so that any other file is
        # refused and never "read" as garbage elements
        group_le, group_be = int.from_bytes(data[:2], "little"), int.from_bytes(data[:2], "big")
        if not ({group_le, group_be} & {0x0002, 0x0008}):
            raise Refused("not a DICOM file: no DICM prefix and no data set at its start")
        force = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=force)
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, NotImplementedError) as exc:
            raise Refused(f"not a readable DICOM file: {type(exc).__name__}") from exc
    for warning in caught:
        text = str(warning.message)
        if "End of file" in text or "truncat" in text.lower() or "bytes remaining" in text:
            raise Refused("corrupt DICOM file: it ends before its last element does (truncated)")
    if not len(ds):
        raise Refused("not a DICOM file: no data elements")
    last = ds.get_item(list(ds.keys())[-1])
    if (
        isinstance(last, RawDataElement)
        and isinstance(last.value, bytes)
        and last.length != _UNDEFINED
        and len(last.value) < last.length
    ):
        raise Refused("corrupt DICOM file: it ends before its last element does (truncated)")
    return ds


def _element(tag: int, vr: str, value: Any) -> DataElement:
    """A new element; its value is the engine's own (a dummy, an empty value, a 2.25 UID, a shifted
    date or a cleaned text), so pydicom's value validation is skipped."""
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _vr(elem: Any, tag: int) -> str:
    vr = elem.VR
    if vr is None or vr == "UN":
        entry = DicomDictionary.get(tag)
        if entry is not None:
            return str(entry[0]).split(" or ")[0]
        return vr or "UN"
    return str(vr)


def _empty(vr: str) -> Any:
    if vr == "SQ":
        return Sequence()
    if vr in _NUMBER_VRS:
        return None
    if vr in _BYTES_VRS:
        return b""
    return ""


def _dummy(vr: str) -> Any:
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in _NUMBER_VRS:
        return 0.0 if vr in ("FL", "FD") else 0
    if vr in _BYTES_VRS:
        return b"\0\0"
    if vr == "SQ":
        return Sequence([Dataset()])
    return "DEIDENTIFIED"


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _where(path: str, tag: int) -> str:
    return f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value]
    text = str(value)
    return [text] if text else []


class _Walker:
    def __init__(self, compiled: Compiled, options: Options, secret: bytes) -> None:
        self.compiled = compiled
        self.exact = compiled.exact
        self.options = options
        self.secret = secret
        self.uids: dict[str, str] = {}
        self.identifiers: set[str] = set()
        self.deferred: list[tuple[Dataset, int, str, str, str]] = []  # text Clean works on: ds, tag, vr, path, why
        self.shift = date_shift_days(secret) if options.dates == "modified" else None
        self.cleans = compiled.cleans
        self.cleaning = 0  # > 0 while walking the items of a sequence whose action is C
        methods = [CODES["basic"]] + [CODES[key] for key in options.selected()]
        self.report = Report(options.selected(), methods, date_shift_days=self.shift)
        self.changes = self.report.changes

    # --- the walk ---------------------------------------------------------------------------
    def run(self, ds: Dataset) -> None:
        self.walk(ds, "")
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            self.walk(meta, "meta.")
        self.clean_deferred()
        self.stamp(ds, meta)

    def walk(self, ds: Dataset, path: str) -> None:
        exact = self.exact
        compiled = self.compiled
        for tag in list(ds.keys()):
            entry = exact.get(tag)
            if entry is None:
                group = tag >> 16
                if group & 1:
                    self.private(ds, int(tag), path)
                    continue
                high, element = group & 0xFF00, tag & 0xFFFF
                if high == 0x6000 and tag not in ds:
                    continue  # gone with its overlay plane
                if high == 0x5000:
                    entry = compiled.curve
                elif high == 0x6000 and element == 0x3000:
                    entry = compiled.overlay_data
                elif high == 0x6000 and element == 0x4000:
                    entry = compiled.overlay_comments
                else:
                    elem = ds.get_item(tag)
                    if self.is_sequence(elem, tag):
                        self.items(ds, int(tag), path)
                    elif self.cleaning and _vr(elem, tag) in _TEXT_VRS:
                        # text the table does not list, inside a sequence that Clean keeps
                        # (a Text Value of SR content, a graphic annotation's text): cleaned too
                        why = "inside a cleaned sequence"
                        self.deferred.append((ds, int(tag), _vr(elem, tag), path, why))
                    else:
                        self.report.untouched += 1
                    continue
            self.apply(ds, int(tag), entry, path)
        if self.options.retain_safe_private:
            self.drop_unused_creators(ds, path)

    def drop_overlay_plane(self, ds: Dataset, group: int, path: str) -> None:
        """An overlay plane without its Overlay Data (Type 1) would make the IOD invalid: the rest of
        its repeating group goes too."""
        for tag in [int(t) for t in list(ds.keys()) if t >> 16 == group]:
            del ds[tag]
            self.changes.append(Change(path, tag, "removed", "overlay plane whose Overlay Data was removed"))

    def drop_unused_creators(self, ds: Dataset, path: str) -> None:
        """Private creators stay only for blocks that still hold a retained element."""
        tags = [int(t) for t in list(ds.keys()) if t >> 16 & 1]
        used = {(t & 0xFFFF0000) | (t & 0xFF00) >> 8 for t in tags if t & 0xFFFF >= 0x1000}
        for tag in tags:
            if 0x0010 <= tag & 0xFFFF <= 0x00FF and tag not in used:
                del ds[tag]
                self.changes.append(Change(path, tag, "removed", "no retained element", "private creator"))

    def is_sequence(self, elem: Any, tag: int) -> bool:
        vr = elem.VR
        if vr == "SQ":
            return True
        if vr is None or vr == "UN":
            if tag in _SQ_TAGS:
                return True
            # an unknown attribute of undefined length: items() reads it and walks it if it is one
            return isinstance(elem, RawDataElement) and elem.length == _UNDEFINED
        return False

    def items(self, ds: Dataset, tag: int, path: str) -> None:
        value = ds[tag].value
        if not isinstance(value, Sequence):
            return
        where = _where(path, tag)
        for index, item in enumerate(value):
            self.walk(item, f"{where}[{index}].")

    # --- one listed attribute ---------------------------------------------------------------
    def apply(self, ds: Dataset, tag: int, entry: tuple[str, str], path: str) -> None:
        action, why = entry
        elem = ds.get_item(tag)
        vr = _vr(elem, tag)
        if self.cleans and action != "K" and (vr == "PN" or tag in _IDENTITY_TAGS):
            self.remember(ds[tag].value, vr)
        if action == "X":
            del ds[tag]
            self.changes.append(Change(path, tag, "removed", why))
            if tag & 0xFF00FFFF == 0x60003000:
                self.drop_overlay_plane(ds, tag >> 16, path)
        elif action == "Z":
            ds[tag] = _element(tag, vr, _empty(vr))
            self.changes.append(Change(path, tag, "emptied", why))
        elif action == "K":
            if vr == "SQ" or self.is_sequence(elem, tag):
                self.items(ds, tag, path)
            self.changes.append(Change(path, tag, "kept", why))
        elif action == "U" or (action == "D" and vr == "UI"):
            if vr == "SQ" or self.is_sequence(elem, tag):
                self.items(ds, tag, path)  # X/Z/U*: the sequence stays, its UIDs are replaced
                self.changes.append(Change(path, tag, "kept", f"{why}: UIDs inside replaced"))
            elif vr == "UI":
                self.replace_uids(ds, tag)
                self.changes.append(Change(path, tag, "replaced", f"{why}: UID from case secret"))
            else:
                ds[tag] = _element(tag, vr, _dummy(vr))
                self.changes.append(Change(path, tag, "replaced", f"{why}: dummy value"))
        elif action == "D":
            ds[tag] = _element(tag, vr, _dummy(vr))
            self.changes.append(Change(path, tag, "replaced", f"{why}: dummy value"))
        else:  # C
            self.clean(ds, tag, elem, vr, why, path)

    def private(self, ds: Dataset, tag: int, path: str) -> None:
        group, element = tag >> 16, tag & 0xFFFF
        if not self.options.retain_safe_private or element < 0x1000 or group in (1, 3, 5, 7, 0xFFFF):
            # a creator stays for now: drop_unused_creators removes it after the walk unless an
            # element of its block was retained
            if self.options.retain_safe_private and 0x0010 <= element <= 0x00FF:
                return
            del ds[tag]
            self.changes.append(Change(path, tag, "removed", self.compiled.private[1], "private"))
            return
        creator_tag = (group << 16) | (element >> 8)
        creator = ds.get_item(creator_tag) if creator_tag in ds else None
        if creator is None:
            del ds[tag]
            self.changes.append(Change(path, tag, "removed", "private element without creator", "private"))
            return
        name = ds[creator_tag].value
        name = name.strip() if isinstance(name, str) else str(name)
        safe = self.options.safe_private
        if (name, group, element & 0xFF) in safe:
            if self.is_sequence(ds.get_item(tag), tag):
                self.items(ds, tag, path)
            label = f"{name}:{element & 0xFF:02X}"
            self.changes.append(Change(path, tag, "kept", "Retain Safe Private", label))
            return
        if name not in self.options.known_private_creators and not any(entry[0] == name for entry in safe):
            raise Refused(
                f"unknown private creator {name[:64]!r} in group {group:04X}: "
                "Retain Safe Private cannot tell which of its attributes are safe"
            )
        del ds[tag]
        self.changes.append(Change(path, tag, "removed", "private, not safe", f"{name}:{element & 0xFF:02X}"))

    def replace_uids(self, ds: Dataset, tag: int) -> None:
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            value: Any = elem.value.decode("ascii", "replace").strip("\0 ").split("\\")
            value = value[0] if len(value) == 1 else value
        else:
            value = ds[tag].value
        if isinstance(value, str):
            ds[tag] = _element(tag, "UI", self.uid(value))
        elif value:
            ds[tag] = _element(tag, "UI", [self.uid(str(v)) for v in value])

    def uid(self, value: str) -> str:
        value = value.strip("\0 ")
        if not value:
            return value
        mapped = self.uids.get(value)
        if mapped is None:
            mapped = self.uids[value] = new_uid(value, self.secret)
            self.report.uids_replaced += 1
        return mapped

    # --- Clean (C) --------------------------------------------------------------------------
    def clean(self, ds: Dataset, tag: int, elem: Any, vr: str, why: str, path: str) -> None:
        if vr == "SQ" or self.is_sequence(elem, tag):
            self.cleaning += 1
            try:
                self.items(ds, tag, path)
            finally:
                self.cleaning -= 1
            self.changes.append(Change(path, tag, "cleaned", f"{why}: its items de-identified"))
        elif vr in ("DA", "DT"):
            if self.shift is None:
                ds[tag] = _element(tag, vr, _empty(vr))
                self.changes.append(Change(path, tag, "emptied", f"{why}: no date shift for this case"))
            else:
                shifted = [_shift(v, vr, self.shift) for v in _values(ds[tag].value)]
                ds[tag] = _element(tag, vr, shifted[0] if len(shifted) == 1 else shifted)
                self.changes.append(Change(path, tag, "replaced", f"{why}: moved {self.shift} days back"))
        elif vr == "TM":
            self.changes.append(Change(path, tag, "kept", f"{why}: dates move by whole days"))
        elif vr == "AE":
            values = [self.pseudonym(v) for v in _values(ds[tag].value)]
            ds[tag] = _element(tag, vr, values[0] if len(values) == 1 else values)
            self.changes.append(Change(path, tag, "replaced", f"{why}: a pseudonym per case"))
        elif vr in _TEXT_VRS:
            self.deferred.append((ds, tag, vr, path, why))
        else:
            self.changes.append(Change(path, tag, "kept", f"{why}: not text"))

    def pseudonym(self, value: str) -> str:
        digest = hmac.new(self.secret, b"ae/" + value.strip().encode(), hashlib.sha256).hexdigest()
        return "AE" + digest[:14].upper()

    def remember(self, value: Any, vr: str) -> None:
        for text in _values(value):
            parts = re.split(r"[\^=\\]", text) if vr == "PN" else [text]
            for part in parts:
                part = part.strip()
                if len(part) >= 3:
                    self.identifiers.add(part)

    def clean_deferred(self) -> None:
        if not self.deferred:
            return
        pattern = None
        if self.identifiers:
            alternatives = sorted(self.identifiers, key=len, reverse=True)
            pattern = re.compile("|".join(re.escape(a) for a in alternatives), re.IGNORECASE)
        for ds, tag, vr, path, why in self.deferred:
            values = _values(ds[tag].value)
            if pattern is None:
                found = 0
            else:
                found = sum(len(pattern.findall(v)) for v in values)
                values = [pattern.sub("***", v) for v in values]
            if found:
                ds[tag] = _element(tag, vr, values[0] if len(values) == 1 else values)
                self.changes.append(Change(path, tag, "cleaned", f"{why}: {found} identifier(s) redacted"))
            else:
                self.changes.append(Change(path, tag, "cleaned", f"{why}: no identifier of this file in it"))

    # --- what every de-identified instance says about itself ----------------------------------
    def stamp(self, ds: Dataset, meta: FileMetaDataset | None) -> None:
        ds[PATIENT_IDENTITY_REMOVED] = _element(PATIENT_IDENTITY_REMOVED, "CS", "YES")
        names = [METHOD_NAME] + [meaning[:64] for _, meaning in self.report.methods[1:]]
        ds[DEIDENTIFICATION_METHOD] = _element(DEIDENTIFICATION_METHOD, "LO", names)
        implicit, little = ds.original_encoding
        if implicit is None or little is None:
            ds[DEIDENTIFICATION_METHOD_CODES] = _method_codes(tuple(self.report.methods))
        else:  # read from bytes: the sequence encoded once per option set and encoding
            ds[DEIDENTIFICATION_METHOD_CODES] = _method_codes_encoded(tuple(self.report.methods), implicit, little)
        state = {"remove": "REMOVED", "full": "UNMODIFIED", "modified": "MODIFIED"}[self.options.dates]
        tag = LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED
        ds[tag] = _element(tag, "CS", state)
        for tag in (PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODES):
            self.changes.append(Change("", tag, "added", "PS3.15 E.1.1"))
        if meta is None:
            return
        for tag in (0x00020016, 0x00020017, 0x00020018):  # Source/Sending/Receiving AE Title
            if tag in meta and not self.options.retain_device_identity:
                del meta[tag]
                self.changes.append(Change("meta.", tag, "removed", "device identity"))
        for tag in (0x00020100, 0x00020102):  # Private Information Creator UID, Private Information
            if tag in meta:
                del meta[tag]
                self.changes.append(Change("meta.", tag, "removed", "private information"))
        if SOP_INSTANCE_UID in ds and 0x00020003 in meta and not self.options.retain_uids:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _method_codes(methods: tuple[tuple[str, str], ...]) -> DataElement:
    """De-identification Method Code Sequence: one CID 7050 item per profile and option."""
    items = []
    for code, meaning in methods:
        item = Dataset()
        item[0x00080100] = _element(0x00080100, "SH", code)  # Code Value
        item[0x00080102] = _element(0x00080102, "SH", "DCM")  # Coding Scheme Designator
        item[0x00080104] = _element(0x00080104, "LO", meaning)  # Code Meaning
        items.append(item)
    return _element(DEIDENTIFICATION_METHOD_CODES, "SQ", Sequence(items))


@lru_cache(maxsize=128)
def _method_codes_encoded(methods: tuple[tuple[str, str], ...], implicit: bool, little: bool) -> RawDataElement:
    """The same sequence already encoded, which pydicom's writer copies as it is (it decodes it
    itself should the file be written in another encoding). Immutable, so one serves every file."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    write_sequence(fp, _method_codes(methods), [default_encoding])
    value = fp.getvalue()
    return RawDataElement(BaseTag(DEIDENTIFICATION_METHOD_CODES), "SQ", len(value), value, 0, implicit, little, True)


def _shift(value: str, vr: str, days: int) -> str:
    """A DA or DT value (or a DA range) moved `days` back, at the precision it had; '' if unreadable."""
    if vr == "DA" and "-" in value:
        return "-".join(_shift(part, "DA", days) if part else "" for part in value.split("-"))
    text = value.strip()
    if len(text) >= 10 and text[4] == "." and text[7] == ".":  # ACR-NEMA's YYYY.MM.DD
        text = text[:4] + text[5:7] + text[8:10] + text[10:]
    digits = text[:8]
    if len(digits) not in (4, 6, 8) or not digits.isdigit():
        return ""
    padded = digits + "0101"[len(digits) - 4 :] if len(digits) < 8 else digits
    try:
        moved = dt.date(int(padded[:4]), int(padded[4:6]), int(padded[6:8])) - dt.timedelta(days=days)
    except ValueError:
        return ""
    return moved.strftime("%Y%m%d")[: len(digits)] + text[8:]
