"""Storage backends for ciphertext, chosen by a URL: `file:///path` or `s3://bucket/prefix?endpoint=...`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from casebridge.kernel.backends.base import BlobNotFound, BlobStore, BlobWriter, NoRoom, StorageError

__all__ = ["BlobNotFound", "BlobStore", "BlobWriter", "NoRoom", "StorageError", "store_from_url"]


def store_from_url(url: str) -> BlobStore:
    """file:///var/casebridge/blobs, or s3://bucket/prefix?endpoint=http://minio:9000&region=R&part_size=N"""
    parts = urlsplit(url)
    params = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file: storage URL must be local (file:///path): {url!r}")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise StorageError(f"file: storage URL needs an absolute path: {url!r}")
        from casebridge.kernel.backends.filesystem import FileSystemStore

        return FileSystemStore(path)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageError(f"s3: storage URL names no bucket: {url!r}")
        from casebridge.kernel.backends.s3 import DEFAULT_PART_SIZE, S3Store

        try:
            part_size = int(params.get("part_size", DEFAULT_PART_SIZE))
        except ValueError:
            raise StorageError(f"part_size in {url!r} is not a number") from None
        return S3Store(
            parts.netloc,
            unquote(parts.path),
            endpoint=params.get("endpoint"),
            region=params.get("region"),
            part_size=part_size,
        )
    raise StorageError(f"unknown storage URL scheme {parts.scheme!r} (file:///path or s3://bucket/prefix)")
