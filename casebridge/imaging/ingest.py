"""Cleaning a stored file of identifying metadata when it joins a case: the sanitized content
becomes a new version and the original version is crypto-shredded, so the uncleaned bytes
are gone, not merely hidden behind a newer version."""

from __future__ import annotations

from typing import Any

from casebridge.imaging.sanitize import SanitizeResult, sanitize
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject

SHRED_REASON = "metadata removed on ingest"
# Kept as uploaded; the case page warns that their metadata is still in the file.
NOT_CLEANABLE = frozenset({"tiff", "heic"})


def _plaintext(stored_object: StoredObject) -> tuple[Any, int]:
    version = vault.get_version(stored_object)
    # read_version reuses one buffer; the sanitizer copies each segment before asking for the next.
    return vault.read_version(version), version.size


def clean_on_ingest(stored_object: StoredObject, *, actor: Any) -> SanitizeResult:
    """Remove identifying metadata from the current version of ``stored_object``.

    Raises ``imaging.sanitize.SanitizeError`` when the content cannot be understood (nothing is
    changed then). The first pass only measures: a file with nothing to remove keeps its version,
    and one that needs cleaning is written with its exact length known up front.
    """
    chunks, size = _plaintext(stored_object)
    measured, result = sanitize(stored_object.file_type, chunks, size)
    for _ in measured:
        pass
    if not result.sanitized or not result.removed:
        return result
    original = stored_object.current_version
    chunks, size = _plaintext(stored_object)
    cleaned, written = sanitize(stored_object.file_type, chunks, size)
    cleaned_version = vault.put_stream(
        organization=stored_object.organization,
        actor=actor,
        chunks=cleaned,
        length=result.bytes_out,
        stored_object=stored_object,
    )
    if written.removed != result.removed:  # the sanitizers are deterministic; anything else is a bug
        raise RuntimeError("sanitizing the same content twice gave different results")
    vault.destroy_version(
        stored_object,
        original,
        actor=actor,
        reason=SHRED_REASON,
        audit_action="file.original_replaced_by_cleaned_copy",
        details={"cleaned_version": cleaned_version.version, "cleaned_sha256": cleaned_version.sha256},
    )
    return written


def metadata_warning(file_type: str) -> str:
    """What to tell people about a file whose metadata could not be removed ("" when none)."""
    if file_type in NOT_CLEANABLE:
        return (
            f"{file_type.upper()} metadata (camera, location, dates) could not be removed: "
            "the file is stored as uploaded."
        )
    return ""
