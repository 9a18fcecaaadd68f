"""The local keyring file: master secrets and signing keys kept apart from the data they protect.

Layout (JSON, mode 0600, under CASEBRIDGE_HOME/keys by default):

    {"format": 1,
     "secrets": [{"id": "s1", "material": "<base64 32 bytes>"}],     # newest last
     "signing": [{"id": "sig1", "private": "<base64 Ed25519 seed>"}]} # newest last

Purpose keys are derived from the newest secret with HKDF-SHA256 and labelled with its id, so a
new secret can be added (rotation) while data protected by older ones stays readable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = 1


class KeyringError(RuntimeError):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


class Keyring:
    def __init__(self, path: Path, data: dict) -> None:
        self.path = path
        self._data = data
        if data.get("format") != FORMAT or not data.get("secrets") or not data.get("signing"):
            raise KeyringError(f"{path} is not a CaseBridge keyring (format {FORMAT})")

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, *, create: bool) -> Keyring:
        try:
            raw = path.read_text()
        except FileNotFoundError:
            if not create:
                raise KeyringError(f"keyring {path} is missing; without it no stored secret can be read") from None
            return cls._create(path)
        except OSError as exc:
            raise KeyringError(f"keyring {path} cannot be read: {exc}") from exc
        try:
            return cls(path, json.loads(raw))
        except (ValueError, KeyError) as exc:
            raise KeyringError(f"keyring {path} is damaged: {exc}") from exc

    @classmethod
    def _create(cls, path: Path) -> Keyring:
        data = {
            "format": FORMAT,
            "secrets": [{"id": "s1", "material": _b64(secrets.token_bytes(32))}],
            "signing": [{"id": "sig1", "private": _b64(secrets.token_bytes(32))}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link() fails if another process created the keyring first: then use theirs.
            os.link(tmp, path)
        except FileExistsError:
            os.unlink(tmp)
            return cls.load(path, create=False)
        os.unlink(tmp)
        return cls(path, data)

    # -- derived symmetric keys ------------------------------------------------------------
    def secret_ids(self) -> list[str]:
        return [entry["id"] for entry in self._data["secrets"]]

    def current_secret_id(self) -> str:
        return str(self._data["secrets"][-1]["id"])

    def derive(self, purpose: str, secret_id: str | None = None, length: int = 32) -> bytes:
        wanted = secret_id or self.current_secret_id()
        for entry in self._data["secrets"]:
            if entry["id"] == wanted:
                hkdf = HKDF(
                    algorithm=hashes.SHA256(),
                    length=length,
                    salt=None,
                    info=f"casebridge/{purpose}".encode(),
                )
                return hkdf.derive(_unb64(entry["material"]))
        raise KeyringError(f"keyring {self.path} has no secret {wanted!r}")

    # -- signing ---------------------------------------------------------------------------
    def signing_key(self) -> SigningKey:
        entry = self._data["signing"][-1]
        return SigningKey(entry["id"], Ed25519PrivateKey.from_private_bytes(_unb64(entry["private"])))

    def verification_keys(self) -> dict[str, Ed25519PublicKey]:
        return {
            entry["id"]: Ed25519PrivateKey.from_private_bytes(_unb64(entry["private"])).public_key()
            for entry in self._data["signing"]
        }


_lock = threading.Lock()
_cache: dict[Path, Keyring] = {}


def get_keyring() -> Keyring:
    """The configured keyring, created on first use in the embedded default."""
    from django.conf import settings

    path = Path(settings.KEYRING_PATH)
    with _lock:
        ring = _cache.get(path)
        if ring is None:
            ring = Keyring.load(path, create=True)
            _cache[path] = ring
        return ring


def forget_loaded() -> None:
    """Drop the loaded keyrings, so the next use reads the file again (after a restore put one)."""
    with _lock:
        _cache.clear()
