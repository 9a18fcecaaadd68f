"""Reading a ZIP archive of a study without trusting it: how many entries, how large once
expanded, how compressed, and what names it carries are all checked before any member is read,
and a member that expands beyond what it declared is stopped as it is read."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO, Any

from casebridge.kernel.rawio import SeekableReader

# A 600-slice CBCT is 600 entries; a full-mouth set a few dozen. Beyond these an archive is
# refused whole rather than half-imported.
MAX_ENTRIES = 5000
MAX_EXPANDED_BYTES = 8 << 30
# DICOM compresses well (air around the skull is zeros): 20x is common, 100x is a bomb.
MAX_RATIO = 100
# Names the scanner software and operating systems add that are not images.
IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


class ArchiveRefused(ValueError):
    """The archive as a whole is not accepted; nothing from it is imported."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    info: zipfile.ZipInfo


def _unsafe_name(name: str) -> bool:
    posix = PurePosixPath(name)
    return (
        name.startswith(("/", "\\"))
        or PureWindowsPath(name).drive != ""
        or ".." in posix.parts
        or ".." in PureWindowsPath(name).parts
    )


def members(archive: zipfile.ZipFile) -> list[Member]:
    """The archive's files to import, or ArchiveRefused naming the first rule it breaks."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArchiveRefused(f"The archive holds {len(infos)} entries; at most {MAX_ENTRIES} are accepted.")
    found: list[Member] = []
    expanded = 0
    for info in infos:
        name = info.filename
        if _unsafe_name(name):
            raise ArchiveRefused("The archive holds a file with an absolute path or '..' in its name.")
        if info.is_dir() or any(part in name for part in IGNORED):
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArchiveRefused("The archive holds a symbolic link.")
        if info.flag_bits & 0x1:
            raise ArchiveRefused("The archive is encrypted; send it without a password.")
        expanded += info.file_size
        if expanded > MAX_EXPANDED_BYTES:
            raise ArchiveRefused(f"The archive expands beyond {MAX_EXPANDED_BYTES >> 30} GiB.")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
            raise ArchiveRefused("The archive is compressed beyond any real image (a zip bomb?).")
        found.append(Member(name, info.file_size, info))
    return found


ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def is_nested_archive(head: bytes) -> bool:
    """Archives inside archives are refused: each level would need its own limits."""
    return head.startswith(ZIP_SIGNATURES)


class _Bounded:
    """A member's stream that refuses to yield more than the member declared (a forged size)."""

    def __init__(self, stream: IO[bytes], declared: int) -> None:
        self._stream = stream
        self._left = declared

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise ArchiveRefused("An archive member is larger than the archive declares.")
        return data


_LOCAL_HEADER = 30  # bytes of a member's local header before its name and extra field
_LOCAL_SIGNATURE = b"PK\x03\x04"


def data_offset(archive: zipfile.ZipFile, member: Member) -> int:
    """Where the member's data starts in the archive: after its local header, whose name and
    extra field may differ in length from the central directory's."""
    if archive.fp is None:
        raise ValueError("the archive is closed")
    archive.fp.seek(member.info.header_offset)
    head = archive.fp.read(_LOCAL_HEADER)
    if len(head) != _LOCAL_HEADER or head[:4] != _LOCAL_SIGNATURE:
        raise ArchiveRefused("An archive member's header is damaged.")
    name_length, extra_length = struct.unpack("<HH", head[26:30])
    return member.info.header_offset + _LOCAL_HEADER + name_length + extra_length


class _StoredMember(SeekableReader):
    """A member stored uncompressed, read in place from the archive's file: what zipfile's member
    stream gives for it, without that stream's cost per read (pydicom reads a header in some 80
    small reads: 0.6 ms a slice through zipfile, 0.25 ms this way) and without its CRC check,
    which whoever reads the member whole makes."""

    name = "archive member"  # what readers such as pydicom print for it: never its own name

    def __init__(self, archive_file: IO[bytes], start: int, length: int) -> None:
        super().__init__(length)
        self._file, self._start = archive_file, start

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        self._file.seek(self._start + self._position)
        data = self._file.read(count)  # IO[bytes] promises read(), not readinto(): one small copy
        with memoryview(buffer) as view:
            view.cast("B")[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_stored(archive: zipfile.ZipFile, member: Member) -> IO[bytes]:
    """A member stored uncompressed (ZIP_STORED), opened in place for reading its start: no CRC
    is checked on this stream."""
    if member.info.compress_type != zipfile.ZIP_STORED or archive.fp is None:
        raise ValueError("only a member stored uncompressed, of an open archive, is read in place")
    return io.BufferedReader(_StoredMember(archive.fp, data_offset(archive, member), member.size), 1 << 14)


def chunks(archive: zipfile.ZipFile, member: Member, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The member's bytes, at most its declared size; zipfile checks each member's CRC at its end."""
    with archive.open(member.info) as raw:
        stream = _Bounded(raw, member.size)
        while block := stream.read(chunk_size):
            yield block
