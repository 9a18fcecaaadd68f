"""A ZIP archive written as it streams (no Django: the transfer server uses it too).

The standard library writes it: `zipfile` writing to a stream it cannot seek puts each entry's
sizes and CRC-32 in a data descriptor after its bytes, so nothing has to be known up front.
Entries are stored, not compressed: scans, DICOM and photos are compressed already or too big to
gain from it, and storing keeps the archive as fast as the download itself. ZIP64 is forced for
entries of 2 GiB and more, so a CBCT archive of any size opens everywhere.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

ZIP64_FROM = 2 << 30

# (name in the archive, its size, a function giving its bytes piece by piece)
Entry = tuple[str, int, Callable[[], Iterable[Any]]]


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


def archive(entries: Iterable[Entry]) -> Iterator[bytes]:
    """The ZIP of `entries`, piece by piece: memory holds one piece of one entry at a time."""
    sink = _Sink()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zipped:
        for name, size, pieces in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            with zipped.open(info, "w", force_zip64=size >= ZIP64_FROM) as entry:
                for piece in pieces():
                    entry.write(piece)
                    out = sink.take()
                    if out:
                        yield out
        yield sink.take()
    yield sink.take()  # the central directory, written as the archive closes
