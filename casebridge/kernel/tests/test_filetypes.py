"""Tests for content-based file type recognition, on tiny but real samples of every accepted type."""

from __future__ import annotations

import io
import random
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from casebridge.kernel import filetypes
from casebridge.kernel.filetypes import (
    ACCEPTED_TYPES_MESSAGE,
    SNIFF_BYTES,
    FileType,
    UnsupportedFileType,
    browser_refusals,
    detect,
)


def sniff(data: bytes) -> FileType:
    """What the upload pipeline does: hand over the first bytes and the declared length."""
    return detect(data[:SNIFF_BYTES], len(data))


def refused(data: bytes) -> UnsupportedFileType:
    with pytest.raises(UnsupportedFileType) as caught:
        sniff(data)
    return caught.value


# --- sample builders -------------------------------------------------------------------------


def binary_stl(triangles: int = 2, header: bytes = b"CaseBridge test mesh") -> bytes:
    out = io.BytesIO()
    out.write(header.ljust(80, b" "))
    out.write(struct.pack("<I", triangles))
    for i in range(triangles):
        normal = (0.0, 0.0, 1.0)
        vertices = ((0.0, 0.0, float(i)), (1.0, 0.0, float(i)), (0.0, 1.0, float(i)))
        out.write(struct.pack("<12fH", *normal, *vertices[0], *vertices[1], *vertices[2], 0))
    return out.getvalue()


def ascii_stl(facets: int = 2, name: str = "lower_jaw") -> bytes:
    lines = [f"solid {name}"]
    for i in range(facets):
        lines += [
            "  facet normal 0 0 1",
            "    outer loop",
            f"      vertex 0 0 {i}",
            f"      vertex 1 0 {i}",
            f"      vertex 0 1 {i}",
            "    endloop",
            "  endfacet",
        ]
    lines.append(f"endsolid {name}")
    return ("\n".join(lines) + "\n").encode()


def ply(fmt: str = "ascii", newline: str = "\n") -> bytes:
    header = [
        "ply",
        f"format {fmt} 1.0",
        "comment made by the CaseBridge tests",
        "element vertex 3",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        "element face 1",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    text = newline.join(header) + newline
    if fmt == "ascii":
        body = b"0 0 0 255 0 0\n1 0 0 0 255 0\n0 1 0 0 0 255\n3 0 1 2\n"
    else:
        body = b"".join(struct.pack("<3f3B", x, y, 0.0, 200, 200, 200) for x, y in ((0, 0), (1, 0), (0, 1)))
        body += struct.pack("<B3i", 3, 0, 1, 2)
    return text.encode() + body


def obj() -> bytes:
    return (
        b"# Exported by an intraoral scanner\n"
        b"# units: mm\n"
        b"\n"
        b"mtllib crown.mtl\n"
        b"o crown\n"
        b"v 0.0 0.0 0.0\n"
        b"v 1.0 0.0 0.0 0.8 0.7 0.6\n"
        b"v 0.0 1.0 -1.5e-3\n"
        b"vt 0.0 0.0\n"
        b"vn 0 0 1\n"
        b"g occlusal\n"
        b"usemtl enamel\n"
        b"s off\n"
        b"f 1/1/1 2/1/1 3/1/1\n"
    )


def dicom(preamble: bytes = b"") -> bytes:
    """A Part 10 file: preamble, "DICM", file meta information (explicit VR little endian)."""

    def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\x00"
        return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value

    meta = (
        element(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture
        + element(0x0002, 0x0003, b"UI", b"1.2.3.4.5.6.7.8.9")
        + element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1")  # explicit VR little endian
    )
    group_length = element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta)))
    dataset = element(0x0010, 0x0010, b"PN", b"Anonymous") + element(0x0008, 0x0060, b"CS", b"DX")
    return preamble.ljust(128, b"\x00") + b"DICM" + group_length + meta + dataset


def zip_archive(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def jpeg() -> bytes:
    """A valid 8x8 grey baseline JPEG, built from its markers (no imaging library in the venv).

    One-symbol Huffman tables (DC category 0, AC end-of-block) make the entropy-coded data two
    bits, "0" then "0", padded with ones: 0x3F.
    """

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    jfif = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    quant = segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"  # one code of length 1, for symbol 0
    huffman = segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)
    scan = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + jfif + quant + frame + huffman + scan + b"\x3f" + b"\xff\xd9"


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\xff\x00" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def tiff(big_endian: bool = False) -> bytes:
    """A 1x1 8-bit grey uncompressed baseline TIFF."""
    order = ">" if big_endian else "<"
    tags = [
        (256, 3, 1, 1),  # ImageWidth
        (257, 3, 1, 1),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8),  # StripOffsets: pixel right after the header
        (278, 3, 1, 1),  # RowsPerStrip
        (279, 4, 1, 1),  # StripByteCounts
    ]
    magic = b"MM\x00*" if big_endian else b"II*\x00"
    out = magic + struct.pack(order + "I", 10) + b"\x80\x00"  # IFD at 10; pixel + pad
    out += struct.pack(order + "H", len(tags))
    for tag, kind, count, value in tags:
        packed = struct.pack(order + "H", value) + b"\x00\x00" if kind == 3 else struct.pack(order + "I", value)
        out += struct.pack(order + "HHI", tag, kind, count) + packed
    return out + struct.pack(order + "I", 0)


def iso_media(major: bytes, compatible: list[bytes]) -> bytes:
    ftyp = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    meta = b"meta" + b"\x00" * 4 + struct.pack(">I", 33) + b"hdlr" + b"\x00" * 8 + b"pict" + b"\x00" * 13
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(meta) + 4) + meta


def pdf(junk_before: bytes = b"") -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(junk_before + b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out) - len(junk_before))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out) - len(junk_before)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- accepted types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        pytest.param(binary_stl(), "stl", id="binary-stl"),
        pytest.param(binary_stl(header=b"solid exported by a lab CAD"), "stl", id="binary-stl-solid-header"),
        pytest.param(binary_stl(triangles=500), "stl", id="binary-stl-longer-than-sniff"),
        pytest.param(ascii_stl(), "stl", id="ascii-stl"),
        pytest.param(b"  \r\n" + ascii_stl(), "stl", id="ascii-stl-leading-whitespace"),
        pytest.param(ascii_stl(facets=300), "stl", id="ascii-stl-longer-than-sniff"),
        pytest.param(b"solid empty\nendsolid empty\n", "stl", id="ascii-stl-tiny-without-facets"),
        pytest.param(ply("ascii"), "ply", id="ply-ascii"),
        pytest.param(ply("binary_little_endian"), "ply", id="ply-binary-le"),
        pytest.param(ply("binary_big_endian", newline="\r\n"), "ply", id="ply-binary-be-crlf"),
        pytest.param(b"ply\ncomment scanner v2\nformat ascii 1.0\nend_header\n", "ply", id="ply-comment-first"),
        pytest.param(obj(), "obj", id="obj"),
        pytest.param(obj() * 200, "obj", id="obj-longer-than-sniff"),
        pytest.param(dicom(), "dicom", id="dicom"),
        pytest.param(dicom(preamble=tiff()[:8]), "dicom", id="dicom-tiff-dual-personality"),
        pytest.param(zip_archive({"slice-0001.dcm": dicom(), "notes.pdf": pdf()}), "zip", id="zip"),
        pytest.param(zip_archive({}), "zip", id="zip-empty"),
        pytest.param(jpeg(), "jpeg", id="jpeg"),
        pytest.param(png(), "png", id="png"),
        pytest.param(iso_media(b"heic", [b"mif1", b"heic"]), "heic", id="heic"),
        pytest.param(iso_media(b"mif1", [b"mif1", b"heic"]), "heic", id="heif-mif1"),
        pytest.param(iso_media(b"msf1", [b"msf1", b"hevc"]), "heic", id="heif-sequence"),
        pytest.param(tiff(), "tiff", id="tiff-little-endian"),
        pytest.param(tiff(big_endian=True), "tiff", id="tiff-big-endian"),
        pytest.param(pdf(), "pdf", id="pdf"),
        pytest.param(pdf(junk_before=b"\r\n" + b"x" * 500 + b"\n"), "pdf", id="pdf-junk-before-header"),
    ],
)
def test_it_recognises_accepted_types_by_content(sample: bytes, expected: str) -> None:
    assert sniff(sample).name == expected


def test_it_ignores_names_because_it_never_sees_them() -> None:
    # The API takes no name at all: a PHI-laden or misleading name cannot sway the answer.
    assert sniff(png()) is filetypes.PNG


def test_every_type_describes_itself() -> None:
    names = [t.name for t in filetypes.ACCEPTED_TYPES]
    assert names == ["stl", "ply", "obj", "dicom", "zip", "jpeg", "png", "heic", "tiff", "pdf"]
    for file_type in filetypes.ACCEPTED_TYPES:
        assert "/" in file_type.mime_type
        assert file_type.extension.isalnum()
        assert file_type.label
        assert filetypes.FILE_TYPES_BY_NAME[file_type.name] is file_type


def test_file_types_are_immutable() -> None:
    with pytest.raises(AttributeError):
        filetypes.STL.name = "exe"


def test_it_accepts_a_prefix_shorter_than_sniff_bytes_for_a_short_file() -> None:
    sample = png()
    assert len(sample) < SNIFF_BYTES
    assert detect(sample, len(sample)) is filetypes.PNG


def test_it_ignores_bytes_beyond_sniff_bytes() -> None:
    # Binary bytes after the sniffed prefix would make the text checks refuse, if they were read.
    sample = obj() * 50 + b"\x00\x01\x02" * 100
    assert len(obj() * 50) > SNIFF_BYTES
    assert detect(sample, len(sample)) is filetypes.OBJ
    assert detect(sample[:SNIFF_BYTES], len(sample)) is filetypes.OBJ


def test_it_rejects_a_prefix_too_short_to_decide() -> None:
    sample = binary_stl(triangles=500)
    with pytest.raises(ValueError, match="needs the first 4096 bytes"):
        detect(sample[:100], len(sample))


def test_it_rejects_a_prefix_longer_than_the_file() -> None:
    with pytest.raises(ValueError, match="cannot belong"):
        detect(b"%PDF-1.7\n", 5)


# --- refused content -------------------------------------------------------------------------


def test_it_refuses_with_a_message_saying_what_the_file_is_and_naming_the_accepted_types() -> None:
    error = refused(b"<!doctype html><html><body>hi</body></html>")
    assert str(error) == f"Not uploaded: it is a web page. {ACCEPTED_TYPES_MESSAGE}"
    assert ACCEPTED_TYPES_MESSAGE == (
        "CaseBridge accepts STL, PLY and OBJ scans, DICOM images, ZIP archives, "
        "JPEG, PNG, HEIC and TIFF photos, and PDF documents."
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "it is a Microsoft Office document"),
        (b"{\\rtf1\\ansi Hello}", "it is an RTF document"),
        (b"GIF89a" + bytes(100), "it is a GIF image"),
        (b"MZ" + bytes(300), "it is a program"),
        (b"Dear doctor, please find attached.\n", "it is a text document, not an STL or OBJ scan"),
        (bytes(range(256)) * 4, "its type is not one CaseBridge knows"),
    ],
)
def test_a_refusal_says_what_the_file_looked_like_without_echoing_it(content: bytes, why: str) -> None:
    error = refused(content)
    assert str(error).startswith(f"Not uploaded: {why}. ")
    assert "Dear" not in str(error) and "Hello" not in str(error)


def test_every_browser_refusal_is_refused_by_the_server_with_the_same_words() -> None:
    for rule in browser_refusals():
        content = bytes.fromhex(str(rule["hex"])) + b" padding to look like more than a signature"
        assert str(refused(content)).startswith(f"Not uploaded: {rule['why']}. ")


def test_it_refuses_a_real_elf_executable() -> None:
    executable = Path(shutil.which("true") or "/bin/true").read_bytes()
    assert executable.startswith(b"\x7fELF")
    assert refused(executable).reason == "executable"


def test_it_refuses_a_windows_executable() -> None:
    dos_header = b"MZ" + b"\x90\x00" * 29 + struct.pack("<I", 64)
    pe = dos_header + b"PE\x00\x00" + b"\x00" * 400
    assert refused(pe).reason == "executable"


def test_it_refuses_a_dicom_whose_preamble_is_a_windows_executable() -> None:
    # PE/DICOM polyglots (CVE-2019-11687) run when renamed to .exe.
    assert refused(dicom(preamble=b"MZ\x90\x00")).reason == "executable"


def test_it_refuses_a_script_even_if_its_body_reads_as_obj() -> None:
    assert refused(b"#!/bin/sh\nv 1 2 3\nf 1 1 1\n").reason == "executable"


def test_it_refuses_html() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Scan</title></head><body><p>solid</p></body></html>\n"
    refused(page)


def test_it_refuses_random_bytes() -> None:
    noise = random.Random(20240611).randbytes(10_000)
    refused(noise)


def test_it_refuses_a_binary_stl_whose_length_does_not_match_its_count() -> None:
    sample = binary_stl(triangles=3)
    refused(sample[:-1])  # truncated upload
    refused(sample + b"\x00")  # trailing bytes
    refused(sample[:-50])  # a whole triangle missing


def test_it_refuses_a_binary_stl_with_a_solid_header_and_a_wrong_length() -> None:
    # The header reads like ASCII STL, but the binary body gives it away.
    sample = binary_stl(triangles=3, header=b"solid part")
    refused(sample[:-7])


def test_it_refuses_a_binary_stl_without_triangles() -> None:
    refused(binary_stl(triangles=0))


def test_it_refuses_an_empty_file() -> None:
    assert refused(b"").reason == "empty file"


def test_it_refuses_text_that_is_not_obj() -> None:
    letter = b"Dear colleague,\nplease find the scans for tooth 36 attached.\nRegards\n"
    assert refused(letter).reason == "text that is neither ASCII STL nor OBJ"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"o hello\ng world\n", id="names-without-vertices"),
        pytest.param(b"v is for vendetta\n", id="v-without-numbers"),
        pytest.param(b"v 1 2 3\nthen some prose\n", id="obj-then-prose"),
        pytest.param(b"patient,tooth\nDoe,36\n", id="csv"),
        pytest.param(b"# only comments here\n# nothing else\n", id="only-comments"),
        pytest.param(b"solid but no facets and no end\nhello\n", id="solid-without-facet-or-end"),
        pytest.param(b"ply\nformat json 1.0\nend_header\n", id="ply-with-unknown-format"),
    ],
)
def test_it_refuses_text_that_only_resembles_a_scan(text: bytes) -> None:
    refused(text)


def test_it_refuses_iso_media_that_is_not_heic() -> None:
    refused(iso_media(b"isom", [b"isom", b"mp42"]))  # an MP4 video
    refused(iso_media(b"avif", [b"mif1", b"avif"]))
    refused(iso_media(b"mif1", [b"mif1", b"avif"]))  # AVIF behind a generic brand


def test_it_refuses_a_zip_end_record_too_short_to_be_an_archive() -> None:
    refused(b"PK\x05\x06\x00\x00")
