"""A ZIP archive of stored versions, streamed as it is decrypted: no plaintext touches a disk and
memory holds one segment at a time, whatever the files' sizes.

The standard library writes it: `zipfile` writing to a stream it cannot seek puts each entry's
sizes and CRC-32 in a data descriptor after its bytes, so nothing has to be known up front.
Entries are stored, not compressed: scans, DICOM and photos are compressed already or too big to
gain from it, and storing keeps the archive as fast as the download itself. ZIP64 is forced for
entries of 2 GiB and more, so a CBCT archive of any size opens everywhere.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone

from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion

ZIP64_FROM = 2 << 30


class _Sink(io.RawIOBase):
    """Collects what zipfile writes until the generator hands it on (no seek: data descriptors)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:  # any buffer, as RawIOBase.write takes
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def archive(entries: Iterable[tuple[str, ObjectVersion]]) -> Iterator[bytes]:
    """The ZIP of `entries` (name in the archive, version to decrypt into it), piece by piece."""
    sink = _Sink()
    stamp = timezone.localtime().timetuple()[:6]
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zipped:
        for name, version in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            with zipped.open(info, "w", force_zip64=version.size >= ZIP64_FROM) as entry:
                for segment in vault.read_version(version):
                    entry.write(segment)
                    out = sink.take()
                    if out:
                        yield out
        yield sink.take()
    yield sink.take()  # the central directory, written as the archive closes
