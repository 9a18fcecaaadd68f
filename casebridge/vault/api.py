"""The vault's interface for every other app: store, read, list versions, destroy.

Callers get plaintext only as a stream of authenticated segments; every read is decided by the
access policy first and recorded by the caller's audit event.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import uuid4

from django.db import transaction
from django.utils import timezone

from casebridge.accounts.models import ServiceAccount, User
from casebridge.audit.api import record
from casebridge.vault import keystore
from casebridge.vault.config import blob_store
from casebridge.vault.crypto.streaming import associated_data, decrypt_range
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.pipeline import ChunkReader, seal_to_blob


class ObjectUnavailable(LookupError):
    """Destroyed, or never existed: nothing can be returned."""


def put_stream(
    *, organization: Any, actor: Any, chunks: Iterable[bytes], length: int, stored_object: StoredObject | None = None
) -> ObjectVersion:
    """Store content in one go (server-side producers: demo data, SFTP, tests)."""
    object_id = stored_object.pk if stored_object else uuid4()
    version_no = stored_object.current_version + 1 if stored_object else 1
    dek, wrapped, org_key_version = keystore.new_dek(organization.pk, object_id, version_no)
    blob_name = f"objects/{object_id}/v{version_no}-{secrets.token_hex(6)}"
    source = ChunkReader(chunks).readinto
    sealed = seal_to_blob(blob_store(), blob_name, dek, associated_data(object_id, version_no), source, length)
    kind = sealed.file_type
    with transaction.atomic():
        if stored_object is None:
            stored_object = StoredObject.objects.create(
                id=object_id,
                organization=organization,
                created_by=actor if isinstance(actor, User) else None,
                created_by_service=actor if isinstance(actor, ServiceAccount) else None,
                file_type=kind.name,
                mime_type=kind.mime_type,
                extension=kind.extension,
                current_version=1,
            )
        else:
            stored_object.current_version = version_no
            stored_object.save(update_fields=["current_version"])
        version = ObjectVersion.objects.create(
            stored_object=stored_object,
            version=version_no,
            size=length,
            ciphertext_size=sealed.ciphertext_size,
            sha256=sealed.sha256,
            blob_name=blob_name,
            org_key_version=org_key_version,
            wrapped_dek=wrapped,
            created_by=actor if isinstance(actor, User) else None,
            created_by_label=getattr(actor, "email", "") or getattr(actor, "audit_label", ""),
        )
        record(
            "file.uploaded" if version_no == 1 else "file.version_added",
            actor=actor,
            organization=organization,
            target=stored_object,
            details={"version": version_no, "size": length, "sha256": version.sha256, "type": kind.name},
        )
    return version


def get_version(stored_object: StoredObject, version: int | None = None) -> ObjectVersion:
    if stored_object.is_destroyed:
        raise ObjectUnavailable("destroyed")
    number = version or stored_object.current_version
    found = ObjectVersion.objects.filter(stored_object=stored_object, version=number).first()
    if found is None or not found.wrapped_dek:
        raise ObjectUnavailable("no such version")
    return found


def read_version(version: ObjectVersion, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
    """Authenticated plaintext of [start, end); reads only the segments that range spans.

    The segments are yielded from a reused buffer: consume each before asking for the next.
    """
    stored = version.stored_object
    if stored.is_destroyed or not version.wrapped_dek:
        raise ObjectUnavailable("destroyed")
    dek = keystore.version_dek(version, stored.organization_id)
    store = blob_store()
    name = version.blob_name
    return decrypt_range(
        lambda lo, hi: store.read_range(name, lo, hi),
        version.ciphertext_size,
        dek,
        associated_data(stored.pk, version.version),
        start,
        end,
        reuse_buffer=True,
    )


def destroy_object(
    stored_object: StoredObject,
    *,
    actor: Any,
    reason: str,
    record_in: Any = None,
    patient_ref: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Crypto-shred: wrapped DEKs first (the content is unrecoverable from then on), then the
    ciphertext; the destruction record names what was destroyed without any of its content. The
    caller says whose record the file was part of (`record_in`, `patient_ref`): the vault does
    not know cases. Who may destroy what is `access.policy.destroyable_files`."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to destroy a file")
    with transaction.atomic():
        locked = StoredObject.objects.select_for_update().get(pk=stored_object.pk)
        if locked.is_destroyed:
            return
        versions = list(locked.versions.order_by("version"))
        ObjectVersion.objects.filter(stored_object=locked).update(wrapped_dek=None)
        locked.destroyed_at = timezone.now()
        locked.save(update_fields=["destroyed_at"])
        record(
            "file.destroyed",
            actor=actor,
            organization=record_in or locked.organization_id,
            target=locked,
            patient_ref=patient_ref,
            details={
                "reason": reason,
                "versions": [{"version": v.version, "sha256": v.sha256, "size": v.size} for v in versions],
                **(details or {}),
            },
        )
    store = blob_store()
    for v in versions:
        store.delete(v.blob_name)
    stored_object.destroyed_at = locked.destroyed_at


def destroy_version(
    stored_object: StoredObject,
    version: int,
    *,
    actor: Any,
    reason: str,
    audit_action: str = "file.version_destroyed",
    details: dict[str, Any] | None = None,
) -> None:
    """Crypto-shred one earlier version (e.g. the original of a file cleaned on ingest): its
    wrapped DEK goes now, its ciphertext once the transaction commits, so a rollback never
    leaves a live row pointing at a deleted blob. The current version cannot go this way.

    `audit_action` names why, for whoever reads the log: a routine step (the original replaced by
    its cleaned copy) must not read like a deliberate destruction."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to destroy a version")
    with transaction.atomic():
        locked = StoredObject.objects.select_for_update().get(pk=stored_object.pk)
        if version == locked.current_version:
            raise ValueError("the current version is destroyed with the whole object (destroy_object)")
        target = ObjectVersion.objects.filter(stored_object=locked, version=version).first()
        if target is None:
            raise ObjectUnavailable("no such version")
        if not target.wrapped_dek:
            return
        ObjectVersion.objects.filter(pk=target.pk).update(wrapped_dek=None)
        record(
            audit_action,
            actor=actor,
            organization=locked.organization_id,
            target=locked,
            details={
                "version": version,
                "sha256": target.sha256,
                "size": target.size,
                "reason": reason,
                **(details or {}),
            },
        )
        blob_name = target.blob_name
        transaction.on_commit(lambda: blob_store().delete(blob_name))
