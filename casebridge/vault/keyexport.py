"""The installation's keys in one passphrase-protected file, kept apart from every backup.

A backup holds ciphertext and wrapped keys only; what unwraps them (the local key-encryption key
file, the keyring with the secrets and signing keys, Django's secret key) never travels with it.
`casebridge keys export FILE` writes them here, so that a stolen backup alone opens nothing and a
lost disk plus this file (and its passphrase) brings everything back.

File format (JSON):

    {"format": "casebridge-keys/1", "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1,
     "salt": "<b64>"}, "cipher": "AES-256-GCM", "nonce": "<b64>", "ciphertext": "<b64>",
     "created": "<iso>", "provider": "local"}

The plaintext is JSON: {"keyring": {...}, "kek": {...} or null, "secret_key": "...", "provider_url": "..."}.
The header (format, kdf, cipher, created, provider) is the associated data, so none of it can be
changed without the file failing to open. With an HSM or a KMS provider the key-encryption key is
not exportable: the file then carries the keyring and secret key, and says which provider the
restored installation must reach.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings
from django.utils import timezone

FORMAT = "casebridge-keys/1"
MIN_PASSPHRASE = 12
# scrypt with 128 MiB of memory: about half a second here, and as costly for anyone guessing.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1


class KeyExportError(ValueError):
    """The file cannot be written or opened; the message says why in the operator's words."""


@dataclass(frozen=True)
class ExportedKeys:
    keyring: dict[str, Any]
    kek: dict[str, Any] | None  # the local provider's KEK file; None with an HSM or KMS
    secret_key: str
    provider_url: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def current_keys() -> ExportedKeys:
    """What this installation needs besides a backup: read from CASEBRIDGE_HOME's key files."""
    from casebridge.vault.keyring import get_keyring
    from casebridge.vault.keys import default_local_kek_path

    keyring_path = Path(settings.KEYRING_PATH)
    get_keyring()  # made on first use: export what backups will be signed with, even before the first
    provider_url = str(settings.VAULT_KEY_PROVIDER)
    kek = None
    if provider_url.startswith("local:"):
        rest = provider_url.removeprefix("local:").removeprefix("//")
        kek_path = Path(rest) if rest else default_local_kek_path()
        if kek_path.exists():
            kek = json.loads(kek_path.read_text())
    return ExportedKeys(
        keyring=json.loads(keyring_path.read_text()),
        kek=kek,
        secret_key=str(settings.SECRET_KEY),
        provider_url=provider_url,
    )


def seal(keys: ExportedKeys, passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyExportError(f"the passphrase must be at least {MIN_PASSPHRASE} characters long")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "format": FORMAT,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": "AES-256-GCM",
        "created": timezone.now().isoformat(),
        "provider": keys.provider_url.partition(":")[0],
    }
    plaintext = json.dumps(
        {"keyring": keys.keyring, "kek": keys.kek, "secret_key": keys.secret_key, "provider_url": keys.provider_url}
    ).encode()
    ciphertext = AESGCM(_key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(
        nonce, plaintext, _header_bytes(header)
    )
    return json.dumps({**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}, indent=1).encode()


def open_sealed(data: bytes, passphrase: str) -> ExportedKeys:
    try:
        document = json.loads(data)
        header = {k: document[k] for k in ("format", "kdf", "cipher", "created", "provider")}
        kdf = header["kdf"]
        if header["format"] != FORMAT or kdf.get("name") != "scrypt" or header["cipher"] != "AES-256-GCM":
            raise KeyExportError(f"not a CaseBridge key export ({FORMAT})")
        # Bounded so that a crafted file cannot make the restore allocate gigabytes.
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        if not (1 << 14 <= n <= 1 << 20 and 1 <= r <= 16 and 1 <= p <= 4):
            raise KeyExportError("the key export's scrypt parameters are out of range")
        key = _key(passphrase, base64.b64decode(kdf["salt"]), n, r, p)
        plaintext = AESGCM(key).decrypt(
            base64.b64decode(document["nonce"]), base64.b64decode(document["ciphertext"]), _header_bytes(header)
        )
        keys = json.loads(plaintext)
        return ExportedKeys(keys["keyring"], keys["kek"], keys["secret_key"], keys["provider_url"])
    except InvalidTag:
        raise KeyExportError("wrong passphrase, or the key export was altered") from None
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, KeyExportError):
            raise
        raise KeyExportError("the key export is damaged or not a CaseBridge key export") from None


def install(keys: ExportedKeys) -> None:
    """Write the keys into this CASEBRIDGE_HOME (the restore's last step before first use)."""
    from casebridge.vault.keys import default_local_kek_path

    keyring_path = Path(settings.KEYRING_PATH)
    _write_private(keyring_path, json.dumps(keys.keyring).encode())
    if keys.kek is not None:
        _write_private(default_local_kek_path(), json.dumps(keys.kek).encode())
    _write_private(Path(settings.HOME) / "secret_key", keys.secret_key.encode())


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
