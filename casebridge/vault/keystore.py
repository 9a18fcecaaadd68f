"""Organization keys and per-version DEKs, backed by the OrgKey / ObjectVersion rows.

Unwrapped organization keys are cached per process for a few minutes so a KMS or HSM is asked
once per organization, not once per file; the cache is dropped when keys rotate or are destroyed.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from casebridge.audit.api import record
from casebridge.vault.config import key_provider
from casebridge.vault.keys import WrappedKey
from casebridge.vault.keys.hierarchy import create_org_key, generate_dek, open_org_key, unwrap_dek, wrap_dek
from casebridge.vault.models import ObjectVersion, OrgKey, Upload

CACHE_SECONDS = 300
_cache: dict[tuple[str, int], tuple[float, bytes]] = {}
_lock = threading.Lock()


class KeyDestroyed(LookupError):
    """The key needed is gone (crypto-shredded): the content cannot be recovered."""


def current_org_key(org_id: UUID) -> tuple[int, bytes]:
    """The organization's current key (created on first use), as (version, key)."""
    row = OrgKey.objects.filter(organization_id=org_id, destroyed_at__isnull=True).order_by("-version").first()
    if row is None:
        key, wrapped = create_org_key(key_provider(), org_id, 1)
        try:
            with transaction.atomic():
                row = OrgKey.objects.create(
                    organization_id=org_id, version=1, wrapped=wrapped.to_json(), kek_version=wrapped.version
                )
        except IntegrityError:  # another request created it first: use theirs
            row = OrgKey.objects.get(organization_id=org_id, version=1)
            return row.version, org_key(org_id, row.version)
        _remember(org_id, 1, key)
        return 1, key
    return row.version, org_key(org_id, row.version)


def org_key(org_id: UUID, version: int) -> bytes:
    cache_key = (str(org_id), version)
    with _lock:
        hit = _cache.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
    row = OrgKey.objects.filter(organization_id=org_id, version=version, destroyed_at__isnull=True).first()
    if row is None:
        raise KeyDestroyed(f"organization key v{version} is not available")
    key = open_org_key(key_provider(), WrappedKey.from_json(row.wrapped), org_id, version)
    _remember(org_id, version, key)
    return key


def _remember(org_id: UUID, version: int, key: bytes) -> None:
    with _lock:
        _cache[(str(org_id), version)] = (time.monotonic() + CACHE_SECONDS, key)


def forget_cached_keys() -> None:
    with _lock:
        _cache.clear()


def new_dek(
    org_id: UUID, object_id: UUID, object_version: int, org_key: tuple[int, bytes] | None = None
) -> tuple[bytes, bytes, int]:
    """A fresh DEK for one object version: (dek, wrapped dek, org key version). `org_key`: the
    organization's current key as current_org_key() gave it moments ago (a batch of files sealed
    together looks it up once)."""
    version, key = org_key or current_org_key(org_id)
    dek = generate_dek()
    wrapped = wrap_dek(
        key, dek, org_id=org_id, org_key_version=version, object_id=object_id, object_version=object_version
    )
    return dek, wrapped, version


def _unwrap(
    org_id: UUID, org_key_version: int, wrapped: bytes | memoryview | None, object_id: UUID, version: int
) -> bytes:
    if not wrapped:
        raise KeyDestroyed("the data key was destroyed")
    return unwrap_dek(
        org_key(org_id, org_key_version),
        bytes(wrapped),
        org_id=org_id,
        org_key_version=org_key_version,
        object_id=object_id,
        object_version=version,
    )


def content_dek(org_id: UUID, org_key_version: int, wrapped: bytes, object_id: UUID, version: int) -> bytes:
    """The DEK of content not yet linked as a version (vault.api.PendingVersion)."""
    return _unwrap(org_id, org_key_version, wrapped, object_id, version)


def sealed_as(version: ObjectVersion) -> tuple[UUID, int]:
    """The (object, version) a version's ciphertext and DEK were sealed for: its own, or its
    base's for an extent (vault.models.ObjectVersion.base)."""
    base = version.base if version.base_id is not None else None
    if base is not None:
        return base.stored_object_id, base.version
    return version.stored_object_id, version.version


def version_dek(version: ObjectVersion, org_id: UUID) -> bytes:
    return _unwrap(org_id, version.org_key_version, version.wrapped_dek, *sealed_as(version))


def upload_dek(upload: Upload) -> bytes:
    return _unwrap(
        upload.organization_id, upload.org_key_version, upload.wrapped_dek, upload.object_id, upload.object_version
    )


def rewrap_all(progress: object = None) -> int:
    """Move every organization key (and audit archive segment key) to the provider's current KEK
    version; resumable, idempotent."""
    from casebridge.vault.keys.hierarchy import rewrap_org_key

    provider = key_provider()
    current = provider.current_version()
    done = 0
    pending = OrgKey.objects.filter(destroyed_at__isnull=True).exclude(kek_version=current).order_by("pk")
    total = pending.count()
    for row in pending.iterator():
        wrapped = rewrap_org_key(provider, WrappedKey.from_json(row.wrapped), row.organization_id, row.version)
        OrgKey.objects.filter(pk=row.pk, kek_version=row.kek_version).update(
            wrapped=wrapped.to_json(), kek_version=wrapped.version
        )
        done += 1
        if callable(progress):
            progress(done, total)
    forget_cached_keys()
    from casebridge.audit import archive  # audit archive segments' keys are wrapped by the KEK too

    return done + archive.rewrap_all()


def destroy_org_keys(org_id: UUID, *, actor: Any, reason: str) -> int:
    """BAA "return or destroy": every file of the organization becomes unreadable at once.

    The keys and the event that says who destroyed them, and why, commit together. Whoever calls
    this (retention, the end of a relationship) has decided that it may happen; `actor` is who
    decided (None: the system, e.g. an enforced retention rule)."""
    if not reason.strip():
        raise ValueError("say why the organization's keys are destroyed")
    with transaction.atomic():
        count = OrgKey.objects.filter(organization_id=org_id, destroyed_at__isnull=True).update(
            wrapped="", destroyed_at=timezone.now()
        )
        if count:
            record(
                "keys.organization_destroyed",
                actor=actor,
                organization=org_id,
                details={"org_keys": count, "reason": reason.strip()},
            )
    forget_cached_keys()
    return count
