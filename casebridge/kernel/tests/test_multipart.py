"""The multipart reader gives each part's headers and content exactly, whatever the framing a
sender uses and however the body is cut into reads, holding a bounded amount of it at a time;
a body that is not multipart, or stops early, is refused rather than guessed at."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from dicomweb_client.api import DICOMwebClient

from casebridge.kernel.multipart import MultipartError, MultipartReader, media_type_parameters

BOUNDARY = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"


def _reader(body: bytes, step: int | Callable[[], int] = 1 << 16) -> MultipartReader:
    position = 0

    def read(size: int) -> bytes:
        nonlocal position
        take = min(size, step() if callable(step) else step)
        chunk = body[position : position + take]
        position += len(chunk)
        return chunk

    return MultipartReader(read, BOUNDARY)


def _parts(reader: MultipartReader, block: int = 4096) -> list[tuple[dict[str, str], bytes]]:
    found = []
    for part in reader:
        buffer = memoryview(bytearray(block))
        content = bytearray()
        while got := part.readinto(buffer):
            content += buffer[:got]
        found.append((part.headers, bytes(content)))
    return found


def _body(*contents: bytes, preamble: bytes = b"", epilogue: bytes = b"\r\n") -> bytes:
    out = bytearray(preamble)
    for content in contents:
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + content + b"\r\n"
    out += f"--{BOUNDARY}--".encode() + epilogue
    return bytes(out)


def test_it_reads_the_body_dicomweb_client_sends() -> None:
    contents = [os.urandom(300_000), b"", os.urandom(17)]
    body = DICOMwebClient._encode_multipart_message(
        contents, f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'
    )
    assert body.startswith(b"\r\n--") and not body.endswith(b"\r\n")  # its framing, not ours
    parts = _parts(_reader(body))
    assert [content for _, content in parts] == contents
    assert [headers for headers, _ in parts] == [{"content-type": "application/dicom"}] * 3


@pytest.mark.parametrize("step", [1, 7, 41, 65_536])
def test_delimiters_split_across_reads_are_found(step: int) -> None:
    # Content that looks like the boundary without being one: no CRLF before it, or cut short.
    tricky = f"--{BOUNDARY}\r\n\r\n--{BOUNDARY[:-1]}X\r\n--{BOUNDARY[:10]}".encode()
    contents = [tricky, b"\r\n", b"\r\n--", tricky * 3]
    assert [c for _, c in _parts(_reader(_body(*contents), step), block=3)] == contents


def test_a_preamble_an_epilogue_padding_and_parts_without_headers() -> None:
    body = (
        b"This is the preamble, to be ignored.\r\n"
        + f"--{BOUNDARY}  \t\r\n\r\nno headers\r\n".encode()
        + f"--{BOUNDARY}\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n".encode()
        + b"Content-Length: 4\r\n\r\nDICM\r\n"
        + f"--{BOUNDARY}--\r\nan epilogue".encode()
    )
    parts = _parts(_reader(body, 5))
    assert parts == [
        ({}, b"no headers"),
        ({"content-type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1", "content-length": "4"}, b"DICM"),
    ]


def test_a_part_left_unread_is_skipped() -> None:
    reader = _reader(_body(os.urandom(1 << 20), b"second"))
    seen = []
    for part in reader:
        buffer = memoryview(bytearray(10))
        part.readinto(buffer)
        seen.append(bytes(buffer))
    assert seen[1] == b"second\x00\x00\x00\x00"
    assert len(seen) == 2


def test_a_large_part_streams_through_a_bounded_buffer() -> None:
    content = os.urandom(8 << 20)
    reader = _reader(_body(content), 1 << 20)
    largest = 0
    out = bytearray()
    for part in reader:
        buffer = memoryview(bytearray(1 << 20))
        while got := part.readinto(buffer):
            out += buffer[:got]
            largest = max(largest, len(reader._buffer))
    assert out == content
    assert largest <= (256 << 10) + len(BOUNDARY) + 4  # one read block and a delimiter, never the part


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"no boundary anywhere in here", "no part"),
        (_body(b"cut short")[:-20], "ended inside a part"),
        (f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n".encode() + b"x" * 20_000, "headers do not end"),
        (f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "not 'Name: value'"),
        (f"--{BOUNDARY}junk\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "after a boundary"),
    ],
)
def test_what_is_not_a_complete_multipart_body_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(MultipartError, match=why):
        _parts(_reader(body, 7))


def test_the_boundary_must_be_one_rfc_2046_allows() -> None:
    with pytest.raises(MultipartError):
        MultipartReader(lambda n: b"", "")
    with pytest.raises(MultipartError):
        MultipartReader(lambda n: b"", "x" * 71)


def test_media_type_parameters_unquote_and_lower_case_the_names() -> None:
    assert media_type_parameters('Multipart/Related; Type="application/dicom"; boundary="a;b \\"c\\""') == (
        "multipart/related",
        {"type": "application/dicom", "boundary": 'a;b "c"'},
    )
    assert media_type_parameters("multipart/related;type=application/dicom;boundary=xyz") == (
        "multipart/related",
        {"type": "application/dicom", "boundary": "xyz"},
    )
    assert media_type_parameters("application/dicom") == ("application/dicom", {})
