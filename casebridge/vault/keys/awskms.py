"""The AWS KMS key provider: wrapping happens inside KMS, bound to the context as its EncryptionContext."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from casebridge.vault.keys.base import Context, KeyProvider, KeyProviderError, UnwrapError, WrappedKey

KEK_TAG = "casebridge:kek"


class AwsKmsKeyProvider(KeyProvider):
    """The KEK is a symmetric KMS key named by an alias (recommended) or a key id/ARN.

    A version is the ARN of the KMS key that did the wrapping (KMS reports it on Encrypt), and
    unwrapping names that key explicitly, as AWS advises. rotate() follows AWS's manual-rotation
    pattern: create a new key, tag it and the old one, and point the alias at the new one; older
    keys stay enabled so everything wrapped under them still unwraps until the keys are re-wrapped
    and the old KMS key is retired. (KMS's own automatic rotation also works and is invisible here.)
    """

    name = "awskms"

    def __init__(self, key: str, *, region: str | None = None, endpoint: str | None = None) -> None:
        self._key = key
        try:
            self._kms: Any = boto3.client("kms", region_name=region, endpoint_url=endpoint)
            meta = self._kms.describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NotFoundException":
                raise KeyProviderError(f"KMS key {key!r} does not exist in region {region or 'default'}") from None
            raise KeyProviderError(f"KMS key {key!r} cannot be used: {code} {exc}") from exc
        except BotoCoreError as exc:
            raise KeyProviderError(f"KMS is not reachable for key {key!r}: {exc}") from exc
        if meta.get("KeyState") != "Enabled":
            raise KeyProviderError(f"KMS key {key!r} is {meta.get('KeyState')}, not Enabled")
        # AWS always reports both fields; some emulators omit them, so only a present mismatch counts.
        if meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT" or meta.get("KeySpec", "SYMMETRIC_DEFAULT") != (
            "SYMMETRIC_DEFAULT"
        ):
            raise KeyProviderError(f"KMS key {key!r} is not a symmetric encryption key")

    @classmethod
    def from_url(cls, url: str) -> AwsKmsKeyProvider:
        """awskms:alias/casebridge?region=eu-west-1[&endpoint=https://kms.example]"""
        rest = url.removeprefix("awskms:").removeprefix("//")
        key, _, query = rest.partition("?")
        if not key:
            raise KeyProviderError("awskms: URL names no key (awskms:alias/NAME or awskms:arn:aws:kms:...)")
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        return cls(key, region=params.get("region"), endpoint=params.get("endpoint"))

    @property
    def key_id(self) -> str:
        return self._key

    def current_version(self) -> str:
        return str(self._kms.describe_key(KeyId=self._key)["KeyMetadata"]["Arn"])

    def versions(self) -> list[str]:
        current = self.current_version()
        tagged: list[tuple[Any, str]] = []
        # Only rotate() creates tagged keys, and only administrators call versions(): a full listing is fine.
        for page in self._kms.get_paginator("list_keys").paginate():
            for entry in page["Keys"]:
                tags = self._kms.list_resource_tags(KeyId=entry["KeyId"]).get("Tags", [])
                if any(t["TagKey"] == KEK_TAG and t["TagValue"] == self._key for t in tags):
                    meta = self._kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
                    if meta["KeyState"] == "Enabled" and meta["Arn"] != current:
                        tagged.append((meta["CreationDate"], meta["Arn"]))
        return [arn for _, arn in sorted(tagged)] + [current]

    def wrap(self, plaintext_key: bytes, context: Context) -> WrappedKey:
        try:
            result = self._kms.encrypt(KeyId=self._key, Plaintext=plaintext_key, EncryptionContext=dict(context))
        except (ClientError, BotoCoreError) as exc:
            raise KeyProviderError(f"KMS refused to wrap under {self._key!r}: {exc}") from exc
        return WrappedKey(self.name, self.key_id, str(result["KeyId"]), bytes(result["CiphertextBlob"]))

    def unwrap(self, wrapped: WrappedKey, context: Context) -> bytes:
        self._check_ours(wrapped)
        try:
            result = self._kms.decrypt(
                CiphertextBlob=wrapped.ciphertext, KeyId=wrapped.version, EncryptionContext=dict(context)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise UnwrapError("wrapped key does not authenticate: wrong context or tampered") from None
            raise UnwrapError(f"KMS could not unwrap with {wrapped.version}: {code} {exc}") from exc
        except BotoCoreError as exc:
            raise KeyProviderError(f"KMS is not reachable: {exc}") from exc
        return bytes(result["Plaintext"])

    def rotate(self) -> str:
        if not self._key.startswith("alias/"):
            raise KeyProviderError(
                f"CaseBridge rotates KMS keys through an alias; {self._key!r} is a key id. "
                "Configure awskms:alias/NAME, or enable KMS automatic rotation on the key instead."
            )
        old = self.current_version()
        self._kms.tag_resource(KeyId=old, Tags=[{"TagKey": KEK_TAG, "TagValue": self._key}])
        new = self._kms.create_key(
            Description=f"CaseBridge key-encryption key ({self._key})",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[{"TagKey": KEK_TAG, "TagValue": self._key}],
        )["KeyMetadata"]
        self._kms.update_alias(AliasName=self._key, TargetKeyId=new["KeyId"])
        return str(new["Arn"])
