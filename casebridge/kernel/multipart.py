"""Reading a multipart body (RFC 2046, as STOW-RS sends `multipart/related`) part by part, each
part's content as a stream: nothing holds more than a read block and the delimiter's length of
it, however large a part is. No Django here, so any server process can use it.

    reader = MultipartReader(read, boundary)
    for part in reader:            # headers parsed, content not read yet
        part.headers["content-type"]
        part.readinto(view)        # 0 at the part's end; what a caller leaves unread is skipped

python-multipart's streaming parser would do the framing too, but it is not among the locked
dependencies and it pushes content through callbacks, where the vault's sealing pulls it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

READ_BLOCK = 256 << 10
MAX_HEADER_BYTES = 16 << 10  # one part's header block; a DICOM part carries one or two lines


class MultipartError(ValueError):
    """The body is not a multipart body with this boundary (or ended before its close delimiter)."""


def media_type_parameters(header: str) -> tuple[str, dict[str, str]]:
    """`multipart/related; type="application/dicom"; boundary=x` -> the media type (lower case)
    and its parameters (names lower case, values unquoted)."""
    media_type, _, rest = header.partition(";")
    parameters: dict[str, str] = {}
    while rest:
        rest = rest.lstrip(" \t;")
        name, equals, rest = rest.partition("=")
        if not equals:
            break
        rest = rest.lstrip(" \t")
        if rest.startswith('"'):
            value, index = [], 1
            while index < len(rest) and rest[index] != '"':
                if rest[index] == "\\" and index + 1 < len(rest):
                    index += 1
                value.append(rest[index])
                index += 1
            parameters[name.strip().lower()] = "".join(value)
            rest = rest[index + 1 :].partition(";")[2]
        else:
            value_text, _, rest = rest.partition(";")
            parameters[name.strip().lower()] = value_text.strip()
    return media_type.strip().lower(), parameters


class Part:
    """One part: its headers (names in lower case) and its content, read with readinto()."""

    def __init__(self, reader: MultipartReader, headers: dict[str, str]) -> None:
        self._reader = reader
        self.headers = headers
        self.done = False
        self.size = 0  # content bytes read so far

    def readinto(self, view: memoryview) -> int:
        if self.done:
            return 0
        got = self._reader._content_into(view)
        if got == 0:
            self.done = True
        self.size += got
        return got

    def skip(self) -> None:
        block = memoryview(bytearray(READ_BLOCK))
        while self.readinto(block):
            pass


class MultipartReader:
    """Iterate over the parts of a body read with `read(n)` (b"" at its end).

    The body may begin with a preamble or directly with the first delimiter; whatever follows the
    close delimiter (the epilogue) is not read. A body that ends before its close delimiter, a
    part whose headers never end, or a body with no delimiter at all raises MultipartError."""

    def __init__(self, read: Callable[[int], bytes], boundary: str) -> None:
        if not boundary or len(boundary) > 70:
            raise MultipartError("the boundary must be 1 to 70 characters")
        self._read = read
        # Every delimiter but the first is CRLF "--" boundary; starting the buffer with a CRLF makes
        # a body that opens with the delimiter (no preamble) look the same.
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._buffer = bytearray(b"\r\n")
        self._scanned = 0  # where the next search for the delimiter starts
        self._eof = False
        self._current: Part | None = None
        self._finished = False
        self.total = 0  # body bytes read so far

    # -- the buffer ----------------------------------------------------------------------------
    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._read(READ_BLOCK)
        if not chunk:
            self._eof = True
            return False
        self.total += len(chunk)
        self._buffer += chunk
        return True

    def _find_delimiter(self) -> int:
        at = self._buffer.find(self._delimiter, self._scanned)
        if at < 0:
            # A delimiter may begin in the last bytes: search them again once more has arrived.
            self._scanned = max(0, len(self._buffer) - len(self._delimiter) + 1)
        return at

    def _consume(self, count: int) -> None:
        del self._buffer[:count]  # O(1) at the front of a bytearray
        self._scanned = max(0, self._scanned - count)

    # -- framing -------------------------------------------------------------------------------
    def _content_into(self, view: memoryview) -> int:
        """Content of the current part into `view`: up to the next delimiter, 0 there."""
        while True:
            at = self._find_delimiter()
            if at == 0:
                return 0
            safe = at if at > 0 else len(self._buffer) - len(self._delimiter) + 1
            if safe > 0:
                count = min(len(view), safe)
                with memoryview(self._buffer) as buffered:  # released before the buffer shrinks
                    view[:count] = buffered[:count]
                self._consume(count)
                return count
            if not self._fill():
                raise MultipartError("the body ended inside a part, before its closing boundary")

    def _after_delimiter(self) -> bool:
        """At a delimiter: consume it and its line; True if a part follows, False at the close."""
        while len(self._buffer) < len(self._delimiter) + 2:
            if not self._fill():
                raise MultipartError("the body ended at a boundary, before its closing boundary")
        self._consume(len(self._delimiter))
        if self._buffer[:2] == b"--":
            self._finished = True
            return False
        # Transport padding (spaces, tabs) may follow the boundary before its CRLF.
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                if self._buffer[:end].strip(b" \t"):
                    raise MultipartError("unexpected characters after a boundary")
                self._consume(end + 2)
                return True
            if len(self._buffer) > 1024 or not self._fill():
                raise MultipartError("a boundary line does not end")

    def _headers(self) -> dict[str, str]:
        while True:
            if self._buffer.startswith(b"\r\n"):  # a part without headers
                self._consume(2)
                return {}
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEADER_BYTES or not self._fill():
                raise MultipartError("a part's headers do not end")
        if end > MAX_HEADER_BYTES:
            raise MultipartError("a part's headers are too long")
        block = bytes(self._buffer[:end]).decode("latin-1")
        self._consume(end + 4)
        headers: dict[str, str] = {}
        for line in block.split("\r\n"):
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise MultipartError("a part's header line is not 'Name: value'")
            headers[name.strip().lower()] = value.strip()
        return headers

    def __iter__(self) -> Iterator[Part]:
        # The preamble (and the CRLF put before it) is not content: skip to the first delimiter.
        while self._find_delimiter() < 0:
            self._consume(max(0, len(self._buffer) - len(self._delimiter) + 1))
            if not self._fill():
                raise MultipartError("no part with this boundary in the body")
        self._consume(self._find_delimiter())
        while not self._finished:
            if self._current is not None:
                self._current.skip()
            if not self._after_delimiter():
                return
            self._current = Part(self, self._headers())
            yield self._current
