"""One tus request body into staging: the part of an upload request that moves bytes.

No Django here. The application runs it for uploads it serves itself (vault/uploads.py), the
transfer server for uploads handed to it (transfer/uploads.py); either way the database work
around it (the lease before, the commit after) stays in the application.

An upload knows its total length from the start, so whether a segment is the stream's last one is
arithmetic: every full segment that is not the last is encrypted and staged the moment it fills.
The plaintext of the unfinished segment at the end of a request (`tail`) goes back to the
application, which keeps it encrypted with the upload's state for the next request, on any server.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from casebridge.kernel import filetypes, hashing
from casebridge.kernel.crypto.streaming import DEFAULT_LAYOUT, HEADER_SIZE, SEGMENT_SIZE, TAG_SIZE, open_stream
from casebridge.kernel.pipeline import Readinto, SealingPipeline

# While a body's bytes flow, its request renews the upload's lease this often (vault/uploads
# LEASE_SECONDS is a few times longer) and hands over what it has durably staged by then as the
# upload's new offset: a request killed at 85% of a long body resumes from close to 85%, not 0.
LEASE_RENEW_SECONDS = 2.0
LAYOUT = DEFAULT_LAYOUT


class UploadError(Exception):
    """A refused upload request; `status` is the HTTP status the tus endpoint answers with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UploadGone(UploadError):
    status = 404


class TypeRefused(UploadError):
    """The content is not a file type CaseBridge accepts: the upload is to be terminated."""

    status = 415


class LeaseLost(UploadError):
    """The request's lease was taken over (it ran out while the client was silent): stop writing."""

    status = 409


@dataclass(frozen=True)
class Checkpoint:
    """Where an upload stands after whole segments a request has durably staged so far: no tail,
    the ciphertext ends at a segment boundary. Sent with a lease renewal; the application records
    it as the upload's offset (vault/uploads.renew)."""

    offset: int
    ciphertext_offset: int
    file_type: str

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict):
            raise UploadError("a checkpoint is an object")
        try:
            return cls(int(data["offset"]), int(data["ciphertext_offset"]), str(data["file_type"]))
        except (KeyError, TypeError, ValueError):
            raise UploadError("a checkpoint names offset, ciphertext_offset and file_type") from None

    @classmethod
    def at(cls, ciphertext_offset: int, file_type: str) -> Checkpoint:
        """The checkpoint of `ciphertext_offset`, the end of a whole staged segment."""
        if ciphertext_offset <= 0 or ciphertext_offset % SEGMENT_SIZE:
            raise ValueError("a checkpoint ends at a segment boundary")
        segments = ciphertext_offset // SEGMENT_SIZE
        return cls(segments * (SEGMENT_SIZE - TAG_SIZE) - HEADER_SIZE, ciphertext_offset, file_type)


@dataclass(frozen=True)
class Continuation:
    """Where an upload stands and what it takes to add to it (the application hands this out
    only to the request holding the upload's lease)."""

    upload_id: str
    dek: bytes
    associated: bytes
    header: bytes
    length: int
    offset: int
    ciphertext_offset: int
    tail: bytes  # plaintext of the unfinished segment an earlier request delivered
    file_type: str
    # A new version of an existing file must have its type: refused at the first bytes, before
    # the rest of the body is taken ("" for a new file: any accepted type).
    expected_type: str = ""

    _BINARY: ClassVar[tuple[str, ...]] = ("dek", "associated", "header", "tail")

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready, for the application's answer to the transfer server's lease request."""
        fields = asdict(self)
        return {k: base64.b64encode(v).decode() if k in self._BINARY else v for k, v in fields.items()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Continuation:
        fields: dict[str, Any] = {k: base64.b64decode(v) if k in cls._BINARY else v for k, v in data.items()}
        return cls(**fields)


@dataclass
class Appended:
    offset: int
    ciphertext_offset: int  # where the staged ciphertext ends (the final segment's end, once complete)
    interrupted: bool  # the client went away before its Content-Length
    file_type: str
    tail: bytes  # plaintext of the unfinished segment ("" once complete)
    complete: bool  # the last byte arrived: the final segment is staged too
    sha256: str  # hex digest of the whole plaintext, once complete
    hasher: Any = None  # SHA-256 of the plaintext so far (where the request ran)

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready, for the transfer server's commit request (the hasher stays where it ran)."""
        return {
            "offset": self.offset,
            "ciphertext_offset": self.ciphertext_offset,
            "interrupted": self.interrupted,
            "file_type": self.file_type,
            "tail": base64.b64encode(self.tail).decode(),
            "complete": self.complete,
            "sha256": self.sha256,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Appended:
        return cls(
            offset=int(data["offset"]),
            ciphertext_offset=int(data["ciphertext_offset"]),
            interrupted=bool(data["interrupted"]),
            file_type=str(data["file_type"]),
            tail=base64.b64decode(data["tail"]),
            complete=bool(data["complete"]),
            sha256=str(data.get("sha256", "")),
        )


Durable = Callable[[int], None]
"""durable(end): the staged ciphertext up to `end` (a segment boundary) is on stable storage."""

Stage = Callable[[Iterator[memoryview], Callable[[Any], None], Durable], int]
"""stage(sealed segments, release, durable) -> the staged ciphertext's end after writing them.

The segments are an iterator that may raise (a checksum mismatch, a refused type): the staging
then lets the exception through; whatever it wrote is past the committed end and never counts
(unless a checkpoint recorded it: only whole segments of a body without a checksum are). Now and
then, from its writer thread, the staging calls `durable` with how far it has synced."""


def parse_checksum(header: str) -> tuple[str, bytes]:
    """tus checksum extension: 'Upload-Checksum: <algorithm> <base64 digest>'."""
    algorithm, _, value = header.strip().partition(" ")
    try:
        return algorithm.lower(), base64.b64decode(value, validate=True)
    except ValueError:
        raise UploadError("Upload-Checksum must be '<algorithm> <base64 digest>'.") from None


def segments_staged(ciphertext_offset: int) -> int:
    # The header and segment 0 fill exactly one segment size, every later segment another.
    return ciphertext_offset // SEGMENT_SIZE


def rebuild_hasher(cont: Continuation, read_staged: Callable[[int, int], bytes]) -> Any:
    """Recompute the SHA-256 of what was already uploaded, from the staged ciphertext."""
    cipher = open_stream(cont.dek, cont.associated, cont.header)
    hasher = hashlib.sha256()
    out = bytearray(SEGMENT_SIZE)
    for index in range(segments_staged(cont.ciphertext_offset)):
        start = HEADER_SIZE if index == 0 else index * SEGMENT_SIZE
        data = read_staged(start, (index + 1) * SEGMENT_SIZE)
        written = cipher.decrypt_into(index, False, data, memoryview(out)[: len(data) - TAG_SIZE])
        hasher.update(memoryview(out)[:written])
    hasher.update(cont.tail)
    return hasher


def append_body(
    cont: Continuation,
    *,
    stage: Stage,
    read_staged: Callable[[int, int], bytes],
    body: Readinto,
    content_length: int,
    checksum: tuple[str, bytes] | None = None,
    renew: Callable[[Checkpoint | None], object] = lambda checkpoint: None,
    reserve: Callable[[int], object] | None = None,
) -> Appended:
    """Hash, seal and stage one request body; keeps whatever arrived if the client goes away.

    `reserve(ciphertext_end)`, when given, is asked before any byte is staged to set aside the
    disk this body will fill (no more: an upload announced at 5 GiB reserves nothing until its
    bytes come); it raises StorageError when the disk has no room.

    Raises TypeRefused when the first bytes are not an accepted type (or not the type a new
    version must have), UploadError(460) when the
    body does not match its Upload-Checksum (nothing of it then counts). While bytes flow,
    `renew` is called every LEASE_RENEW_SECONDS so the request keeps its lease, with the
    checkpoint of what was durably staged since the last call, if anything (never for a body with
    a checksum: that counts whole or not at all); it raises LeaseLost when the lease is gone.
    """
    if reserve is not None and content_length > 0:
        reserve(LAYOUT.ciphertext_size(min(cont.length, cont.offset + content_length)))
    cipher = open_stream(cont.dek, cont.associated, cont.header)
    hasher = hashing.recall(cont.upload_id, cont.offset) or rebuild_hasher(cont, read_staged)
    body_hasher = hashlib.sha256() if checksum else None
    file_type = cont.file_type
    renew_at = time.monotonic() + LEASE_RENEW_SECONDS
    synced = cont.ciphertext_offset  # written by the staging's writer thread (one int: no lock needed)
    checkpointed = cont.ciphertext_offset

    def durable(end: int) -> None:
        nonlocal synced
        if checksum is None and end % SEGMENT_SIZE == 0:
            synced = max(synced, end)

    def detect(prefix: memoryview) -> None:
        nonlocal file_type
        if not file_type:
            try:
                file_type = filetypes.detect(bytes(prefix[: filetypes.SNIFF_BYTES]), cont.length).name
            except filetypes.UnsupportedFileType as exc:
                raise TypeRefused(str(exc)) from None
            refusal = filetypes.version_type_refusal(cont.expected_type, file_type)
            if refusal:
                raise TypeRefused(refusal)

    def read(view: memoryview) -> int:
        nonlocal renew_at, checkpointed
        got = body(view)
        if time.monotonic() >= renew_at:
            reached = synced
            checkpoint = None
            if reached > checkpointed and file_type:  # whole segments: segment 0 was inspected
                checkpoint = Checkpoint.at(reached, file_type)
            renew(checkpoint)
            if checkpoint is not None:
                checkpointed = reached
            renew_at = time.monotonic() + LEASE_RENEW_SECONDS
        return got

    complete = False

    with SealingPipeline(
        cipher,
        index=segments_staged(cont.ciphertext_offset),
        last_index=LAYOUT.segment_count(cont.length) - 1,
        hashers=[hasher, body_hasher] if body_hasher else [hasher],
        tail=cont.tail,
        inspect_first=detect,
    ) as pipeline:

        def sealed() -> Iterator[memoryview]:
            # Everything the request staged, in order: full segments as they fill, then, once
            # the body is known to be whole, right and complete, the final segment. Raising here
            # stops the staging before it keeps anything (a staging keeps a run only once it ends).
            nonlocal complete
            yield from pipeline.seal(read, content_length)
            pipeline.finish()
            # tus checksum extension: a mismatching (or incomplete) body is discarded whole.
            if checksum is not None and (
                pipeline.interrupted or body_hasher is None or body_hasher.digest() != checksum[1]
            ):
                raise UploadError("The body does not match its Upload-Checksum; it was discarded.", 460)
            complete = cont.offset + pipeline.received == cont.length
            if not file_type and (complete or cont.offset + pipeline.received >= filetypes.SNIFF_BYTES):
                detect(pipeline.partial)
            if complete:
                yield pipeline.seal_last()

        ciphertext_offset = stage(sealed(), pipeline.release, durable)
        offset = cont.offset + pipeline.received
        if complete:
            return Appended(
                offset, ciphertext_offset, pipeline.interrupted, file_type, b"", True, hasher.hexdigest(), hasher
            )
        tail = bytes(pipeline.partial)
        return Appended(offset, ciphertext_offset, pipeline.interrupted, file_type, tail, False, "", hasher)
