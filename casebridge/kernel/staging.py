"""Where an unfinished upload's ciphertext accumulates until it becomes a blob.

On the filesystem store, one staging file per upload on the same filesystem as the blobs:
appends are fsynced, and finishing is a rename (no copy). On object stores (S3), the ciphertext
is cut into fixed-size parts, each its own object (`PartStaging`): a request rewrites only the
part it starts in and adds whole parts after it, and finishing composes the parts into the blob
inside the store (S3's UploadPartCopy: no byte comes back through CaseBridge). Either way only
ciphertext is staged, and the committed length lives in the Upload row: anything a crashed
request wrote past it is cut off (or ignored) by the next append.

The request that completes an upload stages its final segment too, so finishing moves bytes that
are all in place already.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from casebridge.kernel.backends.base import BlobNotFound, BlobStore, StorageError
from casebridge.kernel.backends.filesystem import FileSystemStore, SequentialWriter, preallocate
from casebridge.kernel.pipeline import write_behind

PART_PREFIX = "staging"
# A staging file is synced this often while a body flows, so the request can hand over what is
# durable as the upload's offset (appending.Checkpoint); the end of every request syncs anyway.
SYNC_SECONDS = 1.0


class StagingConflict(RuntimeError):
    """Another request is writing this upload right now."""


class StagingLost(StorageError):
    """Ciphertext the upload's committed state counts on is no longer staged: it cannot go on."""


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
        durable: Callable[[int], None] | None = None,
    ) -> int:
        """Write ciphertext at byte `at` (truncating anything after it); returns the new size.

        A helper thread writes each chunk while `chunks` produces the next (reading the request
        and encrypting overlap with the copy into the page cache), so a chunk is owned by the
        staging from the moment it is yielded: the producer must not change it until `release`
        is called with it (from the writer thread, once written or dropped after an error).
        Every SYNC_SECONDS the writer thread syncs the file and calls `durable` with its end.
        """
        path = self._path(upload_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StagingConflict(upload_id) from None
            staged = os.fstat(fd).st_size
            if staged < at:
                raise StagingLost(f"the staging file holds {staged} bytes, not the {at} committed")
            if staged > at:  # cut what a crashed request wrote past the committed end
                os.ftruncate(fd, at)
            position = at
            sequential = SequentialWriter(path, fd, at)
            synced_at = time.monotonic()

            def pwrite(view: memoryview) -> None:
                nonlocal position, synced_at
                position = sequential.write_at(view, position)
                if durable is not None and time.monotonic() - synced_at >= SYNC_SECONDS:
                    os.fdatasync(fd)
                    synced_at = time.monotonic()
                    durable(position)

            try:
                write_behind(pwrite, chunks, release)
            finally:
                sequential.close_direct()
            os.fsync(fd)
            return position
        finally:
            os.close(fd)

    def read_range(self, upload_id: str, start: int, end: int) -> bytes:
        with open(self._path(upload_id), "rb", buffering=0) as handle:
            return os.pread(handle.fileno(), end - start, start)

    def promote(self, upload_id: str, blob_name: str, size: int) -> None:
        """Move the staged file (cut to the committed `size`) under its blob name atomically."""
        fd = os.open(self._path(upload_id), os.O_RDWR)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
                os.fsync(fd)
        finally:
            os.close(fd)
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

    def discard(self, upload_id: str) -> None:
        self._path(upload_id).unlink(missing_ok=True)


class StagedFile:
    """One upload's staging file, spoken to as a PartStaging is."""

    def __init__(self, staging: FileStaging, upload_id: str) -> None:
        self.staging = staging
        self.upload_id = upload_id

    def append(
        self,
        at: int,
        chunks: Iterable[bytes | memoryview],
        release: Callable[[Any], object] | None = None,
        durable: Callable[[int], None] | None = None,
    ) -> int:
        return self.staging.append(self.upload_id, at, chunks, release=release, durable=durable)

    def read_range(self, start: int, end: int) -> bytes:
        return self.staging.read_range(self.upload_id, start, end)

    def reserve(self, size: int) -> None:
        self.staging.reserve(self.upload_id, size)


class PartSink(Protocol):
    """Where one upload's staged parts are kept: whole parts by index, read back by range."""

    def put(self, index: int, data: memoryview, /) -> None: ...

    def read(self, index: int, start: int, end: int, /) -> bytes: ...


class PartStaging:
    """One upload's ciphertext in parts of `part_size` bytes (the last part of a run shorter).

    Part k holds ciphertext [k * part_size, (k + 1) * part_size). A request starting at `at` reads
    back the part `at` falls in (up to `at`: beyond it is uncommitted), then fills one part-sized
    buffer and stores each part as it fills; when its chunks end it stores the partial last
    part. Memory is that one buffer, whatever the size of the upload. No Django, no client library
    of its own: the application gives it its store (`StoreParts`), the transfer server presigned
    URLs (transfer/remote.py).
    """

    def __init__(self, sink: PartSink, part_size: int) -> None:
        self.sink = sink
        self.part_size = part_size

    def append(
        self,
        at: int,
        chunks: Iterable[bytes | memoryview],
        release: Callable[[Any], object] | None = None,
        durable: Callable[[int], None] | None = None,
    ) -> int:
        """Stage chunks from byte `at` on (see FileStaging.append for `release`); returns the end.
        A stored part is durable: `durable` is called with its end."""
        size = self.part_size
        first = index = at // size
        kept = at - index * size
        buffer = mmap.mmap(-1, size)
        try:
            if kept:
                try:
                    committed = self.sink.read(index, 0, kept)
                except BlobNotFound:
                    committed = b""
                if len(committed) != kept:
                    raise StagingLost(f"staged part {index} holds {len(committed)} bytes, not the {kept} committed")
                buffer[:kept] = committed
            fill, position = kept, at

            def write(view: memoryview) -> None:
                nonlocal fill, index, position
                while view:
                    n = min(size - fill, len(view))
                    buffer[fill : fill + n] = view[:n]
                    fill, position, view = fill + n, position + n, view[n:]
                    if fill == size:
                        with memoryview(buffer) as whole:
                            self.sink.put(index, whole)
                        index, fill = index + 1, 0
                        if durable is not None:
                            durable(position)

            write_behind(write, chunks, release)
            if fill and not (index == first and fill == kept):  # nothing new: the part is as it was
                with memoryview(buffer) as view:
                    self.sink.put(index, view[:fill])
            return position
        finally:
            with contextlib.suppress(BufferError):  # a traceback still holds a view: unmapped when it goes
                buffer.close()

    def read_range(self, start: int, end: int) -> bytes:
        out = bytearray()
        size = self.part_size
        if end <= start:
            return b""
        for index in range(start // size, (end - 1) // size + 1):
            lo, hi = max(start, index * size), min(end, (index + 1) * size)
            out += self.sink.read(index, lo - index * size, hi - index * size)
        return bytes(out)


def part_count(ciphertext_size: int, part_size: int) -> int:
    """How many parts `ciphertext_size` bytes of staged ciphertext take."""
    return -(-ciphertext_size // part_size)


def part_name(upload_id: str, index: int) -> str:
    return f"{PART_PREFIX}/{upload_id}/{index:05d}"


class StoreParts:
    """An upload's staged parts as blobs of the application's own store, for one request (made
    anew by uploads.staged). A part is read whole and kept while reads stay in it: rebuilding the
    hash reads one segment at a time, which would otherwise be a store request per segment."""

    def __init__(self, store: BlobStore, upload_id: str, part_size: int) -> None:
        self.store = store
        self.upload_id = upload_id
        self.part_size = part_size
        self._read: tuple[int, bytes] | None = None

    def put(self, index: int, data: memoryview, /) -> None:
        self._read = None
        with self.store.open_writer(part_name(self.upload_id, index)) as writer:
            writer.write(data)

    def read(self, index: int, start: int, end: int, /) -> bytes:
        if self._read is None or self._read[0] != index:
            self._read = (index, self.store.read_range(part_name(self.upload_id, index), 0, self.part_size))
        return self._read[1][start:end]
