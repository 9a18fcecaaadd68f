"""The sealing pipeline: what it writes is the vault's stream format (Tink-compatible, checked by
decrypting it), its SHA-256 is the content's, a request can stop anywhere and the next one go on
from the tail, and memory stays a handful of segment buffers whatever the size."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from casebridge.core.testing import require
from casebridge.kernel import filetypes, pipeline
from casebridge.kernel.backends import filesystem
from casebridge.kernel.backends.filesystem import FileSystemStore, Writeback, preallocate
from casebridge.kernel.crypto.streaming import (
    DEFAULT_LAYOUT,
    HEADER_SIZE,
    associated_data,
    decrypt_stream,
    new_stream,
)
from casebridge.kernel.pipeline import ChunkReader, SealingPipeline, seal_to_blob
from casebridge.vault.tests.samples import binary_stl

KEY = bytes(range(32))
AAD = associated_data("00000000-0000-0000-0000-0000000000aa", 1)
FIRST = DEFAULT_LAYOUT.first_plaintext_size
FULL = DEFAULT_LAYOUT.plaintext_segment_size


def _odd_reads(data: bytes, piece: int = 70_001) -> pipeline.Readinto:
    """A source that hands out at most `piece` bytes per read, as a socket does."""
    stream = io.BytesIO(data)

    def readinto(view: memoryview) -> int:
        return stream.readinto(view[:piece])

    return readinto


def _seal_all(data: bytes, tail_split: int | None = None) -> tuple[bytes, str]:
    """Seal `data` the way uploads do, optionally as two requests split at `tail_split`."""
    header, cipher = new_stream(KEY, AAD)
    last_index = DEFAULT_LAYOUT.segment_count(len(data)) - 1
    hasher = hashlib.sha256()
    out = bytearray(header)
    splits = [0, len(data)] if tail_split is None else [0, tail_split, len(data)]
    tail = b""
    index = 0
    for start, end in itertools.pairwise(splits):
        with SealingPipeline(cipher, index=index, last_index=last_index, hashers=[hasher], tail=tail) as p:
            for chunk in p.seal(_odd_reads(data[start:end]), end - start):
                out += chunk
                p.release(chunk)
            p.finish()
            assert p.received == end - start
            if end == len(data):
                out += p.seal_last()
            else:
                tail, index = bytes(p.partial), p.index
    return bytes(out), hasher.hexdigest()


@pytest.mark.parametrize(
    "size", [0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + FULL, FIRST + 2 * FULL + 12_345], ids=lambda n: f"{n}B"
)
def test_sealed_content_decrypts_to_the_original_with_its_sha256(size: int) -> None:
    data = os.urandom(size)
    ciphertext, sha256 = _seal_all(data)
    assert len(ciphertext) == DEFAULT_LAYOUT.ciphertext_size(size)
    assert b"".join(bytes(s) for s in decrypt_stream(io.BytesIO(ciphertext), KEY, AAD)) == data
    assert sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("split", [1, FIRST - 5, FIRST, FIRST + 700_000, FIRST + FULL])
def test_a_second_request_goes_on_from_the_tail_of_the_first(split: int) -> None:
    data = os.urandom(FIRST + 2 * FULL + 99)
    whole, whole_sha = _seal_all(data)
    ciphertext, sha256 = _seal_all(data, tail_split=split)
    assert b"".join(bytes(s) for s in decrypt_stream(io.BytesIO(ciphertext), KEY, AAD)) == data
    assert sha256 == whole_sha == hashlib.sha256(data).hexdigest()
    assert len(ciphertext) == len(whole)


def test_a_dropped_source_ends_the_request_with_what_arrived() -> None:
    data = os.urandom(FIRST + FULL + 10)
    served = io.BytesIO(data[: FIRST + 500])

    def readinto(view: memoryview) -> int:
        got = served.readinto(view[:65_536])
        if not got:
            raise ConnectionResetError("client went away")
        return got

    _header, cipher = new_stream(KEY, AAD)
    with SealingPipeline(cipher, index=0, last_index=2, hashers=[hashlib.sha256()]) as p:
        sealed = []
        for chunk in p.seal(readinto, len(data)):
            sealed.append(bytes(chunk))
            p.release(chunk)
        p.finish()
        assert p.interrupted and p.received == FIRST + 500
        assert len(sealed) == 1 and p.index == 1 and bytes(p.partial) == data[FIRST : FIRST + 500]


def test_inspection_of_the_first_segment_stops_refused_content_before_it_is_sealed() -> None:
    def refuse(plaintext: memoryview) -> None:
        raise filetypes.UnsupportedFileType("no")

    _header, cipher = new_stream(KEY, AAD)
    data = os.urandom(FIRST + 10)
    with SealingPipeline(cipher, index=0, last_index=1, hashers=[], inspect_first=refuse) as p:
        chunks = p.seal(_odd_reads(data), len(data))
        with pytest.raises(filetypes.UnsupportedFileType):
            next(chunks)


def test_memory_is_a_few_buffers_however_large_the_content_and_slow_the_writer() -> None:
    data = os.urandom(FIRST + 30 * FULL)
    _header, cipher = new_stream(KEY, AAD)
    written: list[int] = []

    def slow_write(view: memoryview) -> None:
        time.sleep(0.002)
        written.append(len(view))

    last_index = DEFAULT_LAYOUT.segment_count(len(data)) - 1
    with SealingPipeline(cipher, index=0, last_index=last_index, hashers=[hashlib.sha256()]) as p:
        writer = pipeline.WriteBehind(slow_write, p.release)
        for chunk in p.seal(_odd_reads(data, 1 << 20), len(data)):
            writer.put(chunk)
        writer.close()
        assert p.buffer_count <= pipeline.MAX_BUFFERS
    # Every segment but the last (held back for seal_last) went through the writer.
    assert sum(written) == DEFAULT_LAYOUT.ciphertext_size(len(data)) - HEADER_SIZE - (FULL + 16)


def test_seal_to_blob_stores_a_durable_blob_with_hash_and_type(tmp_path: Path) -> None:
    store = FileSystemStore(tmp_path)
    data = binary_stl(84 + 50 * 60_000)  # ~3 MiB
    sealed = seal_to_blob(store, "objects/a", KEY, AAD, ChunkReader([data[:1000], data[1000:]]).readinto, len(data))
    assert sealed.sha256 == hashlib.sha256(data).hexdigest() and sealed.file_type.name == "stl"
    assert store.size("objects/a") == sealed.ciphertext_size == DEFAULT_LAYOUT.ciphertext_size(len(data))
    with open(store.path_for("objects/a"), "rb") as handle:
        assert b"".join(bytes(s) for s in decrypt_stream(handle, KEY, AAD)) == data


@pytest.mark.parametrize("given", ["short", "long", "refused"])
def test_seal_to_blob_leaves_nothing_behind_when_the_content_is_wrong(tmp_path: Path, given: str) -> None:
    store = FileSystemStore(tmp_path)
    data = binary_stl(84 + 50 * 30_000)
    content = {"short": data[:-1], "long": data + b"x", "refused": os.urandom(len(data))}[given]
    with pytest.raises((ValueError, filetypes.UnsupportedFileType)):
        seal_to_blob(store, "objects/b", KEY, AAD, ChunkReader([content]).readinto, len(data))
    assert not store.exists("objects/b")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial file either


def _dicom(size: int) -> bytes:
    """Content recognised as DICOM (the 'DICM' marker after the preamble) of exactly `size` bytes."""
    return (bytes(128) + b"DICM\x02\x00" + os.urandom(size))[:size]


@pytest.mark.parametrize("size", [200, FIRST, FIRST + 1, FIRST + FULL, FIRST + 2 * FULL + 999], ids=lambda n: f"{n}B")
def test_content_of_unknown_length_seals_into_the_same_format(tmp_path: Path, size: int) -> None:
    store = FileSystemStore(tmp_path)
    data = _dicom(size)
    sealed = pipeline.seal_unsized_to_blob(store, "objects/u", KEY, AAD, _odd_reads(data), max_length=size)
    # The length was learnt at the end, yet the layout is the one a known length gives.
    assert sealed.size == size and sealed.file_type.name == "dicom"
    assert store.size("objects/u") == sealed.ciphertext_size == DEFAULT_LAYOUT.ciphertext_size(size)
    assert sealed.sha256 == hashlib.sha256(data).hexdigest()
    with open(store.path_for("objects/u"), "rb") as handle:
        assert b"".join(bytes(s) for s in decrypt_stream(handle, KEY, AAD)) == data


@pytest.mark.parametrize("given", ["too long", "refused"])
def test_content_of_unknown_length_leaves_nothing_when_refused(tmp_path: Path, given: str) -> None:
    store = FileSystemStore(tmp_path)
    content = _dicom(FIRST + 10) if given == "too long" else os.urandom(FIRST + 10)
    with pytest.raises((pipeline.ContentTooLarge, filetypes.UnsupportedFileType)):
        pipeline.seal_unsized_to_blob(store, "objects/v", KEY, AAD, _odd_reads(content), max_length=FIRST)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_preallocation_reserves_blocks_without_changing_the_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        preallocate(fd, 8 << 20)
        stat = os.fstat(fd)
        assert stat.st_size == 0
        require(stat.st_blocks > 0, "reserving blocks (fallocate)", f"put {tmp_path} on ext4, XFS or tmpfs")
        assert stat.st_blocks * 512 >= 8 << 20
    finally:
        os.close(fd)


def test_writeback_is_requested_a_window_behind_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    advised: list[tuple[int, int]] = []
    monkeypatch.setattr(
        filesystem, "_sync_file_range", lambda fd, start, length, flags: advised.append((start, length)) or 0
    )
    window = 8 << 20
    writeback = Writeback(0, 0)
    for position in range(0, 64 << 20, 1 << 20):
        writeback.advance(position)
    assert advised and advised[0] == (0, window)
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(advised))  # contiguous
    assert advised[-1][0] + advised[-1][1] <= (64 << 20) - window  # never the still-growing end


def test_write_behind_reports_a_failed_write_and_hands_every_buffer_back() -> None:
    released: list[object] = []
    lock = threading.Lock()

    def fail(view: memoryview) -> None:
        raise OSError("disk full")

    def release(chunk: object) -> None:
        with lock:
            released.append(chunk)

    writer = pipeline.WriteBehind(fail, release)
    queued = []
    for chunk in [b"a", b"b", b"c"]:
        try:
            writer.put(chunk)
        except OSError:
            break
        queued.append(chunk)
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert released == queued and queued


@pytest.mark.parametrize("with_syncfs", [True, False])
def test_blobs_written_for_a_batch_are_fsynced_by_one_sync_and_none_by_their_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_syncfs: bool
) -> None:
    store = FileSystemStore(tmp_path)
    calls: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    if not with_syncfs:
        monkeypatch.setattr(filesystem, "_syncfs", None)
    names = [f"objects/batch/v{n}" for n in range(3)]
    for name in names:
        with store.open_writer(name, durable=False) as writer:
            writer.write(b"x" * 5000)
    assert calls == [] and all(store.size(name) == 5000 for name in names)  # visible, not yet synced

    store.sync(names)

    # one syncfs of the store, or every file and the directories above them
    assert calls == ([] if with_syncfs else ["fsync"] * len(calls)) and (with_syncfs or len(calls) >= 3 + 1)
