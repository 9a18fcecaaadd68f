"""Tests for metadata removal at ingest, on real photos and scans built in the test."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image, PngImagePlugin

from casebridge.imaging.sanitize import MAX_PLY_HEADER, NOT_HANDLED_HERE, SanitizeError, SanitizeResult, sanitize

PHI = b"Jane Roe"


def pieces(data: bytes, size: int | None) -> Iterator[bytes]:
    if size is None:
        yield data
        return
    for at in range(0, len(data), size):
        yield data[at : at + size]


def run(name: str, data: bytes, chunk_size: int | None = None) -> tuple[bytes, SanitizeResult]:
    cleaned, result = sanitize(name, pieces(data, chunk_size), len(data))
    out = b"".join(cleaned)
    assert result.complete
    assert (result.bytes_in, result.bytes_out) == (len(data), len(out))
    return out, result


def random_chunks(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    at = 0
    while at < len(data):
        size = rng.choice([1, 2, 3, 7, 64, 1000])
        yield data[at : at + size]
        at += size


def assert_same_whatever_the_chunking(name: str, data: bytes, expected: bytes) -> None:
    assert run(name, data, 1)[0] == expected
    for seed in range(5):
        cleaned, _ = sanitize(name, random_chunks(data, seed), len(data))
        assert b"".join(cleaned) == expected


def assert_no_values_in_audit(result: SanitizeResult) -> None:
    text = repr(result.audit_details()).encode()
    for value in (PHI, b"SecretCam", b"SC-1000", b"SN-4815162342", b"2024:05:06"):
        assert value not in text


# --- JPEG -------------------------------------------------------------------------------------


def photo(mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Image.Image:
    rng = random.Random(1)
    channels = len(mode)
    return Image.frombytes(mode, size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * channels)))


def identifying_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0110] = "SC-1000"  # Model
    exif[0x013B] = "Jane Roe"  # Artist
    if orientation:
        exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    sub[0xA431] = "SN-4815162342"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 0.0)
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Jane Roe"/></rdf:RDF></x:xmpmeta>'
)
IPTC_APP13 = b"\xff\xed" + struct.pack(">H", 2 + 14 + 24) + b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + PHI * 2
MAKER_TRAILER = b"SEFH" + PHI + b"SEFT"


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(marker, offset) of every segment before the first scan, walked independently of the code under test."""
    found = []
    at = 2
    while True:
        marker = data[at + 1]
        found.append((marker, at))
        if marker == 0xDA:
            return found
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]


def segment(data: bytes, at: int) -> bytes:
    return data[at : at + 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]]


def identifying_jpeg(orientation: int = 6, **save: object) -> bytes:
    out = io.BytesIO()
    photo().save(out, "JPEG", quality=90, exif=identifying_exif(orientation), xmp=XMP, comment=PHI, **save)
    data = out.getvalue()
    app0_end = 2 + 2 + struct.unpack(">H", data[4:6])[0]
    return data[:app0_end] + IPTC_APP13 + data[app0_end:] + MAKER_TRAILER


def image_data(data: bytes) -> bytes:
    """Everything from the first table segment to EOI: what must survive byte for byte."""
    first_table = next(at for marker, at in jpeg_segments(data) if not 0xE0 <= marker <= 0xEF and marker != 0xFE)
    return data[first_table : data.rindex(b"\xff\xd9") + 2]


@pytest.mark.parametrize(
    "save",
    [{}, {"progressive": True}, {"restart_marker_blocks": 1}],
    ids=["baseline", "progressive", "restart-markers"],
)
def test_it_removes_identifying_jpeg_metadata_and_keeps_orientation_and_pixels(save: dict[str, object]) -> None:
    original = identifying_jpeg(**save)
    assert PHI in original and b"SN-4815162342" in original

    cleaned, result = run("jpeg", original)

    for value in (PHI, b"SecretCam", b"SC-1000", b"SN-4815162342", b"2024:05:06", b"ns.adobe.com", b"SEFT"):
        assert value not in cleaned
    with Image.open(io.BytesIO(cleaned)) as clean, Image.open(io.BytesIO(original)) as before:
        assert dict(clean.getexif()) == {0x0112: 6}
        assert clean.getexif().get_ifd(0x8825) == {}
        assert "xmp" not in clean.info and "comment" not in clean.info
        assert "jfif" in clean.info
        assert clean.tobytes() == before.tobytes()
    assert cleaned.endswith(image_data(original))
    assert result.sanitized and result.orientation == 6
    for removed in ("APP1 EXIF", "APP1 XMP", "APP13 Photoshop/IPTC", "COM comment"):
        assert result.removed[removed] == 1
    for field_name in ("Make", "Model", "Artist", "BodySerialNumber", "DateTimeOriginal", "GPSLatitude"):
        assert result.removed[f"EXIF field {field_name}"] == 1
    assert result.removed["data after end of image (bytes)"] == len(MAKER_TRAILER)
    assert_no_values_in_audit(result)
    assert_same_whatever_the_chunking("jpeg", original, cleaned)


def test_it_writes_no_exif_when_the_orientation_is_upright() -> None:
    for orientation in (0, 1):
        cleaned, result = run("jpeg", identifying_jpeg(orientation))
        assert b"Exif" not in cleaned
        assert result.orientation is None
        with Image.open(io.BytesIO(cleaned)) as clean:
            assert dict(clean.getexif()) == {}


def test_it_keeps_icc_profile_jfif_and_adobe_segments_byte_for_byte() -> None:
    profile = b"\x00\x00\x01\x00fake ICC profile bytes"
    out = io.BytesIO()
    photo("CMYK").save(out, "JPEG", icc_profile=profile, exif=identifying_exif())
    original = out.getvalue()

    cleaned, _ = run("jpeg", original)

    kept = [segment(original, at) for marker, at in jpeg_segments(original) if marker in (0xE2, 0xEE)]
    assert len(kept) == 2
    for kept_segment in kept:
        assert kept_segment in cleaned
    with Image.open(io.BytesIO(cleaned)) as clean, Image.open(io.BytesIO(original)) as before:
        assert clean.info["icc_profile"] == profile
        assert clean.mode == "CMYK"
        assert clean.tobytes() == before.tobytes()


def test_it_removes_unreadable_exif_without_inventing_an_orientation() -> None:
    original = identifying_jpeg()
    exif_at = next(at for marker, at in jpeg_segments(original) if marker == 0xE1)
    broken = b"\xff\xe1\x00\x0cExif\x00\x00II*\x00"
    original = original[:exif_at] + broken + original[exif_at + len(segment(original, exif_at)) :]

    cleaned, result = run("jpeg", original)

    assert b"Exif" not in cleaned
    assert result.orientation is None
    assert result.removed["EXIF unreadable (orientation not kept)"] == 1


def test_it_refuses_a_truncated_jpeg_segment() -> None:
    original = identifying_jpeg()
    exif_at = next(at for marker, at in jpeg_segments(original) if marker == 0xE1)
    with pytest.raises(SanitizeError, match="truncated JPEG segment"):
        run("jpeg", original[: exif_at + 40])


def test_it_refuses_a_jpeg_cut_inside_its_scan_data() -> None:
    original = identifying_jpeg()
    with pytest.raises(SanitizeError, match="no end-of-image"):
        run("jpeg", original[: len(original) - len(MAKER_TRAILER) - 100])


def test_it_refuses_garbage_where_a_jpeg_marker_should_be() -> None:
    original = identifying_jpeg()
    with pytest.raises(SanitizeError, match="marker"):
        run("jpeg", original[:2] + PHI + original[2:])


# --- PNG --------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    found = []
    at = 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + body)
        found.append((kind, body))
        at += 12 + length
    return found


def identifying_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Roe")
    info.add_text("Comment", "Jane Roe, 1970-01-01", zip=True)
    info.add_itxt("Description", "Jane Roe", lang="en")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 6, 7, 8, 9))
    out = io.BytesIO()
    photo().save(out, "PNG", pnginfo=info, exif=identifying_exif(), dpi=(300, 300))
    return out.getvalue() + PHI  # after IEND


def test_it_removes_png_text_time_and_exif_and_keeps_orientation_and_pixels() -> None:
    original = identifying_png()
    kinds_before = {kind for kind, _ in png_chunks(original[: -len(PHI)])}
    assert {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf", b"pHYs"} <= kinds_before

    cleaned, result = run("png", original)

    chunks = png_chunks(cleaned)
    kinds = [kind for kind, _ in chunks]
    assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(kinds)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"pHYs" in kinds
    assert PHI not in cleaned and b"SecretCam" not in cleaned
    assert [body for kind, body in chunks if kind == b"IDAT"] == [
        body for kind, body in png_chunks(original[: -len(PHI)]) if kind == b"IDAT"
    ]
    with Image.open(io.BytesIO(cleaned)) as clean, Image.open(io.BytesIO(original)) as before:
        assert dict(clean.getexif()) == {0x0112: 6}
        assert clean.tobytes() == before.tobytes()
    assert result.sanitized and result.orientation == 6
    assert result.removed["PNG chunk tEXt"] == 1 and result.removed["PNG chunk eXIf"] == 1
    assert result.removed["data after end of image (bytes)"] == len(PHI)
    assert_no_values_in_audit(result)
    assert_same_whatever_the_chunking("png", original, cleaned)


def test_it_refuses_a_truncated_png() -> None:
    original = identifying_png()
    with pytest.raises(SanitizeError, match="truncated PNG"):
        run("png", original[:100])


# --- STL --------------------------------------------------------------------------------------


def binary_stl(header: bytes, triangles: int = 3) -> bytes:
    facets = b"".join(
        struct.pack("<12fH", 0.0, 0.0, 1.0, *(float(i + j) for j in range(9)), 0x7C1F + i) for i in range(triangles)
    )
    return header.ljust(80, b"\x00") + struct.pack("<I", triangles) + facets


def test_it_replaces_a_binary_stl_header_and_keeps_facets_and_attributes() -> None:
    original = binary_stl(b"solid JANE ROE 1970-01-01 upper jaw")

    cleaned, result = run("stl", original)

    assert cleaned[:80] == b"CaseBridge".ljust(80, b" ")
    assert not cleaned.startswith(b"solid")
    assert cleaned[80:] == original[80:]
    assert len(cleaned) == len(original)
    assert result.sanitized and result.removed == {"STL header": 1}
    assert_same_whatever_the_chunking("stl", original, cleaned)


def test_it_keeps_materialise_colour_fields_in_a_binary_stl_header() -> None:
    original = binary_stl(b"Jane Roe COLOR=\x10\x20\x30\xff MATERIAL=" + bytes(range(12)))

    cleaned, _ = run("stl", original)

    assert cleaned[:80] == (b"CaseBridge COLOR=\x10\x20\x30\xff MATERIAL=" + bytes(range(12))).ljust(80, b" ")
    assert PHI not in cleaned


def test_it_removes_solid_names_from_an_ascii_stl() -> None:
    facet = b"  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n      vertex 1 0 0\n      vertex 0 1 0\n"
    facet += b"    endloop\n  endfacet\n"
    original = b"solid JANE_ROE_1970\n" + facet + b"endsolid JANE_ROE_1970\nsolid\tsecond part\r\n" + facet
    original += b"endsolid second part\r\n"

    cleaned, result = run("stl", original)

    assert cleaned == b"solid\n" + facet + b"endsolid\nsolid\r\n" + facet + b"endsolid\r\n"
    assert result.removed == {"STL solid name": 4}
    assert_same_whatever_the_chunking("stl", original, cleaned)


def test_it_refuses_an_stl_that_is_neither_binary_nor_ascii() -> None:
    with pytest.raises(SanitizeError, match="neither binary"):
        run("stl", binary_stl(b"Jane Roe")[:-1])


# --- PLY --------------------------------------------------------------------------------------


def ply(body: bytes, format_line: bytes = b"format binary_little_endian 1.0") -> bytes:
    header = b"\n".join(
        [
            b"ply",
            format_line,
            b"comment Scanned for Jane Roe, DOB 1970-01-01",
            b"obj_info scanner serial SN-4815162342",
            b"comment TextureFile texture_0.png",
            b"element vertex 2",
            b"comment\tJane Roe\ragain",
            b"property uchar a",
            b"property uchar b",
            b"end_header",
        ]
    )
    return header + b"\n" + body


def test_it_removes_ply_comments_and_keeps_a_binary_body_byte_for_byte() -> None:
    body = b"\nend_header\ncomment Jane Roe\n" + bytes(range(256))
    original = ply(body)

    cleaned, result = run("ply", original)

    header, _, rest = cleaned.partition(b"end_header\n")
    assert rest == body
    assert header == (
        b"ply\nformat binary_little_endian 1.0\ncomment TextureFile texture_0.png\n"
        b"element vertex 2\nproperty uchar a\nproperty uchar b\n"
    )
    assert result.removed == {"PLY comment line": 2, "PLY obj_info line": 1}
    assert_no_values_in_audit(result)
    assert_same_whatever_the_chunking("ply", original, cleaned)


def test_it_handles_a_crlf_ply_header_and_an_ascii_body() -> None:
    original = b"ply\r\nformat ascii 1.0\r\ncomment Jane Roe\r\nelement vertex 0\r\nend_header\r\n"

    cleaned, _ = run("ply", original)

    assert cleaned == b"ply\r\nformat ascii 1.0\r\nelement vertex 0\r\nend_header\r\n"


def test_it_refuses_a_ply_without_end_header_within_the_limit() -> None:
    endless = b"ply\nformat ascii 1.0\n" + b"comment Jane Roe\n" * (MAX_PLY_HEADER // 16) + b"end_header\n"
    with pytest.raises(SanitizeError, match="no end within 64 KiB"):
        run("ply", endless, 4096)
    with pytest.raises(SanitizeError, match="PLY header has no end"):
        run("ply", b"ply\nformat ascii 1.0\ncomment Jane Roe\n")


# --- OBJ --------------------------------------------------------------------------------------


def test_it_removes_whole_line_obj_comments_only() -> None:
    original = (
        b"# Exported for Jane Roe\n"
        b"mtllib case#1.mtl\n"
        b"   # indented comment\r\n"
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"
        b"#\n"
        b"f 1 2 3 # trailing note\n"
        b"# last line without newline"
    )

    cleaned, result = run("obj", original)

    assert cleaned == b"mtllib case#1.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3 # trailing note\n"
    assert result.removed == {"OBJ comment line": 4}
    assert_same_whatever_the_chunking("obj", original, cleaned)


def test_it_refuses_an_obj_line_beyond_the_line_limit() -> None:
    with pytest.raises(SanitizeError, match="text line longer"):
        run("obj", b"v 0 0 0\n# " + b"x" * 70_000 + b"\n", 4096)


# --- dispatcher -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dicom", "zip", "pdf"])
def test_it_passes_other_types_through_unchanged_and_says_so(name: str) -> None:
    original = b"%PDF-1.7\n" + PHI + bytes(range(256)) * 10

    cleaned, result = run(name, original, 100)

    assert cleaned == original
    assert not result.sanitized and result.reason == NOT_HANDLED_HERE


@pytest.mark.parametrize("name", ["tiff", "heic"])
def test_it_does_not_claim_to_clean_tiff_or_heic(name: str) -> None:
    cleaned, result = run(name, b"II*\x00" + PHI)

    assert cleaned == b"II*\x00" + PHI
    assert not result.sanitized and "not supported" in result.reason


def test_it_refuses_content_whose_length_differs_from_the_declared_one() -> None:
    original = binary_stl(b"Jane Roe")
    with pytest.raises(SanitizeError, match="shorter"):
        b"".join(sanitize("obj", [b"v 0 0 0\n"], 100)[0])
    with pytest.raises(SanitizeError, match="longer"):
        b"".join(sanitize("stl", [original, b"x"], len(original))[0])


def test_it_rejects_an_unknown_type_name() -> None:
    with pytest.raises(ValueError, match="unknown file type"):
        sanitize("exe", [b"MZ"], 2)


def test_the_result_is_final_only_once_the_stream_is_read() -> None:
    cleaned, result = sanitize("obj", [b"# Jane Roe\nv 0 0 0\n"], 19)
    assert not result.complete and not result.sanitized
    assert b"".join(cleaned) == b"v 0 0 0\n"
    assert result.complete and result.sanitized
