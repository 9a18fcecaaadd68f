"""The key hierarchy: provider KEK -> per-organization key -> per-file DEK, and crypto-shredding.

Only organization keys are wrapped by the provider, so rotating the KEK re-wraps one key per
organization and never touches DEKs or content; destroying an organization's wrapped keys makes
all of its files unreadable at once (BAA "return or destroy"), and destroying one object's wrapped
DEKs does the same for that object.
"""

from __future__ import annotations

import os
import secrets
from typing import Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casebridge.vault.keys.base import KeyProvider, KeyProviderError, UnwrapError, WrappedKey, canonical_context

KEY_SIZE = 32
NONCE_SIZE = 12
_DEK_FORMAT = b"\x01"  # leading byte of a wrapped DEK, so the scheme can change later


def generate_dek() -> bytes:
    """A fresh 256-bit data key; one per stored object version, never reused."""
    return secrets.token_bytes(KEY_SIZE)


def org_key_context(org_id: UUID | str, org_key_version: int) -> dict[str, str]:
    return {"purpose": "casebridge.org-key", "org": str(org_id), "org_key_version": str(org_key_version)}


def dek_context(org_id: UUID | str, org_key_version: int, object_id: UUID | str, object_version: int) -> bytes:
    return canonical_context(
        {
            "purpose": "casebridge.dek",
            "org": str(org_id),
            "org_key_version": str(org_key_version),
            "object": str(object_id),
            "object_version": str(object_version),
        }
    )


# -- organization keys (wrapped by the provider) --------------------------------------------------


def create_org_key(provider: KeyProvider, org_id: UUID | str, org_key_version: int = 1) -> tuple[bytes, WrappedKey]:
    """A new organization key and its wrapped form (store only the wrapped form)."""
    key = secrets.token_bytes(KEY_SIZE)
    return key, provider.wrap(key, org_key_context(org_id, org_key_version))


def open_org_key(provider: KeyProvider, wrapped: WrappedKey, org_id: UUID | str, org_key_version: int) -> bytes:
    key = provider.unwrap(wrapped, org_key_context(org_id, org_key_version))
    if len(key) != KEY_SIZE:
        raise UnwrapError("unwrapped organization key has the wrong length")
    return key


def rewrap_org_key(provider: KeyProvider, wrapped: WrappedKey, org_id: UUID | str, org_key_version: int) -> WrappedKey:
    """Move an organization key to the provider's current KEK version (KEK rotation); idempotent."""
    if wrapped.version == provider.current_version():
        return wrapped
    context = org_key_context(org_id, org_key_version)
    return provider.wrap(provider.unwrap(wrapped, context), context)


# -- data keys (wrapped by the organization key) --------------------------------------------------


def wrap_dek(
    org_key: bytes, dek: bytes, *, org_id: UUID | str, org_key_version: int, object_id: UUID | str, object_version: int
) -> bytes:
    """AES-256-GCM under the organization key, bound to the object and version it encrypts."""
    if len(dek) != KEY_SIZE:
        raise ValueError("a DEK is 32 bytes")
    nonce = os.urandom(NONCE_SIZE)
    aad = dek_context(org_id, org_key_version, object_id, object_version)
    return _DEK_FORMAT + nonce + AESGCM(org_key).encrypt(nonce, dek, aad)


def unwrap_dek(
    org_key: bytes,
    wrapped_dek: bytes,
    *,
    org_id: UUID | str,
    org_key_version: int,
    object_id: UUID | str,
    object_version: int,
) -> bytes:
    if wrapped_dek[:1] != _DEK_FORMAT or len(wrapped_dek) != 1 + NONCE_SIZE + KEY_SIZE + 16:
        raise UnwrapError("wrapped DEK is malformed")
    nonce, sealed = wrapped_dek[1 : 1 + NONCE_SIZE], wrapped_dek[1 + NONCE_SIZE :]
    aad = dek_context(org_id, org_key_version, object_id, object_version)
    try:
        return AESGCM(org_key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise UnwrapError(
            "wrapped DEK does not authenticate: it belongs to another object, version or organization, or was altered"
        ) from None


# -- crypto-shredding ----------------------------------------------------------------------------


class WrappedKeyStore(Protocol):
    """Where wrapped keys live (the Django models, later). Deleting rows must be durable on return."""

    def forget_object_keys(self, object_id: str) -> int: ...
    def has_object_keys(self, object_id: str) -> bool: ...
    def forget_org_keys(self, org_id: str) -> int: ...
    def has_org_keys(self, org_id: str) -> bool: ...


def shred_object(store: WrappedKeyStore, object_id: UUID | str) -> int:
    """Destroy every wrapped DEK of every version of an object; its ciphertext is then noise.

    Returns how many wrapped keys were destroyed. Backups holding the wrapped DEKs must age out
    too: the retention app owns that.
    """
    count = store.forget_object_keys(str(object_id))
    if store.has_object_keys(str(object_id)):
        raise KeyProviderError(f"wrapped keys of object {object_id} survived destruction")
    return count


def shred_organization(store: WrappedKeyStore, org_id: UUID | str) -> int:
    """Destroy every wrapped key of an organization; all of its objects become unreadable at once."""
    count = store.forget_org_keys(str(org_id))
    if store.has_org_keys(str(org_id)):
        raise KeyProviderError(f"wrapped keys of organization {org_id} survived destruction")
    return count


class InMemoryKeyStore:
    """A WrappedKeyStore in a dict: the reference behaviour for tests and one-off tools."""

    def __init__(self) -> None:
        self.org_keys: dict[tuple[str, int], WrappedKey] = {}
        self.deks: dict[tuple[str, int], tuple[str, int, bytes]] = {}  # (object, version) -> (org, org ver, wrapped)

    def forget_object_keys(self, object_id: str) -> int:
        doomed = [k for k in self.deks if k[0] == object_id]
        for k in doomed:
            del self.deks[k]
        return len(doomed)

    def has_object_keys(self, object_id: str) -> bool:
        return any(k[0] == object_id for k in self.deks)

    def forget_org_keys(self, org_id: str) -> int:
        doomed = [k for k in self.org_keys if k[0] == org_id]
        for k in doomed:
            del self.org_keys[k]
        deks = [k for k, v in self.deks.items() if v[0] == org_id]
        for k in deks:
            del self.deks[k]
        return len(doomed) + len(deks)

    def has_org_keys(self, org_id: str) -> bool:
        return any(k[0] == org_id for k in self.org_keys) or any(v[0] == org_id for v in self.deks.values())
