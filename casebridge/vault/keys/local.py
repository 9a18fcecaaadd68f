"""The local KEK file: the embedded default key provider, kept beside the keyring under CASEBRIDGE_HOME/keys."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casebridge.vault.keys.base import (
    Context,
    KeyProvider,
    KeyProviderError,
    UnwrapError,
    WrappedKey,
    canonical_context,
)

FORMAT = 1
NONCE_SIZE = 12


class LocalKeyProvider(KeyProvider):
    """KEK versions in a 0600 JSON file (a sibling of keyring.json, not inside it: the keyring's
    own secrets rotate on a different schedule and are cached by other apps).

        {"format": 1, "key_id": "local-kek",
         "versions": [{"version": "1", "material": "<base64 32 bytes>", "created": "<iso>"}]}

    Wrapping is AES-256-GCM with a random 96-bit nonce; the associated data is the KEK id, its
    version and the canonical context, so a wrapped key cannot be replayed under another context.
    Random nonces bound a KEK version to ~2**32 wraps; only organization keys are wrapped here
    (DEKs are wrapped under organization keys), so that bound is far away.
    """

    name = "local"

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise KeyProviderError(
                    f"local KEK file {self.path} is missing; without it no stored file can be decrypted "
                    "(restore it from backup, or start with create enabled on a new installation)"
                )
            self._write_new()
        self._data = self._load()

    # -- file handling ------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except OSError as exc:
            raise KeyProviderError(f"local KEK file {self.path} cannot be read: {exc}") from exc
        except ValueError as exc:
            raise KeyProviderError(f"local KEK file {self.path} is damaged: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("versions"):
            raise KeyProviderError(f"{self.path} is not a CaseBridge KEK file (format {FORMAT})")
        for entry in data["versions"]:
            if len(base64.b64decode(entry["material"])) != 32:
                raise KeyProviderError(f"local KEK file {self.path} has a damaged version {entry.get('version')!r}")
        return data

    def _write_new(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        data = {"format": FORMAT, "key_id": "local-kek", "versions": [_new_version("1")]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        _write_private(tmp, data)
        try:
            # link() refuses to replace: if another process created the file first, keep theirs.
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        _fsync_dir(self.path.parent)

    # -- KeyProvider --------------------------------------------------------------------------
    @property
    def key_id(self) -> str:
        return str(self._data["key_id"])

    def versions(self) -> list[str]:
        return [str(entry["version"]) for entry in self._data["versions"]]

    def _material(self, version: str) -> bytes:
        for entry in self._data["versions"]:
            if entry["version"] == version:
                return base64.b64decode(entry["material"])
        # Another process may have rotated since we loaded the file.
        self._data = self._load()
        for entry in self._data["versions"]:
            if entry["version"] == version:
                return base64.b64decode(entry["material"])
        raise UnwrapError(f"local KEK {self.key_id} has no version {version!r} (retired or from another installation)")

    def _aad(self, version: str, context: Context) -> bytes:
        return f"{self.key_id}\x00{version}\x00".encode() + canonical_context(context)

    def wrap(self, plaintext_key: bytes, context: Context) -> WrappedKey:
        version = self.current_version()
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(self._material(version)).encrypt(nonce, plaintext_key, self._aad(version, context))
        return WrappedKey(self.name, self.key_id, version, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, context: Context) -> bytes:
        self._check_ours(wrapped)
        aead = AESGCM(self._material(wrapped.version))
        data = wrapped.ciphertext
        try:
            return aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], self._aad(wrapped.version, context))
        except InvalidTag:
            raise UnwrapError("wrapped key does not authenticate: wrong context or tampered") from None

    def rotate(self) -> str:
        with self._locked():
            data = self._load()
            version = str(max(int(v["version"]) for v in data["versions"]) + 1)
            data["versions"].append(_new_version(version))
            self._replace(data)
        self._data = data
        return version

    def retire(self, version: str) -> None:
        """Forget a KEK version. The caller must first have re-wrapped everything it wrapped."""
        with self._locked():
            data = self._load()
            remaining = [v for v in data["versions"] if v["version"] != version]
            if len(remaining) == len(data["versions"]):
                raise KeyProviderError(f"local KEK {self.key_id} has no version {version!r}")
            if not remaining or data["versions"][-1]["version"] == version:
                raise KeyProviderError("the current KEK version cannot be retired; rotate first")
            data["versions"] = remaining
            self._replace(data)
        self._data = data

    def _locked(self) -> _FileLock:
        return _FileLock(self.path.with_name(f".{self.path.name}.lock"))

    def _replace(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        _write_private(tmp, data)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


def _new_version(version: str) -> dict[str, str]:
    return {
        "version": version,
        "material": base64.b64encode(secrets.token_bytes(32)).decode(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileLock:
    """An exclusive flock so two processes rotating at once cannot lose a version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
