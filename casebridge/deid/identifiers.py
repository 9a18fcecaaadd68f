"""Which kinds of identifier a file carries that de-identification would remove: "patient name",
"GPS location", "author", "STL header text"... Kinds only, never a value.

Recorded on the file version when a file is attached to a case (`examine`), so the case page can
say before sharing what the de-identified copy will lack. There is no second analyzer: each kind
is read from the report of the very step that de-identifies the file on the way out (the PS3.15
engine's changes for DICOM, `clean_pdf` for PDF, `clean_image` for TIFF and HEIC, the ingest
sanitizer's counts for JPEG, PNG and the 3D formats, which were cleaned on attach already).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from casebridge.deid.dicom import Refused, Report, deidentify
from casebridge.deid.photo import ImageRefused, clean_image
from casebridge.deid.table import Options, rows

# Larger files are not examined on attach (the engines hold a file in memory once).
MAX_EXAMINED = 256 * 1024 * 1024

# DICOM: attributes named for what they are, before the table's option columns decide.
_DICOM_TAGS = {
    0x00100010: "patient name",
    0x00101001: "patient name",  # Other Patient Names
    0x00101005: "patient name",  # Patient's Birth Name
    0x00101060: "patient name",  # Patient's Mother's Birth Name
    0x00100020: "patient ID",
    0x00100021: "patient ID",  # Issuer of Patient ID
    0x00101000: "patient ID",  # Other Patient IDs
    0x00101002: "patient ID",  # Other Patient IDs Sequence
    0x00101090: "patient ID",  # Medical Record Locator
    0x00100030: "birth date",
    0x00100032: "birth date",  # Patient's Birth Time
    0x00101040: "patient address and phone",
    0x00102154: "patient address and phone",
    0x00080050: "accession number",
}
# Then the first option column that would keep the row, as the kind it names.
_DICOM_COLUMNS = (
    ("retain_uids", "UIDs"),
    ("dates=full", "dates and times"),
    ("retain_patient_characteristics", "patient characteristics (sex, age, size, weight)"),
    ("retain_device_identity", "device identity"),
    ("retain_institution_identity", "institution"),
    ("clean_descriptors", "descriptions and comments"),
    ("clean_structured_content", "structured content"),
    ("clean_graphics", "graphics and overlays"),
)
_REMOVING = frozenset({"removed", "emptied", "replaced", "cleaned"})

# The sanitizer's and cleaners' counts (keys of `removed`), by their first words.
_REMOVED_KINDS = (
    ("EXIF field GPS", "GPS location"),
    ("EXIF field GPSInfo", "GPS location"),
    ("EXIF field MakerNote", "camera maker notes"),
    ("EXIF field Make", "camera make and model"),
    ("EXIF field Model", "camera make and model"),
    ("EXIF field Artist", "author"),
    ("EXIF field XPAuthor", "author"),
    ("EXIF field Copyright", "author"),
    ("EXIF field DateTime", "dates and times"),
    ("EXIF thumbnail", "embedded thumbnail"),
    ("APP0 JFIF thumbnail", "embedded thumbnail"),
    ("APP2 multi-picture", "embedded thumbnail"),
    ("EXIF", "camera settings (EXIF)"),
    ("APP1 EXIF", "camera settings (EXIF)"),
    ("APP1 XMP", "XMP"),
    ("APP1 extended XMP", "XMP"),
    ("APP13", "IPTC"),
    ("COM", "comments"),
    ("PNG chunk", "text chunks"),
    ("STL header", "STL header text"),
    ("STL solid name", "STL header text"),
    ("PLY", "PLY comments"),
    ("OBJ", "OBJ comments"),
    ("data after end of image", "data after the image"),
)
_PDF_INFO_KINDS = {
    "/Author": "author",
    "/Creator": "software",
    "/Producer": "software",
    "/Title": "title and subject",
    "/Subject": "title and subject",
    "/Keywords": "title and subject",
    "/CreationDate": "dates and times",
    "/ModDate": "dates and times",
}


@cache
def _dicom_kinds() -> dict[int, str]:
    """Tag -> kind for every exact row of Table E.1-1."""
    out: dict[int, str] = {}
    for row in rows():
        if "X" in row.tag[1:10] or "WHERE" in row.tag:
            continue
        tag = int(row.tag[1:5] + row.tag[6:10], 16)
        column = next((kind for key, kind in _DICOM_COLUMNS if key in row.options), "other identifying attributes")
        out[tag] = _DICOM_TAGS.get(tag, column)
    return out


def of_dicom(report: Report) -> list[str]:
    """The kinds the engine's report removed, replaced or cleaned."""
    kinds = _dicom_kinds()
    found = set()
    for change in report.changes:
        if change.action not in _REMOVING or (change.parent == "meta." and change.tag == 0x00020003):
            continue  # the Media Storage SOP Instance UID follows the SOP Instance UID
        group = change.tag >> 16
        if group & 1:
            found.add("private attributes")
        elif group & 0xFF00 in (0x5000, 0x6000):
            found.add("graphics and overlays")
        else:
            found.add(kinds.get(change.tag, "other identifying attributes"))
    return sorted(found)


def of_removed(removed: Iterable[str]) -> list[str]:
    """The kinds a sanitizer's or cleaner's counts name (keys of its `removed`)."""
    found = set()
    for what in removed:
        found.add(next((kind for prefix, kind in _REMOVED_KINDS if what.startswith(prefix)), "other metadata"))
    return sorted(found)


def of_pdf_info(keys: Iterable[str]) -> list[str]:
    return sorted({_PDF_INFO_KINDS.get(key, "other document info") for key in keys})


def examine(file_type: str, size: int, read_all: Callable[[], bytes]) -> dict[str, Any]:
    """What de-identification would remove from a stored file: {"present": kinds} (sorted, maybe
    empty), {"refused": why} when it cannot be de-identified at all, or {"not_examined": why}.
    Never raises for the content: a report must not stop a file from being attached."""
    try:
        return _examine(file_type, size, read_all)
    except Exception as error:  # a step failing in a way it does not foresee: say so, attach anyway
        return {"not_examined": f"the file could not be examined ({type(error).__name__})"}


def _examine(file_type: str, size: int, read_all: Callable[[], bytes]) -> dict[str, Any]:
    if size > MAX_EXAMINED:
        return {"not_examined": f"larger than {MAX_EXAMINED >> 20} MiB"}
    if file_type == "dicom":
        try:
            # a throwaway secret: the new UIDs are not kept, only which attributes were changed
            result = deidentify(read_all(), Options(), os.urandom(32))
        except Refused as refusal:
            return {"refused": refusal.reason}
        return {"present": of_dicom(result.report)}
    if file_type == "pdf":
        from casebridge.deid.export import NotDeidentifiable, pdf_metadata

        try:
            return {"present": pdf_metadata(read_all())}
        except NotDeidentifiable as refusal:
            return {"refused": str(refusal)}
    if file_type in ("tiff", "heic"):
        try:
            return {"present": clean_image(file_type, read_all()).found}
        except ImageRefused as refusal:
            return {"refused": str(refusal)}
    if file_type in ("jpeg", "png", "stl", "obj", "ply"):
        return {"present": []}  # cleaned when attached: the stored content is the sanitizer's output
    return {"not_examined": f"no de-identification is known for {file_type or 'this'} files"}
