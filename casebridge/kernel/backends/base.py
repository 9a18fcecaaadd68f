"""The storage-backend interface: named immutable blobs, written atomically, read by byte range."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType

# Names are chosen by the vault (object id / version), never by users; the pattern keeps them
# from escaping the store's root whatever a future caller passes.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class StorageError(RuntimeError):
    """The store is misconfigured or unreachable, or an operation on it failed."""


class NoRoom(StorageError):
    """The disk has no room for what is about to be written."""


class BlobNotFound(StorageError):
    """No blob has this name (never written, not yet committed, or deleted)."""


def check_name(name: str) -> str:
    if not _NAME.match(name) or len(name) > 512:
        raise ValueError(f"invalid blob name {name!r}")
    return name


class BlobWriter(ABC):
    """Receives a blob's bytes; nothing is visible under the name until commit() returns."""

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    @abstractmethod
    def commit(self) -> int:
        """Make the blob durable and visible in one step; returns its size."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the partial blob away; safe to call after a failure or twice."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class BlobStore(ABC):
    """Where ciphertext lives. Blobs are immutable: a new version is a new name."""

    @abstractmethod
    def open_writer(self, name: str, size_hint: int = 0, *, durable: bool = True) -> BlobWriter:
        """A writer for a new blob; `size_hint` (when known) lets the store reserve space up front.

        With `durable=False` its commit() makes the blob visible but may leave it in a cache:
        the caller must pass it to sync() before it reports the blob stored to anyone."""

    @abstractmethod
    def sync(self, names: Iterable[str]) -> None:
        """Make blobs committed with `durable=False` durable: one barrier for a batch of them
        instead of one per blob."""

    def put(self, name: str, chunks: Iterable[bytes | bytearray | memoryview]) -> int:
        """Store a stream of chunks under `name`, visible only once complete; returns the size."""
        with self.open_writer(name) as writer:
            for chunk in chunks:
                writer.write(chunk)
        return self.size(name)

    def download_url(self, name: str, expires_in: int) -> str | None:
        """A URL that lets a process without this store's credentials GET the blob (ranges
        included) for `expires_in` seconds, or None where the store has no such thing."""
        return None

    def upload_url(self, name: str, expires_in: int) -> str | None:
        """A URL that lets a process without this store's credentials PUT the blob whole for
        `expires_in` seconds, or None where the store has no such thing."""
        return None

    def compose(self, name: str, sources: list[str]) -> int:
        """A new blob, the concatenation of `sources` (which stay); returns its size.

        Streams through this process; stores that can concatenate inside themselves do that."""
        step = 8 << 20

        def chunks() -> Iterable[bytes]:
            for source in sources:
                size = self.size(source)
                for offset in range(0, size, step):
                    yield self.read_range(source, offset, min(size, offset + step))

        return self.put(name, chunks())

    def delete_many(self, names: Iterable[str]) -> None:
        """Remove blobs that may or may not exist."""
        for name in names:
            self.delete(name)

    @abstractmethod
    def read_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a blob (fewer only if the blob is shorter)."""

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def delete(self, name: str) -> bool:
        """Remove a blob; returns False if it was not there (deleting twice is not an error)."""
