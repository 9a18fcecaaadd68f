"""TIFF and HEIC photos and scans without their metadata (issue 14, item 3), for de-identified
exports.

JPEG and PNG are cleaned byte by byte by `imaging/sanitize.py` (segments and chunks dropped,
pixels untouched). TIFF and HEIC cannot be: their metadata sits behind offsets or in boxes
anywhere in the file. Here the image is decoded with Pillow (HEIC through pillow-heif) and only
its pixels are written again, into a new file that holds nothing else:

- TIFF -> TIFF, LZW-compressed (lossless: every decoded pixel value is kept, 16-bit scans too),
  every full-resolution page; kept: resolution (scans are measured by it) and the ICC colour
  profile (as the JPEG sanitizer keeps APP2). Reduced-resolution pages (NewSubfileType bit 0) and
  SubIFDs are embedded thumbnails and go.
- HEIC -> PNG (lossless from the decoded pixels: a second HEVC encoding would lose detail again,
  and PNG opens everywhere); 8 bits per channel, as pillow-heif decodes by default. A HEIC
  holding several top-level images is refused: attach them one by one.

Orientation is applied to the pixels (the output has no EXIF left to say it), so the photo looks
as it did. The written file is read back and must hold only the structural tags a TIFF needs
(`_TIFF_STRUCTURE`) or a PNG's image chunks; anything else refuses the file, never passes it.

`found` says which kinds of identifier the original carried (GPS location, camera maker notes,
...), names only, never a value.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from PIL import Image, ImageOps

# Output tags a TIFF needs to be read (and resolution/ICC, kept on purpose); anything else found
# in the written file refuses it.
_TIFF_STRUCTURE = frozenset(
    {254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 320, 338, 339, 34675}
)
# Identifier kinds, by where they sit. Tags of IFD0 (TIFF) or of EXIF's IFD0.
_IFD0_KINDS = {
    269: "document name",
    270: "image description",
    271: "camera make and model",
    272: "camera make and model",
    285: "document name",
    305: "software",
    306: "dates and times",
    315: "author",
    316: "host computer",
    33432: "author",
    0x9C9B: "image description",  # XPTitle
    0x9C9C: "image description",  # XPComment
    0x9C9D: "author",  # XPAuthor
    0x9C9E: "image description",  # XPKeywords
    0x9C9F: "image description",  # XPSubject
}
_EXIF_KINDS = {
    0x927C: "camera maker notes",
    0x9286: "image description",  # UserComment
    0x9003: "dates and times",  # DateTimeOriginal
    0x9004: "dates and times",  # DateTimeDigitized
    0xA430: "author",  # CameraOwnerName
    0xA431: "device serial number",  # BodySerialNumber
    0xA435: "device serial number",  # LensSerialNumber
    0xA420: "image unique ID",
}
_TIFF_BLOCKS = {700: "XMP", 33723: "IPTC", 34377: "Photoshop/IPTC", 330: "embedded thumbnails"}


class ImageRefused(Exception):
    """The image cannot be cleaned safely; the message says why (no PHI)."""


@dataclass
class CleanedImage:
    data: bytes
    file_type: str  # what `data` is: "tiff" or "png"
    removed: dict[str, int] = field(default_factory=dict)  # what went -> how many
    found: list[str] = field(default_factory=list)  # identifier kinds the original carried
    orientation_applied: int | None = None  # the EXIF orientation turned into pixels (2..8)


def clean_image(file_type: str, data: bytes) -> CleanedImage:
    """`data` (a TIFF or HEIC file) as a new file holding its pixels only; ImageRefused when it
    cannot be decoded or the result would still carry anything else."""
    if file_type not in ("tiff", "heic"):
        raise ValueError(f"clean_image cleans TIFF and HEIC, not {file_type!r}")
    _open_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            return _clean_tiff(image) if file_type == "tiff" else _clean_heic(image)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRefused("the image is larger than the decoder allows") from error
    except Exception as error:  # Pillow and libheif raise many kinds on a damaged file
        raise ImageRefused(f"the image cannot be decoded ({type(error).__name__})") from error


@cache
def _open_heif() -> None:
    """Teach Pillow HEIC on first use (libheif is not loaded by every web process at start)."""
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=True)


def _clean_tiff(image: Any) -> CleanedImage:
    if image.format != "TIFF":
        raise ImageRefused("the file is not a TIFF")
    out = CleanedImage(b"", "tiff")
    found: set[str] = set()
    pages: list[Image.Image] = []
    dpi = None
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        tags = image.tag_v2
        if int(tags.get(254, 0)) & 1:  # a reduced-resolution copy of another page
            _count(out, "embedded thumbnails")
            found.add("embedded thumbnail")
            continue
        for tag, what in _TIFF_BLOCKS.items():
            if tag in tags:
                _count(out, what)
                found.add("embedded thumbnail" if tag == 330 else what)
        _exif_kinds(image.getexif(), out, found, tiff=True)
        if not pages and image.info.get("dpi"):
            dpi = image.info["dpi"]
        pages.append(_upright(image, out))
    if not pages:
        raise ImageRefused("the TIFF holds no full-resolution page")
    first = pages[0]
    options: dict[str, Any] = {"compression": "tiff_lzw"}
    if dpi:
        options["dpi"] = dpi
    buffer = io.BytesIO()
    first.save(buffer, "TIFF", save_all=len(pages) > 1, append_images=pages[1:], **options)
    out.data = buffer.getvalue()
    out.found = sorted(found)
    _check_tiff(out.data, len(pages))
    return out


def _clean_heic(image: Any) -> CleanedImage:
    if image.format != "HEIF":
        raise ImageRefused("the file is not a HEIC")
    if getattr(image, "n_frames", 1) > 1:
        raise ImageRefused("the HEIC holds several images: attach them one by one")
    out = CleanedImage(b"", "png")
    found: set[str] = set()
    info = image.info
    for key, what in (("xmp", "XMP"), ("thumbnails", "embedded thumbnails"), ("depth_images", "depth images")):
        if info.get(key):
            _count(out, what, len(info[key]) if isinstance(info[key], list) else 1)
            found.add("embedded thumbnail" if key == "thumbnails" else what)
    if info.get("aux"):
        _count(out, "auxiliary images", sum(len(ids) for ids in info["aux"].values()))
    _exif_kinds(image.getexif(), out, found)
    # libheif applies the file's rotation and mirroring while decoding; pillow-heif keeps the EXIF
    # orientation it overrode as original_orientation.
    original = info.get("original_orientation")
    if isinstance(original, int) and original > 1:
        out.orientation_applied = original
    pixels = image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB")
    pixels.info = {}
    buffer = io.BytesIO()
    options: dict[str, Any] = {}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    pixels.save(buffer, "PNG", **options)
    out.data = buffer.getvalue()
    out.found = sorted(found)
    _check_png(out.data)
    return out


def _count(out: CleanedImage, what: str, how_many: int = 1) -> None:
    out.removed[what] = out.removed.get(what, 0) + how_many


def _exif_kinds(exif: Image.Exif, out: CleanedImage, found: set[str], *, tiff: bool = False) -> None:
    """What an EXIF block (or a TIFF's own tags, which Pillow reads the same way) carries. In a
    TIFF, the "IFD1" Pillow offers is the next page, counted by the caller."""
    if not exif:
        return
    for tag, kind in _IFD0_KINDS.items():
        if tag in exif:
            found.add(kind)
    if 0x8769 in exif:
        _count(out, "EXIF")
        found.add("camera settings (EXIF)")
        sub = exif.get_ifd(0x8769)
        found.update(kind for tag, kind in _EXIF_KINDS.items() if tag in sub)
        if 0x927C in sub:
            _count(out, "maker notes")
    if 0x8825 in exif:
        _count(out, "GPS")
        found.add("GPS location")
    if not tiff and exif.get_ifd(Image.ExifTags.IFD.IFD1):
        _count(out, "embedded thumbnails")
        found.add("embedded thumbnail")


def _upright(page: Any, out: CleanedImage) -> Image.Image:
    """The page's pixels, turned as its orientation says, with no metadata attached."""
    orientation = page.getexif().get(0x0112, 1)
    page.load()  # recent Pillow turns a TIFF page while loading it and drops the tag then
    pending = page.getexif().get(0x0112, 1)
    turned = ImageOps.exif_transpose(page) if pending in range(2, 9) else page
    if orientation in range(2, 9):
        out.orientation_applied = int(orientation)
    fresh = turned.copy()  # a plain Image: no tag_v2 for the TIFF writer to carry over
    fresh.info = {}
    if page.info.get("icc_profile"):
        fresh.info["icc_profile"] = page.info["icc_profile"]
    return fresh


def _check_tiff(data: bytes, pages: int) -> None:
    written: Any = Image.open(io.BytesIO(data))
    if getattr(written, "n_frames", 1) != pages:
        raise ImageRefused("the cleaned TIFF did not keep its pages")
    for index in range(pages):
        written.seek(index)
        extra = set(written.tag_v2) - _TIFF_STRUCTURE
        if extra:
            raise ImageRefused(f"the cleaned TIFF still has tags {sorted(extra)}")


def _check_png(data: bytes) -> None:
    allowed = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"iCCP", b"tRNS"}
    at = 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind not in allowed:
            raise ImageRefused(f"the cleaned PNG still has a {kind.decode('latin-1')} chunk")
        at += 12 + length
