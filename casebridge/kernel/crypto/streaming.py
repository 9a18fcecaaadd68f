"""Tink's AES256_GCM_HKDF streaming AEAD wire format, written and read with pyca/cryptography.

Tink is the interoperability oracle in the tests; it is not used here because its Python streaming
wrapper copies every segment through C++ file adapters (~0.8 GB/s), while AESGCM.encrypt_into /
decrypt_into on preallocated buffers run at memory speed.

Ciphertext layout (Tink AES256_GCM_HKDF_1MB: key 32 bytes, HKDF-SHA256, derived key 32 bytes,
ciphertext segment size 1 MiB, no ciphertext offset):

    header   = header_size (1 byte, = 40) || salt (32 bytes) || nonce_prefix (7 bytes)
    segment_i = AES-256-GCM(derived_key, nonce_i, plaintext_i, associated data = empty)
              = ciphertext_i || tag_i (16 bytes)
    stream   = header || segment_0 || segment_1 || ... || segment_n-1

    derived_key = HKDF-SHA256(ikm = key, salt = salt, info = associated_data, length = 32)
    nonce_i     = nonce_prefix (7) || i as uint32 big-endian (4) || last (1 byte: 1 on the final
                  segment, 0 otherwise)

Every ciphertext segment is `segment_size` bytes long, except that segment 0 shares its
`segment_size` bytes with the header and the final segment may be shorter (but never shorter than a
tag; an empty plaintext is one empty final segment). Plaintext per segment is therefore
segment_size - 40 - 16 for segment 0 and segment_size - 16 for the rest, so the segment holding any
plaintext offset, and where it sits in the ciphertext, follow from arithmetic alone.

What the format detects: the associated data (object id and version) is folded into the derived key,
so ciphertext moved to another record fails on its first segment; the segment index in the nonce
catches dropped, repeated and reordered segments; the "last" flag catches truncation at a segment
boundary and appended segments; the GCM tag catches every flipped bit. Any failure raises
CiphertextIntegrityError and the failing segment's plaintext is never returned.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
SALT_SIZE = 32  # Tink uses a salt as long as the derived key
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
HEADER_SIZE = 1 + SALT_SIZE + NONCE_PREFIX_SIZE
SEGMENT_SIZE = 1 << 20  # AES256_GCM_HKDF_1MB
MAX_SEGMENTS = 1 << 32  # the segment index is a 32-bit field of the nonce

_AAD_LABEL = b"casebridge.vault.object.v1"


class CiphertextIntegrityError(Exception):
    """The ciphertext is not what was written under this key and associated data."""


def associated_data(object_id: UUID | str, version: int) -> bytes:
    """Bind a ciphertext to one version of one object; length-prefixed so no two pairs collide."""
    oid = str(object_id).encode()
    if version < 0:
        raise ValueError("object version must be >= 0")
    return _AAD_LABEL + struct.pack(">H", len(oid)) + oid + struct.pack(">Q", version)


@dataclass(frozen=True)
class Layout:
    """Sizes and offsets of the format for one ciphertext segment size."""

    segment_size: int = SEGMENT_SIZE

    def __post_init__(self) -> None:
        if self.segment_size <= HEADER_SIZE + TAG_SIZE:
            raise ValueError(f"segment size must exceed {HEADER_SIZE + TAG_SIZE} bytes")

    @property
    def first_plaintext_size(self) -> int:
        return self.segment_size - HEADER_SIZE - TAG_SIZE

    @property
    def plaintext_segment_size(self) -> int:
        return self.segment_size - TAG_SIZE

    def plaintext_capacity(self, index: int) -> int:
        """Plaintext bytes segment `index` holds when full (the first shares its room with the header)."""
        return self.first_plaintext_size if index == 0 else self.plaintext_segment_size

    def segment_count(self, plaintext_size: int) -> int:
        if plaintext_size <= self.first_plaintext_size:
            return 1
        rest = plaintext_size - self.first_plaintext_size
        return 1 + -(-rest // self.plaintext_segment_size)

    def ciphertext_size(self, plaintext_size: int) -> int:
        return HEADER_SIZE + plaintext_size + self.segment_count(plaintext_size) * TAG_SIZE

    def segments_in(self, ciphertext_size: int) -> int:
        """How many segments a ciphertext of this size holds; raises if no valid stream has it."""
        full, remainder = divmod(ciphertext_size, self.segment_size)
        count = full + (1 if remainder else 0)
        last_size = remainder if remainder else self.segment_size
        if count == 1:
            last_size -= HEADER_SIZE
        if count == 0 or last_size < TAG_SIZE or count > MAX_SEGMENTS:
            raise CiphertextIntegrityError(f"ciphertext of {ciphertext_size} bytes is truncated or malformed")
        return count

    def plaintext_size(self, ciphertext_size: int) -> int:
        return ciphertext_size - HEADER_SIZE - self.segments_in(ciphertext_size) * TAG_SIZE

    def segment_of(self, plaintext_offset: int) -> int:
        if plaintext_offset < self.first_plaintext_size:
            return 0
        return 1 + (plaintext_offset - self.first_plaintext_size) // self.plaintext_segment_size

    def plaintext_start(self, index: int) -> int:
        return 0 if index == 0 else self.first_plaintext_size + (index - 1) * self.plaintext_segment_size

    def ciphertext_span(self, index: int, ciphertext_size: int) -> tuple[int, int]:
        """[start, end) of segment `index` inside a stream of `ciphertext_size` bytes."""
        start = HEADER_SIZE if index == 0 else index * self.segment_size
        return start, min((index + 1) * self.segment_size, ciphertext_size)


DEFAULT_LAYOUT = Layout()


class SegmentCipher:
    """The per-stream core: AES-GCM under the derived key with Tink's segment nonces.

    Kept free of I/O and buffering so that bench/crypto_core.py measures exactly the framing cost.
    """

    __slots__ = ("_aead", "_prefix")

    def __init__(self, key: bytes, associated: bytes, salt: bytes, nonce_prefix: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"streaming key must be {KEY_SIZE} bytes, got {len(key)}")
        derived = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=associated).derive(key)
        self._aead = AESGCM(derived)
        self._prefix = nonce_prefix

    def nonce(self, index: int, last: bool) -> bytes:
        return self._prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")

    def encrypt_into(self, index: int, last: bool, plaintext: memoryview | bytes, out: memoryview | bytearray) -> int:
        """Encrypt one segment into `out` (exactly len(plaintext) + 16 bytes); returns the bytes written."""
        if index >= MAX_SEGMENTS:
            raise ValueError("stream exceeds 2**32 segments")
        return self._aead.encrypt_into(self.nonce(index, last), plaintext, None, out)

    def decrypt_into(self, index: int, last: bool, ciphertext: memoryview | bytes, out: memoryview | bytearray) -> int:
        """Decrypt and authenticate one segment into `out` (exactly len(ciphertext) - 16 bytes).

        On failure `out` is zeroed and CiphertextIntegrityError raised.
        """
        if len(ciphertext) < TAG_SIZE:
            raise CiphertextIntegrityError(f"segment {index} is shorter than its tag: ciphertext truncated")
        try:
            return self._aead.decrypt_into(self.nonce(index, last), ciphertext, None, out)
        except InvalidTag:
            # OpenSSL has already written unauthenticated plaintext into `out`: wipe it so no caller
            # can leak it by mistake.
            wipe = memoryview(out).cast("B")
            wipe[:] = bytes(len(wipe))
            raise CiphertextIntegrityError(
                f"segment {index} failed authentication: the ciphertext was modified, truncated, reordered "
                "or extended, or it belongs to another object/version or key"
            ) from None


def new_stream(key: bytes, associated: bytes) -> tuple[bytes, SegmentCipher]:
    """A fresh header (random salt and nonce prefix) and the cipher that goes with it."""
    salt = os.urandom(SALT_SIZE)
    prefix = os.urandom(NONCE_PREFIX_SIZE)
    header = bytes([HEADER_SIZE]) + salt + prefix
    return header, SegmentCipher(key, associated, salt, prefix)


def open_stream(key: bytes, associated: bytes, header: bytes | memoryview) -> SegmentCipher:
    """The cipher for an existing stream, from its header."""
    if len(header) < HEADER_SIZE or header[0] != HEADER_SIZE:
        raise CiphertextIntegrityError("ciphertext header is missing or malformed")
    header = bytes(header[:HEADER_SIZE])
    return SegmentCipher(key, associated, header[1 : 1 + SALT_SIZE], header[1 + SALT_SIZE :])


# -- encryption -----------------------------------------------------------------------------------


class _Sink(Protocol):
    def write(self, data: memoryview, /) -> object: ...


class EncryptingWriter:
    """Push plaintext in any chunk sizes; ciphertext goes to `sink.write` segment by segment.

    Memory is two segment buffers whatever the object size. A full segment is held back until more
    plaintext arrives (or close()) because only then is it known whether it is the last one. The
    buffers are reused, so the sink must consume each write before returning (files, sockets and
    hashers do).
    """

    def __init__(self, sink: _Sink, key: bytes, associated: bytes, layout: Layout = DEFAULT_LAYOUT) -> None:
        self._sink = sink
        self._layout = layout
        header, self._cipher = new_stream(key, associated)
        self._plain = bytearray(layout.plaintext_segment_size)
        self._pending = 0  # bytes of plaintext in self._plain
        self._out = bytearray(layout.segment_size)
        self._index = 0
        self._closed = False
        self.plaintext_size = 0
        self.ciphertext_size = 0
        self._emit(header)

    def _emit(self, data: bytes | memoryview) -> None:
        self._sink.write(memoryview(data))
        self.ciphertext_size += len(data)

    def _seal(self, plaintext: memoryview, last: bool) -> None:
        out = memoryview(self._out)[: len(plaintext) + TAG_SIZE]
        self._cipher.encrypt_into(self._index, last, plaintext, out)
        self._index += 1
        self._emit(out)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        total = len(view)
        self.plaintext_size += total
        while view:
            capacity = self._layout.plaintext_capacity(self._index)
            if self._pending == capacity:
                # More plaintext follows, so the buffered segment is not the last one.
                self._seal(memoryview(self._plain)[:capacity], last=False)
                self._pending = 0
                continue
            if self._pending == 0 and len(view) > capacity:
                # Whole segments straight from the caller's buffer: no copy.
                self._seal(view[:capacity], last=False)
                view = view[capacity:]
                continue
            take = min(capacity - self._pending, len(view))
            self._plain[self._pending : self._pending + take] = view[:take]
            self._pending += take
            view = view[take:]
        return total

    def close(self) -> None:
        """Seal the final segment (empty for empty content). Not calling it leaves a truncated stream."""
        if self._closed:
            return
        self._seal(memoryview(self._plain)[: self._pending], last=True)
        self._pending = 0
        self._closed = True

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Never seal a stream whose producer failed: a truncated stream is rejected on read.
        if exc_type is None:
            self.close()


class _ChunkCollector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: memoryview, /) -> None:
        self.chunks.append(bytes(data))


def encrypt_chunks(
    chunks: Iterable[bytes | bytearray | memoryview],
    key: bytes,
    associated: bytes,
    layout: Layout = DEFAULT_LAYOUT,
) -> Iterator[bytes]:
    """Pull-style encryption: yields ciphertext pieces (header, then one per segment) the caller owns."""
    collector = _ChunkCollector()
    writer = EncryptingWriter(collector, key, associated, layout)
    for chunk in chunks:
        writer.write(chunk)
        if collector.chunks:
            yield from collector.chunks
            collector.chunks.clear()
    writer.close()
    yield from collector.chunks


# -- sequential decryption ------------------------------------------------------------------------


class _Source(Protocol):
    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


def read_full(source: _Source, view: memoryview) -> int:
    """Read until `view` is full or the source ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = source.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def decrypt_stream(
    source: _Source, key: bytes, associated: bytes, layout: Layout = DEFAULT_LAYOUT, *, reuse_buffer: bool = False
) -> Iterator[memoryview]:
    """Yield authenticated plaintext segment by segment from a readable ciphertext source.

    A segment is yielded only after its tag verified; the stream ends cleanly only after a segment
    flagged "last" verified and the source was exhausted, so a truncated or extended ciphertext
    always ends in an exception. By default each yielded memoryview is a fresh buffer the caller may
    keep; with reuse_buffer=True it is overwritten by the next segment (no allocation per segment,
    which page-faults a fresh MiB each time: right for consumers that write each chunk out before
    asking for the next, as WSGI servers and file copies do).
    """
    header = bytearray(HEADER_SIZE)
    if read_full(source, memoryview(header)) < HEADER_SIZE:
        raise CiphertextIntegrityError("ciphertext is shorter than its header: truncated")
    cipher = open_stream(key, associated, header)
    # One byte of look-ahead past each segment tells whether it is the last one.
    buf = bytearray(layout.segment_size + 1)
    view = memoryview(buf)
    shared = memoryview(bytearray(layout.plaintext_segment_size)) if reuse_buffer else None
    carried = 0
    index = 0
    while True:
        size = (layout.segment_size - HEADER_SIZE) if index == 0 else layout.segment_size
        got = carried + read_full(source, view[carried : size + 1])
        last = got <= size
        seg_len = got if last else size
        if index >= MAX_SEGMENTS:
            raise CiphertextIntegrityError("ciphertext has more than 2**32 segments")
        out = _output(shared, seg_len - TAG_SIZE)
        written = cipher.decrypt_into(index, last, view[:seg_len], out)
        yield out[:written]
        if last:
            return
        buf[0] = buf[size]
        carried = 1
        index += 1


def _output(shared: memoryview | None, size: int) -> memoryview:
    size = max(size, 0)
    return shared[:size] if shared is not None else memoryview(bytearray(size))


class DecryptingReader(io.RawIOBase):
    """A read-only file object over decrypt_stream, for code that wants read()/readinto()."""

    def __init__(self, source: _Source, key: bytes, associated: bytes, layout: Layout = DEFAULT_LAYOUT) -> None:
        super().__init__()
        # Safe to reuse: readinto copies out of the segment before the next one is decrypted.
        self._segments = decrypt_stream(source, key, associated, layout, reuse_buffer=True)
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        while not self._current:
            nxt = next(self._segments, None)
            if nxt is None:
                return 0
            self._current = nxt
        n = min(len(target), len(self._current))
        target[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


# -- random access --------------------------------------------------------------------------------

ReadRange = Callable[[int, int], bytes]
"""read_range(start, end) -> exactly the ciphertext bytes [start, end)."""


def decrypt_range(
    read_range: ReadRange,
    ciphertext_size: int,
    key: bytes,
    associated: bytes,
    start: int = 0,
    end: int | None = None,
    layout: Layout = DEFAULT_LAYOUT,
    *,
    reuse_buffer: bool = False,
) -> Iterator[memoryview]:
    """Yield plaintext bytes [start, end) reading only the header and the segments they span.

    Each spanned segment is authenticated whole before any of it is yielded; whether a segment is
    the last one comes from `ciphertext_size` (which the caller must take from its own metadata or the
    store, never from the requester), so a shortened or extended object fails on its final segment.
    reuse_buffer has the meaning it has for decrypt_stream.
    """
    plaintext_size = layout.plaintext_size(ciphertext_size)
    stop = plaintext_size if end is None else min(end, plaintext_size)
    if start < 0 or start > stop:
        raise ValueError(f"range [{start}, {end}) is outside a {plaintext_size}-byte object")
    count = layout.segments_in(ciphertext_size)
    first = layout.segment_of(start)
    last_needed = layout.segment_of(stop - 1) if stop > start else first
    if stop == start and plaintext_size > 0:
        return
    header = read_range(0, HEADER_SIZE)
    if len(header) != HEADER_SIZE:
        raise CiphertextIntegrityError("ciphertext header could not be read: truncated")
    cipher = open_stream(key, associated, header)
    shared = memoryview(bytearray(layout.plaintext_segment_size)) if reuse_buffer else None
    for index in range(first, min(last_needed, count - 1) + 1):
        seg_start, seg_end = layout.ciphertext_span(index, ciphertext_size)
        data = read_range(seg_start, seg_end)
        if len(data) != seg_end - seg_start:
            raise CiphertextIntegrityError(f"segment {index} could not be read whole: truncated")
        out = _output(shared, len(data) - TAG_SIZE)
        written = cipher.decrypt_into(index, index == count - 1, data, out)
        base = layout.plaintext_start(index)
        lo = max(start - base, 0)
        hi = min(stop - base, written)
        if hi > lo:
            yield out[lo:hi]
