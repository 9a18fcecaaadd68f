"""The vault's interface for every other app: store, read, list versions, destroy.

Callers get plaintext only as a stream of authenticated segments; every read is decided by the
access policy first and recorded by the caller's audit event.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from django.db import transaction
from django.utils import timezone

from casebridge.accounts.models import ServiceAccount, User
from casebridge.audit.api import record, record_many
from casebridge.kernel import filetypes
from casebridge.kernel.crypto.streaming import associated_data, decrypt_range
from casebridge.kernel.filetypes import FILE_TYPES_BY_NAME, version_type_refusal
from casebridge.kernel.pipeline import ChunkReader, Readinto, seal_to_blob, seal_unsized_to_blob
from casebridge.vault import keystore
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject

if TYPE_CHECKING:
    from casebridge.vault.reader import VersionReader


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
    # An extent (extent_of): the base version's row id, object, number, and where in it this
    # content starts. Its blob, ciphertext size and key fields are then the base's.
    base_id: int | None = None
    base_object_id: UUID | None = None
    base_version: int = 0
    base_offset: int = 0

    @property
    def is_extent(self) -> bool:
        return self.base_id is not None

    def sealed_as(self) -> tuple[UUID, int]:
        """The (object, version) its ciphertext was sealed for: the base's, for an extent."""
        if self.base_object_id is not None:
            return self.base_object_id, self.base_version
        return self.object_id, self.version


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


def extent_of(
    base: ObjectVersion,
    *,
    offset: int,
    length: int,
    object_id: UUID | None = None,
    observe: Callable[[memoryview], object] | None = None,
    reader: VersionReader | None = None,
) -> PendingVersion:
    """Version 1 of a new object whose content is [offset, offset + length) of `base`'s
    plaintext, stored nowhere else: no blob is written, no key made. One DICOM instance inside a
    CBCT's stored ZIP becomes a file of its own this way, as cheap as a row.

    The range is read here once (authenticated, as every read is) for the new version's SHA-256
    and type; `observe` sees each piece of it too (a caller's own check, such as the archive's
    CRC-32). The extent belongs to the base's organization, has the base's scan, and is destroyed
    with it. `reader`, a VersionReader open on `base`, reads through the segment it holds (a
    caller walking an archive decrypts each segment once). Raises ObjectUnavailable for a
    destroyed base, ValueError for a range outside it or a base that is an extent itself."""
    if base.is_extent:
        raise ValueError("an extent of an extent is not made: take the range of its base")
    if offset < 0 or length < 0 or offset + length > base.size:
        raise ValueError(f"[{offset}, {offset + length}) is outside a {base.size}-byte version")
    hasher = hashlib.sha256()
    prefix = bytearray()
    if reader is not None and reader.version is not base:
        raise ValueError("the reader is open on another version")
    pieces = read_version(base, offset, offset + length) if reader is None else _read_through(reader, offset, length)
    for piece in pieces:
        hasher.update(piece)
        if len(prefix) < filetypes.SNIFF_BYTES:
            prefix += piece[: filetypes.SNIFF_BYTES - len(prefix)]
        if observe is not None:
            observe(piece)
    kind = filetypes.detect(bytes(prefix), length)
    return PendingVersion(
        organization_id=base.stored_object.organization_id,
        object_id=object_id or uuid4(),
        version=1,
        blob_name=base.blob_name,
        size=length,
        ciphertext_size=base.ciphertext_size,
        sha256=hasher.hexdigest(),
        file_type=kind.name,
        org_key_version=base.org_key_version,
        wrapped_dek=bytes(base.wrapped_dek or b""),
        scanned_at=base.scanned_at,
        base_id=base.pk,
        base_object_id=base.stored_object_id,
        base_version=base.version,
        base_offset=offset,
    )


def _read_through(reader: VersionReader, offset: int, length: int) -> Iterator[memoryview]:
    reader.seek(offset)
    with memoryview(bytearray(min(length, 1 << 20))) as buffer:
        left = length
        while left > 0:
            count = reader.readinto(buffer[: min(left, len(buffer))])
            if count <= 0:
                raise ObjectUnavailable("the version ended before the range did")
            left -= count
            yield buffer[:count]


def discard(pending: PendingVersion) -> None:
    """Remove content that did not become a version (idempotent). An extent has nothing of its
    own to remove: its bytes are its base's."""
    if not pending.is_extent:
        blob_store().delete(pending.blob_name)


def sync(pendings: Iterable[PendingVersion]) -> None:
    """Make content sealed with `durable=False` durable, in one barrier for all of it: link none
    of it before this returns. (An extent's bytes are its base's, durable already.)"""
    names = [pending.blob_name for pending in pendings if not pending.is_extent]
    if names:
        blob_store().sync(names)


def _decrypt(
    blob_name: str,
    ciphertext_size: int,
    dek: bytes,
    sealed_as: tuple[UUID, int],
    offset: int,
    size: int | None,
    start: int,
    end: int | None,
) -> Iterator[memoryview]:
    """[start, end) of content held at `offset` in a blob sealed as (object, version): the whole
    blob (offset 0, size None) or an extent of it."""
    if size is not None:
        stop = size if end is None else min(end, size)
        if start < 0 or start > stop:
            raise ValueError(f"range [{start}, {end}) is outside a {size}-byte object")
        start, end = offset + start, offset + stop
    store = blob_store()
    return decrypt_range(
        lambda lo, hi: store.read_range(blob_name, lo, hi),
        ciphertext_size,
        dek,
        associated_data(*sealed_as),
        start,
        end,
        reuse_buffer=True,
    )


def read_pending(pending: PendingVersion, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
    """The plaintext of content not yet linked, [start, end) (to clean or check it before anyone
    sees it); segments come from a reused buffer, as with read_version."""
    sealed_as = pending.sealed_as()
    dek = keystore.content_dek(pending.organization_id, pending.org_key_version, pending.wrapped_dek, *sealed_as)
    return _decrypt(
        pending.blob_name,
        pending.ciphertext_size,
        dek,
        sealed_as,
        pending.base_offset,
        pending.size if pending.is_extent else None,
        start,
        end,
    )


def link_version(pending: PendingVersion, *, actor: Any, created_by: Any = None) -> ObjectVersion:
    """Make `pending` its object's current version (creating the object for a version 1).

    Runs in the caller's transaction, which must be open: the caller links the version together
    with whatever it decides with it (an attachment, a finished upload), and discards `pending`
    if that transaction fails. `created_by` is who owns a new object (default: `actor`)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("link_version runs inside the caller's transaction")
    owner = actor if created_by is None else created_by
    _lock_bases([pending])
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
    _lock_bases(pendings)
    objects = [_new_object(pending, actor, attached_at) for pending in pendings]
    StoredObject.objects.bulk_create(objects)
    versions = [_version_row(pending, stored, actor) for pending, stored in zip(pendings, objects, strict=True)]
    ObjectVersion.objects.bulk_create(versions)
    record_many(_linked_event(pending, stored, actor) for pending, stored in zip(pendings, objects, strict=True))
    return versions


def _lock_bases(pendings: list[PendingVersion]) -> None:
    """Extents link only while their bases live. The bases' objects are locked, as destroy_object
    locks them: a destruction either came first and is seen here (ObjectUnavailable), or comes
    after and destroys these extents with their base."""
    bases = {pending.base_id for pending in pendings if pending.is_extent}
    if not bases:
        return
    holders = {pending.base_object_id for pending in pendings if pending.is_extent}
    list(StoredObject.objects.select_for_update().filter(pk__in=holders).values_list("pk", flat=True))
    live = ObjectVersion.objects.filter(
        pk__in=bases, wrapped_dek__isnull=False, stored_object__destroyed_at__isnull=True
    ).values_list("pk", flat=True)
    if set(live) != bases:
        raise ObjectUnavailable("the file holding this content was destroyed")


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
        base_id=pending.base_id,
        base_offset=pending.base_offset,
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
            **({"within": str(pending.base_object_id)} if pending.is_extent else {}),
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
    found = ObjectVersion.objects.filter(stored_object=stored_object, version=number).select_related("base").first()
    if found is None or not found.wrapped_dek:
        raise ObjectUnavailable("no such version")
    found.stored_object = stored_object  # the row just checked: read_version needs no second query
    return found


def current_versions(stored_objects: list[StoredObject]) -> dict[Any, ObjectVersion]:
    """get_version() of many objects in one query, by object id; a destroyed object or a missing
    version is simply absent (its caller answers as get_version's callers do)."""
    wanted = {o.pk: o.current_version for o in stored_objects if not o.is_destroyed}
    found = {}
    for v in ObjectVersion.objects.filter(stored_object_id__in=list(wanted)).select_related("stored_object", "base"):
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
    return _decrypt(
        version.blob_name,
        version.ciphertext_size,
        dek,
        keystore.sealed_as(version),
        version.base_offset,
        version.size if version.is_extent else None,
        start,
        end,
    )


def destroy_object(
    stored_object: StoredObject,
    *,
    actor: Any,
    reason: str,
    record_in: Any = None,
    patient_ref: str = "",
    details: dict[str, Any] | None = None,
) -> list[StoredObject]:
    """Crypto-shred: wrapped DEKs first (the content is unrecoverable from then on), then the
    ciphertext; the destruction record names what was destroyed without any of its content. The
    caller says whose record the file was part of (`record_in`, `patient_ref`): the vault does
    not know cases. Who may destroy what is `access.policy.destroyable_files`.

    Files held inside this one (extents: the DICOM instances of a CBCT's archive) go with it, each
    with its own record; they are returned, for the caller to remove what it made of them
    (thumbnails)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a reason is required to destroy a file")
    with transaction.atomic():
        locked = StoredObject.objects.select_for_update().get(pk=stored_object.pk)
        if locked.is_destroyed:
            return []
        versions = list(locked.versions.order_by("version"))
        ObjectVersion.objects.filter(stored_object=locked).update(wrapped_dek=None)
        locked.destroyed_at = timezone.now()
        locked.save(update_fields=["destroyed_at"])
        event = {"actor": actor, "organization": record_in or locked.organization_id, "patient_ref": patient_ref}
        record(
            "file.destroyed",
            target=locked,
            details={"reason": reason, "versions": _described(versions), **(details or {})},
            **event,
        )
        held = _destroy_extents([v for v in versions if not v.is_extent], locked, event, reason, details)
    _delete_blobs(versions)
    stored_object.destroyed_at = locked.destroyed_at
    return held


def _described(versions: list[ObjectVersion]) -> list[dict[str, Any]]:
    return [{"version": v.version, "sha256": v.sha256, "size": v.size} for v in versions]


def _delete_blobs(versions: list[ObjectVersion]) -> None:
    """The ciphertext of destroyed versions; an extent's blob is its base's, never deleted with it."""
    store = blob_store()
    for v in versions:
        if not v.is_extent:
            store.delete(v.blob_name)


def _destroy_extents(
    bases: list[ObjectVersion], holder: StoredObject, event: dict[str, Any], reason: str, details: Any
) -> list[StoredObject]:
    """In the caller's transaction, which destroys `bases`: every object with an extent of them is
    destroyed too (its wrapped DEKs, which are copies of the base's, go in the same transaction),
    each with its own event naming the file that held it. The objects so destroyed."""
    extents = ObjectVersion.objects.filter(base__in=bases, wrapped_dek__isnull=False)
    held = list(
        StoredObject.objects.select_for_update()
        .filter(pk__in=extents.values("stored_object_id"), destroyed_at__isnull=True)
        .prefetch_related("versions")
    )
    if not held:
        return []
    now = timezone.now()
    ObjectVersion.objects.filter(stored_object__in=held).update(wrapped_dek=None)
    StoredObject.objects.filter(pk__in=[o.pk for o in held]).update(destroyed_at=now)
    record_many(
        {
            "action": "file.destroyed",
            "target": stored,
            "details": {
                "reason": reason,
                "versions": _described(list(stored.versions.all())),
                "within": str(holder.pk),
                **(details or {}),
            },
            **event,
        }
        for stored in held
    )
    own = [v for stored in held for v in stored.versions.all()]  # besides the extent, if any
    transaction.on_commit(lambda: _delete_blobs(own))
    for stored in held:
        stored.destroyed_at = now
    return held


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
        event = {"actor": actor, "organization": locked.organization_id}
        record(
            audit_action,
            target=locked,
            details={
                "version": version,
                "sha256": target.sha256,
                "size": target.size,
                "reason": reason,
                **(details or {}),
            },
            **event,
        )
        if not target.is_extent:
            _destroy_extents([target], locked, event, reason, details)
            transaction.on_commit(lambda: _delete_blobs([target]))


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
