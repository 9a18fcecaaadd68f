"""The key export: the installation's keys under a passphrase (scrypt + AES-256-GCM); nothing of
it opens without the passphrase, and nothing of it can be changed unnoticed."""

from __future__ import annotations

import json

import pytest

from casebridge.vault.keyexport import ExportedKeys, KeyExportError, open_sealed, seal

KEYS = ExportedKeys(
    keyring={"format": 1, "secrets": [{"id": "s1", "material": "c2VjcmV0"}], "signing": []},
    kek={"format": 1, "key_id": "local-kek", "versions": [{"version": "1", "material": "a2Vr"}]},
    secret_key="django-secret",
    provider_url="local:",
)
PASSPHRASE = "correct horse battery staple"


def test_the_keys_come_back_with_the_passphrase_and_are_not_readable_in_the_file() -> None:
    sealed = seal(KEYS, PASSPHRASE)
    assert open_sealed(sealed, PASSPHRASE) == KEYS
    assert b"c2VjcmV0" not in sealed and b"django-secret" not in sealed and b"a2Vr" not in sealed


def test_a_wrong_passphrase_opens_nothing() -> None:
    with pytest.raises(KeyExportError, match="wrong passphrase"):
        open_sealed(seal(KEYS, PASSPHRASE), PASSPHRASE + "!")


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(KeyExportError, match="at least 12"):
        seal(KEYS, "short")


@pytest.mark.parametrize("field", ["ciphertext", "provider", "created"])
def test_any_change_to_the_file_is_detected(field: str) -> None:
    document = json.loads(seal(KEYS, PASSPHRASE))
    if field == "ciphertext":
        raw = bytearray(document["ciphertext"].encode())
        raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
        document["ciphertext"] = raw.decode()
    else:
        document[field] = "changed"
    with pytest.raises(KeyExportError):
        open_sealed(json.dumps(document).encode(), PASSPHRASE)


def test_a_crafted_file_cannot_ask_for_unbounded_work() -> None:
    document = json.loads(seal(KEYS, PASSPHRASE))
    document["kdf"]["n"] = 1 << 30
    with pytest.raises(KeyExportError, match="out of range"):
        open_sealed(json.dumps(document).encode(), PASSPHRASE)
    with pytest.raises(KeyExportError, match=r"not a CaseBridge key export|damaged"):
        open_sealed(b"{}", PASSPHRASE)
