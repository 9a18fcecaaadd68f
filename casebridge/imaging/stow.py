"""Storing DICOM instances sent over DICOMweb (STOW-RS): each part of the request body, one
instance, is sealed into the vault as it arrives (never whole in memory, never plaintext on
disk), checked, and then either attached to a case through the case's own attach pipeline
(cases.actions.attach_file: the attach rules, metadata handling, the audit events and the
background indexing into studies) or left as an upload of the sender's, in their files, to be
attached later like any other.

A part is refused on its own (the rest go on) when it is not a DICOM Part 10 instance whose
header the ingest can read (imaging.dicom.read_header, the same reader as the ingest), when it
belongs to another study than the one the request named, or when it is too large; a refused
part is never stored. An instance the case already holds is acknowledged and not stored again.
The outcome of each part is reported by its position in the body, never by anything it contains
(its UIDs are returned to the sender only)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from casebridge.access.policy import Forbidden, OrgAccess
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.audit.models import Outcome
from casebridge.cases import actions as case_actions
from casebridge.cases.models import AttachmentKind, Case
from casebridge.imaging.dicom import DicomError, InstanceHeader, read_header
from casebridge.imaging.studies import already_indexed
from casebridge.kernel.backends import NoRoom, StorageError
from casebridge.kernel.filetypes import UnsupportedFileType
from casebridge.kernel.multipart import MultipartError, Part, media_type_parameters
from casebridge.kernel.pipeline import ContentTooLarge
from casebridge.vault import api as vault
from casebridge.vault.reader import VersionReader
from casebridge.vault.scanning import ScannerUnavailable

# Failure Reason (0008,1197) values, PS3.18 Table I.2-2 (0xC409 as dcm4chee-arc uses it for a
# Study Instance UID that is not the one the request named).
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xC409
PROCESSING_FAILURE = 0x0110

DICOM = "application/dicom"
SHRED_REASON = "sent over STOW-RS but not added to the case"


class BodyTooLarge(Exception):
    """The request body went past DICOMWEB_STOW_MAX_BYTES: reading stopped there."""


@dataclass
class PartOutcome:
    """What became of one part, numbered from 1 in the order of the body."""

    number: int
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    failure: int | None = None
    reason: str = ""  # why it failed, in the code's words (the audit event keeps it)
    file_id: str = ""
    duplicate: bool = False

    @property
    def stored(self) -> bool:
        return self.failure is None


@dataclass
class StowResult:
    parts: list[PartOutcome] = field(default_factory=list)
    # Why reading stopped before the end of the body ("" when it reached the closing boundary).
    stopped: str = ""
    body_too_large: bool = False

    @property
    def stored(self) -> list[PartOutcome]:
        return [p for p in self.parts if p.stored]

    @property
    def failed(self) -> list[PartOutcome]:
        return [p for p in self.parts if not p.stored]


def is_dicom_part(content_type: str) -> bool:
    """A part's Content-Type: application/dicom (with any transfer-syntax parameter), or none
    (the request's `type` then says what the parts are)."""
    return not content_type.strip() or media_type_parameters(content_type)[0] == DICOM


def _label(header: InstanceHeader) -> str:
    # A neutral attachment label the case page numbers (CB-2026-000123_cbct_3.dcm).
    return "cbct" if header.modality == "CT" else "xray"


def _fail(outcome: PartOutcome, code: int, reason: str) -> PartOutcome:
    outcome.failure, outcome.reason = code, reason
    return outcome


def _seal(access: OrgAccess, part: Part, outcome: PartOutcome) -> vault.PendingVersion | None:
    try:
        return vault.seal_new_unsized(
            organization_id=access.organization.pk, source=part.readinto, max_length=settings.VAULT_MAX_UPLOAD_BYTES
        )
    except ContentTooLarge:
        _fail(outcome, OUT_OF_RESOURCES, "instance too large")
    except UnsupportedFileType as exc:
        _fail(outcome, CANNOT_UNDERSTAND, f"not a DICOM file ({exc.reason})")
    except vault.MalwareFound as exc:
        _fail(outcome, PROCESSING_FAILURE, "malware")
        record(
            "file.upload.rejected",
            actor=access.actor,
            organization=access.organization,
            target_type="dicomweb.part",
            target_id=str(outcome.number),
            outcome=Outcome.DENIED,
            details={"reason": "malware", "signature": exc.signature, "via": "stow-rs"},
        )
    except ScannerUnavailable:
        _fail(outcome, PROCESSING_FAILURE, "malware scanner unavailable")
    except NoRoom:
        _fail(outcome, OUT_OF_RESOURCES, "no room in storage")
    except StorageError:
        _fail(outcome, PROCESSING_FAILURE, "storage error")
    return None


def _header(pending: vault.PendingVersion) -> InstanceHeader:
    return read_header(io.BufferedReader(VersionReader(pending), 1 << 16))


def _store_part(
    access: OrgAccess, case: Case | None, study_uid: str | None, part: Part, outcome: PartOutcome, seen: set[str]
) -> PartOutcome:
    if not is_dicom_part(part.headers.get("content-type", "")):
        part.skip()
        return _fail(outcome, CANNOT_UNDERSTAND, "part is not application/dicom")
    pending = _seal(access, part, outcome)
    if pending is None:
        part.skip()
        return outcome
    version = None
    try:
        if pending.file_type != "dicom":
            return _fail(outcome, CANNOT_UNDERSTAND, f"not a DICOM file ({pending.file_type})")
        try:
            header = _header(pending)
        except DicomError as exc:
            return _fail(outcome, CANNOT_UNDERSTAND, str(exc))
        outcome.sop_class_uid, outcome.sop_instance_uid = header.sop_class_uid, header.sop_instance_uid
        outcome.study_uid, outcome.series_uid = header.study_uid, header.series_uid
        if study_uid is not None and header.study_uid != study_uid:
            return _fail(outcome, STUDY_MISMATCH, "another study than the one named")
        if header.sop_instance_uid in seen or (
            case is not None and already_indexed(case, access.organization, header.sop_instance_uid)
        ):
            outcome.duplicate = True
            return outcome
        with transaction.atomic():
            version = vault.link_version(pending, actor=access.actor)
    finally:
        if version is None:  # refused, a duplicate, or the link failed: nothing of it stays
            vault.discard(pending)
    seen.add(header.sop_instance_uid)
    stored = version.stored_object
    outcome.file_id = str(stored.pk)
    if case is None:
        return outcome
    try:
        case_actions.attach_file(access, case, stored, kind=AttachmentKind.CBCT, label=_label(header))
    except (ValidationError, Forbidden) as exc:
        # The case stopped taking files meanwhile (sent, cancelled, access revoked): the instance
        # is not kept half-delivered among the sender's files.
        vault.destroy_object(stored, actor=access.actor, reason=SHRED_REASON)
        outcome.file_id = ""
        return _fail(outcome, PROCESSING_FAILURE, " ".join(getattr(exc, "messages", [str(exc)]))[:200])
    return outcome


def store_instances(
    access: OrgAccess, parts: Iterable[Part], *, case: Case | None, study_uid: str | None = None
) -> StowResult:
    """Store every part of a STOW-RS body into `case` (None: the sender's own files).

    The caller entered the organization and, for a case, found it through case_for and checked
    case_actions.require_attach before reading the body; attach_file asks again for each part,
    as the case may change while a long body arrives. One `dicomweb.stored` event records the
    request; every stored instance also has the events of an upload and of its attachment."""
    if case is None:
        access.require(Perm.FILES_UPLOAD)
    else:
        case_actions.require_attach(access, case)
    result = StowResult()
    seen: set[str] = set()
    number = 0
    try:
        for part in parts:
            number += 1
            outcome = PartOutcome(number)
            result.parts.append(outcome)
            if number > settings.DICOMWEB_STOW_MAX_INSTANCES:
                _fail(outcome, OUT_OF_RESOURCES, "more instances than one request may carry")
                result.stopped = f"more than {settings.DICOMWEB_STOW_MAX_INSTANCES} instances"
                break
            _store_part(access, case, study_uid, part, outcome, seen)
    except BodyTooLarge:
        result.body_too_large = True
        result.stopped = f"body larger than {settings.DICOMWEB_STOW_MAX_BYTES} bytes"
        _fail_current(result, number, OUT_OF_RESOURCES, "request body too large")
    except MultipartError as exc:
        result.stopped = str(exc)
        _fail_current(result, number, CANNOT_UNDERSTAND, "the body ended inside this part")
    except OSError:
        result.stopped = "the connection was lost"
        _fail_current(result, number, PROCESSING_FAILURE, "the connection was lost")
    _audit(access, case, study_uid, result)
    return result


def _fail_current(result: StowResult, number: int, code: int, reason: str) -> None:
    """The part being read when reading stopped (if any) failed, unless it was already done."""
    if number and result.parts and result.parts[-1].number == number:
        current = result.parts[-1]
        if current.stored and not current.file_id and not current.duplicate:
            _fail(current, code, reason)


def _audit(access: OrgAccess, case: Case | None, study_uid: str | None, result: StowResult) -> None:
    stored = result.stored
    record(
        "dicomweb.stored",
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=str(case.patient_id) if case is not None else "",
        outcome=Outcome.SUCCESS if stored else Outcome.FAILURE,
        details={
            **({"case": case.number} if case is not None else {"into": "files"}),
            **({"study": study_uid} if study_uid else {}),
            "parts": len(result.parts),
            "stored": len([p for p in stored if not p.duplicate]),
            "duplicates": len([p for p in stored if p.duplicate]),
            "files": [p.file_id for p in stored if p.file_id],
            "failed": [{"part": p.number, "reason": f"{p.failure:04X}", "why": p.reason} for p in result.failed],
            **({"stopped": result.stopped} if result.stopped else {}),
        },
    )
