"""TIFF and HEIC cleaned for de-identified exports (issue 14, item 3): real files with GPS, maker
notes, camera tags, XMP, IPTC and an embedded thumbnail, made here, cleaned, and read back to
prove that none of it is left, that the pixels are the same (turned upright) and that damaged
files are refused, not passed through."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from casebridge.deid.photo import ImageRefused, clean_image
from casebridge.deid.tests import photos


def _read_back(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_tiff_loses_exif_gps_maker_notes_xmp_iptc_and_its_thumbnail() -> None:
    original = photos.tiff(orientation=6)
    assert original.count(photos.MARKER.encode()) >= 5  # the markers are really in the file

    cleaned = clean_image("tiff", original)

    assert photos.MARKER.encode() not in cleaned.data and b"Canon" not in cleaned.data
    image = _read_back(cleaned.data)
    assert image.format == "TIFF" and getattr(image, "n_frames", 1) == 1  # the thumbnail page is gone
    assert not {271, 272, 274, 305, 315, 700, 33723, 34377, 34665, 34853} & set(image.tag_v2)
    exif = image.getexif()
    assert not exif.get_ifd(0x8825) and not exif.get_ifd(0x8769)
    assert image.info["dpi"] == (300, 300)  # a scan is still measured by its resolution
    assert cleaned.removed == {"EXIF": 1, "GPS": 1, "IPTC": 1, "XMP": 1, "embedded thumbnails": 1, "maker notes": 1}
    assert {"GPS location", "camera maker notes", "camera make and model", "author", "embedded thumbnail"} <= set(
        cleaned.found
    )
    # orientation 6 (turn 90° clockwise to view) is applied to the pixels: 64x48 becomes 48x64 and
    # the marked top-right pixel ends at the bottom right; every other pixel value is kept (lossless)
    assert cleaned.orientation_applied == 6 and image.size == (48, 64)
    assert image.getpixel((47, 63)) == (1, 2, 3)
    upright = photos.picture().transpose(Image.Transpose.ROTATE_270)
    assert image.tobytes() == upright.tobytes()


def test_a_16_bit_multi_page_scan_keeps_every_page_and_value() -> None:
    pages = [Image.new("I;16", (20, 10), value) for value in (1000, 40000)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], tiffinfo={305: "Scanner X", 270: "patient"})

    cleaned = clean_image("tiff", out.getvalue())

    image = _read_back(cleaned.data)
    assert image.n_frames == 2 and image.mode == "I;16" and image.getpixel((0, 0)) == 1000
    image.seek(1)
    assert image.getpixel((19, 9)) == 40000
    assert b"Scanner X" not in cleaned.data and b"patient" not in cleaned.data
    assert {"software", "image description"} <= set(cleaned.found)


def test_a_heic_becomes_a_png_without_any_metadata() -> None:
    original = photos.heic(orientation=6)
    assert photos.MARKER.encode() in original

    cleaned = clean_image("heic", original)

    assert cleaned.file_type == "png" and photos.MARKER.encode() not in cleaned.data
    image = _read_back(cleaned.data)
    assert image.format == "PNG" and not image.getexif() and "xmp" not in image.info
    assert cleaned.removed == {"EXIF": 1, "GPS": 1, "XMP": 1, "maker notes": 1}
    assert {"GPS location", "camera maker notes", "camera make and model", "dates and times"} <= set(cleaned.found)
    # libheif turns the picture as the file says; the PNG is upright and needs no orientation
    assert cleaned.orientation_applied == 6 and image.size == (48, 64)


def test_a_clean_tiff_reports_nothing_found() -> None:
    out = io.BytesIO()
    Image.new("L", (8, 8), 7).save(out, "TIFF")
    cleaned = clean_image("tiff", out.getvalue())
    assert cleaned.removed == {} and cleaned.found == [] and cleaned.orientation_applied is None


@pytest.mark.parametrize("file_type", ["tiff", "heic"])
def test_damaged_files_are_refused_never_passed_through(file_type: str) -> None:
    whole = photos.tiff() if file_type == "tiff" else photos.heic()
    with pytest.raises(ImageRefused, match=r"cannot be decoded|not a"):
        clean_image(file_type, whole[: len(whole) // 3])
    with pytest.raises(ImageRefused, match="not a"):
        clean_image(file_type, photos.heic() if file_type == "tiff" else photos.tiff())
