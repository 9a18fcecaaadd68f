"""Random bearer secrets and the digests we store instead of them."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> tuple[str, str]:
    """Return (secret to hand out once, digest to store)."""
    raw = secrets.token_urlsafe(nbytes)
    return raw, digest(raw)


def digest(raw: str) -> str:
    # The secrets are 256-bit random values, so a plain SHA-256 is a sufficient one-way store.
    return hashlib.sha256(raw.encode()).hexdigest()


def matches(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)
