"""The vault's interface for every other app: store, read, list versions, destroy.

Callers get plaintext only as a stream of authenticated segments; every read is decided by the
access policy first and recorded by the caller's audit event.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from django.db import transaction
from django.utils import timezone

from casebridge.accounts.models import ServiceAccount, User
from casebridge.audit.api import record, record_many
from casebridge.kernel.crypto.streaming import associated_data, decrypt_range
from casebridge.kernel.filetypes import FILE_TYPES_BY_NAME, version_type_refusal
from casebridge.kernel.pipeline import ChunkReader, Readinto, seal_to_blob, seal_unsized_to_blob
from casebridge.vault import keystore
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject


class ObjectUnavailable(LookupError):
    """Destroyed, or never existed: nothing can be returned."""


class MalwareFound(Exception):
    """The scanner found malware in content on its way in; the content was discarded."""

    def __init__(self, signature: str) -> None:
        super().__init__(f"the malware scanner found {signature}")
        self.signature = signature


class VersionRefused(Exception):
    """Content cannot become the next version of its file: the file was destroyed, another
    version came first (409), or the content is not of the file's type (415). Nothing was linked."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PendingVersion:
    """Content sealed for one version of one object and scanned, which nobody can see yet:
    `link_version` makes it the object's current version, `discard` removes it. Every version of
    every file, however it enters the vault (an upload, `put_stream`, metadata removal), is one
    of these first, and only `pending_version` makes them: so nothing becomes visible unscanned."""

    organization_id: UUID
    object_id: UUID
    version: int
    blob_name: str
    size: int
    ciphertext_size: int
    sha256: str
    file_type: str
    org_key_version: int
    wrapped_dek: bytes
    scanned_at: datetime | None = None  # when clamd found it clean; None: no scanner configured


def pending_version(**fields: Any) -> PendingVersion:
    """The sealed blob described by `fields`, once clamd (when configured) found it clean.

    Raises MalwareFound, or ScannerUnavailable (fail closed: unscanned content is never let
    through); the blob is deleted either way."""
    from casebridge.vault import scanning_gate

    pending = PendingVersion(**fields)
    checked = scanning_gate.enabled()
    try:
        verdict = scanning_gate.scan_blob(
            pending.organization_id,
            pending.object_id,
            pending.version,
            pending.org_key_version,
            pending.wrapped_dek,
            pending.blob_name,
            pending.ciphertext_size,
        )
    except BaseException:
        discard(pending)
        raise
    if verdict is not None:
        discard(pending)
        raise MalwareFound(verdict)
    return replace(pending, scanned_at=timezone.now()) if checked else pending


def seal_version(
    *,
    organization_id: UUID,
    object_id: UUID,
    version: int,
    chunks: Iterable[bytes],
    length: int,
    durable: bool = True,
    org_key: tuple[int, bytes] | None = None,
) -> PendingVersion:
    """Encrypt `length` bytes into a new blob for (`object_id`, `version`), then scan it.

    Heavy (it reads and writes the whole content): call it outside any transaction. With
    `durable=False` the blob is durable only after sync(): a caller sealing many small files
    makes them durable together before it links any of them; it may also pass the organization's
    current key (keystore.current_org_key) it looked up once for all of them."""
    dek, wrapped, org_key_version = keystore.new_dek(organization_id, object_id, version, org_key)
    blob_name = f"objects/{object_id}/v{version}-{secrets.token_hex(6)}"
    source = ChunkReader(chunks).readinto
    sealed = seal_to_blob(
        blob_store(), blob_name, dek, associated_data(object_id, version), source, length, durable=durable
    )
    return pending_version(
        organization_id=organization_id,
        object_id=object_id,
        version=version,
        blob_name=blob_name,
        size=length,
        ciphertext_size=sealed.ciphertext_size,
        sha256=sealed.sha256,
        file_type=sealed.file_type.name,
        org_key_version=org_key_version,
        wrapped_dek=wrapped,
    )


def seal_new_unsized(*, organization_id: UUID, source: Readinto, max_length: int) -> PendingVersion:
    """Encrypt content whose length is not known up front (a part of a multipart request body)
    as version 1 of a new object, then scan it: as seal_version, for a source read to its end.

    Raises kernel.pipeline.ContentTooLarge past `max_length` bytes and
    kernel.filetypes.UnsupportedFileType for content of no accepted type; nothing is kept then."""
    object_id = uuid4()
    dek, wrapped, org_key_version = keystore.new_dek(organization_id, object_id, 1)
    blob_name = f"objects/{object_id}/v1-{secrets.token_hex(6)}"
    sealed = seal_unsized_to_blob(blob_store(), blob_name, dek, associated_data(object_id, 1), source, max_length)
    return pending_version(
        organization_id=organization_id,
        object_id=object_id,
        version=1,
        blob_name=blob_name,
        size=sealed.size,
        ciphertext_size=sealed.ciphertext_size,
        sha256=sealed.sha256,
        file_type=sealed.file_type.name,
        org_key_version=org_key_version,
        wrapped_dek=wrapped,
    )


def discard(pending: PendingVersion) -> None:
    """Remove content that did not become a version (idempotent)."""
    blob_store().delete(pending.blob_name)


def sync(pendings: Iterable[PendingVersion]) -> None:
    """Make content sealed with `durable=False` durable, in one barrier for all of it: link none
    of it before this returns."""
    blob_store().sync([pending.blob_name for pending in pendings])


def read_pending(pending: PendingVersion, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
    """The plaintext of content not yet linked, [start, end) (to clean or check it before anyone
    sees it); segments come from a reused buffer, as with read_version."""
    dek = keystore.content_dek(
        pending.organization_id, pending.org_key_version, pending.wrapped_dek, pending.object_id, pending.version
    )
    store = blob_store()
    return decrypt_range(
        lambda lo, hi: store.read_range(pending.blob_name, lo, hi),
        pending.ciphertext_size,
        dek,
        associated_data(pending.object_id, pending.version),
        start,
        end,
        reuse_buffer=True,
    )


def link_version(pending: PendingVersion, *, actor: Any, created_by: Any = None) -> ObjectVersion:
    """Make `pending` its object's current version (creating the object for a version 1).

    Runs in the caller's transaction, which must be open: the caller links the version together
    with whatever it decides with it (an attachment, a finished upload), and discards `pending`
    if that transaction fails. `created_by` is who owns a new object (default: `actor`)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("link_version runs inside the caller's transaction")
    owner = actor if created_by is None else created_by
    if pending.version == 1:
        stored = _new_object(pending, owner)
        stored.save(force_insert=True)
    else:
        found = StoredObject.objects.select_for_update().filter(pk=pending.object_id).first()
        if found is None or found.is_destroyed:
            raise VersionRefused("This file no longer exists.")
        if found.current_version != pending.version - 1:
            raise VersionRefused("Another version of this file was added first; upload it again.")
        refusal = version_type_refusal(found.file_type, pending.file_type)
        if refusal:
            raise VersionRefused(refusal, 415)
        stored = found
        stored.current_version = pending.version
        stored.save(update_fields=["current_version"])
    version = _version_row(pending, stored, actor)
    version.save(force_insert=True)
    record(**_linked_event(pending, stored, actor))
    return version


def link_new_versions(
    pendings: list[PendingVersion], *, actor: Any, attached_at: datetime | None = None
) -> list[ObjectVersion]:
    """link_version() of many new files (each a version 1) at once: the same rows and audit
    events, in a few statements instead of several per file (an ingest links hundreds of
    instances). In the caller's open transaction; `attached_at` marks them part of a case
    already (not loose uploads)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("link_new_versions runs inside the caller's transaction")
    if any(pending.version != 1 for pending in pendings):
        raise ValueError("link_new_versions links new files only")
    objects = [_new_object(pending, actor, attached_at) for pending in pendings]
    StoredObject.objects.bulk_create(objects)
    versions = [_version_row(pending, stored, actor) for pending, stored in zip(pendings, objects, strict=True)]
    ObjectVersion.objects.bulk_create(versions)
    record_many(_linked_event(pending, stored, actor) for pending, stored in zip(pendings, objects, strict=True))
    return versions


def _new_object(pending: PendingVersion, owner: Any, attached_at: datetime | None = None) -> StoredObject:
    kind = FILE_TYPES_BY_NAME[pending.file_type]
    return StoredObject(
        id=pending.object_id,
        organization_id=pending.organization_id,
        created_by=owner if isinstance(owner, User) else None,
        created_by_service=owner if isinstance(owner, ServiceAccount) else None,
        file_type=kind.name,
        mime_type=kind.mime_type,
        extension=kind.extension,
        current_version=1,
        attached_at=attached_at,
    )


def _version_row(pending: PendingVersion, stored: StoredObject, actor: Any) -> ObjectVersion:
    return ObjectVersion(
        stored_object=stored,
        version=pending.version,
        size=pending.size,
        ciphertext_size=pending.ciphertext_size,
        sha256=pending.sha256,
        blob_name=pending.blob_name,
        org_key_version=pending.org_key_version,
        wrapped_dek=pending.wrapped_dek,
        created_by=actor if isinstance(actor, User) else None,
        created_by_label=getattr(actor, "email", "") or getattr(actor, "audit_label", ""),
        scanned_at=pending.scanned_at,
    )


def _linked_event(pending: PendingVersion, stored: StoredObject, actor: Any) -> dict[str, Any]:
    return {
        "action": "file.uploaded" if pending.version == 1 else "file.version_added",
        "actor": actor,
        "organization": pending.organization_id,
        "target": stored,
        "details": {
            "version": pending.version,
            "size": pending.size,
            "sha256": pending.sha256,
            "type": FILE_TYPES_BY_NAME[pending.file_type].name,
        },
    }


def put_stream(*, organization: Any, actor: Any, chunks: Iterable[bytes], length: int) -> ObjectVersion:
    """Store content as a new file in one go (server-side producers: demo data, SFTP, tests).

    New files only: a new version of an existing file comes through the case's rules
    (cases.actions.add_version), never around them."""
    pending = seal_version(organization_id=organization.pk, object_id=uuid4(), version=1, chunks=chunks, length=length)
    try:
        with transaction.atomic():
            return link_version(pending, actor=actor)
    except BaseException:
        discard(pending)
        raise


def get_version(stored_object: StoredObject, version: int | None = None) -> ObjectVersion:
    if stored_object.is_destroyed:
        raise ObjectUnavailable("destroyed")
    number = version or stored_object.current_version
    found = ObjectVersion.objects.filter(stored_object=stored_object, version=number).first()
    if found is None or not found.wrapped_dek:
        raise ObjectUnavailable("no such version")
    found.stored_object = stored_object  # the row just checked: read_version needs no second query
    return found


def current_versions(stored_objects: list[StoredObject]) -> dict[Any, ObjectVersion]:
    """get_version() of many objects in one query, by object id; a destroyed object or a missing
    version is simply absent (its caller answers as get_version's callers do)."""
    wanted = {o.pk: o.current_version for o in stored_objects if not o.is_destroyed}
    found = {}
    for v in ObjectVersion.objects.filter(stored_object_id__in=list(wanted)).select_related("stored_object"):
        if wanted.get(v.stored_object_id) == v.version and v.wrapped_dek:
            found[v.stored_object_id] = v
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


def destroy_versions_before(
    stored_object: StoredObject,
    version: int,
    *,
    actor: Any,
    reason: str,
    audit_action: str = "file.version_destroyed",
    details: dict[str, Any] | None = None,
) -> None:
    """Crypto-shred every version older than `version` that still has its key (each with its own
    event): when a file joins a case only its cleaned version may remain readable."""
    older = ObjectVersion.objects.filter(stored_object=stored_object, version__lt=version, wrapped_dek__isnull=False)
    for number in older.order_by("version").values_list("version", flat=True):
        destroy_version(stored_object, number, actor=actor, reason=reason, audit_action=audit_action, details=details)
