"""Where an unfinished upload's ciphertext accumulates until it becomes a blob.

On the filesystem store, one staging file per upload on the same filesystem as the blobs:
appends are fsynced, and finishing is a rename (no copy). On other stores (S3), each PATCH's
ciphertext is its own blob and finishing streams them into the final multipart upload. Either
way only ciphertext is staged, and the committed length lives in the Upload row: anything a
crashed request wrote past it is cut off by the next append.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from casebridge.vault.backends import BlobStore
from casebridge.vault.backends.filesystem import FileSystemStore, Writeback, preallocate
from casebridge.vault.pipeline import WriteBehind

PART_PREFIX = "staging"


class StagingConflict(RuntimeError):
    """Another request is writing this upload right now."""


class FileStaging:
    def __init__(self, store: FileSystemStore) -> None:
        self.store = store
        self.root = store.root / ".staging"
        self.root.mkdir(mode=0o700, exist_ok=True)

    def _path(self, upload_id: str) -> Path:
        return self.root / upload_id

    def reserve(self, upload_id: str, size: int) -> None:
        """Allocate the disk space the finished blob will take (see backends.filesystem.preallocate)."""
        fd = os.open(self._path(upload_id), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            preallocate(fd, size)
        finally:
            os.close(fd)

    def append(
        self,
        upload_id: str,
        at: int,
        chunks: Iterable[bytes | memoryview],
        release: Callable[[Any], object] | None = None,
    ) -> int:
        """Write ciphertext at byte `at` (truncating anything after it); returns the new size.

        A helper thread writes each chunk while `chunks` produces the next (reading the request
        and encrypting overlap with the copy into the page cache), so a chunk is owned by the
        staging from the moment it is yielded: the producer must not change it until `release`
        is called with it (from the writer thread, once written or dropped after an error).
        """
        path = self._path(upload_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StagingConflict(upload_id) from None
            if os.fstat(fd).st_size > at:  # cut what a crashed request wrote past the committed end
                os.ftruncate(fd, at)
            position = at
            writeback = Writeback(fd, at)

            def pwrite(view: memoryview) -> None:
                nonlocal position
                while view:
                    written = os.pwrite(fd, view, position)
                    position += written
                    view = view[written:]
                writeback.advance(position)

            writer = WriteBehind(pwrite, release)
            try:
                for chunk in chunks:
                    writer.put(chunk)
            finally:
                writer.close()
            os.fsync(fd)
            return position
        finally:
            os.close(fd)

    def read_range(self, upload_id: str, start: int, end: int) -> bytes:
        with open(self._path(upload_id), "rb", buffering=0) as handle:
            return os.pread(handle.fileno(), end - start, start)

    def promote(self, upload_id: str, blob_name: str, size: int, tail: bytes) -> None:
        """Append the final ciphertext and move the staged file under its blob name atomically."""
        self.append(upload_id, size, [tail])
        final = self.store.path_for(blob_name)
        for directory in (final.parent.parent, final.parent):
            directory.mkdir(mode=0o700, exist_ok=True)
        os.replace(self._path(upload_id), final)
        for directory in (final.parent, final.parent.parent, self.root):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def discard(self, upload_id: str, parts: list[list[int]] | None = None) -> None:
        self._path(upload_id).unlink(missing_ok=True)


class BlobPartStaging:
    """Staging for object stores: one blob per appended run of ciphertext."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    @staticmethod
    def part_name(upload_id: str, at: int) -> str:
        return f"{PART_PREFIX}/{upload_id}/{at:016d}"

    def append_part(self, upload_id: str, at: int, chunks: Iterable[bytes | memoryview]) -> int:
        size = self.store.put(self.part_name(upload_id, at), chunks)
        return at + size

    def read_range(self, upload_id: str, parts: list[list[int]], start: int, end: int) -> bytes:
        out = bytearray()
        for at, size in parts:
            lo, hi = max(start, at), min(end, at + size)
            if lo < hi:
                out += self.store.read_range(self.part_name(upload_id, at), lo - at, hi - at)
        return bytes(out)

    def _stream(self, upload_id: str, parts: list[list[int]]) -> Iterator[bytes]:
        step = 8 << 20
        for at, size in parts:
            for offset in range(0, size, step):
                yield self.store.read_range(self.part_name(upload_id, at), offset, min(size, offset + step))

    def promote(self, upload_id: str, parts: list[list[int]], blob_name: str, tail: bytes) -> None:
        def everything() -> Iterator[bytes]:
            yield from self._stream(upload_id, parts)
            yield tail

        self.store.put(blob_name, everything())
        self.discard(upload_id, parts)

    def discard(self, upload_id: str, parts: list[list[int]] | None = None) -> None:
        for at, _size in parts or []:
            self.store.delete(self.part_name(upload_id, at))
