"""The streamed ZIP writer: any reader opens what it writes, entries in order, CRCs right, ZIP64
when an entry is large, without knowing any size up front or seeking."""

from __future__ import annotations

import io
import zipfile

import pytest

from casebridge.kernel import zipstream


def _files() -> list[tuple[str, bytes]]:
    return [
        ("CB-2026-000001_upper_1.stl", b"solid a\n" * 5000),
        ("CB-2026-000001_shade_1.jpg", b"\xff\xd8\xff" + bytes(3000)),
    ]


def test_the_archive_opens_with_every_entry_and_its_crc() -> None:
    files = _files()
    pieces = list(zipstream.archive((n, len(d), lambda d=d: [d[:1000], d[1000:]]) for n, d in files))
    assert len(pieces) > 2  # streamed, not built in one piece
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.testzip() is None
        assert [(i.filename, archive.read(i)) for i in archive.infolist()] == files
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())


def test_large_entries_are_written_as_zip64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipstream, "ZIP64_FROM", 100)  # as if every entry were over 2 GiB
    data = b"".join(zipstream.archive((n, len(d), lambda d=d: [d]) for n, d in _files()))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert all(i.extract_version >= 45 for i in archive.infolist())  # 4.5: ZIP64


def test_an_entry_that_fails_mid_way_leaves_no_valid_archive() -> None:
    def broken() -> list[bytes]:
        raise OSError("integrity check failed")

    stream = zipstream.archive([("a.stl", 10, lambda: [b"0123456789"]), ("b.stl", 10, broken)])
    received = b""
    with pytest.raises(OSError):
        for piece in stream:
            received += piece
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(received))
