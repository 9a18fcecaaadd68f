"""Vault records: wrapped organization keys, stored objects and their versions, tus uploads.

Ciphertext lives in the blob store under random names; these rows hold only what is needed to
find and decrypt it (wrapped keys, sizes, digests). Destroying the wrapped keys destroys the data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casebridge.core.models import BaseModel


class OrgKey(models.Model):
    """An organization's data key, wrapped by the key provider's KEK (never stored in clear)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="vault_keys")
    version = models.PositiveIntegerField()
    wrapped = models.TextField()  # WrappedKey.to_json()
    kek_version = models.CharField(max_length=200, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "version"], name="vault_orgkey_unique")]

    def __str__(self) -> str:
        return f"org key v{self.version} of {self.organization_id}"


class StoredObject(BaseModel):
    """A file: one or more encrypted versions, owned by the uploader's organization."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="stored_objects")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_service = models.ForeignKey(
        "accounts.ServiceAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_type = models.CharField(max_length=16)
    mime_type = models.CharField(max_length=100)
    extension = models.CharField(max_length=10)
    current_version = models.PositiveIntegerField(default=0)
    # Set once the object is attached to a case (cases issue); until then only its uploader sees it.
    attached_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"], name="vault_object_org_recent")]

    def __str__(self) -> str:
        return f"object {self.pk}"

    @property
    def is_destroyed(self) -> bool:
        return self.destroyed_at is not None

    def neutral_name(self, version: int | None = None) -> str:
        """A name that carries no patient data: never the uploaded file name."""
        suffix = f"_v{version}" if version and version > 1 else ""
        return f"file_{str(self.pk)[:8]}{suffix}.{self.extension}"


class ObjectVersion(models.Model):
    stored_object = models.ForeignKey(StoredObject, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    size = models.BigIntegerField()
    ciphertext_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    blob_name = models.CharField(max_length=200)
    org_key_version = models.PositiveIntegerField()
    # The DEK wrapped under the organization key; emptied when the object is destroyed.
    wrapped_dek = models.BinaryField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the malware scanner found this content clean. Empty: not scanned, because no scanner
    # was configured when it came in (or it came in before CaseBridge recorded the check).
    scanned_at = models.DateTimeField(null=True, blank=True)
    # What de-identification would remove from this content, by kind only, never a value
    # (deid/identifiers.py): {"present": [...], "removed_on_attach": [...]} or {"not_examined":
    # why}. Empty: not examined (a version made before CaseBridge recorded it, or not attached).
    identifiers = models.JSONField(null=True, blank=True)
    # An extent: content that is [base_offset, base_offset + size) of another version's plaintext
    # (one DICOM instance inside a CBCT's stored ZIP), kept nowhere else. Its blob, ciphertext
    # size, org key version and wrapped DEK are copies of the base's, so the checks made on every
    # version hold for it too; the content is decrypted with the base's associated data. Destroying
    # the base destroys its extents in the same transaction (vault.api.destroy_object), and
    # destroying an extent never deletes the base's blob.
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="extents")
    base_offset = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stored_object", "version"], name="vault_version_unique")]

    def __str__(self) -> str:
        return f"version {self.version} of {self.stored_object_id}"

    @property
    def is_extent(self) -> bool:
        return self.base_id is not None


class Upload(BaseModel):
    """A tus upload in progress: all its state is here and in the blob store, none in a process.

    Full ciphertext segments are staged as they arrive (kernel/staging.py); the plaintext of an
    unfinished trailing segment is kept encrypted (`tail`) so no plaintext ever reaches a disk.
    """

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by_service = models.ForeignKey(
        "accounts.ServiceAccount", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The object the ciphertext is bound to (associated data); new, or an existing one for a new version.
    object_id = models.UUIDField()
    object_version = models.PositiveIntegerField()
    is_new_object = models.BooleanField(default=True)
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    ciphertext_offset = models.BigIntegerField(default=0)
    header = models.BinaryField()
    tail = models.BinaryField(default=b"")
    # Object stores only: the size of the parts the ciphertext is staged in (0: a staging file).
    part_size = models.PositiveIntegerField(default=0)
    org_key_version = models.PositiveIntegerField()
    wrapped_dek = models.BinaryField()
    file_type = models.CharField(max_length=16, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # A short lease so that two requests never append to the same upload at once.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    # Which process holds the lease (kernel/holders.py): a lease whose holder is known to have died
    # (killed, restarted) is taken over at once instead of after it lapses.
    lease_holder = models.CharField(max_length=160, blank=True)

    def __str__(self) -> str:
        return f"upload {self.pk}"


class SpentTicket(models.Model):
    """A download ticket a transfer server honoured: its id is refused from then on, by every
    transfer server and after any restart. Kept a while past the ticket's own expiry, then purged
    (vault/transfer.redeem_ticket)."""

    id = models.CharField(primary_key=True, max_length=32)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"spent ticket {self.id}"
