"""De-identified copies of stored files as they leave CaseBridge (issue 14, item 4): "Download
de-identified" on a case, and external links, which default to it.

Nothing is stored: each file is read from the vault, de-identified and written into the ZIP as it
streams, one file at a time (a DICOM instance is held in memory once, as pydicom needs it whole;
photos and scans stream chunk by chunk). Files that cannot be de-identified safely are left out and
listed with the reason, never passed through. The ZIP ends with `deidentification-report.json` and
`deidentification-report.txt`: per file what was removed, replaced or kept and why, built from
`Report.as_dict()` (attribute names and actions, never a value) and the sanitizer's counts.

The transfer server never builds these archives: it has no de-identification engine, so the ZIP
always streams from the application.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from pypdf import PdfReader, PdfWriter

from casebridge.deid import identifiers
from casebridge.deid.dicom import METHOD_NAME, Refused, deidentify
from casebridge.deid.photo import ImageRefused, clean_image
from casebridge.deid.pixels import Region, blank
from casebridge.deid.table import CODES, COLUMNS, Dates, Options
from casebridge.imaging.sanitize import SanitizeError, sanitize
from casebridge.kernel import zipstream
from casebridge.vault import api as vault
from casebridge.vault.keyring import get_keyring
from casebridge.vault.models import ObjectVersion

REPORT_JSON = "deidentification-report.json"
REPORT_TXT = "deidentification-report.txt"
# Photos and scans: the ingest sanitizer's formats, run again on the way out.
SANITIZED = frozenset({"jpeg", "png", "stl", "obj", "ply"})
# TIFF and HEIC: decoded and written again with their pixels only (deid/photo.py).
REWRITTEN = frozenset({"tiff", "heic"})
LEFT_OUT = {
    "zip": "a ZIP archive is not opened for de-identification: attach its files one by one",
}
REWRITTEN_NOTE = {
    "tiff": "pixels written again into a new TIFF (lossless), every page, nothing else; orientation applied",
    "heic": "decoded and written as PNG (lossless from the decoded pixels), nothing else; orientation applied",
}
# The de-identified DICOM may be slightly longer than the original (the method attributes added):
# the size only decides ZIP64, so a margin keeps a file just under 2 GiB on the safe side.
_DICOM_MARGIN = 1 << 20


def case_secret(case: Any) -> bytes:
    """The per-case secret the engine replaces UIDs (and shifts dates) from: HKDF of the keyring's
    first master secret with the case's id. Never guessable (the keyring secret never leaves the
    server), the same for every export of the case (so series stay together across downloads and
    links), different for every case. Pinned to the first secret so a rotation does not change
    the UIDs already handed out."""
    ring = get_keyring()
    return ring.derive(f"deid/case-secret/{case.pk}", secret_id=ring.secret_ids()[0])


# What an organization with De-identification on receipt gets of the cases it received: the
# Basic Profile, nothing retained, the case secret's UIDs (single downloads, the ZIP, DICOMweb).
ON_RECEIPT = Options()


def option_names(options: Options) -> list[str]:
    return list(options.selected())


# What a sender may add to the Basic Profile (each keeps more than it: a less strict choice).
# Retain Safe Private is not offered: without a site's list of known private creators it refuses
# most scanners' files.
OFFERED = [key for key in COLUMNS.values() if key != "retain_safe_private"]
OPTION_LABELS = {key: CODES[key][1].removesuffix(" Option") for key in OFFERED}


# Stricter than the Basic Profile, so chosen without a reason: the exporting organization's pixel
# masks blank burned-in text (deid/pixels.py). Not an engine option: the export applies it.
CLEAN_PIXEL = "clean_pixel"


def options_from_names(names: Iterable[str]) -> Options:
    """The Options for option keys as `option_names` gives them; ValueError for an unknown key or
    both date options. CLEAN_PIXEL is accepted and left to the caller (Plan.masks)."""
    chosen = set(names) - {CLEAN_PIXEL}
    unknown = chosen - set(OFFERED)
    if unknown:
        raise ValueError(f"unknown de-identification option: {', '.join(sorted(unknown))}")
    dates: list[Dates] = [date for key, date in _DATES.items() if key in chosen]
    if len(dates) > 1:
        raise ValueError("choose Full Dates or Modified Dates, not both")
    return Options(
        retain_uids="retain_uids" in chosen,
        retain_device_identity="retain_device_identity" in chosen,
        retain_institution_identity="retain_institution_identity" in chosen,
        retain_patient_characteristics="retain_patient_characteristics" in chosen,
        dates=dates[0] if dates else "remove",
        clean_descriptors="clean_descriptors" in chosen,
        clean_structured_content="clean_structured_content" in chosen,
        clean_graphics="clean_graphics" in chosen,
    )


_DATES: dict[str, Dates] = {"dates=full": "full", "dates=modified": "modified"}


class NotDeidentifiable(Exception):
    """The one file asked for cannot be de-identified safely; the message says why (no PHI)."""


@dataclass
class Plan:
    """What an export will hold: the files to de-identify and those left out up front."""

    options: Options
    secret: bytes
    files: list[tuple[str, ObjectVersion]] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)
    # Clean Pixel Data (item 2): None when not chosen; else each DICOM file's mask rectangles (the
    # exporting organization's masks for the file's device model), files without one are absent.
    masks: dict[Any, list[Region]] | None = None

    def audit_details(self) -> dict[str, Any]:
        return {
            "deidentified": True,
            "profile": METHOD_NAME,
            "options": option_names(self.options) + ([CLEAN_PIXEL] if self.masks is not None else []),
            "files": [str(v.stored_object_id) for _, v in self.files],
            "left_out": [{"file": entry["file"], "reason": entry["reason"]} for entry in self.left_out],
            "size": sum(v.size for _, v in self.files),
        }


def plan(entries: Iterable[tuple[str, ObjectVersion]], options: Options, secret: bytes) -> Plan:
    """Sort `entries` (name in the archive, version) into files to de-identify and files left out."""
    out = Plan(options, secret)
    for name, version in entries:
        file_type = version.stored_object.file_type
        if file_type in ("dicom", "pdf") or file_type in SANITIZED or file_type in REWRITTEN:
            out.files.append((name, version))
        else:
            reason = LEFT_OUT.get(file_type, f"no de-identification is known for {file_type or 'this'} files")
            out.left_out.append(_left_out(name, version, reason))
    return out


# Item 2 (a flag, no pixel masks yet): images likely to carry the patient's name in their pixels,
# which no attribute-level profile removes.
BURNED_IN_MODALITIES = {"SC": "a secondary capture", "PX": "a panoramic X-ray", "XC": "an external camera photo"}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def burned_in_warning(ds: Any) -> str:
    """Why the image may show identifying text in its pixels ("" when nothing says so)."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "Burned In Annotation is YES: the pixels carry text, possibly the patient's name"
    modality = str(ds.get("Modality", "")).upper()
    if modality in BURNED_IN_MODALITIES:
        return f"{BURNED_IN_MODALITIES[modality]} ({modality}): such images often show the patient's name in the pixels"
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE):
        return "a secondary capture: such images often show the patient's name in the pixels"
    return ""


def _left_out(name: str, version: ObjectVersion, reason: str) -> dict[str, str]:
    file_type = version.stored_object.file_type
    return {"name": name, "file": str(version.stored_object_id), "type": file_type, "reason": reason}


def _read_all(version: ObjectVersion) -> bytes:
    return b"".join(bytes(piece) for piece in vault.read_version(version))


def _chunks(version: ObjectVersion) -> Iterator[bytes]:
    # The sanitizer copies what it keeps before asking for the next piece; the reader reuses a buffer.
    return (bytes(piece) for piece in vault.read_version(version))


def deidentified_entries(work: Plan, report: dict[str, Any]) -> Iterator[zipstream.Entry]:
    """The archive's entries, each de-identified just before it is written; `report` fills in as
    they go and is written last."""
    report["files"] = []
    for name, version in work.files:
        file_type = version.stored_object.file_type
        if file_type == "dicom":
            try:
                result = deidentify(_read_all(version), work.options, work.secret)
            except Refused as refusal:
                work.left_out.append(_left_out(name, version, refusal.reason))
                continue
            data = result.data or b""
            entry = {"name": name, "type": "dicom", "outcome": "de-identified", "report": result.report.as_dict()}
            warning = burned_in_warning(result.dataset)
            masked = 0
            if work.masks is not None:
                regions = work.masks.get(version.stored_object_id) or []
                if regions:
                    try:
                        data, masked = blank(data, regions)
                    except Exception as error:  # pydicom's decoders raise many kinds
                        work.left_out.append(
                            _left_out(
                                name, version, f"its pixels cannot be decoded for the mask ({type(error).__name__})"
                            )
                        )
                        continue
                entry["pixel_mask"] = (
                    f"{len(regions)} rectangle(s) blanked, {masked} pixels per frame"
                    if masked
                    else "no mask for this device model, or the rectangles lie outside the image: pixels unchanged"
                )
            if warning:
                after = "pixels outside the mask are not changed" if masked else "pixels are not changed"
                entry["burned_in_warning"] = f"check before sharing: {warning}; {after}"
            report["files"].append(entry)
            yield name, len(data) + _DICOM_MARGIN, _once(data)
            continue
        if file_type == "pdf":
            try:
                cleaned_pdf, removed = clean_pdf(_read_all(version))
            except NotDeidentifiable as refusal:
                work.left_out.append(_left_out(name, version, str(refusal)))
                continue
            report["files"].append(
                _cleaned(name, "pdf", removed, "document info and XMP removed; pages' text and images unchanged")
            )
            yield name, len(cleaned_pdf), _once(cleaned_pdf)
            continue
        if file_type in REWRITTEN:
            try:
                image = clean_image(file_type, _read_all(version))
            except ImageRefused as refusal:
                work.left_out.append(_left_out(name, version, f"its metadata cannot be removed: {refusal}"))
                continue
            if image.file_type != file_type:
                name = f"{name.rsplit('.', 1)[0]}.{image.file_type}"
            report["files"].append(
                _cleaned(
                    name,
                    file_type,
                    image.removed,
                    REWRITTEN_NOTE[file_type],
                    orientation_applied=image.orientation_applied,
                )
            )
            yield name, len(image.data), _once(image.data)
            continue
        # First pass measures (and proves the file can be cleaned), second writes: nothing of a
        # file that fails half-way ever reaches the archive.
        measured, cleaned = sanitize(file_type, _chunks(version), version.size)
        try:
            for _ in measured:
                pass
        except SanitizeError as error:
            work.left_out.append(_left_out(name, version, f"its metadata cannot be removed: {error}"))
            continue
        report["files"].append(
            _cleaned(
                name,
                file_type,
                cleaned.removed,
                "photos and scans are already cleaned when they are attached; cleaned again on the way out",
                orientation_kept=cleaned.orientation,
            )
        )
        yield name, version.size, _sanitized(file_type, version)
    report["left_out"] = work.left_out
    summary = json.dumps(report, indent=1, sort_keys=True).encode()
    yield REPORT_JSON, len(summary), _once(summary)
    text = human_report(report).encode()
    yield REPORT_TXT, len(text), _once(text)


def _cleaned(name: str, file_type: str, removed: dict[str, int], note: str, **extra: Any) -> dict[str, Any]:
    """A report entry for a file cleaned of its metadata (anything but DICOM)."""
    return {
        "name": name,
        "type": file_type,
        "outcome": "metadata removed" if removed else "no metadata found",
        "removed": dict(sorted(removed.items())),
        "note": note,
        **extra,
    }


def clean_pdf(data: bytes) -> tuple[bytes, dict[str, int]]:
    """The PDF without its document information dictionary and XMP metadata (the catalog's and
    every page's), nor page-piece data (/PieceInfo: application private data), rewritten with
    the orphaned objects dropped so the old metadata is not left behind unreferenced. Held in
    memory once (a PDF is read by offsets). NotDeidentifiable when it cannot be read or is
    encrypted (its metadata cannot be checked)."""
    cleaned, removed, _found = _clean_pdf(data)
    return cleaned, removed


def pdf_metadata(data: bytes) -> list[str]:
    """The kinds of identifier `clean_pdf` removes from this PDF (author, software, dates, XMP...)."""
    return _clean_pdf(data)[2]


def _clean_pdf(data: bytes) -> tuple[bytes, dict[str, int], list[str]]:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise NotDeidentifiable("an encrypted PDF cannot be checked for metadata")
        writer = PdfWriter(clone_from=reader)
        removed: dict[str, int] = {}
        found: set[str] = set()
        info = reader.metadata
        if info:
            removed["document info fields"] = len(info)
            found.update(identifiers.of_pdf_info(info.keys()))
        writer.metadata = None
        if "/Metadata" in writer.root_object:
            removed["XMP metadata streams"] = 1
            writer.xmp_metadata = None
        for page in writer.pages:
            for key, what in (("/Metadata", "XMP metadata streams"), ("/PieceInfo", "page-piece dictionaries")):
                if key in page:
                    del page[key]
                    removed[what] = removed.get(what, 0) + 1
        found.update(_PDF_KINDS[what] for what in removed if what in _PDF_KINDS)
        writer.compress_identical_objects(remove_duplicates=False, remove_unreferenced=True)
        out = io.BytesIO()
        writer.write(out)
    except NotDeidentifiable:
        raise
    except Exception as error:  # pypdf raises many kinds on a damaged file
        raise NotDeidentifiable(f"the PDF cannot be read ({type(error).__name__})") from error
    return out.getvalue(), dict(sorted(removed.items())), sorted(found)


_PDF_KINDS = {"XMP metadata streams": "XMP", "page-piece dictionaries": "application private data"}


def _once(data: bytes) -> Callable[[], Iterable[bytes]]:
    return lambda: (data,)


def _sanitized(file_type: str, version: ObjectVersion) -> Callable[[], Iterable[bytes]]:
    return lambda: sanitize(file_type, _chunks(version), version.size)[0]


def human_report(report: dict[str, Any]) -> str:
    """The short text beside the JSON: one line per file, then what was left out and why."""
    lines = [
        "De-identified copy made by CaseBridge.",
        f"DICOM: {report['profile']}, options: {', '.join(report['options']) or 'none (Basic Profile)'}.",
        "Photos and scans: EXIF, XMP, IPTC, GPS, maker notes, thumbnails, comments and headers removed.",
        "",
    ]
    for entry in report["files"]:
        if entry["type"] == "dicom":
            counts = entry["report"]["counts"]
            done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
            lines.append(f"{entry['name']}: de-identified ({done}; {entry['report']['uids_replaced']} UIDs replaced)")
            if entry.get("pixel_mask"):
                lines.append(f"  Clean Pixel Data: {entry['pixel_mask']}")
            if entry.get("burned_in_warning"):
                lines.append(f"  WARNING: {entry['burned_in_warning']}")
        else:
            removed = ", ".join(f"{what} x{n}" for what, n in entry["removed"].items()) or "nothing to remove"
            lines.append(f"{entry['name']}: {entry['outcome']} ({removed})")
    if report["left_out"]:
        lines += ["", "Left out (could not be de-identified safely):"]
        lines += [f"{entry['name']}: {entry['reason']}" for entry in report["left_out"]]
    lines += ["", f"Details per attribute: {REPORT_JSON}.", ""]
    return "\n".join(lines)


def _report_head(work: Plan) -> dict[str, Any]:
    return {"profile": METHOD_NAME, "options": work.audit_details()["options"]}


def single_file(work: Plan) -> Iterator[bytes]:
    """The first file of `work`, de-identified (checked before a byte is returned), piece by piece."""
    report = _report_head(work)
    refused_before = len(work.left_out)
    entries = deidentified_entries(work, report)
    first = next(entries)
    if first[0] in (REPORT_JSON, REPORT_TXT) or len(work.left_out) > refused_before:
        raise NotDeidentifiable(work.left_out[-1]["reason"] if work.left_out else "nothing to send")
    return iter(first[2]())


def preview(work: Plan) -> dict[str, Any]:
    """The report the archive would carry, without writing it: what the sender sees before sending.
    It de-identifies every file to say so (one at a time, nothing kept)."""
    report = _report_head(work)
    for _name, _size, _pieces in deidentified_entries(work, report):
        pass
    return report


def file_response(content: Iterator[bytes], name: str) -> HttpResponseBase:
    """One de-identified file (from `single_file`), streamed from here under `name`."""
    response = StreamingHttpResponse(content, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def archive_response(work: Plan, filename: str) -> HttpResponseBase:
    """The de-identified ZIP, streamed from here (never handed to the transfer server)."""
    report = _report_head(work)
    response = StreamingHttpResponse(
        zipstream.archive(deidentified_entries(work, report)), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
