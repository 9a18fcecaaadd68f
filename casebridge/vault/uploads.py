"""Resumable uploads (the tus 1.0 model), encrypting as bytes arrive; no plaintext touches disk.

An upload knows its total length from the start, so whether a segment is the stream's last one is
arithmetic: every full segment that is not the last is encrypted and staged the moment it fills.
The plaintext of the unfinished segment at the end of a request is kept encrypted in the Upload
row (`tail`, AES-GCM under a key derived from the upload's DEK) and picked up by the next request,
on any server. The final segment is sealed when the last byte arrives, and the staged ciphertext
becomes the object's blob in one atomic step.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from casebridge.accounts.models import ServiceAccount, User
from casebridge.audit.api import record
from casebridge.audit.models import Outcome
from casebridge.vault import filetypes, hashing, keystore
from casebridge.vault.backends import StorageError
from casebridge.vault.config import blob_store
from casebridge.vault.crypto.streaming import (
    DEFAULT_LAYOUT,
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    SegmentCipher,
    associated_data,
    new_stream,
    open_stream,
)
from casebridge.vault.models import ObjectVersion, StoredObject, Upload
from casebridge.vault.pipeline import Readinto, SealingPipeline
from casebridge.vault.scanning import ScannerUnavailable
from casebridge.vault.staging import BlobPartStaging, FileStaging, StagingConflict

LEASE_SECONDS = 120
LEASE_RENEW_BYTES = 256 << 20
LAYOUT = DEFAULT_LAYOUT


class UploadError(Exception):
    """A refused upload request; `status` is the HTTP status the tus endpoint answers with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UploadGone(UploadError):
    status = 404


@dataclass
class AppendResult:
    upload: Upload
    completed: ObjectVersion | None = None
    interrupted: bool = False


def _staging() -> FileStaging | BlobPartStaging:
    from casebridge.vault.backends.filesystem import FileSystemStore

    store = blob_store()
    return FileStaging(store) if isinstance(store, FileSystemStore) else BlobPartStaging(store)


def _owner_fields(actor: Any) -> dict[str, Any]:
    if isinstance(actor, ServiceAccount):
        return {"created_by": None, "created_by_service": actor}
    return {"created_by": actor, "created_by_service": None}


def owned_uploads(actor: Any) -> Any:
    """Uploads are private to whoever started them (person or service account)."""
    if isinstance(actor, ServiceAccount):
        return Upload.objects.filter(created_by_service=actor)
    if isinstance(actor, User):
        return Upload.objects.filter(created_by=actor)
    return Upload.objects.none()


# --- tail encryption ----------------------------------------------------------------------
def _tail_key(dek: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"casebridge/upload-tail").derive(dek)


def _seal_tail(dek: bytes, upload_id: UUID, offset: int, plaintext: bytes | memoryview) -> bytes:
    if not plaintext:
        return b""
    nonce = os.urandom(12)
    aad = f"{upload_id}:{offset}".encode()
    return nonce + AESGCM(_tail_key(dek)).encrypt(nonce, bytes(plaintext), aad)


def _open_tail(dek: bytes, upload: Upload) -> bytes:
    sealed = bytes(upload.tail)
    if not sealed:
        return b""
    try:
        return AESGCM(_tail_key(dek)).decrypt(sealed[:12], sealed[12:], f"{upload.pk}:{upload.offset}".encode())
    except InvalidTag:
        raise UploadError("the stored upload state failed its integrity check", 500) from None


# --- layout arithmetic --------------------------------------------------------------------
def _segments_staged(ciphertext_offset: int) -> int:
    # The header and segment 0 fill exactly one segment size, every later segment another.
    return ciphertext_offset // SEGMENT_SIZE


# --- creating -----------------------------------------------------------------------------
def create_upload(*, organization: Any, actor: Any, length: int, stored_object: StoredObject | None = None) -> Upload:
    if length < 0:
        raise UploadError("Upload-Length must be zero or more")
    if length > settings.VAULT_MAX_UPLOAD_BYTES:
        raise UploadError(
            f"This file is larger than the {settings.VAULT_MAX_UPLOAD_BYTES // 1024**3} GiB CaseBridge accepts.", 413
        )
    if stored_object is not None:
        if stored_object.is_destroyed or stored_object.organization_id != organization.pk:
            raise UploadGone("no such file")
        object_id, version, is_new = stored_object.pk, stored_object.current_version + 1, False
    else:
        object_id, version, is_new = uuid4(), 1, True
    dek, wrapped, org_key_version = keystore.new_dek(organization.pk, object_id, version)
    header, _cipher = new_stream(dek, associated_data(object_id, version))
    with transaction.atomic():
        upload = Upload.objects.create(
            organization=organization,
            object_id=object_id,
            object_version=version,
            is_new_object=is_new,
            length=length,
            header=header,
            ciphertext_offset=HEADER_SIZE,
            org_key_version=org_key_version,
            wrapped_dek=wrapped,
            expires_at=timezone.now() + timedelta(seconds=settings.VAULT_UPLOAD_EXPIRY_SECONDS),
            **_owner_fields(actor),
        )
        staging = _staging()
        if isinstance(staging, FileStaging):
            try:
                staging.reserve(str(upload.pk), LAYOUT.ciphertext_size(length))
            except StorageError:
                staging.discard(str(upload.pk))
                raise UploadError("The server has no room for a file this large right now; try later.", 507) from None
            staging.append(str(upload.pk), 0, [header])
        else:
            staging.append_part(str(upload.pk), 0, [header])
            upload.staged_parts = [[0, HEADER_SIZE]]
            upload.save(update_fields=["staged_parts"])
        record(
            "file.upload.started",
            actor=actor,
            organization=organization,
            target=upload,
            details={"length": length, "object": str(object_id), "version": version},
        )
    return upload


# --- appending ----------------------------------------------------------------------------
def _take_lease(upload: Upload, client_offset: int) -> str:
    token = secrets.token_hex(8)
    now = timezone.now()
    taken = (
        Upload.objects.filter(pk=upload.pk, offset=client_offset, completed_at__isnull=True)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + timedelta(seconds=LEASE_SECONDS), lease_token=token)
    )
    if taken:
        return token
    upload.refresh_from_db()
    if upload.completed_at is not None:
        raise UploadError("This upload is already complete.", 409)
    if upload.offset != client_offset:
        raise UploadError(f"Upload-Offset {client_offset} does not match the server's {upload.offset}.", 409)
    raise UploadError("Another request is writing to this upload; retry shortly.", 423)


def _rebuild_hasher(upload: Upload, dek: bytes, cipher: SegmentCipher, tail: bytes) -> Any:
    """Recompute the SHA-256 of what was already uploaded, from the staged ciphertext."""
    hasher = hashlib.sha256()
    staging = _staging()
    uid = str(upload.pk)
    out = bytearray(SEGMENT_SIZE)
    for index in range(_segments_staged(upload.ciphertext_offset)):
        start = HEADER_SIZE if index == 0 else index * SEGMENT_SIZE
        end = (index + 1) * SEGMENT_SIZE
        if isinstance(staging, FileStaging):
            data = staging.read_range(uid, start, end)
        else:
            data = staging.read_range(uid, upload.staged_parts, start, end)
        written = cipher.decrypt_into(index, False, data, memoryview(out)[: len(data) - TAG_SIZE])
        hasher.update(memoryview(out)[:written])
    hasher.update(tail)
    return hasher


def append(
    upload: Upload,
    *,
    actor: Any,
    client_offset: int,
    body: Readinto,
    content_length: int,
    checksum: tuple[str, bytes] | None = None,
) -> AppendResult:
    """Append one request body; commits whatever arrived even if the connection drops."""
    if upload.completed_at is not None:
        raise UploadError("This upload is already complete.", 409)
    if upload.expires_at <= timezone.now():
        raise UploadGone("This upload expired; start it again.", 410)
    if client_offset + content_length > upload.length:
        raise UploadError("The request carries more data than the upload's declared length.", 413)
    if checksum is not None and checksum[0] != "sha256":
        raise UploadError("Only sha256 checksums are supported.", 400)
    token = _take_lease(upload, client_offset)
    try:
        return _append_leased(upload, token, actor, client_offset, body, content_length, checksum)
    finally:
        Upload.objects.filter(pk=upload.pk, lease_token=token).update(lease_until=None, lease_token="")


def _append_leased(
    upload: Upload,
    token: str,
    actor: Any,
    client_offset: int,
    body: Readinto,
    content_length: int,
    checksum: tuple[str, bytes] | None,
) -> AppendResult:
    dek = keystore.upload_dek(upload)
    cipher = open_stream(dek, associated_data(upload.object_id, upload.object_version), bytes(upload.header))
    tail = _open_tail(dek, upload)
    hasher = hashing.recall(str(upload.pk), client_offset) or _rebuild_hasher(upload, dek, cipher, tail)
    body_hasher = hashlib.sha256() if checksum else None
    file_type = upload.file_type
    renew_at = client_offset + LEASE_RENEW_BYTES

    def detect(prefix: memoryview) -> None:
        nonlocal file_type
        if not file_type:
            file_type = filetypes.detect(bytes(prefix[: filetypes.SNIFF_BYTES]), upload.length).name

    def read(view: memoryview) -> int:
        nonlocal renew_at
        got = body(view)
        if client_offset + pipeline.received + got >= renew_at:  # a long request keeps its lease
            renew_at += LEASE_RENEW_BYTES
            Upload.objects.filter(pk=upload.pk, lease_token=token).update(
                lease_until=timezone.now() + timedelta(seconds=LEASE_SECONDS)
            )
        return got

    staging = _staging()
    uid = str(upload.pk)
    with SealingPipeline(
        cipher,
        index=_segments_staged(upload.ciphertext_offset),
        last_index=LAYOUT.segment_count(upload.length) - 1,
        hashers=[hasher, body_hasher] if body_hasher else [hasher],
        tail=tail,
        inspect_first=detect,
    ) as pipeline:
        try:
            if isinstance(staging, FileStaging):
                # The staging's writer thread hands each buffer back once written.
                chunks = pipeline.seal(read, content_length)
                new_ct_offset = staging.append(uid, upload.ciphertext_offset, chunks, release=pipeline.release)
                parts = upload.staged_parts
            else:
                chunks = pipeline.seal(read, content_length, release_on_resume=True)
                new_ct_offset = staging.append_part(uid, upload.ciphertext_offset, chunks)
                parts = [p for p in upload.staged_parts if p[0] < upload.ciphertext_offset]
                if new_ct_offset > upload.ciphertext_offset:
                    parts.append([upload.ciphertext_offset, new_ct_offset - upload.ciphertext_offset])
        except StagingConflict:
            raise UploadError("Another request is writing to this upload; retry shortly.", 423) from None
        except filetypes.UnsupportedFileType as exc:
            terminate(upload, actor=actor, reason="unsupported type", outcome=Outcome.DENIED)
            raise UploadError(str(exc), 415) from None
        pipeline.finish()
        offset = client_offset + pipeline.received
        interrupted = pipeline.interrupted

        # tus checksum extension: a mismatching (or incomplete) body is discarded whole.
        if checksum is not None and (interrupted or body_hasher is None or body_hasher.digest() != checksum[1]):
            raise UploadError("The body does not match its Upload-Checksum; it was discarded.", 460)

        complete = offset == upload.length
        if not file_type and (complete or offset >= filetypes.SNIFF_BYTES):
            try:
                detect(pipeline.partial)
            except filetypes.UnsupportedFileType as exc:
                terminate(upload, actor=actor, reason="unsupported type", outcome=Outcome.DENIED)
                raise UploadError(str(exc), 415) from None

        if complete:
            final = bytes(pipeline.seal_last())
            version = _finish(upload, token, actor, staging, parts, new_ct_offset, final, hasher, file_type)
            return AppendResult(upload, completed=version, interrupted=interrupted)
        new_tail = _seal_tail(dek, upload.pk, offset, pipeline.partial)

    updated = Upload.objects.filter(pk=upload.pk, lease_token=token).update(
        offset=offset,
        ciphertext_offset=new_ct_offset,
        tail=new_tail,
        staged_parts=parts,
        file_type=file_type,
        expires_at=timezone.now() + timedelta(seconds=settings.VAULT_UPLOAD_EXPIRY_SECONDS),
    )
    if not updated:
        raise UploadError("The upload changed underneath this request; check its offset and retry.", 409)
    hashing.remember(uid, offset, hasher)
    upload.refresh_from_db()
    return AppendResult(upload, interrupted=interrupted)


def _finish(
    upload: Upload,
    token: str,
    actor: Any,
    staging: FileStaging | BlobPartStaging,
    parts: list[list[int]],
    ciphertext_size: int,
    final: bytes,
    hasher: Any,
    file_type: str,
) -> ObjectVersion:
    from casebridge.vault import scanning_gate

    kind = filetypes.FILE_TYPES_BY_NAME[file_type]
    uid = str(upload.pk)
    blob_name = f"objects/{upload.object_id}/v{upload.object_version}-{secrets.token_hex(6)}"
    if isinstance(staging, FileStaging):
        staging.promote(uid, blob_name, ciphertext_size, final)
    else:
        staging.promote(uid, parts, blob_name, final)
    total_ciphertext = ciphertext_size + len(final)
    sha256 = hasher.hexdigest()
    try:
        verdict = scanning_gate.scan_blob(
            upload.organization_id,
            upload.object_id,
            upload.object_version,
            upload.org_key_version,
            bytes(upload.wrapped_dek),
            blob_name,
            total_ciphertext,
        )
    except ScannerUnavailable as exc:
        # Fail closed: an unscanned file never becomes visible.
        blob_store().delete(blob_name)
        terminate(upload, actor=actor, reason="scanner unavailable", outcome=Outcome.FAILURE)
        raise UploadError(
            "The malware scanner is unavailable, so the file was not accepted. Try again later.", 503
        ) from exc
    if verdict is not None:
        blob_store().delete(blob_name)
        terminate(upload, actor=actor, reason="malware", outcome=Outcome.DENIED, details={"signature": verdict})
        raise UploadError(f"The file was refused: the malware scanner found {verdict}.", 422)
    try:
        with transaction.atomic():
            if upload.is_new_object:
                stored = StoredObject.objects.create(
                    id=upload.object_id,
                    organization_id=upload.organization_id,
                    created_by=upload.created_by,
                    created_by_service=upload.created_by_service,
                    file_type=kind.name,
                    mime_type=kind.mime_type,
                    extension=kind.extension,
                    current_version=upload.object_version,
                )
            else:
                stored = StoredObject.objects.select_for_update().get(pk=upload.object_id)
                if stored.is_destroyed or stored.current_version != upload.object_version - 1:
                    raise UploadError("Another version of this file was added first; upload it again.", 409)
                stored.current_version = upload.object_version
                stored.save(update_fields=["current_version"])
            version = ObjectVersion.objects.create(
                stored_object=stored,
                version=upload.object_version,
                size=upload.length,
                ciphertext_size=total_ciphertext,
                sha256=sha256,
                blob_name=blob_name,
                org_key_version=upload.org_key_version,
                wrapped_dek=bytes(upload.wrapped_dek),
                created_by=actor if isinstance(actor, User) else None,
                created_by_label=getattr(actor, "email", "") or getattr(actor, "audit_label", ""),
            )
            Upload.objects.filter(pk=upload.pk).update(
                offset=upload.length, ciphertext_offset=total_ciphertext, tail=b"", completed_at=timezone.now()
            )
            record(
                "file.uploaded" if upload.is_new_object else "file.version_added",
                actor=actor,
                organization=upload.organization_id,
                target=stored,
                details={"version": version.version, "size": version.size, "sha256": sha256, "type": kind.name},
            )
    except (UploadError, IntegrityError):
        blob_store().delete(blob_name)
        raise
    hashing.forget(uid)
    upload.refresh_from_db()
    return version


# --- ending -------------------------------------------------------------------------------
def terminate(
    upload: Upload,
    *,
    actor: Any,
    reason: str = "cancelled",
    outcome: str = Outcome.SUCCESS,
    details: dict | None = None,
) -> None:
    """Throw an unfinished upload away: its staged ciphertext and state are deleted."""
    _staging().discard(str(upload.pk), upload.staged_parts)
    hashing.forget(str(upload.pk))
    with transaction.atomic():
        Upload.objects.filter(pk=upload.pk).delete()
        action = "file.upload.terminated" if outcome == Outcome.SUCCESS else "file.upload.rejected"
        record(
            action,
            actor=actor,
            organization=upload.organization_id,
            target_type="vault.upload",
            target_id=str(upload.pk),
            outcome=outcome,
            details={"reason": reason, "offset": upload.offset, **(details or {})},
        )


def expire_uploads() -> int:
    """Remove abandoned partial uploads (and finished ones once clients no longer ask about them)."""
    count = 0
    for upload in Upload.objects.filter(expires_at__lt=timezone.now()).iterator():
        if upload.completed_at is None:
            terminate(upload, actor=None, reason="expired")
        else:
            Upload.objects.filter(pk=upload.pk).delete()
        count += 1
    return count


def parse_checksum(header: str) -> tuple[str, bytes]:
    algorithm, _, value = header.strip().partition(" ")
    try:
        return algorithm.lower(), base64.b64decode(value, validate=True)
    except ValueError:
        raise UploadError("Upload-Checksum must be '<algorithm> <base64 digest>'.") from None
