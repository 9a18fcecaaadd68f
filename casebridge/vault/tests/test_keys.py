"""Key providers (local file, PKCS#11 on SoftHSM2, AWS KMS on moto) and the key hierarchy."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from casebridge.vault.keys import KeyProvider, KeyProviderError, UnwrapError, WrappedKey, provider_from_url
from casebridge.vault.keys.hierarchy import (
    InMemoryKeyStore,
    create_org_key,
    generate_dek,
    open_org_key,
    rewrap_org_key,
    shred_object,
    shred_organization,
    unwrap_dek,
    wrap_dek,
)
from casebridge.vault.keys.local import LocalKeyProvider

CONTEXT = {"org": "7f1c0f56-6b43-4df4-9d0b-6f4f1e0a9a11", "purpose": "test"}


# -- one contract, three providers -----------------------------------------------------------


def local_provider(tmp_path: Path) -> KeyProvider:
    return provider_from_url(f"local:{tmp_path / 'keys' / 'vault-kek.json'}", create=True)


def pkcs11_provider(softhsm: dict[str, str]) -> KeyProvider:
    label = f"kek-{uuid.uuid4().hex[:8]}"  # one KEK per test on the shared token
    uri = f"pkcs11:token={softhsm['token']};object={label}?module-path={softhsm['module']}&pin-value={softhsm['pin']}"
    return provider_from_url(uri, create=True)


def kms_provider(endpoint: str) -> KeyProvider:
    kms = boto3.client("kms", endpoint_url=endpoint)
    alias = f"alias/casebridge-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    return provider_from_url(f"awskms:{alias}?region=us-east-1&endpoint={endpoint}")


@pytest.fixture(params=["local", "pkcs11_softhsm2", "awskms_moto_server_over_http_loopback"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyProvider]:
    if request.param == "local":
        made = local_provider(tmp_path)
    elif request.param == "pkcs11_softhsm2":
        made = pkcs11_provider(request.getfixturevalue("softhsm"))
    else:
        made = kms_provider(request.getfixturevalue("moto_endpoint"))
    yield made
    made.close()


def test_wrap_unwrap_round_trips(provider: KeyProvider) -> None:
    dek = generate_dek()
    wrapped = provider.wrap(dek, CONTEXT)
    assert dek not in wrapped.ciphertext
    assert wrapped.provider == provider.name and wrapped.key_id == provider.key_id
    assert wrapped.version == provider.current_version()
    assert provider.unwrap(WrappedKey.from_json(wrapped.to_json()), CONTEXT) == dek


def test_unwrap_under_another_context_fails(provider: KeyProvider) -> None:
    wrapped = provider.wrap(generate_dek(), CONTEXT)
    with pytest.raises(UnwrapError):
        provider.unwrap(wrapped, {**CONTEXT, "org": "someone-else"})


def test_tampered_wrapped_key_fails(provider: KeyProvider) -> None:
    wrapped = provider.wrap(generate_dek(), CONTEXT)
    data = bytearray(wrapped.ciphertext)
    data[-1] ^= 1
    with pytest.raises(UnwrapError):
        provider.unwrap(WrappedKey(wrapped.provider, wrapped.key_id, wrapped.version, bytes(data)), CONTEXT)


def test_rotation_makes_a_new_version_and_old_wraps_still_open(provider: KeyProvider) -> None:
    dek = generate_dek()
    before = provider.wrap(dek, CONTEXT)
    new_version = provider.rotate()
    assert new_version != before.version
    assert provider.current_version() == new_version
    assert provider.versions() == [before.version, new_version]
    after = provider.wrap(dek, CONTEXT)
    assert after.version == new_version
    assert provider.unwrap(before, CONTEXT) == dek
    assert provider.unwrap(after, CONTEXT) == dek


def test_a_key_from_another_provider_is_refused_clearly(provider: KeyProvider) -> None:
    wrapped = provider.wrap(generate_dek(), CONTEXT)
    foreign = WrappedKey("elsewhere", "other-kek", wrapped.version, wrapped.ciphertext)
    with pytest.raises(UnwrapError, match="wrapped by elsewhere:other-kek"):
        provider.unwrap(foreign, CONTEXT)


# -- local provider -----------------------------------------------------------------------------


def test_local_kek_file_is_private(tmp_path: Path) -> None:
    local_provider(tmp_path)
    path = tmp_path / "keys" / "vault-kek.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_local_missing_kek_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderError, match="is missing"):
        provider_from_url(f"local:{tmp_path / 'nope.json'}")


def test_local_damaged_kek_file_fails_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    path.write_text("{not json")
    with pytest.raises(KeyProviderError, match="damaged"):
        LocalKeyProvider(path)


def test_local_rotation_is_seen_by_other_processes_and_retire_forgets(tmp_path: Path) -> None:
    first = local_provider(tmp_path)
    second = LocalKeyProvider(tmp_path / "keys" / "vault-kek.json")
    old = first.wrap(b"k" * 32, CONTEXT)
    assert isinstance(first, LocalKeyProvider)
    first.rotate()
    newer = first.wrap(b"k" * 32, CONTEXT)
    assert second.unwrap(newer, CONTEXT) == b"k" * 32  # reloads the file for the unknown version
    first.retire(old.version)
    with pytest.raises(UnwrapError, match="no version"):
        LocalKeyProvider(first.path).unwrap(old, CONTEXT)
    with pytest.raises(KeyProviderError, match="current"):
        first.retire(first.current_version())


def test_default_local_kek_lives_beside_the_keyring(settings: object) -> None:
    from django.conf import settings as conf

    from casebridge.vault.keys import default_local_kek_path

    assert default_local_kek_path().parent == Path(conf.KEYRING_PATH).parent


# -- PKCS#11 and KMS construction errors --------------------------------------------------------


def test_pkcs11_missing_key_fails_at_construction(softhsm: dict[str, str]) -> None:
    uri = f"pkcs11:token={softhsm['token']};object=absent?module-path={softhsm['module']}&pin-value={softhsm['pin']}"
    with pytest.raises(KeyProviderError, match="holds no AES key labelled 'absent'"):
        provider_from_url(uri)


def test_pkcs11_wrong_token_or_pin_fails_at_construction(softhsm: dict[str, str]) -> None:
    base = f"module-path={softhsm['module']}"
    with pytest.raises(KeyProviderError, match="not found"):
        provider_from_url(f"pkcs11:token=nope;object=k?{base}&pin-value={softhsm['pin']}")
    with pytest.raises(KeyProviderError, match="cannot open"):
        provider_from_url(f"pkcs11:token={softhsm['token']};object=k?{base}&pin-value=000000")


def test_pkcs11_kek_is_not_extractable(softhsm: dict[str, str]) -> None:
    from pkcs11 import Attribute

    made = pkcs11_provider(softhsm)
    key = made._key(made.current_version())  # type: ignore[attr-defined]
    assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
    made.close()


def test_awskms_missing_key_fails_at_construction_moto_server(moto_endpoint: str) -> None:
    with pytest.raises(KeyProviderError, match="does not exist"):
        provider_from_url(f"awskms:alias/absent?region=us-east-1&endpoint={moto_endpoint}")


def test_awskms_disabled_key_fails_at_construction_moto_server(moto_endpoint: str) -> None:
    kms = boto3.client("kms", endpoint_url=moto_endpoint)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    with pytest.raises(KeyProviderError, match="Disabled"):
        provider_from_url(f"awskms:{key}?region=us-east-1&endpoint={moto_endpoint}")


def test_awskms_rotation_needs_an_alias_moto_server(moto_endpoint: str) -> None:
    kms = boto3.client("kms", endpoint_url=moto_endpoint)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    made = provider_from_url(f"awskms:{key}?region=us-east-1&endpoint={moto_endpoint}")
    with pytest.raises(KeyProviderError, match="alias"):
        made.rotate()


def test_unknown_provider_scheme_is_refused() -> None:
    with pytest.raises(KeyProviderError, match="unknown key provider"):
        provider_from_url("vault:secret/kek")


# -- hierarchy and crypto-shredding -------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> KeyProvider:
    return local_provider(tmp_path)


def test_hierarchy_round_trip_and_kek_rotation_touches_only_org_keys(local: KeyProvider) -> None:
    org, obj = uuid.uuid4(), uuid.uuid4()
    org_key, wrapped_org = create_org_key(local, org)
    dek = generate_dek()
    wrapped_dek = wrap_dek(org_key, dek, org_id=org, org_key_version=1, object_id=obj, object_version=1)

    local.rotate()
    rewrapped = rewrap_org_key(local, wrapped_org, org, 1)
    assert rewrapped.version == local.current_version() != wrapped_org.version
    assert rewrap_org_key(local, rewrapped, org, 1) is rewrapped  # idempotent: safe to resume

    reopened = open_org_key(local, rewrapped, org, 1)
    assert unwrap_dek(reopened, wrapped_dek, org_id=org, org_key_version=1, object_id=obj, object_version=1) == dek


def test_wrapped_dek_is_bound_to_its_object_and_version(local: KeyProvider) -> None:
    org, obj = uuid.uuid4(), uuid.uuid4()
    org_key, _ = create_org_key(local, org)
    wrapped = wrap_dek(org_key, generate_dek(), org_id=org, org_key_version=1, object_id=obj, object_version=1)
    for kwargs in (
        {"org_id": org, "org_key_version": 1, "object_id": obj, "object_version": 2},
        {"org_id": org, "org_key_version": 1, "object_id": uuid.uuid4(), "object_version": 1},
        {"org_id": uuid.uuid4(), "org_key_version": 1, "object_id": obj, "object_version": 1},
    ):
        with pytest.raises(UnwrapError):
            unwrap_dek(org_key, wrapped, **kwargs)  # type: ignore[arg-type]


def test_org_key_cannot_be_opened_as_another_organization(local: KeyProvider) -> None:
    _, wrapped = create_org_key(local, "org-a")
    with pytest.raises(UnwrapError):
        open_org_key(local, wrapped, "org-b", 1)


def test_shredding_forgets_wrapped_keys(local: KeyProvider) -> None:
    store = InMemoryKeyStore()
    org_key, wrapped_org = create_org_key(local, "org-a")
    store.org_keys[("org-a", 1)] = wrapped_org
    for obj in ("o1", "o2"):
        for version in (1, 2):
            wrapped = wrap_dek(
                org_key, generate_dek(), org_id="org-a", org_key_version=1, object_id=obj, object_version=version
            )
            store.deks[(obj, version)] = ("org-a", 1, wrapped)
    assert shred_object(store, "o1") == 2
    assert not store.has_object_keys("o1") and store.has_object_keys("o2")
    assert shred_organization(store, "org-a") == 3
    assert store.org_keys == {} and store.deks == {}
