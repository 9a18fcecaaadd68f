"""The configured key provider and blob store, built once per process and checked at start."""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from casebridge.kernel.backends import BlobStore, store_from_url
from casebridge.vault.keys import KeyProvider, provider_from_url


@functools.cache
def key_provider() -> KeyProvider:
    url = settings.VAULT_KEY_PROVIDER
    # A fresh embedded install may create its first local KEK; anything else must already exist,
    # so a lost or misconfigured key is an error at start, not a silently new key.
    return provider_from_url(url, create=url == "local:" and not _has_wrapped_keys())


@functools.cache
def blob_store() -> BlobStore:
    return store_from_url(settings.VAULT_STORAGE_URL)


def _has_wrapped_keys() -> bool:
    from django.db.utils import DatabaseError

    from casebridge.vault.models import OrgKey

    try:
        return OrgKey.objects.exists()
    except DatabaseError:  # before the first migration
        return False


def check() -> None:
    """Fail loudly at start if keys or storage are unusable (raises with the reason)."""
    key_provider()
    store = blob_store()
    probe = "healthcheck/start-probe"
    store.put(probe, [b"ok"])
    store.delete(probe)


def staging_root() -> Path | None:
    """Where the filesystem store stages uploads (same filesystem, so promotion is a rename)."""
    from casebridge.kernel.backends.filesystem import FileSystemStore

    store = blob_store()
    return store.root / ".staging" if isinstance(store, FileSystemStore) else None


def reset_caches() -> None:
    """For tests that switch providers or stores."""
    key_provider.cache_clear()
    blob_store.cache_clear()
