"""Which uploads CaseBridge accepts, recognised from their first bytes and length, never from their names.

Usage: buffer the first ``min(SNIFF_BYTES, total_length)`` bytes of an upload, then call
``detect(prefix, total_length)``; it returns a ``FileType`` or raises ``UnsupportedFileType``,
whose message names the accepted types in words an uploader understands.

Order matters and is deliberate:

1. executables are refused first, whatever else they might also look like (a PE header in a
   DICOM preamble is a known polyglot attack, CVE-2019-11687);
2. formats with a fixed signature at offset 0 (PNG, JPEG, ZIP, TIFF, HEIC, PDF, PLY);
3. DICOM Part 10 ("DICM" at 128): checked before TIFF, because dual-personality DICOM/TIFF
   files carry a TIFF header in their preamble and are medical images first;
4. binary STL, whose only signature is its exact length; its free-text header may begin with
   "solid", so it is checked before ASCII STL;
5. looser checks last: "%PDF-" anywhere in the first 1024 bytes, ASCII STL, OBJ.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

# Enough for every rule below (the PDF rule looks at 1024 bytes, DICOM at 132); the rest gives
# text formats room to show a few statements after a comment header.
SNIFF_BYTES = 4096


@dataclass(frozen=True)
class FileType:
    """A recognised type: ``name`` is stable and safe to store; ``label`` is for people."""

    name: str
    mime_type: str
    extension: str
    label: str


STL = FileType("stl", "model/stl", "stl", "STL scan")
PLY = FileType("ply", "model/x-ply", "ply", "PLY scan")
OBJ = FileType("obj", "model/obj", "obj", "OBJ scan")
DICOM = FileType("dicom", "application/dicom", "dcm", "DICOM image")
ZIP = FileType("zip", "application/zip", "zip", "ZIP archive")
JPEG = FileType("jpeg", "image/jpeg", "jpg", "JPEG photo")
PNG = FileType("png", "image/png", "png", "PNG image")
HEIC = FileType("heic", "image/heic", "heic", "HEIC photo")
TIFF = FileType("tiff", "image/tiff", "tif", "TIFF image")
PDF = FileType("pdf", "application/pdf", "pdf", "PDF document")

ACCEPTED_TYPES: tuple[FileType, ...] = (STL, PLY, OBJ, DICOM, ZIP, JPEG, PNG, HEIC, TIFF, PDF)
FILE_TYPES_BY_NAME: dict[str, FileType] = {t.name: t for t in ACCEPTED_TYPES}

ACCEPTED_TYPES_MESSAGE = (
    "CaseBridge accepts STL, PLY and OBJ scans, DICOM images, ZIP archives, "
    "JPEG, PNG, HEIC and TIFF photos, and PDF documents."
)


def version_type_refusal(file_type: str, new_type: str) -> str | None:
    """Why content of `new_type` cannot be a new version of a file of `file_type` (None: it can).

    A file keeps its type for life: it is served with that type's media type and extension, and
    cleaned by that type's sanitizer, so a PDF sent as a new version of an STL scan is refused
    instead of being served as ``model/stl``."""
    if not file_type or new_type == file_type:
        return None
    kind, new = FILE_TYPES_BY_NAME.get(file_type), FILE_TYPES_BY_NAME.get(new_type)
    return (
        f"A new version must have the file's type ({kind.label if kind else file_type}), not "
        f"{new.label if new else new_type}. Upload it as a new file instead."
    )


# What a refused file looked like, in an uploader's words (never anything of its content).
_REASONS_FOR_PEOPLE = {
    "empty file": "it is empty",
    "executable": "it is a program",
    "ISO media file that is not HEIC/HEIF (video, AVIF...)": "it is a video or an AVIF image",
    "PLY magic without a valid format line": "it is a damaged PLY file",
    "binary content with no recognised signature": "its type is not one CaseBridge knows",
    "text that is neither ASCII STL nor OBJ": "it is a text document, not an STL or OBJ scan",
    "office document": "it is a Microsoft Office document",
    "rtf document": "it is an RTF document",
    "gif image": "it is a GIF image",
    "web page": "it is a web page",
}

# Signatures of common files that are not accepted, for the browser to refuse a file from its
# first bytes before sending any (the Files and case pages read them from the page). The server
# judges every upload again from its first chunk with detect(); this list only names more kinds.
BROWSER_REFUSALS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x7fELF", "executable"),
    (0, b"MZ", "executable"),
    (0, b"#!", "executable"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "office document"),
    (0, b"{\\rtf", "rtf document"),
    (0, b"GIF8", "gif image"),
    (0, b"<!DOCTYPE html", "web page"),
    (0, b"<!doctype html", "web page"),
    (0, b"<html", "web page"),
)


def browser_refusals() -> list[dict[str, object]]:
    """BROWSER_REFUSALS as the page's uploader reads them (offsets, hex bytes, words)."""
    return [
        {"at": at, "hex": magic.hex(), "why": _REASONS_FOR_PEOPLE[reason]} for at, magic, reason in BROWSER_REFUSALS
    ]


class UnsupportedFileType(ValueError):
    """The content is not one of the accepted types.

    ``str()`` is the message for the uploader: what the file looked like, then what is accepted;
    ``reason`` says why in the code's terms, for logs and audit (neither ever echoes file content,
    which may hold PHI).
    """

    def __init__(self, reason: str) -> None:
        why = _REASONS_FOR_PEOPLE.get(reason, "its type is not one CaseBridge knows")
        super().__init__(f"Not uploaded: {why}. {ACCEPTED_TYPES_MESSAGE}")
        self.reason = reason


_EXECUTABLE_SIGNATURES = (
    b"\x7fELF",  # Linux and most Unix
    b"MZ",  # Windows PE / DOS
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit, big-endian
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit, big-endian
    b"\xce\xfa\xed\xfe",  # Mach-O 32-bit, little-endian
    b"\xcf\xfa\xed\xfe",  # Mach-O 64-bit, little-endian
    b"\xca\xfe\xba\xbe",  # Mach-O universal binary (and Java classes)
    b"#!",  # scripts; "#" would otherwise pass as an OBJ comment
)

# Brands that say "HEVC-coded HEIF" outright.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
# Generic HEIF brands: AVIF files use them too, as compatible brands beside "avif".
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
_AV1_BRANDS = frozenset({b"avif", b"avis", b"av01"})

_PLY_FORMAT = re.compile(r"format (ascii|binary_little_endian|binary_big_endian) \d+(\.\d+)?")
_PDF_VERSION = re.compile(rb"%PDF-\d\.\d")

# Bytes a text format may contain: tab, LF, VT, FF, CR, printable ASCII and anything >= 0x80
# (names in scans are often Latin-1 or UTF-8; the statements themselves are ASCII).
_TEXT_BYTES = bytes([9, 10, 11, 12, 13, *range(32, 127), *range(128, 256)])

_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_FACE_VERTEX = r"-?\d+(/-?\d*){0,2}"
_OBJ_STATEMENTS: dict[str, re.Pattern[str]] = {
    "v": re.compile(rf"{_NUMBER}(\s+{_NUMBER}){{2,6}}"),  # x y z [w] or x y z r g b
    "vn": re.compile(rf"{_NUMBER}(\s+{_NUMBER}){{2}}"),
    "vt": re.compile(rf"{_NUMBER}(\s+{_NUMBER}){{0,2}}"),
    "vp": re.compile(rf"{_NUMBER}(\s+{_NUMBER}){{0,2}}"),
    "f": re.compile(rf"{_FACE_VERTEX}(\s+{_FACE_VERTEX}){{2,}}"),
    "l": re.compile(rf"{_FACE_VERTEX}(\s+{_FACE_VERTEX})+"),
    "p": re.compile(r"-?\d+(\s+-?\d+)*"),
    "o": re.compile(r".+"),
    "g": re.compile(r".+"),
    "s": re.compile(r"\d+|on|off"),
    "mtllib": re.compile(r".+"),
    "usemtl": re.compile(r".+"),
}
# Enough statements to be sure of an OBJ without insisting a whole 4 KiB prefix is clean.
_OBJ_STATEMENTS_CHECKED = 32


def detect(prefix: bytes, total_length: int) -> FileType:
    """Recognise the type of a file from its first bytes and its exact total length.

    ``prefix`` must hold the first ``min(SNIFF_BYTES, total_length)`` bytes; more is allowed
    and ignored, so the answer never depends on how much a caller happened to buffer.
    """
    if total_length < 0 or len(prefix) > total_length:
        raise ValueError(f"prefix of {len(prefix)} bytes cannot belong to a file of {total_length} bytes")
    if len(prefix) < min(SNIFF_BYTES, total_length):
        raise ValueError(f"detect() needs the first {min(SNIFF_BYTES, total_length)} bytes, got {len(prefix)}")
    head = prefix[:SNIFF_BYTES]
    complete = len(head) == total_length

    if total_length == 0:
        raise UnsupportedFileType("empty file")
    if head.startswith(_EXECUTABLE_SIGNATURES):
        raise UnsupportedFileType("executable")

    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"PK\x03\x04") or (head.startswith(b"PK\x05\x06") and total_length >= 22):
        return ZIP
    if head[4:8] == b"ftyp":
        if _is_heic(head):
            return HEIC
        raise UnsupportedFileType("ISO media file that is not HEIC/HEIF (video, AVIF...)")
    if head.startswith(b"%PDF-") and _PDF_VERSION.match(head):
        return PDF
    if head.startswith((b"ply\n", b"ply\r\n")):
        if _is_ply(head):
            return PLY
        raise UnsupportedFileType("PLY magic without a valid format line")

    if _is_dicom(head, total_length):
        return DICOM
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if _is_binary_stl(head, total_length):
        return STL

    if _PDF_VERSION.search(head[:1024]):
        # Readers accept junk before the header; some scanners and lab systems emit it.
        return PDF

    for at, magic, reason in BROWSER_REFUSALS:  # say what it is, when it is something well known
        if head[at : at + len(magic)] == magic:
            raise UnsupportedFileType(reason)

    lines = _text_lines(head, complete)
    if lines is None:
        raise UnsupportedFileType("binary content with no recognised signature")
    if _is_ascii_stl(lines, complete):
        return STL
    if _is_obj(lines):
        return OBJ
    raise UnsupportedFileType("text that is neither ASCII STL nor OBJ")


def _is_heic(head: bytes) -> bool:
    # ftyp box: size (4), "ftyp", major brand (4), minor version (4), compatible brands (4 each).
    box_size = struct.unpack(">I", head[:4])[0]
    if box_size < 16:
        return False
    brands_end = min(box_size, len(head))
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, brands_end - 3, 4)}
    if major in _HEIC_BRANDS:
        return True
    # "mif1"/"msf1" only say "some HEIF": refuse when the codec brands point at AV1 (AVIF).
    return major in _HEIF_GENERIC_BRANDS and not compatible & _AV1_BRANDS


def _is_ply(head: bytes) -> bool:
    lines = head.split(b"\n")[1:]
    for raw in lines[:-1]:  # the last piece may be cut by the end of the prefix
        line = raw.rstrip(b"\r").decode("latin-1").strip()
        if line.startswith(("comment", "obj_info")) or not line:
            continue
        return _PLY_FORMAT.fullmatch(line) is not None
    return False


def _is_dicom(head: bytes, total_length: int) -> bool:
    if total_length < 132 or head[128:132] != b"DICM":
        return False
    # Part 10 meta information (group 0002, always little-endian) follows the magic at once.
    return total_length < 134 or head[132:134] == b"\x02\x00"


def _is_binary_stl(head: bytes, total_length: int) -> bool:
    if total_length < 84 + 50:
        return False
    (triangles,) = struct.unpack("<I", head[80:84])
    # An STL with no triangles carries no scan; refusing it narrows what the length rule admits.
    return triangles > 0 and total_length == 84 + 50 * triangles


def _text_lines(head: bytes, complete: bool) -> list[str] | None:
    """The prefix as lines of text, or None when it holds bytes no text format uses."""
    if head.translate(None, _TEXT_BYTES):  # anything left after deleting text bytes is binary
        return None
    lines = head.decode("latin-1").splitlines()
    if not complete and lines:
        lines.pop()  # cut by the end of the prefix
    return lines


def _is_ascii_stl(lines: list[str], complete: bool) -> bool:
    meaningful = [line.strip() for line in lines if line.strip()]
    if not meaningful or not re.match(r"solid\b", meaningful[0]):
        return False
    if any(re.match(r"facet\b", line) for line in meaningful[1:]):
        return True
    # A tiny file may hold no facet at all; it must then be a whole, closed solid.
    return complete and re.match(r"endsolid\b", meaningful[-1]) is not None


def _is_obj(lines: list[str]) -> bool:
    statements = 0
    vertices = 0
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.replace("\t", " ").partition(" ")
        pattern = _OBJ_STATEMENTS.get(keyword)
        if pattern is None or not pattern.fullmatch(arguments.strip()):
            return False
        statements += 1
        if keyword == "v":
            vertices += 1
        if statements >= _OBJ_STATEMENTS_CHECKED:
            break
    # Names and groups alone prove little; a mesh declares vertices early.
    return vertices > 0
