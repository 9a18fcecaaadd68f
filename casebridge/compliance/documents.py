"""Documents the compliance file keeps (training material, signed agreements): stored encrypted
in the vault like every other file, scanned when scanning is on, their type recognised from their
bytes; a refusal is a form error on the `document` field."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from casebridge.access.policy import OrgAccess
from casebridge.kernel.filetypes import ACCEPTED_TYPES_MESSAGE, UnsupportedFileType
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion


def store(access: OrgAccess, chunks: Any, length: int) -> ObjectVersion:
    try:
        return vault.put_stream(organization=access.organization, actor=access.actor, chunks=chunks, length=length)
    except UnsupportedFileType as exc:
        raise ValidationError({"document": ACCEPTED_TYPES_MESSAGE}) from exc
    except vault.MalwareFound as exc:
        raise ValidationError({"document": "The malware scanner refused this file; it was not kept."}) from exc
