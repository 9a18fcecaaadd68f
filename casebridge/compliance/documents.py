"""Documents the compliance workspace keeps (training material, risk assessment evidence, signed
agreements): named, size-checked and stored encrypted in the vault like every other file (scanned for malware there
when scanning is on), their type recognised from their bytes."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from casebridge.access.policy import OrgAccess
from casebridge.kernel.filetypes import ACCEPTED_TYPES_MESSAGE, UnsupportedFileType
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion, StoredObject

ATTACHMENT_LIMIT = 50 * 1024 * 1024  # policies, slides, photos, screenshots; not scans


def store(
    access: OrgAccess, *, title: str, chunks: Any, length: int, errors: dict[str, str], kind: str
) -> StoredObject:
    """Check the name and size (with the caller's own field errors: all are said at once), then
    store the bytes encrypted. `kind` names the documents in the size message."""
    if not title.strip():
        errors["title"] = "Name the document (for example: Sanctions policy 2026)."
    if length <= 0:
        errors["document"] = "Choose a file: this one is empty."
    elif length > ATTACHMENT_LIMIT:
        errors["document"] = f"{kind} are limited to {ATTACHMENT_LIMIT // (1024 * 1024)} MB."
    if errors:
        raise ValidationError(errors)
    return put(access, chunks, length).stored_object


def put(access: OrgAccess, chunks: Any, length: int) -> ObjectVersion:
    """Store the bytes encrypted (a document CaseBridge made, or one whose checks the caller did);
    a refused type or malware is a form error on the `document` field."""
    try:
        return vault.put_stream(organization=access.organization, actor=access.actor, chunks=chunks, length=length)
    except UnsupportedFileType as exc:
        raise ValidationError({"document": ACCEPTED_TYPES_MESSAGE}) from exc
    except vault.MalwareFound as exc:
        raise ValidationError({"document": "The malware scanner refused this file; it was not kept."}) from exc
