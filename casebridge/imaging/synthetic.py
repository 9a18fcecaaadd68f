"""Synthetic but valid clinical files for demo data: binary STL meshes, DICOM Part 10 images and
photos. Each is built from a seed, so two files never look alike, and none holds real patient data."""

from __future__ import annotations

import io
import math
import random
import struct
import uuid
from typing import Any

from PIL import Image, ImageDraw

# --- STL ------------------------------------------------------------------------------------


def _vertex(rng_params: tuple[float, ...], theta: float, phi: float) -> tuple[float, float, float]:
    """A point on a tooth-like crown: an ellipsoid with cusps on top and a flattened base."""
    a, b, c, cusps, cusp_depth, twist = rng_params
    bulge = 1 + cusp_depth * math.cos(cusps * phi + twist) * max(0.0, math.cos(theta)) ** 2
    x = a * math.sin(theta) * math.cos(phi) * bulge
    y = b * math.sin(theta) * math.sin(phi) * bulge
    z = c * math.cos(theta)
    if z < -0.4 * c:  # the preparation margin: a flat base instead of the lower cap
        z = -0.4 * c
    return x, y, z


def stl_mesh(seed: str, rings: int = 14, segments: int = 28) -> bytes:
    """A closed binary STL of a crown-like shape (2 * rings * segments triangles, ~40 KB)."""
    rng = random.Random(seed)
    params = (
        rng.uniform(4.0, 6.0),  # mesio-distal half-width, mm
        rng.uniform(4.0, 5.5),  # bucco-lingual half-width
        rng.uniform(3.5, 5.0),  # half-height
        float(rng.choice((3, 4, 5))),  # cusps
        rng.uniform(0.04, 0.12),
        rng.uniform(0, math.pi),
    )
    grid = [
        [_vertex(params, math.pi * i / rings, 2 * math.pi * j / segments) for j in range(segments)]
        for i in range(rings + 1)
    ]
    facets = bytearray()
    count = 0
    for i in range(rings):
        for j in range(segments):
            p00, p01 = grid[i][j], grid[i][(j + 1) % segments]
            p10, p11 = grid[i + 1][j], grid[i + 1][(j + 1) % segments]
            for tri in ((p00, p10, p11), (p00, p11, p01)):
                facets += _facet(*tri)
                count += 1
    header = b"CaseBridge demo scan".ljust(80, b" ")
    return header + struct.pack("<I", count) + bytes(facets)


def _facet(p: tuple[float, ...], q: tuple[float, ...], r: tuple[float, ...]) -> bytes:
    u = (q[0] - p[0], q[1] - p[1], q[2] - p[2])
    v = (r[0] - p[0], r[1] - p[1], r[2] - p[2])
    n = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
    length = math.sqrt(sum(c * c for c in n)) or 1.0
    return struct.pack("<12fH", *(c / length for c in n), *p, *q, *r, 0)


# --- DICOM ----------------------------------------------------------------------------------
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_IMPLEMENTATION_UID = "2.25.229185470237457424185011365441540591271"
_LONG_VRS = {"OB", "OW", "OF", "SQ", "UT", "UN"}


def _uid(seed: str) -> str:
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, seed).int}"


def _element(group: int, element: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in {"UI", "OB"} else b" "
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def dicom_image(seed: str, *, size: int = 32, patient_name: str = "DEMO^PATIENT") -> bytes:
    """A DICOM Part 10 file (explicit VR little endian) holding one 16-bit CT-like slice."""
    rng = random.Random(seed)
    sop_instance = _uid(f"{seed}/instance")
    meta_body = b"".join(
        (
            _element(0x0002, 0x0001, "OB", b"\x00\x01"),
            _element(0x0002, 0x0002, "UI", CT_IMAGE_STORAGE.encode()),
            _element(0x0002, 0x0003, "UI", sop_instance.encode()),
            _element(0x0002, 0x0010, "UI", EXPLICIT_VR_LITTLE_ENDIAN.encode()),
            _element(0x0002, 0x0012, "UI", _IMPLEMENTATION_UID.encode()),
        )
    )
    meta = _element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    cx, cy, radius = rng.uniform(0.4, 0.6) * size, rng.uniform(0.4, 0.6) * size, rng.uniform(0.2, 0.35) * size
    pixels = bytearray()
    for y in range(size):
        for x in range(size):
            inside = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
            pixels += struct.pack("<H", (1800 if inside else 200) + rng.randrange(60))

    def us(value: int) -> bytes:
        return struct.pack("<H", value)

    dataset = b"".join(
        (
            _element(0x0008, 0x0016, "UI", CT_IMAGE_STORAGE.encode()),
            _element(0x0008, 0x0018, "UI", sop_instance.encode()),
            _element(0x0008, 0x0060, "CS", b"CT"),
            _element(0x0010, 0x0010, "PN", patient_name.encode()),
            _element(0x0010, 0x0020, "LO", b"DEMO"),
            _element(0x0020, 0x000D, "UI", _uid(f"{seed}/study").encode()),
            _element(0x0020, 0x000E, "UI", _uid(f"{seed}/series").encode()),
            _element(0x0028, 0x0002, "US", us(1)),
            _element(0x0028, 0x0004, "CS", b"MONOCHROME2"),
            _element(0x0028, 0x0010, "US", us(size)),
            _element(0x0028, 0x0011, "US", us(size)),
            _element(0x0028, 0x0100, "US", us(16)),
            _element(0x0028, 0x0101, "US", us(12)),
            _element(0x0028, 0x0102, "US", us(11)),
            _element(0x0028, 0x0103, "US", us(0)),
            _element(0x7FE0, 0x0010, "OW", bytes(pixels)),
        )
    )
    return b"\0" * 128 + b"DICM" + meta + dataset


# --- Photos ---------------------------------------------------------------------------------
def photo(seed: str, *, fmt: str = "JPEG", width: int = 320, height: int = 240) -> bytes:
    """An intraoral-style photo: pink gum, an ivory tooth and a shade tab; no EXIF at all."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(150, 190), 70, 80))
    draw = ImageDraw.Draw(image)
    for x in range(rng.randrange(2, 4)):
        left = 30 + x * 90 + rng.randrange(10)
        tone = rng.randrange(215, 245)
        draw.ellipse((left, 50, left + 70, 200), fill=(tone, tone - 8, tone - 35))
    tab = rng.randrange(190, 230)
    draw.rectangle((width - 60, 20, width - 30, 110), fill=(tab, tab - 10, tab - 40), outline=(40, 40, 40))
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def _image_dataset(seed: str, index: int, sop_class: str, modality: str, patient_name: str, model: str) -> Any:
    """Image `index` of the synthetic study and series `seed`: identity, patient, study and series
    (the caller adds the image's own attributes, then _part10 writes it)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(_uid(f"{seed}/instance/{index}"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(_IMPLEMENTATION_UID)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName, ds.PatientID = patient_name, "DEMO"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(f"{seed}/study"), _uid(f"{seed}/series")
    ds.StudyDate = "20261201"
    ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
    ds.Manufacturer, ds.ManufacturerModelName = "CaseBridge", model
    return ds


def _part10(ds: Any, pixel_data: bytes) -> bytes:
    ds.PixelData = pixel_data
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# --- A CBCT series --------------------------------------------------------------------------
CBCT_SPACING_MM = 0.3
# Two bright markers exactly this far apart in the axial plane of the middle slice: what a
# viewer's distance measurement must read.
CBCT_MARKER_DISTANCE_MM = 30.0


def cbct_series(seed: str, *, slices: int = 40, size: int = 128, patient_name: str = "DEMO^PATIENT") -> list[bytes]:
    """A CBCT volume as a CT series of Part 10 files (one per slice), 0.3 mm isotropic voxels: a
    horseshoe-shaped jaw of bone-like density, and two markers CBCT_MARKER_DISTANCE_MM apart."""
    import numpy as np
    from pydicom.uid import CTImageStorage

    rng = np.random.default_rng(uuid.uuid5(uuid.NAMESPACE_URL, seed).int % (1 << 32))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2, size * 0.6
    radius = np.hypot((x - cx) / (size * 0.35), (y - cy) / (size * 0.45))
    arch = (np.abs(radius - 1.0) < 0.12) & (y < cy)
    marker_gap_px = CBCT_MARKER_DISTANCE_MM / CBCT_SPACING_MM
    markers = [(cx - marker_gap_px / 2, size * 0.25), (cx + marker_gap_px / 2, size * 0.25)]
    files = []
    for index in range(slices):
        pixels = np.full((size, size), 24, dtype=np.int16) + rng.integers(0, 16, (size, size), dtype=np.int16)
        if abs(index - slices / 2) < slices * 0.35:
            pixels[arch] = 1400
        if index == slices // 2:
            for mx, my in markers:
                pixels[(np.hypot(x - mx, y - my) < 1.5)] = 3000
        ds = _image_dataset(seed, index, CTImageStorage, "CT", patient_name, "Synthetic CBCT")
        ds.ImagePositionPatient = [0.0, 0.0, index * CBCT_SPACING_MM]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [CBCT_SPACING_MM, CBCT_SPACING_MM]
        ds.SliceThickness = CBCT_SPACING_MM
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = size, size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1000, 1
        ds.WindowCenter, ds.WindowWidth = 400, 2000
        files.append(_part10(ds, pixels.tobytes()))
    return files


# --- An intraoral X-ray set -----------------------------------------------------------------
XRAY_SPACING_MM = 0.1
# Two bright markers exactly this far apart on the middle row of every image of the set.
XRAY_MARKER_DISTANCE_MM = 10.0
INTRAORAL_XRAY_STORAGE = "1.2.840.10008.5.1.4.1.1.1.3"  # Digital Intra-Oral X-Ray, for presentation


def xray_set(seed: str, *, images: int = 4, rows: int = 160, columns: int = 200, modality: str = "IO") -> list[bytes]:
    """A full-mouth set of intraoral X-rays as one series of single-frame Part 10 files (12-bit,
    MONOCHROME2, 0.1 mm pixels): a tooth-like bright shape, and two markers
    XRAY_MARKER_DISTANCE_MM apart on the middle row, centred."""
    import numpy as np

    rng = np.random.default_rng(uuid.uuid5(uuid.NAMESPACE_URL, seed).int % (1 << 32))
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    gap = XRAY_MARKER_DISTANCE_MM / XRAY_SPACING_MM
    files = []
    for index in range(images):
        pixels = (300 + rng.integers(0, 80, (rows, columns))).astype(np.uint16)
        crown = ((x - columns * (0.3 + 0.1 * index)) / (columns * 0.12)) ** 2 + ((y - rows * 0.4) / (rows * 0.3)) ** 2
        pixels[crown < 1] = 2600
        for mx in (columns / 2 - gap / 2, columns / 2 + gap / 2):
            pixels[np.hypot(x - mx, y - rows / 2) < 2.5] = 4000
        ds = _image_dataset(seed, index, INTRAORAL_XRAY_STORAGE, modality, "DEMO^PATIENT", "Synthetic sensor")
        ds.PixelSpacing = ds.ImagerPixelSpacing = [XRAY_SPACING_MM, XRAY_SPACING_MM]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        files.append(_part10(ds, pixels.tobytes()))
    return files
