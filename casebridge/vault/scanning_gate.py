"""Malware scanning of a finished upload before anyone can see it (only when clamd is configured).

The plaintext goes from the decrypting reader straight into clamd's socket: never to a disk.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings

from casebridge.kernel.crypto.streaming import associated_data, decrypt_range
from casebridge.vault import keystore
from casebridge.vault.config import blob_store
from casebridge.vault.keys.hierarchy import unwrap_dek


def enabled() -> bool:
    """Whether content is scanned at all: a clamd is configured."""
    return bool(settings.VAULT_CLAMD)


def scan_blob(
    org_id: UUID,
    object_id: UUID,
    version: int,
    org_key_version: int,
    wrapped_dek: bytes,
    blob_name: str,
    ciphertext_size: int,
) -> str | None:
    """None when clean (or scanning is off); the signature name when malware was found."""
    if not enabled():
        return None
    from casebridge.vault.scanning import scan

    dek = unwrap_dek(
        keystore.org_key(org_id, org_key_version),
        wrapped_dek,
        org_id=org_id,
        org_key_version=org_key_version,
        object_id=object_id,
        object_version=version,
    )
    store = blob_store()
    plaintext = decrypt_range(
        lambda start, end: store.read_range(blob_name, start, end),
        ciphertext_size,
        dek,
        associated_data(object_id, version),
    )
    result = scan(settings.VAULT_CLAMD, (bytes(chunk) for chunk in plaintext))
    return None if result.clean else (result.signature or "malware")
