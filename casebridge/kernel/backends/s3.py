"""The S3-compatible blob store (AWS S3, MinIO, Ceph): multipart upload, ranged GET."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from casebridge.kernel.backends.base import BlobNotFound, BlobStore, BlobWriter, StorageError, check_name

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE = 16 * 1024 * 1024
COPY_THREADS = 8  # UploadPartCopy calls in flight while composing a blob
DELETE_BATCH = 1000  # S3's limit per DeleteObjects call


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store(BlobStore):
    """Blobs as objects under `prefix` in one bucket. S3 makes an object visible only when its PUT
    or CompleteMultipartUpload succeeds, which is exactly the atomicity the vault needs; memory
    per upload is one part buffer.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        client: Any = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise StorageError(f"S3 part size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = part_size
        self._s3: Any = client or boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(
                retries={"mode": "standard"},
                s3={"addressing_style": "path"} if endpoint else None,
                signature_version="s3v4",  # presigned URLs too (AWS refuses SigV2 in newer regions)
                max_pool_connections=COPY_THREADS + 2,
            ),
        )
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            raise StorageError(f"S3 bucket {bucket!r} is not usable: {_code(exc) or exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 endpoint for bucket {bucket!r} is not reachable: {exc}") from exc

    def key_for(self, name: str) -> str:
        return self.prefix + check_name(name)

    def open_writer(self, name: str, size_hint: int = 0, *, durable: bool = True) -> BlobWriter:
        # A completed upload is durable in S3 whatever `durable` says: sync() has nothing to do.
        return _MultipartWriter(self, self.key_for(name))

    def sync(self, names: Iterable[str]) -> None:
        """Nothing to do: S3 acknowledges a completed upload once it is durable."""

    def download_url(self, name: str, expires_in: int) -> str | None:
        # A presigned GET: signed here, so the transfer server needs neither boto3 nor credentials.
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key_for(name)}, ExpiresIn=expires_in
            )
        )

    def upload_url(self, name: str, expires_in: int) -> str | None:
        return str(
            self._s3.generate_presigned_url(
                "put_object", Params={"Bucket": self.bucket, "Key": self.key_for(name)}, ExpiresIn=expires_in
            )
        )

    def compose(self, name: str, sources: list[str]) -> int:
        """Concatenate inside S3: a multipart upload whose parts are copies of `sources` (each
        at least 5 MiB but the last), made in parallel; no byte passes through this process."""
        if not sources:
            raise ValueError("nothing to compose")
        key = self.key_for(name)
        try:
            upload_id = str(self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 compose of {name} failed: {exc}") from exc

        def copy(numbered: tuple[int, str]) -> dict[str, Any]:
            number, source = numbered
            result = self._s3.upload_part_copy(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": self.key_for(source)},
            )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        try:
            with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="s3-compose") as pool:
                parts = list(pool.map(copy, enumerate(sources, start=1)))
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, ClientError) and _code(exc) in ("NoSuchKey", "404"):
                raise BlobNotFound(f"a part of {name}") from None
            raise StorageError(f"S3 compose of {name} failed: {exc}") from exc
        return self.size(name)

    def delete_many(self, names: Iterable[str]) -> None:
        keys = (self.key_for(name) for name in names)
        while batch := list(islice(keys, DELETE_BATCH)):
            try:
                self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"S3 delete failed: {exc}") from exc

    def read_range(self, name: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError(f"invalid range [{start}, {end})")
        if end == start:
            return b""
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self.key_for(name), Range=f"bytes={start}-{end - 1}")
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise BlobNotFound(name) from None
            if _code(exc) == "InvalidRange":
                return b""
            raise StorageError(f"S3 read of {name} failed: {exc}") from exc
        return bytes(response["Body"].read())

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._s3.head_object(Bucket=self.bucket, Key=self.key_for(name)))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"S3 HEAD of {name} failed: {exc}") from exc

    def size(self, name: str) -> int:
        head = self._head(name)
        if head is None:
            raise BlobNotFound(name)
        return int(head["ContentLength"])

    def exists(self, name: str) -> bool:
        return self._head(name) is not None

    def delete(self, name: str) -> bool:
        existed = self.exists(name)
        self._s3.delete_object(Bucket=self.bucket, Key=self.key_for(name))
        return existed


class _MultipartWriter(BlobWriter):
    """Buffers one part; small blobs become a single PUT, large ones a multipart upload."""

    def __init__(self, store: S3Store, key: str) -> None:
        self._store = store
        self._s3 = store._s3
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._size = 0
        self._done = False

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= self._store.part_size:
            self._send_part(memoryview(self._buffer)[: self._store.part_size])
            del self._buffer[: self._store.part_size]
        return len(data)

    def _send_part(self, body: memoryview | bytes) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(Bucket=self._store.bucket, Key=self._key)
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        result = self._s3.upload_part(
            Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=bytes(body)
        )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})

    def commit(self) -> int:
        if self._done:
            return self._size
        try:
            if self._upload_id is None:
                self._s3.put_object(Bucket=self._store.bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(self._buffer)
                self._s3.complete_multipart_upload(
                    Bucket=self._store.bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise StorageError(f"S3 upload of {self._key} failed: {exc}") from exc
        self._done = True
        self._buffer = bytearray()
        return self._size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            # Abandoned parts cost storage until aborted (a bucket lifecycle rule is the backstop).
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id)
