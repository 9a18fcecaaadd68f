"""Real TIFF and HEIC files carrying what a camera or a phone writes: GPS position, maker notes,
camera make and model, capture date, XMP, an embedded thumbnail and an orientation. Every
identifying value holds a marker string, so a test can prove it is nowhere in the output."""

from __future__ import annotations

import io

from PIL import Image, TiffImagePlugin

from casebridge.deid.photo import _open_heif

MARKER = "SECRET-MARKER"
GPS = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}


def picture(width: int = 64, height: int = 48) -> Image.Image:
    image = Image.new("RGB", (width, height), (180, 70, 80))
    image.putpixel((width - 1, 0), (1, 2, 3))  # the top-right corner, to see the turn
    return image


def tiff(*, orientation: int = 6, thumbnail: bool = True) -> bytes:
    """A TIFF whose first page has EXIF (maker notes, capture date, owner), GPS, XMP, IPTC and
    camera tags; with `thumbnail`, a second, reduced-resolution page (NewSubfileType 1)."""
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[271] = f"Canon {MARKER}"
    tags[272] = "EOS R5"
    tags[274] = orientation
    tags[315] = f"Dr {MARKER}"
    tags[700] = f"<x:xmpmeta>{MARKER}</x:xmpmeta>".encode()
    tags[33723] = f"IPTC {MARKER}".encode()
    tags[34853] = dict(GPS)
    tags[34665] = {0x927C: f"MAKERNOTE {MARKER}".encode(), 0x9003: "2024:05:06 07:08:09", 0xA431: MARKER}
    out = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(out, new=True) as writer:
        picture().save(writer, "TIFF", tiffinfo=tags, dpi=(300, 300))
        writer.newFrame()
        if thumbnail:  # a reduced-resolution copy as a second page, as cameras write it
            reduced = TiffImagePlugin.ImageFileDirectory_v2()
            reduced[254] = 1
            picture().resize((16, 12)).save(writer, "TIFF", tiffinfo=reduced)
            writer.newFrame()
    return out.getvalue()


def heic(*, orientation: int = 6) -> bytes:
    """A HEIC as a phone writes it: EXIF with GPS, maker notes and camera tags, XMP."""
    _open_heif()  # Pillow writes HEIF through pillow-heif
    exif = Image.Exif()
    exif[271] = f"Apple {MARKER}"
    exif[272] = "iPhone 15"
    exif[274] = orientation
    exif.get_ifd(0x8825).update(GPS)
    exif.get_ifd(0x8769).update({0x927C: f"MAKERNOTE {MARKER}".encode(), 0x9003: "2024:05:06 07:08:09"})
    out = io.BytesIO()
    picture().save(out, "HEIF", exif=exif.tobytes(), xmp=f"<x:xmpmeta>{MARKER}</x:xmpmeta>".encode(), quality=95)
    return out.getvalue()
