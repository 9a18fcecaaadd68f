"""Removal of identifying metadata from photos and scans at ingest, streamed chunk by chunk.

Usage::

    cleaned, result = sanitize(file_type.name, chunks, total_length)
    for piece in cleaned:          # may raise SanitizeError: discard everything written so far
        sink.write(piece)
    audit_details = result.audit_details()   # final once result.complete is True

``file_type.name`` comes from ``kernel.filetypes.detect``. ``result`` is filled in while the
stream is read; it says what was removed as counts and field names only, never values, which
may be PHI. ``result.sanitized`` becomes True only once the whole stream was read and cleaned;
for formats this module does not clean it stays False and ``result.reason`` says why, so the
caller can warn the uploader instead of implying the file is clean.

What each format gets (memory stays bounded by the caller's chunk size plus the largest
structure parsed: a 64 KiB JPEG segment, a 64 KiB PLY header, a 64 KiB text line):

- JPEG: an allowlist of segments. Kept byte for byte: JFIF APP0, ICC profile APP2, Adobe APP14
  (it tells decoders the colour transform) and every non-APPn segment (tables, SOF, SOS, DRI)
  with the entropy-coded data, which is copied without being decoded. Removed: every other APPn
  (EXIF, XMP and extended XMP, Photoshop/IPTC APP13, MPF, FlashPix, maker segments), COM, and
  anything after EOI (phones append secondary images and maker trailers there, which carry
  their own metadata). When EXIF held an Orientation other than 1, a minimal EXIF APP1 holding
  only that tag is written where the EXIF was, so the photo is shown as taken without touching
  its pixels.
- PNG: critical chunks and colour/animation chunks are kept; tEXt, zTXt, iTXt, tIME, eXIf and
  any other ancillary chunk are removed, and data after IEND is dropped. Orientation in eXIf is
  kept the same way as for JPEG (a minimal eXIf with only Orientation): support for eXIf
  orientation in viewers is uneven, but a viewer that honours it should keep showing the photo
  the way the original did, and the tag alone identifies nobody.
- STL, binary: the 80-byte header becomes ``CaseBridge`` padded with spaces (never ``solid``,
  which would make readers take it for ASCII STL); Materialise-style ``COLOR=``/``MATERIAL=``
  colour fields are carried over because facet attribute colours are read relative to them.
  Facets, attribute bytes included, are copied unchanged.
- STL, ASCII: ``solid <name>`` / ``endsolid <name>`` lose the name; nothing else changes.
- PLY: ``comment`` and ``obj_info`` header lines are removed, except ``comment TextureFile``,
  which is a file reference readers use (as OBJ's ``mtllib`` is); the body, binary or not, is
  copied unchanged.
- OBJ: whole-line ``#`` comments are removed. Trailing ``# ...`` after a statement is left
  alone: the OBJ format only defines comment lines, and ``#`` may legally appear in the names
  and file references of ``o``, ``g``, ``usemtl`` and ``mtllib``, so cutting there could break
  the model. Object and group names are kept too (CAD software relies on them).
- TIFF and HEIC: not cleaned (``sanitized=False``). Their metadata sits behind offsets that can
  point anywhere in the file, so they cannot be cleaned in one pass, and re-encoding through an
  imaging library would change clinical pixels (HEIC is lossy) and load the whole image. The
  de-identified exports do that on the way out (``deid/photo.py``: TIFF losslessly, HEIC as PNG).
- DICOM, ZIP, PDF: passed through unchanged with ``reason="not handled here"``; DICOM
  de-identification (PS3.15 Annex E) is a separate step.

Every sanitizer is strict: content it must understand but cannot (a truncated segment, a PLY
header with no ``end_header`` in 64 KiB, a length different from the declared one) raises
``SanitizeError``, never passes through uncleaned.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

# JPEG segments cannot exceed this anyway; it also bounds PLY headers and text lines.
MAX_PLY_HEADER = 64 * 1024
MAX_TEXT_LINE = 64 * 1024
# An eXIf chunk larger than this is removed without being read for its orientation.
_MAX_PNG_EXIF_READ = 64 * 1024

NOT_HANDLED_HERE = "not handled here"
_NOT_SANITIZED_REASONS = {
    "dicom": NOT_HANDLED_HERE,
    "zip": NOT_HANDLED_HERE,
    "pdf": NOT_HANDLED_HERE,
    "tiff": "TIFF metadata removal is not supported: the file was stored as uploaded",
    "heic": "HEIC metadata removal is not supported: the file was stored as uploaded",
}


class SanitizeError(ValueError):
    """The content is malformed where a sanitizer must understand it; none of its output may be kept.

    Messages name the structure that is wrong, never the content (which may hold PHI).
    """


@dataclass
class SanitizeResult:
    """What a sanitizer did, for the audit log: counts and field names only, never values."""

    file_type: str
    sanitized: bool = False
    reason: str = ""
    # What was removed -> how many (segments, chunks, fields, lines; "... bytes" keys count bytes).
    removed: dict[str, int] = field(default_factory=dict)
    # The EXIF orientation written back (2..8), None when there was none to keep.
    orientation: int | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    complete: bool = False

    def count(self, what: str, how_many: int = 1) -> None:
        if how_many:
            self.removed[what] = self.removed.get(what, 0) + how_many

    def audit_details(self) -> dict[str, object]:
        return {
            "file_type": self.file_type,
            "sanitized": self.sanitized,
            "reason": self.reason,
            "removed": dict(sorted(self.removed.items())),
            "orientation_kept": self.orientation,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


def passed_through(file_type_name: str, total_length: int) -> SanitizeResult | None:
    """What sanitize() would report for a type it passes through unchanged (DICOM, ZIP, PDF, TIFF,
    HEIC), known without reading the content; None for a type it cleans."""
    reason = _NOT_SANITIZED_REASONS.get(file_type_name)
    if reason is None:
        return None
    result = SanitizeResult(file_type=file_type_name, reason=reason, bytes_in=total_length, bytes_out=total_length)
    result.complete = True
    return result


def sanitize(file_type_name: str, chunks: Iterable[bytes], total_length: int) -> tuple[Iterator[bytes], SanitizeResult]:
    """Clean ``chunks`` (the whole file, ``total_length`` bytes) of type ``file_type_name``.

    Returns the cleaned bytes as a lazy iterator and the result it fills in as it is read.
    """
    result = SanitizeResult(file_type=file_type_name)
    stream = _Stream(_counted(chunks, total_length, result))
    body: Iterator[bytes]
    if file_type_name in _NOT_SANITIZED_REASONS:
        result.reason = _NOT_SANITIZED_REASONS[file_type_name]
        body = stream.rest()
    elif file_type_name in _SANITIZERS:
        body = _SANITIZERS[file_type_name](stream, result, total_length)
    else:
        raise ValueError(f"unknown file type {file_type_name!r}")
    return _finish(body, stream, result), result


def _counted(chunks: Iterable[bytes], total_length: int, result: SanitizeResult) -> Iterator[bytes]:
    # A length that differs from the declared one means the upload and the sniffed type no
    # longer describe the same content (binary STL is recognised by its length alone).
    for chunk in chunks:
        result.bytes_in += len(chunk)
        if result.bytes_in > total_length:
            raise SanitizeError("content is longer than its declared length")
        yield bytes(chunk)
    if result.bytes_in != total_length:
        raise SanitizeError("content is shorter than its declared length")


def _finish(body: Iterator[bytes], stream: _Stream, result: SanitizeResult) -> Iterator[bytes]:
    for piece in body:
        if piece:
            result.bytes_out += len(piece)
            yield piece
    if not stream.at_end():
        raise SanitizeError("sanitizer stopped before the end of the content")  # a bug, never silent
    result.sanitized = not result.reason
    result.complete = True


class _Stream:
    """Chunks read with bounded look-ahead, so a sanitizer can parse a structure and copy the rest."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0

    def _fill(self, n: int) -> bool:
        """Buffer at least ``n`` unread bytes; False when the input ends first."""
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        parts = [self._buf[self._pos :]] if have else []
        while have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        # One join per call keeps tiny chunks from making this quadratic.
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0
        return have >= n

    def at_end(self) -> bool:
        return not self._fill(1)

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._pos : self._pos + n]

    def read_exact(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise SanitizeError(f"truncated {what}")
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def copy(self, n: int, what: str) -> Iterator[bytes]:
        while n:
            if not self._fill(1):
                raise SanitizeError(f"truncated {what}")
            take = min(n, len(self._buf) - self._pos)
            yield self._buf[self._pos : self._pos + take]
            self._pos += take
            n -= take

    def skip(self, n: int, what: str) -> None:
        for _ in self.copy(n, what):
            pass

    def rest(self) -> Iterator[bytes]:
        while self._fill(1):
            yield self._buf[self._pos :]
            self._pos = len(self._buf)

    def skip_rest(self) -> int:
        return sum(len(piece) for piece in self.rest())

    def read_header(self, find_end: Callable[[bytes, bool], int], limit: int, what: str) -> bytes:
        """Read up to the end ``find_end(buffered, at_eof)`` reports (-1: not yet), within ``limit`` bytes."""
        want = min(4096, limit)
        while True:
            at_eof = not self._fill(want)
            window = self._buf[self._pos : self._pos + limit]
            # "The input ends here" only when the window is not cut short by the limit.
            end = find_end(window, at_eof and len(self._buf) - self._pos <= limit)
            if end >= 0:
                self._pos += end
                return window[:end]
            if at_eof:
                raise SanitizeError(f"{what} has no end")
            if len(window) >= limit:
                raise SanitizeError(f"{what} has no end within {limit // 1024} KiB")
            want = min(want * 2, limit)

    def copy_entropy_coded(self) -> Iterator[bytes]:
        """Copy JPEG entropy-coded data up to (not including) the next marker that is not RSTn."""
        start = self._pos
        search = self._pos
        while True:
            i = self._buf.find(b"\xff", search)
            if i < 0 or i + 1 >= len(self._buf):
                # Out of buffered data (or 0xFF is its last byte): hand over what is certain to be
                # scan data, then read on, keeping a dangling 0xFF to look at with its successor.
                end = len(self._buf) if i < 0 else i
                if end > start:
                    yield self._buf[start:end]
                self._pos = end
                if not self._fill(len(self._buf) - end + 1):
                    raise SanitizeError("truncated JPEG scan: no end-of-image marker")
                start = search = self._pos
                continue
            follower = self._buf[i + 1]
            if follower == 0x00 or 0xD0 <= follower <= 0xD7:  # stuffed 0xFF, restart marker
                search = i + 2
                continue
            if i > start:
                yield self._buf[start:i]
            self._pos = i
            return


# --- JPEG -------------------------------------------------------------------------------------

_SOI, _EOI, _SOS, _COM = 0xD8, 0xD9, 0xDA, 0xFE
_APP0, _APP1, _APP2, _APP13, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xEF
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length

# (marker, payload prefix) of the APPn segments kept: they tell decoders how to show the
# pixels and say nothing about who, where or with what device.
_JPEG_KEPT_APPS = ((_APP0, b"JFIF\x00"), (_APP2, b"ICC_PROFILE\x00"), (_APP14, b"Adobe"))
# Names for the removed ones; anything else is named by its marker only, never by its content.
_JPEG_APP_NAMES = (
    (_APP0, b"JFXX\x00", "APP0 JFIF thumbnail"),
    (_APP1, b"Exif\x00", "APP1 EXIF"),
    (_APP1, b"http://ns.adobe.com/xap/1.0/\x00", "APP1 XMP"),
    (_APP1, b"http://ns.adobe.com/xmp/extension/\x00", "APP1 extended XMP"),
    (_APP2, b"MPF\x00", "APP2 multi-picture index"),
    (_APP2, b"FPXR\x00", "APP2 FlashPix"),
    (_APP13, b"Photoshop 3.0\x00", "APP13 Photoshop/IPTC"),
)


def _sanitize_jpeg(stream: _Stream, result: SanitizeResult, total_length: int) -> Iterator[bytes]:
    if stream.read_exact(2, "JPEG start") != b"\xff\xd8":
        raise SanitizeError("not a JPEG: no start-of-image marker")
    yield b"\xff\xd8"
    orientation_written = False
    while True:
        marker = _read_jpeg_marker(stream)
        if marker == _EOI:
            yield b"\xff\xd9"
            result.count("data after end of image (bytes)", stream.skip_rest())
            return
        if marker in _STANDALONE_MARKERS:
            yield bytes((0xFF, marker))
            continue
        if marker == _SOI:
            raise SanitizeError("JPEG has a second start-of-image marker before its end")
        length_field = stream.read_exact(2, "JPEG segment length")
        (length,) = struct.unpack(">H", length_field)
        if length < 2:
            raise SanitizeError("JPEG segment length is below 2")
        payload = stream.read_exact(length - 2, f"JPEG segment (marker 0x{marker:02X})")
        removed_as = _removed_jpeg_segment(marker, payload)
        if removed_as is None:
            yield b"\xff" + bytes((marker,)) + length_field + payload
        else:
            result.count(removed_as)
            if removed_as == "APP1 EXIF":
                orientation = _read_exif(payload[6:], result)
                if orientation is not None and not orientation_written:
                    # Written where the EXIF was: after JFIF APP0 when there is one, as JFIF asks.
                    yield _jpeg_orientation_segment(orientation)
                    result.orientation = orientation
                    orientation_written = True
        if marker == _SOS:
            yield from stream.copy_entropy_coded()


def _read_jpeg_marker(stream: _Stream) -> int:
    if stream.read_exact(1, "JPEG marker") != b"\xff":
        raise SanitizeError("JPEG has data where a marker should be")
    marker = 0xFF
    while marker == 0xFF:  # fill bytes may precede a marker; they carry nothing and are dropped
        marker = stream.read_exact(1, "JPEG marker")[0]
    if marker == 0x00:
        raise SanitizeError("JPEG has a stuffed byte outside its scan data")
    return marker


def _removed_jpeg_segment(marker: int, payload: bytes) -> str | None:
    """The audit name of a segment to remove, or None to keep it."""
    if marker == _COM:
        return "COM comment"
    if not _APP0 <= marker <= _APP15:
        return None  # tables, frame and scan headers, restart interval: the image itself
    if any(marker == kept and payload.startswith(prefix) for kept, prefix in _JPEG_KEPT_APPS):
        return None
    for app, prefix, name in _JPEG_APP_NAMES:
        if marker == app and payload.startswith(prefix):
            return name
    return f"APP{marker - _APP0}"


def _jpeg_orientation_segment(orientation: int) -> bytes:
    payload = b"Exif\x00\x00" + _orientation_tiff(orientation)
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


# --- EXIF (TIFF structure), shared by JPEG APP1 and PNG eXIf ---------------------------------

_EXIF_ORIENTATION = 0x0112
_EXIF_IFD_POINTER = 0x8769
_GPS_IFD_POINTER = 0x8825
_EXIF_FIELD_NAMES = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0112: "Orientation",
    0x011A: "XResolution",
    0x011B: "YResolution",
    0x0128: "ResolutionUnit",
    0x0131: "Software",
    0x0132: "DateTime",
    0x013B: "Artist",
    0x013C: "HostComputer",
    0x0213: "YCbCrPositioning",
    0x02BC: "XMP",
    0x83BB: "IPTC",
    0x8298: "Copyright",
    0x8769: "ExifIFD",
    0x8825: "GPSInfo",
    0x9C9B: "XPTitle",
    0x9C9C: "XPComment",
    0x9C9D: "XPAuthor",
    0x9C9E: "XPKeywords",
    0x9C9F: "XPSubject",
    0xC4A5: "PrintIM",
    0x829A: "ExposureTime",
    0x829D: "FNumber",
    0x8827: "ISOSpeedRatings",
    0x9000: "ExifVersion",
    0x9003: "DateTimeOriginal",
    0x9004: "DateTimeDigitized",
    0x9010: "OffsetTime",
    0x9011: "OffsetTimeOriginal",
    0x9012: "OffsetTimeDigitized",
    0x920A: "FocalLength",
    0x927C: "MakerNote",
    0x9286: "UserComment",
    0x9290: "SubSecTime",
    0x9291: "SubSecTimeOriginal",
    0x9292: "SubSecTimeDigitized",
    0xA002: "PixelXDimension",
    0xA003: "PixelYDimension",
    0xA005: "InteropIFD",
    0xA420: "ImageUniqueID",
    0xA430: "CameraOwnerName",
    0xA431: "BodySerialNumber",
    0xA432: "LensSpecification",
    0xA433: "LensMake",
    0xA434: "LensModel",
    0xA435: "LensSerialNumber",
}
_GPS_FIELD_NAMES = {
    0x00: "GPSVersionID",
    0x01: "GPSLatitudeRef",
    0x02: "GPSLatitude",
    0x03: "GPSLongitudeRef",
    0x04: "GPSLongitude",
    0x05: "GPSAltitudeRef",
    0x06: "GPSAltitude",
    0x07: "GPSTimeStamp",
    0x10: "GPSImgDirectionRef",
    0x11: "GPSImgDirection",
    0x1D: "GPSDateStamp",
}
_MAX_IFD_ENTRIES = 1024


def _read_exif(tiff: bytes, result: SanitizeResult) -> int | None:
    """Count the fields of removed EXIF in ``result`` and return an Orientation worth keeping.

    Never raises: the EXIF is removed whatever its state; if it cannot be read, its
    orientation cannot be kept either, and the audit says so.
    """
    if len(tiff) >= 8 and tiff[:4] == b"II*\x00":
        order = "<"
    elif len(tiff) >= 8 and tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        result.count("EXIF unreadable (orientation not kept)")
        return None

    def entries(offset: int) -> list[tuple[int, int, int, bytes]]:
        if offset < 8 or offset + 2 > len(tiff):
            return []
        (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
        found = []
        for index in range(min(count, _MAX_IFD_ENTRIES)):
            at = offset + 2 + 12 * index
            if at + 12 > len(tiff):
                break
            tag, kind, values = struct.unpack(order + "HHI", tiff[at : at + 8])
            found.append((tag, kind, values, tiff[at + 8 : at + 12]))
        return found

    def pointer(value: bytes) -> int:
        return int(struct.unpack(order + "I", value)[0])

    orientation: int | None = None
    (ifd0,) = struct.unpack(order + "I", tiff[4:8])
    ifd0_entries = entries(ifd0)
    for tag, kind, values, value in ifd0_entries:
        result.count(f"EXIF field {_EXIF_FIELD_NAMES.get(tag, f'0x{tag:04X}')}")
        if tag == _EXIF_ORIENTATION and kind == 3 and values == 1:  # SHORT, one value
            (orientation,) = struct.unpack(order + "H", value[:2])
        elif tag == _EXIF_IFD_POINTER:
            for sub_tag, *_ in entries(pointer(value)):
                result.count(f"EXIF field {_EXIF_FIELD_NAMES.get(sub_tag, f'0x{sub_tag:04X}')}")
        elif tag == _GPS_IFD_POINTER:
            for gps_tag, *_ in entries(pointer(value)):
                result.count(f"EXIF field {_GPS_FIELD_NAMES.get(gps_tag, f'GPS 0x{gps_tag:04X}')}")
    next_ifd_at = ifd0 + 2 + 12 * len(ifd0_entries)
    if ifd0_entries and next_ifd_at + 4 <= len(tiff) and pointer(tiff[next_ifd_at : next_ifd_at + 4]):
        result.count("EXIF thumbnail")
    # 1 is "as stored"; values outside 1..8 are not orientations and no viewer acts on them.
    return orientation if orientation in range(2, 9) else None


def _orientation_tiff(orientation: int) -> bytes:
    # Big-endian TIFF header, IFD0 at offset 8 with one entry: Orientation, SHORT, 1 value
    # (left-justified in the 4-byte value field), then "no next IFD".
    return b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, _EXIF_ORIENTATION, 3, 1, orientation, 0, 0)


# --- PNG --------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that say how to show the pixels (colour, transparency, density, animation).
# Critical chunks are always kept: a decoder must understand them, so removing one breaks it.
_PNG_KEPT_ANCILLARY = frozenset(
    {
        b"iCCP",
        b"sRGB",
        b"gAMA",
        b"cHRM",
        b"cICP",
        b"mDCV",
        b"cLLI",
        b"pHYs",
        b"sBIT",
        b"tRNS",
        b"bKGD",
        b"hIST",
        b"sPLT",
        b"acTL",
        b"fcTL",
        b"fdAT",
    }
)


def _sanitize_png(stream: _Stream, result: SanitizeResult, total_length: int) -> Iterator[bytes]:
    if stream.read_exact(8, "PNG signature") != _PNG_SIGNATURE:
        raise SanitizeError("not a PNG: bad signature")
    yield _PNG_SIGNATURE
    orientation_written = False
    while True:
        header = stream.read_exact(8, "PNG chunk header")
        length, kind = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise SanitizeError("PNG chunk header is invalid")
        critical = not kind[0] & 0x20
        if critical or kind in _PNG_KEPT_ANCILLARY:
            yield header
            yield from stream.copy(length + 4, "PNG chunk")  # data and CRC
        elif kind == b"eXIf" and length <= _MAX_PNG_EXIF_READ:
            data = stream.read_exact(length + 4, "PNG chunk")[:length]
            result.count("PNG chunk eXIf")
            # Some writers keep JPEG's "Exif\0\0" prefix here; readers tolerate it, so do we.
            orientation = _read_exif(data[6:] if data.startswith(b"Exif\x00\x00") else data, result)
            if orientation is not None and not orientation_written:
                yield _png_chunk(b"eXIf", _orientation_tiff(orientation))
                result.orientation = orientation
                orientation_written = True
        else:
            stream.skip(length + 4, "PNG chunk")
            result.count(f"PNG chunk {kind.decode('ascii')}")
        if kind == b"IEND":
            result.count("data after end of image (bytes)", stream.skip_rest())
            return


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# --- STL --------------------------------------------------------------------------------------

_STL_HEADER = b"CaseBridge"
# Materialise Magics convention: a default colour and material in the header, against which
# facet attribute colours are read. Binary RGBA values, not text about anyone.
_STL_COLOUR_FIELDS = ((b"COLOR=", 4), (b"MATERIAL=", 12))
_STL_SOLID_NAME = re.compile(rb"^([ \t]*(?:end)?solid)[ \t]+[^ \t\r\n][^\r\n]*", re.MULTILINE)


def _sanitize_stl(stream: _Stream, result: SanitizeResult, total_length: int) -> Iterator[bytes]:
    head = stream.peek(84)
    # The same rule as kernel.filetypes: a binary STL is recognised by its exact length alone.
    if total_length >= 84 + 50 and len(head) == 84:
        (triangles,) = struct.unpack("<I", head[80:84])
        if triangles > 0 and total_length == 84 + 50 * triangles:
            header = stream.read_exact(80, "STL header")
            neutral = _neutral_stl_header(header)
            if neutral != header:
                result.count("STL header")
            yield neutral
            yield from stream.rest()
            return
    if not stream.peek(MAX_TEXT_LINE).lstrip().startswith(b"solid"):
        raise SanitizeError("STL is neither binary of its declared length nor ASCII")
    yield from _rewrite_lines(stream, _STL_SOLID_NAME, rb"\1", "STL solid name", result)


def _neutral_stl_header(original: bytes) -> bytes:
    header = _STL_HEADER
    for key, size in _STL_COLOUR_FIELDS:
        at = original.find(key)
        if at >= 0 and at + len(key) + size <= len(original):
            header += b" " + original[at : at + len(key) + size]
    return header.ljust(80, b" ")


# --- OBJ and PLY ------------------------------------------------------------------------------

_OBJ_COMMENT_LINE = re.compile(rb"^[ \t]*#[^\n]*(?:\n|\Z)", re.MULTILINE)


def _sanitize_obj(stream: _Stream, result: SanitizeResult, total_length: int) -> Iterator[bytes]:
    yield from _rewrite_lines(stream, _OBJ_COMMENT_LINE, b"", "OBJ comment line", result)


def _rewrite_lines(
    stream: _Stream, pattern: re.Pattern[bytes], replacement: bytes, removed_as: str, result: SanitizeResult
) -> Iterator[bytes]:
    """Apply a line-anchored substitution to a text stream, a run of whole lines at a time."""
    partial = bytearray()  # the line still being read; bounded by MAX_TEXT_LINE
    for block in stream.rest():
        last_newline = block.rfind(b"\n")
        if last_newline < 0:
            partial += block
            if len(partial) > MAX_TEXT_LINE:
                raise SanitizeError(f"text line longer than {MAX_TEXT_LINE // 1024} KiB")
            continue
        lines = bytes(partial) + block[: last_newline + 1]
        partial = bytearray(block[last_newline + 1 :])
        if len(partial) > MAX_TEXT_LINE:
            raise SanitizeError(f"text line longer than {MAX_TEXT_LINE // 1024} KiB")
        cleaned, count = pattern.subn(replacement, lines)
        result.count(removed_as, count)
        yield cleaned
    if partial:
        cleaned, count = pattern.subn(replacement, bytes(partial))
        result.count(removed_as, count)
        yield cleaned


_PLY_END_HEADER = re.compile(rb"(?:^|\n)end_header[ \t]*\r?\n")
_PLY_END_HEADER_AT_EOF = re.compile(rb"(?:^|\n)end_header[ \t\r]*\Z")
_PLY_REMOVED_KEYWORDS = frozenset({b"comment", b"obj_info"})


def _sanitize_ply(stream: _Stream, result: SanitizeResult, total_length: int) -> Iterator[bytes]:
    def header_end(buffered: bytes, final: bool) -> int:
        # The first end_header line ends the header; a binary body may contain the same bytes.
        match = _PLY_END_HEADER.search(buffered)
        if match is None and final:
            match = _PLY_END_HEADER_AT_EOF.search(buffered)
        return match.end() if match else -1

    header = stream.read_header(header_end, MAX_PLY_HEADER, "PLY header")
    if not header.startswith((b"ply\n", b"ply\r\n")):
        raise SanitizeError("not a PLY: bad first line")
    # Split on "\n" only: a stray "\r" inside a comment must not let half of it survive.
    *lines, last = header.split(b"\n")
    kept = []
    for line in lines:
        words = line.split(None, 2)
        if words and words[0] in _PLY_REMOVED_KEYWORDS and words[:2] != [b"comment", b"TextureFile"]:
            result.count(f"PLY {words[0].decode('ascii')} line")
            continue
        kept.append(line + b"\n")
    yield b"".join(kept) + last
    yield from stream.rest()


_SANITIZERS: dict[str, Callable[[_Stream, SanitizeResult, int], Iterator[bytes]]] = {
    "jpeg": _sanitize_jpeg,
    "png": _sanitize_png,
    "stl": _sanitize_stl,
    "ply": _sanitize_ply,
    "obj": _sanitize_obj,
}
