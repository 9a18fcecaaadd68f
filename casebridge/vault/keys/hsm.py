"""The PKCS#11 key provider: KEK versions are non-extractable AES keys inside a hardware security module."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.mechanisms import GCMParams

from casebridge.vault.keys.base import (
    Context,
    KeyProvider,
    KeyProviderError,
    UnwrapError,
    WrappedKey,
    canonical_context,
)

NONCE_SIZE = 12


def parse_pkcs11_uri(uri: str) -> dict[str, str]:
    """The RFC 7512 attributes CaseBridge uses: token, object, module-path, pin-value, pin-source."""
    if not uri.startswith("pkcs11:"):
        raise KeyProviderError(f"not a PKCS#11 URI: {uri!r}")
    path, _, query = uri[len("pkcs11:") :].partition("?")
    attrs: dict[str, str] = {}
    for part in [p for p in path.split(";") if p] + [q for q in query.split("&") if q]:
        name, sep, value = part.partition("=")
        if not sep:
            raise KeyProviderError(f"PKCS#11 URI attribute {name!r} has no value")
        attrs[name] = unquote(value)
    return attrs


class PKCS11KeyProvider(KeyProvider):
    """Each KEK version is an AES-256 secret key object on the token with the configured label and
    CKA_ID = version number; it is generated inside the token as sensitive and non-extractable.

    Wrapping is CKM_AES_GCM inside the HSM with a fresh 96-bit nonce and the KEK label, version and
    canonical context as associated data; the stored ciphertext is nonce || GCM output.
    """

    name = "pkcs11"

    def __init__(self, module_path: str, token_label: str, key_label: str, pin: str, *, create: bool = False) -> None:
        if not Path(module_path).is_file():
            raise KeyProviderError(f"PKCS#11 module {module_path} does not exist")
        self._label = key_label
        self._lock = threading.Lock()  # a PKCS#11 session must not be used by two threads at once
        try:
            self._lib = pkcs11.lib(module_path)
            token = self._lib.get_token(token_label=token_label)
            self._session: Any = token.open(user_pin=pin, rw=True)
        except pkcs11.NoSuchToken:
            raise KeyProviderError(f"PKCS#11 token {token_label!r} not found in {module_path}") from None
        except PKCS11Error as exc:
            raise KeyProviderError(f"cannot open PKCS#11 token {token_label!r}: {type(exc).__name__} {exc}") from exc
        if not self._keys():
            if not create:
                self.close()
                raise KeyProviderError(
                    f"PKCS#11 token {token_label!r} holds no AES key labelled {key_label!r}; "
                    "create the first KEK version with `casebridge keys rotate` or the HSM's own tools"
                )
            self.rotate()

    @classmethod
    def from_uri(cls, uri: str, *, create: bool = False) -> PKCS11KeyProvider:
        attrs = parse_pkcs11_uri(uri)
        missing = [name for name in ("token", "object", "module-path") if name not in attrs]
        if missing:
            raise KeyProviderError(f"PKCS#11 URI lacks {', '.join(missing)}")
        if "pin-value" in attrs:
            pin = attrs["pin-value"]
        elif "pin-source" in attrs:
            source = attrs["pin-source"].removeprefix("file:")
            try:
                pin = Path(source).read_text().strip()
            except OSError as exc:
                raise KeyProviderError(f"PKCS#11 PIN file {source} cannot be read: {exc}") from exc
        else:
            raise KeyProviderError("PKCS#11 URI needs pin-source=file:/path (or pin-value for tests)")
        return cls(attrs["module-path"], attrs["token"], attrs["object"], pin, create=create)

    def _keys(self) -> dict[str, Any]:
        with self._lock:
            found = self._session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.LABEL: self._label}
            )
            keys = {}
            for key in found:
                ident = bytes(key[Attribute.ID]).decode("ascii", "replace")
                if ident.isdigit():
                    keys[ident] = key
            return keys

    @property
    def key_id(self) -> str:
        return self._label

    def versions(self) -> list[str]:
        return sorted(self._keys(), key=int)

    def _key(self, version: str) -> Any:
        key = self._keys().get(version)
        if key is None:
            raise UnwrapError(f"PKCS#11 KEK {self._label!r} has no version {version!r}")
        return key

    def _aad(self, version: str, context: Context) -> bytes:
        return f"{self._label}\x00{version}\x00".encode() + canonical_context(context)

    def wrap(self, plaintext_key: bytes, context: Context) -> WrappedKey:
        version = self.current_version()
        key = self._key(version)
        nonce = os.urandom(NONCE_SIZE)
        params = GCMParams(nonce, self._aad(version, context), 128)
        with self._lock:
            sealed = key.encrypt(plaintext_key, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        return WrappedKey(self.name, self.key_id, version, nonce + bytes(sealed))

    def unwrap(self, wrapped: WrappedKey, context: Context) -> bytes:
        self._check_ours(wrapped)
        key = self._key(wrapped.version)
        nonce, sealed = wrapped.ciphertext[:NONCE_SIZE], wrapped.ciphertext[NONCE_SIZE:]
        params = GCMParams(nonce, self._aad(wrapped.version, context), 128)
        try:
            with self._lock:
                return bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params))
        except PKCS11Error:
            # Tokens report a failed tag as CKR_ENCRYPTED_DATA_INVALID (or similar): same meaning.
            raise UnwrapError("wrapped key does not authenticate: wrong context or tampered") from None

    def rotate(self) -> str:
        existing = self.versions()
        version = str(int(existing[-1]) + 1 if existing else 1)
        with self._lock:
            self._session.generate_key(
                KeyType.AES,
                256,
                label=self._label,
                id=version.encode(),
                store=True,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                },
            )
        return version

    def retire(self, version: str) -> None:
        """Destroy a KEK version on the token. The caller must first have re-wrapped its keys."""
        if version == self.current_version():
            raise KeyProviderError("the current KEK version cannot be retired; rotate first")
        key = self._key(version)
        with self._lock:
            key.destroy()

    def close(self) -> None:
        with self._lock:
            self._session.close()
