"""Read-only, seekable raw files over what is not a file (a stored version, a member lying in an
archive): the position bookkeeping io.RawIOBase leaves to each subclass, written once. A subclass
reads from `self._position` in its readinto() and moves it."""

from __future__ import annotations

import io


class SeekableReader(io.RawIOBase):
    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position
