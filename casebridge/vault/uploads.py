"""Resumable uploads (the tus 1.0 model), encrypting as bytes arrive; no plaintext touches disk.

The bytes of a request go through `appending.append_body` (no Django: the transfer server runs
the same function for uploads handed to it). Around it, here: the lease that makes one request at
a time the writer, the upload's state in its row (offset, staged ciphertext, and the plaintext of
the unfinished segment as `tail`, AES-GCM under a key derived from the upload's DEK, so the next
request continues on any server), and the commit, which on the last byte promotes the staged
ciphertext to the object's blob in one atomic step.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from casebridge.accounts.models import ServiceAccount
from casebridge.audit.api import record
from casebridge.audit.models import Outcome
from casebridge.kernel import filetypes, hashing, holders
from casebridge.kernel.appending import (
    LAYOUT,
    Appended,
    Checkpoint,
    Continuation,
    LeaseLost,
    TypeRefused,
    UploadError,
    UploadGone,
    append_body,
)
from casebridge.kernel.backends import NoRoom, StorageError
from casebridge.kernel.backends.filesystem import FileSystemStore, free_bytes
from casebridge.kernel.crypto.streaming import HEADER_SIZE, associated_data, new_stream
from casebridge.kernel.pipeline import Readinto
from casebridge.kernel.staging import (
    FileStaging,
    PartStaging,
    StagedFile,
    StagingConflict,
    StagingLost,
    StoreParts,
    part_count,
    part_name,
)
from casebridge.vault import api as vault
from casebridge.vault import keystore
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject, Upload
from casebridge.vault.scanning import ScannerUnavailable

# A writing request renews its lease every appending.LEASE_RENEW_SECONDS while bytes flow: a
# holder that died where its death cannot be seen (another host) blocks a resume this long at
# most; one that died on this host is replaced at once (kernel/holders.py).
LEASE_SECONDS = 15
# Scanning and promoting a complete upload happen under its lease too, held by the application.
FINISHING_LEASE_SECONDS = 600
STAGING_PART_SIZE = 8 << 20  # object stores: S3's parts must be 5 MiB or more (all but the last)
STAGING_LOST = "What was uploaded so far is no longer stored, so the upload cannot go on; start it again."


AddVersion = Callable[[vault.PendingVersion], ObjectVersion]
"""Links the finished content of a new version of an existing file, or raises to refuse it
(discarding it either way): see `commit`."""


@dataclass
class AppendResult:
    upload: Upload
    completed: ObjectVersion | None = None
    interrupted: bool = False


def staged(upload: Upload) -> StagedFile | PartStaging:
    """Where this upload's ciphertext is staged, as this process reaches it."""
    store = blob_store()
    if upload.part_size:
        return PartStaging(StoreParts(store, str(upload.pk), upload.part_size), upload.part_size)
    if not isinstance(store, FileSystemStore):
        raise UploadError("This upload was staged in storage CaseBridge no longer uses; start it again.", 410)
    return StagedFile(FileStaging(store), str(upload.pk))


def _discard_staged(upload: Upload) -> None:
    store = blob_store()
    if upload.part_size:
        # Every part the upload could have: a request that crashed may have written past its offset.
        count = part_count(LAYOUT.ciphertext_size(upload.length), upload.part_size)
        store.delete_many(part_name(str(upload.pk), index) for index in range(count))
    elif isinstance(store, FileSystemStore):
        FileStaging(store).discard(str(upload.pk))


def _owner_fields(actor: Any) -> dict[str, Any]:
    if isinstance(actor, ServiceAccount):
        return {"created_by": None, "created_by_service": actor}
    return {"created_by": actor, "created_by_service": None}


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
    store = blob_store()
    with transaction.atomic():
        _check_in_flight(organization, actor, length)
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
            part_size=0 if isinstance(store, FileSystemStore) else STAGING_PART_SIZE,
            expires_at=timezone.now() + timedelta(seconds=settings.VAULT_UPLOAD_EXPIRY_SECONDS),
            **_owner_fields(actor),
        )
        # Nothing is reserved for bytes that have not come (each body reserves what it brings:
        # appending.append_body); a file that could not fit even on an empty queue is refused now.
        if isinstance(store, FileSystemStore) and free_bytes(store.root) < LAYOUT.ciphertext_size(length):
            raise UploadError("The server has no room for a file this large right now; try later.", 507)
        staged(upload).append(0, [header])
        record(
            "file.upload.started",
            actor=actor,
            organization=organization,
            target=upload,
            details={"length": length, "object": str(object_id), "version": version},
        )
    return upload


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _check_in_flight(organization: Any, actor: Any, length: int) -> None:
    """Refuse an upload beyond the limits on uploads begun and not finished (settings
    VAULT_*_IN_FLIGHT_*): each holds staging and, once its bytes come, disk. Under a lock on the
    organization's row, so two requests cannot both take the last place."""
    type(organization).objects.select_for_update().filter(pk=organization.pk).first()
    open_uploads = Upload.objects.filter(completed_at__isnull=True, expires_at__gt=timezone.now())
    limits = (
        (
            open_uploads.filter(**_owner_fields(actor)),
            settings.VAULT_UPLOADS_IN_FLIGHT_PER_PERSON,
            settings.VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_PERSON,
            "You have",
        ),
        (
            open_uploads.filter(organization=organization),
            settings.VAULT_UPLOADS_IN_FLIGHT_PER_ORGANIZATION,
            settings.VAULT_UPLOAD_BYTES_IN_FLIGHT_PER_ORGANIZATION,
            "Your organization has",
        ),
    )
    for uploads_, max_count, max_bytes, who in limits:
        totals = uploads_.aggregate(count=Count("pk"), size=Sum("length"))
        count, size = totals["count"] or 0, totals["size"] or 0
        if count + 1 > max_count or size + length > max_bytes:
            raise UploadError(
                f"{who} {count} uploads in progress ({_gib(size)}); at most {max_count} and {_gib(max_bytes)} "
                "may be in progress at once. Finish or cancel some (unfinished ones are removed after a day).",
                # 413, not 429: Uppy takes 429 for rate limiting and retries silently (found in
                # Chromium); a 413 shows the person this message.
                413,
            )


# --- appending ----------------------------------------------------------------------------
def _take_lease(upload: Upload, client_offset: int, holder: str) -> str:
    token = secrets.token_hex(8)
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    if holder:
        # The holder asks again for an upload it is not writing (holders.writing): its own lease
        # is what an earlier request left behind when the application missed its commit.
        free |= Q(lease_holder=holder)
    candidates = Upload.objects.filter(pk=upload.pk, offset=client_offset, completed_at__isnull=True)
    grant = {"lease_until": now + timedelta(seconds=LEASE_SECONDS), "lease_token": token, "lease_holder": holder}
    if candidates.filter(free).update(**grant):
        return token
    upload.refresh_from_db()
    if upload.completed_at is not None:
        raise UploadError("This upload is already complete.", 409)
    if upload.offset != client_offset:
        raise UploadError(f"Upload-Offset {client_offset} does not match the server's {upload.offset}.", 409)
    # Killed mid-request (or restarted) on this host: take over now, not when the lease lapses. The
    # old token in the filter makes two requests racing for it take it once.
    dead = upload.lease_token and holders.is_dead(upload.lease_holder)
    if dead and candidates.filter(lease_token=upload.lease_token).update(**grant):
        return token
    raise UploadError("Another request is writing to this upload; retry shortly.", 423)


def _check_request(upload: Upload, client_offset: int, content_length: int, checksum: tuple[str, bytes] | None) -> None:
    if upload.completed_at is not None:
        raise UploadError("This upload is already complete.", 409)
    if upload.expires_at <= timezone.now():
        raise UploadGone("This upload expired; start it again.", 410)
    if client_offset + content_length > upload.length:
        raise UploadError("The request carries more data than the upload's declared length.", 413)
    if checksum is not None and checksum[0] != "sha256":
        raise UploadError("Only sha256 checksums are supported.", 400)


def lease(
    upload: Upload,
    *,
    client_offset: int,
    content_length: int,
    checksum: tuple[str, bytes] | None = None,
    holder: str = "",
) -> tuple[str, Continuation]:
    """Make the calling request the upload's only writer; what it needs to continue the upload.

    `holder` names the process that will write (holders.this_process(); '' if it cannot tell).
    The lease lasts LEASE_SECONDS unless `renew`ed; `commit` (or `release`) ends it."""
    _check_request(upload, client_offset, content_length, checksum)
    token = _take_lease(upload, client_offset, holder)
    try:
        upload.refresh_from_db()  # the state as of the lease, not as of when the row was read
        dek = keystore.upload_dek(upload)
        continuation = Continuation(
            upload_id=str(upload.pk),
            dek=dek,
            associated=associated_data(upload.object_id, upload.object_version),
            header=bytes(upload.header),
            length=upload.length,
            offset=upload.offset,
            ciphertext_offset=upload.ciphertext_offset,
            tail=_open_tail(dek, upload),
            file_type=upload.file_type,
            expected_type=_expected_type(upload),
        )
    except BaseException:
        release(upload, token)
        raise
    return token, continuation


def _expected_type(upload: Upload) -> str:
    """The type a new version must have: its file's ("" for a new file)."""
    if upload.is_new_object:
        return ""
    return StoredObject.objects.filter(pk=upload.object_id).values_list("file_type", flat=True).first() or ""


def leased_upload(upload_id: str, token: str, *, lapsed: bool = False) -> Upload | None:
    """The upload whose live lease `token` is, or None. `lapsed`: also a lease that ran out but
    that nobody took since (taking one always changes the token), which a renewal may revive: a
    client silent for longer than LEASE_SECONDS goes on where it was when its bytes flow again."""
    held = Upload.objects.filter(pk=upload_id, lease_token=token, completed_at__isnull=True)
    return held.first() if lapsed else held.filter(lease_until__gt=timezone.now()).first()


def renew(upload: Upload, token: str, checkpoint: Checkpoint | None = None) -> None:
    """Extend the lease `token` holds; with a checkpoint, record it as the upload's offset first,
    so a request that dies later resumes from there. LeaseLost if the lease is no longer held."""
    now = timezone.now()
    held = Upload.objects.filter(pk=upload.pk, lease_token=token, completed_at__isnull=True)
    extended: dict[str, Any] = {"lease_until": now + timedelta(seconds=LEASE_SECONDS)}
    if checkpoint is not None:
        current = held.values_list("offset", flat=True).first()
        if current is None:
            raise LeaseLost("This request no longer holds the upload; ask for its offset and resume.")
        _check_checkpoint(upload, checkpoint, current)
        extended.update(
            offset=checkpoint.offset,
            ciphertext_offset=checkpoint.ciphertext_offset,
            tail=b"",  # a checkpoint ends at a segment boundary: nothing unfinished to keep
            file_type=checkpoint.file_type,
            expires_at=now + timedelta(seconds=settings.VAULT_UPLOAD_EXPIRY_SECONDS),
        )
        held = held.filter(offset=current)
    if not held.update(**extended):
        raise LeaseLost("This request no longer holds the upload; ask for its offset and resume.")


def _check_checkpoint(upload: Upload, checkpoint: Checkpoint, current: int) -> None:
    # What the checkpoint claims must be a state the upload can be in: past where it stands, short
    # of its end (the last byte is committed by the request's own commit), whole segments only,
    # of an accepted type.
    try:
        expected = Checkpoint.at(checkpoint.ciphertext_offset, checkpoint.file_type)
    except ValueError:
        raise UploadError("A checkpoint must end at a segment boundary.", 409) from None
    if (
        expected != checkpoint
        or not current < checkpoint.offset < upload.length
        or checkpoint.file_type not in filetypes.FILE_TYPES_BY_NAME
    ):
        raise UploadError("The checkpoint does not fit the upload.", 409)


def release(upload: Upload, token: str) -> None:
    Upload.objects.filter(pk=upload.pk, lease_token=token).update(lease_until=None, lease_token="", lease_holder="")


def append(
    upload: Upload,
    *,
    actor: Any,
    client_offset: int,
    body: Readinto,
    content_length: int,
    add_version: AddVersion,
    checksum: tuple[str, bytes] | None = None,
) -> AppendResult:
    """Append one request body; commits whatever arrived even if the connection drops.

    `add_version` decides on the content of a finished upload of a new version (see commit)."""
    with holders.writing(str(upload.pk)) as mine:
        if not mine:
            raise UploadError("Another request is writing to this upload; retry shortly.", 423)
        return _append(upload, actor, client_offset, body, content_length, checksum, add_version)


def _append(
    upload: Upload,
    actor: Any,
    client_offset: int,
    body: Readinto,
    content_length: int,
    checksum: tuple[str, bytes] | None,
    add_version: AddVersion,
) -> AppendResult:
    token, continuation = lease(
        upload,
        client_offset=client_offset,
        content_length=content_length,
        checksum=checksum,
        holder=holders.this_process(),
    )
    try:
        staging = staged(upload)
        try:
            appended = append_body(
                continuation,
                stage=lambda chunks, release, durable: staging.append(
                    continuation.ciphertext_offset, chunks, release, durable
                ),
                read_staged=staging.read_range,
                body=body,
                content_length=content_length,
                checksum=checksum,
                renew=lambda checkpoint: renew(upload, token, checkpoint),
                reserve=staging.reserve if isinstance(staging, StagedFile) else None,
            )
        except StagingConflict:
            raise UploadError("Another request is writing to this upload; retry shortly.", 423) from None
        except StagingLost:
            terminate(upload, actor=actor, reason="staging lost", outcome=Outcome.FAILURE)
            raise UploadGone(STAGING_LOST, 410) from None
        except NoRoom:
            raise UploadError("The server has no room for this data right now; try later.", 507) from None
        except StorageError:
            raise UploadError("The file store did not take the data; ask for the offset and resume.", 503) from None
        except TypeRefused:
            terminate(upload, actor=actor, reason="unsupported type", outcome=Outcome.DENIED)
            raise
        result = commit(upload, token, actor, appended, add_version)
        if not appended.complete:  # the next request here continues the hash instead of redoing it
            hashing.remember(str(upload.pk), appended.offset, appended.hasher)
        return result
    finally:
        release(upload, token)


def commit(upload: Upload, token: str, actor: Any, appended: Appended, add_version: AddVersion) -> AppendResult:
    """Record what a request appended (its lease still held): the new state, or the new version.

    The finished content of a new file becomes its version 1 here. That of a new version of an
    existing file goes to `add_version`, which owns the rules of the file (for a file of a case,
    cases.actions.add_version: who may add one now, metadata removal, the patient's audit): it
    links the content or refuses it, and the vault never links it by itself."""
    if appended.complete and (
        appended.offset != upload.length or appended.ciphertext_offset != LAYOUT.ciphertext_size(upload.length)
    ):  # a staging that claims more or less than the whole stream never becomes a file
        raise UploadError("The upload's staged data does not add up; ask for its offset and resume.", 409)
    if appended.complete:
        # From here on this process (not the request's writer, which may die now) holds the upload,
        # for as long as scanning may take: a resume meanwhile finds it locked, not abandoned, here
        # (the registry) as in the database (the lease).
        with holders.writing(str(upload.pk)):
            Upload.objects.filter(pk=upload.pk, lease_token=token).update(
                lease_holder=holders.this_process(),
                lease_until=timezone.now() + timedelta(seconds=FINISHING_LEASE_SECONDS),
            )
            version = _finish(
                upload, actor, appended.ciphertext_offset, appended.sha256, appended.file_type, add_version
            )
        return AppendResult(upload, completed=version, interrupted=appended.interrupted)
    updated = Upload.objects.filter(pk=upload.pk, lease_token=token).update(
        offset=appended.offset,
        ciphertext_offset=appended.ciphertext_offset,
        tail=_seal_tail(keystore.upload_dek(upload), upload.pk, appended.offset, appended.tail),
        file_type=appended.file_type,
        expires_at=timezone.now() + timedelta(seconds=settings.VAULT_UPLOAD_EXPIRY_SECONDS),
    )
    if not updated:
        raise UploadError("The upload changed underneath this request; check its offset and retry.", 409)
    upload.refresh_from_db()
    return AppendResult(upload, interrupted=appended.interrupted)


def _promote(upload: Upload, blob_name: str, ciphertext_size: int) -> None:
    """The staged ciphertext, now complete, becomes the blob `blob_name`."""
    store = blob_store()
    uid = str(upload.pk)
    if not upload.part_size:
        assert isinstance(store, FileSystemStore)
        FileStaging(store).promote(uid, blob_name, ciphertext_size)
        return
    count = part_count(ciphertext_size, upload.part_size)
    try:
        composed = store.compose(blob_name, [part_name(uid, index) for index in range(count)])
    except StorageError:
        raise UploadError("The file store could not assemble the upload; try the last request again.", 503) from None
    if composed != ciphertext_size:  # a staged part is not what the commits recorded
        store.delete(blob_name)
        terminate(upload, actor=None, reason="staging inconsistent", outcome=Outcome.FAILURE)
        raise UploadError("The upload's staged data was inconsistent, so it was not kept; upload the file again.", 500)


def _finish(
    upload: Upload, actor: Any, ciphertext_size: int, sha256: str, file_type: str, add_version: AddVersion
) -> ObjectVersion:
    uid = str(upload.pk)
    blob_name = f"objects/{upload.object_id}/v{upload.object_version}-{secrets.token_hex(6)}"
    _promote(upload, blob_name, ciphertext_size)
    try:
        pending = vault.pending_version(
            organization_id=upload.organization_id,
            object_id=upload.object_id,
            version=upload.object_version,
            blob_name=blob_name,
            size=upload.length,
            ciphertext_size=ciphertext_size,
            sha256=sha256,
            file_type=file_type,
            org_key_version=upload.org_key_version,
            wrapped_dek=bytes(upload.wrapped_dek),
        )
    except ScannerUnavailable as exc:
        # Fail closed: an unscanned file never becomes visible.
        terminate(upload, actor=actor, reason="scanner unavailable", outcome=Outcome.FAILURE)
        raise UploadError(
            "The malware scanner is unavailable, so the file was not accepted. Try again later.", 503
        ) from exc
    except vault.MalwareFound as exc:
        terminate(upload, actor=actor, reason="malware", outcome=Outcome.DENIED, details={"signature": exc.signature})
        raise UploadError(f"The file was refused: the malware scanner found {exc.signature}.", 422) from None
    if upload.is_new_object:
        try:
            with transaction.atomic():
                owner = upload.created_by or upload.created_by_service
                version = vault.link_version(pending, actor=actor, created_by=owner)
                _mark_complete(upload, ciphertext_size)
        except BaseException:
            vault.discard(pending)
            raise
    else:
        # The staging became `pending`: whatever add_version answers, this upload cannot go on.
        try:
            version = add_version(pending)  # links it, or refuses it and discards it
        except (vault.VersionRefused, UploadError) as exc:
            vault.discard(pending)
            terminate(upload, actor=actor, reason="version refused", outcome=Outcome.DENIED)
            if isinstance(exc, vault.VersionRefused):
                raise UploadError(str(exc), exc.status) from None
            raise
        except BaseException:
            vault.discard(pending)
            terminate(upload, actor=actor, reason="version not added", outcome=Outcome.FAILURE)
            raise
        # The version is the file's from here; a crash before this leaves a stale upload row,
        # which expires: the client's retry finds its staging gone and is told so.
        _mark_complete(upload, ciphertext_size)
    hashing.forget(uid)
    if upload.part_size:
        _discard_staged(upload)
    upload.refresh_from_db()
    return version


def _mark_complete(upload: Upload, ciphertext_size: int) -> None:
    Upload.objects.filter(pk=upload.pk).update(
        offset=upload.length, ciphertext_offset=ciphertext_size, tail=b"", completed_at=timezone.now()
    )


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
    _discard_staged(upload)
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
