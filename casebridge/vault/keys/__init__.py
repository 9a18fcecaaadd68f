"""Key providers for envelope encryption, chosen by a URL: `local:`, `pkcs11:...`, `awskms:...`."""

from __future__ import annotations

from pathlib import Path

from casebridge.vault.keys.base import (
    Context,
    KeyProvider,
    KeyProviderError,
    UnwrapError,
    WrappedKey,
    canonical_context,
)

__all__ = [
    "Context",
    "KeyProvider",
    "KeyProviderError",
    "UnwrapError",
    "WrappedKey",
    "canonical_context",
    "default_local_kek_path",
    "provider_from_url",
]


def default_local_kek_path() -> Path:
    """Beside the keyring, under CASEBRIDGE_HOME/keys, apart from the blob store."""
    from django.conf import settings

    return Path(settings.KEYRING_PATH).parent / "vault-kek.json"


def provider_from_url(url: str, *, create: bool = False) -> KeyProvider:
    """The provider a configuration URL names; raises KeyProviderError with the reason if unusable.

    local:                      the KEK file beside the keyring (default)
    local:/abs/path/kek.json    an explicit KEK file
    pkcs11:token=T;object=O?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin
    awskms:alias/NAME?region=R[&endpoint=URL]

    `create` allows making the first KEK version when none exists (a fresh installation); a
    running installation passes False so that a lost key is an error, not a silent new key.
    """
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise KeyProviderError(f"key provider URL {url!r} has no scheme (local:, pkcs11:, awskms:)")
    if scheme == "local":
        from casebridge.vault.keys.local import LocalKeyProvider

        path = Path(rest.removeprefix("//")) if rest else default_local_kek_path()
        if not path.is_absolute():
            raise KeyProviderError(f"local KEK path must be absolute: {url!r}")
        return LocalKeyProvider(path, create=create)
    if scheme == "pkcs11":
        from casebridge.vault.keys.hsm import PKCS11KeyProvider

        return PKCS11KeyProvider.from_uri(url, create=create)
    if scheme == "awskms":
        from casebridge.vault.keys.awskms import AwsKmsKeyProvider

        return AwsKmsKeyProvider.from_url(url)
    raise KeyProviderError(f"unknown key provider {scheme!r} in {url!r} (local:, pkcs11:, awskms:)")
