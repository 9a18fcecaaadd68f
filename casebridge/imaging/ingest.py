"""Cleaning content of identifying metadata before it joins a case: the sanitized content is
sealed as a pending version (vault.api.PendingVersion) that the caller links in its own short
transaction; the uncleaned bytes then go, so they are gone, not merely hidden behind a newer
version."""

from __future__ import annotations

from collections.abc import Iterator

from casebridge.imaging.sanitize import SanitizeResult, passed_through, sanitize
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion

SHRED_REASON = "metadata removed on ingest"
# Kept as uploaded; the case page warns that their metadata is still in the file.
NOT_CLEANABLE = frozenset({"tiff", "heic"})

Content = ObjectVersion | vault.PendingVersion


def _plaintext(source: Content) -> Iterator[memoryview]:
    # Both readers reuse one buffer; the sanitizer copies each segment before asking for the next.
    if isinstance(source, ObjectVersion):
        return vault.read_version(source)
    return vault.read_pending(source)


def read_content(source: Content) -> bytes:
    """The whole plaintext of `source`, for the steps that need a file whole (DICOM, PDF, images)."""
    return b"".join(bytes(piece) for piece in _plaintext(source))


def clean_content(
    source: Content, *, file_type: str, version: int
) -> tuple[SanitizeResult, vault.PendingVersion | None]:
    """Remove identifying metadata from `source` (a stored version, or content not yet linked).

    Returns what was removed and, when anything was, the cleaned content sealed and scanned as
    pending version `version` of the same object (None when there was nothing to remove). This
    reads the content twice and writes it once: call it outside any transaction.

    Raises ``imaging.sanitize.SanitizeError`` when the content cannot be understood (nothing is
    left behind then). The first pass only measures, so a file with nothing to remove costs no
    write and a cleaned one is written with its exact length known up front. A type the
    sanitizers pass through unchanged (a CBCT's ZIP, DICOM, PDF) is not read at all: its length
    is the vault's, whose reads check every segment anyway."""
    unchanged = passed_through(file_type, source.size)
    if unchanged is not None:
        return unchanged, None
    if isinstance(source, ObjectVersion):
        organization_id, object_id = source.stored_object.organization_id, source.stored_object_id
    else:
        organization_id, object_id = source.organization_id, source.object_id
    measured, result = sanitize(file_type, _plaintext(source), source.size)
    for _ in measured:
        pass
    if not result.sanitized or not result.removed:
        return result, None
    cleaned, written = sanitize(file_type, _plaintext(source), source.size)
    pending = vault.seal_version(
        organization_id=organization_id, object_id=object_id, version=version, chunks=cleaned, length=result.bytes_out
    )
    if written.removed != result.removed:  # the sanitizers are deterministic; anything else is a bug
        vault.discard(pending)
        raise RuntimeError("sanitizing the same content twice gave different results")
    return written, pending


def metadata_warning(file_type: str) -> str:
    """What to tell people about a file whose metadata could not be removed ("" when none)."""
    if file_type in NOT_CLEANABLE:
        return (
            f"{file_type.upper()} metadata (camera, location, dates) could not be removed: "
            "the file is stored as uploaded. Download de-identified and de-identified links send a "
            "copy without it."
        )
    return ""
