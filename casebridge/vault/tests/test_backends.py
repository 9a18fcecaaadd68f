"""Blob stores: filesystem and S3 (moto server over HTTP on loopback) behind one interface."""

from __future__ import annotations

import io
import mmap
import os
import stat
import uuid
from functools import partial
from pathlib import Path

import boto3
import pytest

from casebridge.kernel.backends import BlobNotFound, BlobStore, StorageError, store_from_url
from casebridge.kernel.backends.filesystem import PARTIAL_PREFIX, FileSystemStore, SequentialWriter
from casebridge.kernel.backends.s3 import MIN_PART_SIZE, S3Store
from casebridge.kernel.crypto.streaming import EncryptingWriter, associated_data, decrypt_range

S3_ID = "s3_moto_server_http_loopback"
MiB = 1 << 20


def make_bucket(endpoint: str) -> str:
    bucket = f"cb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["filesystem", S3_ID])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return store_from_url(f"file://{tmp_path / 'blobs'}")
    endpoint = request.getfixturevalue("moto_endpoint")
    return store_from_url(f"s3://{make_bucket(endpoint)}/vault?endpoint={endpoint}&region=us-east-1")


def test_put_then_read_ranges_size_exists_delete(store: BlobStore) -> None:
    data = os.urandom(100_000)
    assert store.put("obj-1/1", [data[:10], data[10:60_000], data[60_000:]]) == len(data)
    assert store.exists("obj-1/1")
    assert store.size("obj-1/1") == len(data)
    assert store.read_range("obj-1/1", 0, len(data)) == data
    assert store.read_range("obj-1/1", 12_345, 12_400) == data[12_345:12_400]
    assert store.read_range("obj-1/1", 99_990, 200_000) == data[99_990:]
    assert store.read_range("obj-1/1", 5, 5) == b""
    assert store.delete("obj-1/1") is True
    assert not store.exists("obj-1/1")
    assert store.delete("obj-1/1") is False


def test_empty_blob(store: BlobStore) -> None:
    assert store.put("empty", []) == 0
    assert store.exists("empty") and store.size("empty") == 0


def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.size("absent")
    with pytest.raises(BlobNotFound):
        store.read_range("absent", 0, 10)


def test_nothing_is_visible_until_commit_and_abort_leaves_nothing(store: BlobStore) -> None:
    writer = store.open_writer("pending")
    writer.write(b"x" * 1000)
    assert not store.exists("pending")
    writer.abort()
    assert not store.exists("pending")
    with pytest.raises(RuntimeError), store.open_writer("failed") as failing:
        failing.write(b"partial")
        raise RuntimeError("client went away")
    assert not store.exists("failed")


def test_names_cannot_escape_the_store(store: BlobStore) -> None:
    for bad in ("../etc/passwd", "/abs", "a/../b", "", "a//b", ".hidden"):
        with pytest.raises(ValueError, match="invalid blob name"):
            store.exists(bad)


def test_encrypted_object_round_trips_through_the_store_with_range_reads(store: BlobStore) -> None:
    plaintext = os.urandom(300_000)
    key, aad = os.urandom(32), associated_data(uuid.uuid4(), 1)
    with store.open_writer("enc/1") as blob, EncryptingWriter(blob, key, aad) as writer:
        writer.write(plaintext)
    read = partial(store.read_range, "enc/1")
    out = b"".join(decrypt_range(read, store.size("enc/1"), key, aad, 1000, 250_000))
    assert out == plaintext[1000:250_000]


# -- filesystem specifics -----------------------------------------------------------------------


def test_filesystem_fans_out_and_keeps_files_private(tmp_path: Path) -> None:
    fs = FileSystemStore(tmp_path / "blobs")
    fs.put("abc/1", [b"data"])
    path = fs.path_for("abc/1")
    assert path.is_file() and path.parent.parent.parent == tmp_path / "blobs"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(PARTIAL_PREFIX)]


def test_filesystem_crash_before_commit_leaves_only_a_partial_file(tmp_path: Path) -> None:
    fs = FileSystemStore(tmp_path / "blobs")
    writer = fs.open_writer("crashy")
    writer.write(b"half")  # process "dies" here: no commit, no abort
    assert not fs.exists("crashy")
    assert [p.name.startswith(PARTIAL_PREFIX) for p in fs.path_for("crashy").parent.iterdir()] == [True]


def test_filesystem_url_must_be_absolute_and_local() -> None:
    with pytest.raises(StorageError):
        store_from_url("file://otherhost/blobs")
    with pytest.raises(StorageError, match="unknown storage URL scheme"):
        store_from_url("ftp://x/y")


# -- S3 specifics (moto server over HTTP on loopback) -------------------------------------------


def test_s3_moto_server_http_loopback_large_object_uses_multipart_and_ranged_get(moto_endpoint: str) -> None:
    bucket = make_bucket(moto_endpoint)
    s3 = S3Store(bucket, "p", endpoint=moto_endpoint, region="us-east-1", part_size=MIN_PART_SIZE)
    data = os.urandom(MIN_PART_SIZE + 123_456)
    stream = io.BytesIO(data)
    assert s3.put("big/1", iter(lambda: stream.read(1 << 20), b"")) == len(data)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key="p/big/1")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart ETag names its part count
    assert (
        s3.read_range("big/1", MIN_PART_SIZE - 10, MIN_PART_SIZE + 10) == data[MIN_PART_SIZE - 10 : MIN_PART_SIZE + 10]
    )


def test_s3_moto_server_http_loopback_aborted_multipart_leaves_no_upload(moto_endpoint: str) -> None:
    bucket = make_bucket(moto_endpoint)
    s3 = S3Store(bucket, endpoint=moto_endpoint, region="us-east-1", part_size=MIN_PART_SIZE)
    writer = s3.open_writer("abandoned")
    writer.write(os.urandom(MIN_PART_SIZE + 1))
    writer.abort()
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not s3.exists("abandoned")


def test_s3_moto_server_http_loopback_missing_bucket_fails_at_construction(moto_endpoint: str) -> None:
    with pytest.raises(StorageError, match="not usable"):
        store_from_url(f"s3://no-such-bucket?endpoint={moto_endpoint}&region=us-east-1")


def test_compose_concatenates_blobs_and_delete_many_removes_them(store: BlobStore) -> None:
    # S3 composes inside the store (UploadPartCopy): every source but the last is >= 5 MiB.
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), os.urandom(1234)]
    for index, data in enumerate(parts):
        store.put(f"staging/u/{index}", [data])
    assert store.compose("objects/whole", [f"staging/u/{i}" for i in range(3)]) == sum(map(len, parts))
    assert store.read_range("objects/whole", 5 * MiB - 2, 5 * MiB + 2) == parts[0][-2:] + parts[1][:2]
    assert store.read_range("objects/whole", 10 * MiB + 5, 10 * MiB + 9) == parts[1][-2:] + parts[2][:2]
    store.delete_many([f"staging/u/{i}" for i in range(5)])  # missing names are no error
    assert not any(store.exists(f"staging/u/{i}") for i in range(3))
    assert store.exists("objects/whole")


def test_compose_of_a_missing_source_makes_nothing(store: BlobStore) -> None:
    store.put("staging/v/0", [os.urandom(5 * MiB)])
    with pytest.raises(StorageError):
        store.compose("objects/never", ["staging/v/0", "staging/v/1"])
    assert not store.exists("objects/never")


def test_sequential_writes_mix_direct_and_cached_io_and_read_back_exactly(tmp_path: Path) -> None:
    """Whole 4 KiB blocks of page-aligned buffers go around the page cache (O_DIRECT), the rest
    through it; what is read back is exactly what was written, in any mix."""
    path = tmp_path / "staged"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        writer = SequentialWriter(path, fd)
        assert writer.direct >= 0 or not hasattr(os, "O_DIRECT")  # pytest's tmp_path: a disk filesystem
        header = os.urandom(40)  # bytes: read-only, so cached
        first = mmap.mmap(-1, MiB)  # the pipeline's segment buffers are anonymous mmaps
        first[:] = os.urandom(MiB)
        aligned = mmap.mmap(-1, MiB)
        aligned[:] = os.urandom(MiB)
        last = mmap.mmap(-1, MiB)
        last[:] = os.urandom(MiB)
        position = writer.write_at(memoryview(header), 0)
        position = writer.write_at(memoryview(first)[40:], position)  # misaligned address and offset
        position = writer.write_at(memoryview(aligned), position)  # direct
        position = writer.write_at(memoryview(last)[: 5000 + 4096], position)  # one block direct, the rest cached
        writer.close_direct()
        os.fsync(fd)
        expected = header + bytes(first[40:]) + bytes(aligned) + bytes(last[: 5000 + 4096])
        assert position == len(expected)
        assert path.read_bytes() == expected
        for buffer in (first, aligned, last):
            buffer.close()  # no view of them is left behind
    finally:
        os.close(fd)


def test_sequential_writes_without_direct_io_are_all_cached(tmp_path: Path) -> None:
    path = tmp_path / "staged"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        writer = SequentialWriter(path, fd)
        writer.close_direct()  # as on a filesystem that refuses O_DIRECT
        data = mmap.mmap(-1, 2 * MiB)
        data[:] = os.urandom(2 * MiB)
        assert writer.write_at(memoryview(data), 0) == 2 * MiB
        os.fsync(fd)
        assert path.read_bytes() == bytes(data)
        data.close()
    finally:
        os.close(fd)
