"""Staging in parts (object stores), spoken to through a real store: a filesystem one here, S3 in
test_uploads_s3.py. What a run of appends leaves is exactly the ciphertext its commits counted."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.kernel.backends import BlobStore, store_from_url
from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.staging import PartStaging, StagingLost, StoreParts, part_name

PART = 64 * 1024  # small parts: the arithmetic is the same as with S3's 8 MiB


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return store_from_url(f"file://{tmp_path}")


@pytest.fixture
def staging(store: BlobStore) -> PartStaging:
    return PartStaging(StoreParts(store, "u1", PART), PART)


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_appends_that_start_and_end_inside_parts_read_back_whole(staging: PartStaging, store: BlobStore) -> None:
    data = os.urandom(5 * PART + 123)
    cuts = [0, 17, PART - 1, PART, 2 * PART + 5, 4 * PART + 9, len(data)]
    for start, end in itertools.pairwise(cuts):
        assert staging.append(start, _chunks(data[start:end])) == end
    assert staging.read_range(0, len(data)) == data
    assert staging.read_range(PART - 3, PART + 3) == data[PART - 3 : PART + 3]
    sizes = [store.size(part_name("u1", i)) for i in range(6)]
    assert sizes == [PART] * 5 + [123]


def test_a_run_that_fails_keeps_its_start_part_as_committed(staging: PartStaging) -> None:
    data = os.urandom(PART + 500)
    staging.append(0, [data[:300]])

    def failing() -> Iterator[bytes]:
        yield data[300:PART]  # fills part 0: stored as it fills
        yield data[PART : PART + 100]
        raise ValueError("checksum mismatch")

    with pytest.raises(ValueError):
        staging.append(300, failing())
    # Part 0 now holds more than the 300 committed bytes; the next append reads only those back.
    assert staging.append(300, _chunks(data[300:])) == len(data)
    assert staging.read_range(0, len(data)) == data


def test_bytes_past_the_committed_end_are_cut_by_the_next_append(staging: PartStaging) -> None:
    data = os.urandom(2 * PART)
    staging.append(0, [data[:1000]])
    staging.append(1000, [os.urandom(PART)])  # a request that never committed
    staging.append(1000, _chunks(data[1000:]))
    assert staging.read_range(0, len(data)) == data


def test_a_missing_or_short_committed_part_is_lost_staging(staging: PartStaging, store: BlobStore) -> None:
    staging.append(0, [os.urandom(1000)])
    with pytest.raises(StagingLost):
        staging.append(2000, [b"more"])  # the commits say 2000 bytes are staged; 1000 are
    store.delete(part_name("u1", 0))
    with pytest.raises(StagingLost):  # the next request (each has its own staging) finds nothing
        PartStaging(StoreParts(store, "u1", PART), PART).append(1000, [b"more"])


def test_reading_back_segment_by_segment_fetches_each_part_once(tmp_path: Path) -> None:
    """Rebuilding an upload's hash reads its staged ciphertext a segment at a time: from an object
    store that must not be one request per segment."""
    reads: list[str] = []

    class CountingStore(FileSystemStore):
        def read_range(self, name: str, start: int, end: int) -> bytes:
            reads.append(name)
            return super().read_range(name, start, end)

    staging = PartStaging(StoreParts(CountingStore(tmp_path), "u2", PART), PART)
    data = os.urandom(3 * PART + 10)
    staging.append(0, _chunks(data))
    step = PART // 8
    assert b"".join(staging.read_range(i, min(i + step, len(data))) for i in range(0, len(data), step)) == data
    assert reads == [part_name("u2", i) for i in range(4)]
