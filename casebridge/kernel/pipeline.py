"""Sealing plaintext of a known total length into the vault's segment format, on three threads.

Both ways content enters the vault (a tus request body, a server-side producer through
put_stream) go through here:

    source --readinto--> segment buffer --> SHA-256 thread --> AES-GCM in place --> writer thread

The source reads straight into the buffer the segment is encrypted in (no copy on the way: for
an upload the TLS layer decrypts into it), the SHA-256 of the plaintext runs in its own thread
(hashlib releases the GIL; at ~1.5 GB/s it is the slowest stage), each hashed segment is
encrypted in place by the caller's thread (pyca's encrypt_into allows it), and the ciphertext is
written by the consumer's writer thread while the next segment is read. Because the total length
is known, whether a segment is the last one is arithmetic and a full segment never waits.

Memory is a handful of 1 MiB buffers whatever the size of the content. They are anonymous mmaps,
not heap: released to the kernel when the pipeline closes instead of staying in a malloc arena of
whichever server thread used them (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import mmap
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from casebridge.kernel import filetypes
from casebridge.kernel.backends.base import BlobStore
from casebridge.kernel.crypto.streaming import (
    DEFAULT_LAYOUT,
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    Layout,
    new_stream,
)

HASH_AHEAD = 2  # full segments that may wait for the hash thread before the reader waits
WRITE_BEHIND = 2  # ciphertext segments queued for a writer thread
MAX_BUFFERS = HASH_AHEAD + WRITE_BEHIND + 3  # + the one being filled, the one being written, slack


class _Cipher(Protocol):
    def encrypt_into(self, index: int, last: bool, plaintext: memoryview, out: memoryview, /) -> int: ...


Readinto = Callable[[memoryview], int]
"""Fill the start of a view; return how many bytes were read, 0 at the end. OSError = dropped."""


class _Segment:
    __slots__ = ("buffer", "filled", "hash_from", "hashed", "index", "start")

    def __init__(self, buffer: mmap.mmap) -> None:
        self.buffer = buffer
        self.hashed = threading.Event()
        self.index = 0
        self.start = 0  # where the plaintext begins in the buffer (after the header in segment 0)
        self.filled = 0  # plaintext bytes in the buffer
        self.hash_from = 0  # plaintext bytes already hashed (a resumed tail was hashed before)

    def plaintext(self) -> memoryview:
        return memoryview(self.buffer)[self.start : self.start + self.filled]


class SealingPipeline:
    """Seal plaintext segment by segment; see the module docstring.

    `index` is the segment the first new byte belongs to and `tail` the plaintext of it that an
    earlier request already delivered (already hashed). `hashers` each receive every new byte, in
    order. `inspect_first` sees segment 0's plaintext before it is encrypted (file-type sniffing;
    an exception from it ends the pipeline). Use as a context manager: closing stops the hash
    thread and frees the buffers.
    """

    def __init__(
        self,
        cipher: _Cipher,
        *,
        index: int,
        last_index: int,
        hashers: Sequence[Any],
        tail: bytes | memoryview = b"",
        inspect_first: Callable[[memoryview], None] | None = None,
        layout: Layout = DEFAULT_LAYOUT,
    ) -> None:
        if layout.segment_size != SEGMENT_SIZE:
            raise ValueError("the pipeline's buffers are sized for the default segment size")
        self._cipher = cipher
        self._last_index = last_index
        self._hashers = list(hashers)
        self._inspect_first = inspect_first
        self._layout = layout
        self._free: queue.SimpleQueue[_Segment] = queue.SimpleQueue()
        self._buffers: list[_Segment] = []
        self._pending: deque[_Segment] = deque()
        self._by_buffer: dict[int, _Segment] = {}
        self._hash_queue: queue.SimpleQueue[tuple[_Segment, int, int] | None] = queue.SimpleQueue()
        self._hash_error: BaseException | None = None
        self._hash_thread = threading.Thread(target=self._hash_loop, name="vault-sha256", daemon=True)
        self._hash_thread.start()
        self._closed = False
        self.received = 0  # new plaintext bytes read from the source
        self.interrupted = False  # the source raised OSError (a dropped connection)
        self._current = self._acquire(index)
        if len(tail) > self._layout.plaintext_capacity(index):
            raise ValueError("the tail is longer than its segment")
        self._current.buffer[self._current.start : self._current.start + len(tail)] = tail
        self._current.filled = self._current.hash_from = len(tail)

    # -- buffers ----------------------------------------------------------------------------
    def _acquire(self, index: int) -> _Segment:
        try:
            segment = self._free.get_nowait()
        except queue.Empty:
            if len(self._buffers) < MAX_BUFFERS:
                segment = _Segment(mmap.mmap(-1, SEGMENT_SIZE))
                self._buffers.append(segment)
                self._by_buffer[id(segment.buffer)] = segment
            else:
                segment = self._free.get()  # a writer thread hands one back once written
        segment.index = index
        segment.start = HEADER_SIZE if index == 0 else 0
        segment.filled = segment.hash_from = 0
        segment.hashed.clear()
        return segment

    @property
    def buffer_count(self) -> int:
        """Segment buffers allocated so far (never more than MAX_BUFFERS)."""
        return len(self._buffers)

    def release(self, chunk: object) -> None:
        """Give a yielded ciphertext chunk's buffer back (from any thread) once it is written.

        Anything else a writer carried along with the segments (a header) is ignored.
        """
        segment = self._by_buffer.get(id(getattr(chunk, "obj", None)))
        if segment is not None:
            self._free.put(segment)

    # -- hashing ----------------------------------------------------------------------------
    def _hash_loop(self) -> None:
        while (item := self._hash_queue.get()) is not None:
            segment, lo, hi = item
            try:
                if self._hash_error is None and hi > lo:
                    view = memoryview(segment.buffer)[segment.start + lo : segment.start + hi]
                    for hasher in self._hashers:
                        hasher.update(view)
            except BaseException as exc:  # surfaced by finish()
                self._hash_error = exc
            finally:
                segment.hashed.set()

    def _hash(self, segment: _Segment) -> None:
        self._hash_queue.put((segment, segment.hash_from, segment.filled))
        segment.hash_from = segment.filled

    # -- sealing ----------------------------------------------------------------------------
    def _encrypt(self, segment: _Segment, last: bool) -> memoryview:
        segment.hashed.wait()
        view = memoryview(segment.buffer)[segment.start : segment.start + segment.filled + TAG_SIZE]
        written = self._cipher.encrypt_into(segment.index, last, view[: segment.filled], view)
        return view[:written]

    def seal(self, readinto: Readinto, limit: int) -> Iterator[memoryview]:
        """Read up to `limit` new bytes; yield the ciphertext of every full segment but the last.

        Each yielded chunk lives in a pooled buffer: hand it back with release() once written (the
        pool is small: a consumer that keeps chunks stops the pipeline). What is left when the
        source ends (the unfinished or last segment) is in `partial`.
        """
        while True:
            segment = self._current
            capacity = self._layout.plaintext_capacity(segment.index)
            if segment.filled == capacity and segment.index != self._last_index:
                if segment.index == 0 and self._inspect_first is not None:
                    self._inspect_first(segment.plaintext())
                self._hash(segment)
                self._pending.append(segment)
                while self._pending and (len(self._pending) > HASH_AHEAD or self._pending[0].hashed.is_set()):
                    yield self._encrypt(self._pending.popleft(), last=False)
                self._current = self._acquire(segment.index + 1)
                continue
            if self.received >= limit:
                break
            want = min(capacity - segment.filled, limit - self.received)
            start = segment.start + segment.filled
            try:
                got = readinto(memoryview(segment.buffer)[start : start + want])
            except OSError:
                self.interrupted = True
                break
            if not got:
                break
            segment.filled += got
            self.received += got
        while self._pending:
            yield self._encrypt(self._pending.popleft(), last=False)

    @property
    def index(self) -> int:
        """The segment the unfinished plaintext belongs to."""
        return self._current.index

    @property
    def partial(self) -> memoryview:
        """Plaintext of the unfinished segment (the resumed tail included). Valid until close()."""
        return self._current.plaintext()

    def finish(self) -> None:
        """Hash the unfinished segment's new bytes too and wait until every byte is hashed."""
        if self._hash_thread.is_alive():
            self._hash(self._current)
            self._hash_queue.put(None)
            self._hash_thread.join()
        if self._hash_error is not None:
            raise self._hash_error

    def seal_last(self) -> memoryview:
        """Encrypt the final segment in place (after finish()); valid until close()."""
        if self._current.index != self._last_index:
            raise ValueError("the content is not complete")
        return self._encrypt(self._current, last=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._hash_thread.is_alive():
            self._hash_queue.put(None)
            self._hash_thread.join()
        for segment in self._buffers:
            with contextlib.suppress(BufferError):  # a caller still holds a view: unmapped when it goes
                segment.buffer.close()

    def __enter__(self) -> SealingPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind:
    """Calls `write(chunk)` for queued chunks, in order, from its own thread.

    The producer goes on reading and encrypting while the previous chunk is copied to the page
    cache or the network (os.pwrite and socket sends release the GIL). `release(chunk)` is called
    once a chunk is written, or dropped after an error, so pooled buffers come back either way.
    """

    _STOP: Any = object()

    def __init__(self, write: Callable[[memoryview], object], release: Callable[[Any], object] | None = None) -> None:
        self._write = write
        self._release = release
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=WRITE_BEHIND)
        self._thread = threading.Thread(target=self._run, name="vault-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not self._STOP:
            try:
                if self.error is None:  # after an error keep draining so the producer never blocks
                    self._write(memoryview(chunk))
            except BaseException as exc:  # surfaced to the producer by put() and close()
                self.error = exc
            finally:
                if self._release is not None:
                    self._release(chunk)

    def put(self, chunk: bytes | memoryview) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(chunk)

    def close(self) -> None:
        """Wait until everything queued is written; raises what a write raised."""
        self._queue.put(self._STOP)
        self._thread.join()
        if self.error is not None:
            raise self.error


def write_behind(
    write: Callable[[memoryview], object], chunks: Iterable[Any], release: Callable[[Any], object] | None = None
) -> None:
    """Write every chunk with `write` from a helper thread while `chunks` produces the next; raises
    what `chunks` or a write raised, once everything queued is written or dropped."""
    writer = WriteBehind(write, release)
    try:
        for chunk in chunks:
            writer.put(chunk)
    finally:
        writer.close()


class ChunkReader:
    """readinto() over an iterable of byte chunks (server-side producers hand content over so)."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = iter(chunks)
        self._current = memoryview(b"")

    def readinto(self, view: memoryview) -> int:
        while not self._current:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._current = memoryview(nxt).cast("B")
        n = min(len(view), len(self._current))
        view[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


@dataclass
class Sealed:
    ciphertext_size: int
    sha256: str
    file_type: filetypes.FileType


def seal_to_blob(
    store: BlobStore,
    blob_name: str,
    dek: bytes,
    associated: bytes,
    source: Readinto,
    length: int,
    *,
    durable: bool = True,
) -> Sealed:
    """Encrypt `length` bytes read from `source` into a new blob: SHA-256, type and size come back.

    The blob is durable (fsync + rename on the filesystem) or absent when this returns or raises;
    with `durable=False` it is written and renamed, and durable once the caller's store.sync().
    """
    header, cipher = new_stream(dek, associated)
    ciphertext_size = DEFAULT_LAYOUT.ciphertext_size(length)
    if DEFAULT_LAYOUT.segment_count(length) == 1:
        return _seal_one_segment(store, blob_name, header, cipher, source, length, durable)
    hasher = hashlib.sha256()
    prefix = bytearray()

    def sniff(plaintext: memoryview) -> None:
        prefix[:] = plaintext[: filetypes.SNIFF_BYTES]

    last_index = DEFAULT_LAYOUT.segment_count(length) - 1
    with (
        store.open_writer(blob_name, ciphertext_size, durable=durable) as sink,
        SealingPipeline(cipher, index=0, last_index=last_index, hashers=[hasher], inspect_first=sniff) as pipeline,
    ):
        write_behind(sink.write, itertools.chain([header], pipeline.seal(source, length)), pipeline.release)
        pipeline.finish()
        if pipeline.received != length or source(memoryview(bytearray(1))):
            raise ValueError(f"expected {length} bytes, got {pipeline.received} or more")
        if not prefix:
            sniff(pipeline.partial)
        kind = filetypes.detect(bytes(prefix), length)  # refused content never becomes a blob
        sink.write(pipeline.seal_last())
    return Sealed(ciphertext_size, hasher.hexdigest(), kind)


def _seal_one_segment(
    store: BlobStore, blob_name: str, header: bytes, cipher: _Cipher, source: Readinto, length: int, durable: bool
) -> Sealed:
    """seal_to_blob() of content that fits in one segment (a DICOM slice, a metadata document),
    on the caller's thread: starting the pipeline's two threads and mapping its buffers cost
    more than hashing and encrypting half a megabyte. The same blob, byte for byte."""
    buffer = bytearray(length + TAG_SIZE)
    view = memoryview(buffer)
    received = 0
    with contextlib.suppress(OSError):  # a dropped source: refused below, as in the pipeline
        while received < length and (got := source(view[received:length])):
            received += got
    if received != length or source(memoryview(bytearray(1))):
        raise ValueError(f"expected {length} bytes, got {received} or more")
    plaintext = view[:length]
    kind = filetypes.detect(bytes(plaintext[: filetypes.SNIFF_BYTES]), length)  # refused: never a blob
    sha256 = hashlib.sha256(plaintext).hexdigest()
    written = cipher.encrypt_into(0, True, plaintext, view)
    with store.open_writer(blob_name, HEADER_SIZE + written, durable=durable) as sink:
        sink.write(header)
        sink.write(view[:written])
    return Sealed(HEADER_SIZE + written, sha256, kind)


class ContentTooLarge(ValueError):
    """Content of unknown length went past the most the caller would take; nothing was kept."""


@dataclass
class SealedStream(Sealed):
    size: int


def seal_unsized_to_blob(
    store: BlobStore, blob_name: str, dek: bytes, associated: bytes, source: Readinto, max_length: int
) -> SealedStream:
    """Encrypt whatever `source` holds, its length not known up front (a part of a multipart
    body), into a new blob; refuses more than `max_length` bytes (ContentTooLarge).

    A full segment waits for the next bytes before it is sealed, since only they tell whether it
    is the last one (crypto.streaming.EncryptingWriter); so this runs on one thread, a segment
    behind the source, where seal_to_blob knows the end in advance and overlaps the stages. The
    blob is durable or absent when this returns or raises, as there."""
    from casebridge.kernel.crypto.streaming import EncryptingWriter

    hasher = hashlib.sha256()
    prefix = bytearray()
    received = 0
    with mmap.mmap(-1, SEGMENT_SIZE) as block, memoryview(block) as view, store.open_writer(blob_name) as sink:
        writer = EncryptingWriter(sink, dek, associated)
        while got := source(view):
            received += got
            if received > max_length:
                raise ContentTooLarge(f"more than {max_length} bytes")
            if len(prefix) < filetypes.SNIFF_BYTES:
                prefix += view[: min(got, filetypes.SNIFF_BYTES - len(prefix))]
            hasher.update(view[:got])
            writer.write(view[:got])
        kind = filetypes.detect(bytes(prefix), received)  # refused content never becomes a blob
        writer.close()
    return SealedStream(writer.ciphertext_size, hasher.hexdigest(), kind, received)
