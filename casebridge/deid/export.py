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

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase

from casebridge.deid.dicom import METHOD_NAME, Refused, deidentify
from casebridge.deid.table import Options
from casebridge.imaging.sanitize import SanitizeError, sanitize
from casebridge.kernel import zipstream
from casebridge.vault import api as vault
from casebridge.vault.keyring import get_keyring
from casebridge.vault.models import ObjectVersion

REPORT_JSON = "deidentification-report.json"
REPORT_TXT = "deidentification-report.txt"
# Photos and scans: the ingest sanitizer's formats, run again on the way out.
SANITIZED = frozenset({"jpeg", "png", "stl", "obj", "ply"})
LEFT_OUT = {
    "tiff": "TIFF metadata cannot be removed safely yet (it sits behind offsets anywhere in the file)",
    "heic": "HEIC metadata cannot be removed safely yet (it sits in boxes anywhere in the file)",
    "pdf": "PDF document info and XMP removal is not implemented yet",
    "zip": "a ZIP archive is not opened for de-identification: attach its files one by one",
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


def option_names(options: Options) -> list[str]:
    return list(options.selected())


@dataclass
class Plan:
    """What an export will hold: the files to de-identify and those left out up front."""

    options: Options
    secret: bytes
    files: list[tuple[str, ObjectVersion]] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)

    def audit_details(self) -> dict[str, Any]:
        return {
            "deidentified": True,
            "profile": METHOD_NAME,
            "options": option_names(self.options),
            "files": [str(v.stored_object_id) for _, v in self.files],
            "left_out": [{"file": entry["file"], "reason": entry["reason"]} for entry in self.left_out],
            "size": sum(v.size for _, v in self.files),
        }


def plan(entries: Iterable[tuple[str, ObjectVersion]], options: Options, secret: bytes) -> Plan:
    """Sort `entries` (name in the archive, version) into files to de-identify and files left out."""
    out = Plan(options, secret)
    for name, version in entries:
        file_type = version.stored_object.file_type
        if file_type == "dicom" or file_type in SANITIZED:
            out.files.append((name, version))
        else:
            reason = LEFT_OUT.get(file_type, f"no de-identification is known for {file_type or 'this'} files")
            out.left_out.append(_left_out(name, version, reason))
    return out


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
            report["files"].append(
                {"name": name, "type": "dicom", "outcome": "de-identified", "report": result.report.as_dict()}
            )
            yield name, len(data) + _DICOM_MARGIN, _once(data)
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
            {
                "name": name,
                "type": file_type,
                "outcome": "metadata removed" if cleaned.removed else "no metadata found",
                "removed": dict(sorted(cleaned.removed.items())),
                "orientation_kept": cleaned.orientation,
                "note": "photos and scans are already cleaned when they are attached; cleaned again on the way out",
            }
        )
        yield name, version.size, _sanitized(file_type, version)
    report["left_out"] = work.left_out
    summary = json.dumps(report, indent=1, sort_keys=True).encode()
    yield REPORT_JSON, len(summary), _once(summary)
    text = human_report(report).encode()
    yield REPORT_TXT, len(text), _once(text)


def _once(data: bytes) -> Callable[[], Iterable[bytes]]:
    return lambda: (data,)


def _sanitized(file_type: str, version: ObjectVersion) -> Callable[[], Iterable[bytes]]:
    return lambda: sanitize(file_type, _chunks(version), version.size)[0]


def human_report(report: dict[str, Any]) -> str:
    """The short text beside the JSON: one line per file, then what was left out and why."""
    lines = [
        "De-identified copy made by CaseBridge.",
        f"DICOM: {report['profile']}, options: {', '.join(report['options']) or 'none (Basic Profile)'}.",
        "Photos and scans: EXIF, XMP, IPTC, GPS, comments and headers removed.",
        "",
    ]
    for entry in report["files"]:
        if entry["type"] == "dicom":
            counts = entry["report"]["counts"]
            done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
            lines.append(f"{entry['name']}: de-identified ({done}; {entry['report']['uids_replaced']} UIDs replaced)")
        else:
            removed = ", ".join(f"{what} x{n}" for what, n in entry["removed"].items()) or "nothing to remove"
            lines.append(f"{entry['name']}: {entry['outcome']} ({removed})")
    if report["left_out"]:
        lines += ["", "Left out (could not be de-identified safely):"]
        lines += [f"{entry['name']}: {entry['reason']}" for entry in report["left_out"]]
    lines += ["", f"Details per attribute: {REPORT_JSON}.", ""]
    return "\n".join(lines)


def archive_response(work: Plan, filename: str) -> HttpResponseBase:
    """The de-identified ZIP, streamed from here (never handed to the transfer server)."""
    report: dict[str, Any] = {"profile": METHOD_NAME, "options": option_names(work.options)}
    response = StreamingHttpResponse(
        zipstream.archive(deidentified_entries(work, report)), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
