"""A stored version (or content sealed and not linked yet) as a read-only, seekable file: for
readers that need random access (a ZIP's central directory at the end, a DICOM header at the
start) without writing plaintext anywhere.
Each read decrypts and authenticates only the segments it spans; the last one is kept, so
sequential reads cost one decryption per segment."""

from __future__ import annotations

from typing import Any

from casebridge.kernel.crypto.streaming import DEFAULT_LAYOUT
from casebridge.kernel.rawio import SeekableReader
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion


class VersionReader(SeekableReader):
    def __init__(self, version: ObjectVersion | vault.PendingVersion) -> None:
        super().__init__(version.size)
        self._version = version
        self._segment_index = -1
        self._segment = b""
        self._segment_start = 0

    @property
    def version(self) -> ObjectVersion | vault.PendingVersion:
        return self._version

    @property
    def name(self) -> str:
        """What readers such as pydicom print for the file: its id, never an uploaded name."""
        version = self._version
        object_id = version.object_id if isinstance(version, vault.PendingVersion) else version.stored_object_id
        return f"vault:{object_id}/v{version.version}"

    def _load(self, index: int) -> None:
        start = DEFAULT_LAYOUT.plaintext_start(index)
        end = min(self._size, start + DEFAULT_LAYOUT.plaintext_capacity(index))
        version = self._version
        chunks = (
            vault.read_pending(version, start, end)
            if isinstance(version, vault.PendingVersion)
            else vault.read_version(version, start, end)
        )
        self._segment = b"".join(bytes(chunk) for chunk in chunks)
        self._segment_index, self._segment_start = index, start

    def readinto(self, buffer: Any) -> int:  # any writable buffer, as io.RawIOBase takes
        """Fill `buffer` up to the end of the object, across segments. A raw stream may return
        less, but readers handed this one directly do not all ask again: zipfile takes a short read
        of a member's local header as a truncated archive."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            index = DEFAULT_LAYOUT.segment_of(self._position)
            if index != self._segment_index:
                self._load(index)
            offset = self._position - self._segment_start
            count = min(len(view) - filled, len(self._segment) - offset)
            if count <= 0:  # a segment shorter than its place says: end here, as before
                break
            view[filled : filled + count] = self._segment[offset : offset + count]
            self._position += count
            filled += count
        return filled
