"""The key-provider interface: wrapping data keys under a key-encryption key (KEK) held elsewhere."""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

Context = Mapping[str, str]
"""What a wrapped key is bound to (e.g. {"org": "<uuid>"}); unwrapping under another context fails."""


class KeyProviderError(RuntimeError):
    """The provider is misconfigured or unreachable, or the key it names does not exist."""


class UnwrapError(KeyProviderError):
    """A wrapped key could not be unwrapped: wrong context, unknown or retired KEK version, or tampering."""


def canonical_context(context: Context) -> bytes:
    """A single byte string for a context, independent of dict order, used as associated data."""
    for name, value in context.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("key context names and values must be strings")
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class WrappedKey:
    """A key encrypted under one version of a provider's KEK; safe to store next to the data."""

    provider: str  # "local", "pkcs11", "awskms"
    key_id: str  # which KEK (keyring, HSM object label, KMS key or alias)
    version: str  # which version of that KEK
    ciphertext: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "provider": self.provider,
                "key_id": self.key_id,
                "version": self.version,
                "ciphertext": base64.b64encode(self.ciphertext).decode(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> WrappedKey:
        try:
            data = json.loads(text)
            return cls(data["provider"], data["key_id"], data["version"], base64.b64decode(data["ciphertext"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise UnwrapError(f"stored wrapped key is malformed: {exc}") from exc


class KeyProvider(ABC):
    """Holds a KEK with numbered versions; wraps with the newest, unwraps with any still present.

    Implementations check at construction that the configured key exists and is usable, so a
    misconfigured server fails at start rather than on the first upload.
    """

    name: str

    @property
    @abstractmethod
    def key_id(self) -> str: ...

    @abstractmethod
    def versions(self) -> list[str]:
        """Every KEK version that can still unwrap, oldest first; the last one wraps."""

    def current_version(self) -> str:
        return self.versions()[-1]

    @abstractmethod
    def wrap(self, plaintext_key: bytes, context: Context) -> WrappedKey: ...

    @abstractmethod
    def unwrap(self, wrapped: WrappedKey, context: Context) -> bytes: ...

    @abstractmethod
    def rotate(self) -> str:
        """Create a new KEK version and make it current; returns its version. Old versions stay."""

    def close(self) -> None:  # noqa: B027 - providers without sessions have nothing to release
        """Release sessions or connections."""

    def _check_ours(self, wrapped: WrappedKey) -> None:
        if wrapped.provider != self.name or wrapped.key_id != self.key_id:
            raise UnwrapError(
                f"key was wrapped by {wrapped.provider}:{wrapped.key_id}, "
                f"but this provider is {self.name}:{self.key_id}"
            )
