"""Burned-in text blanked by pixel masks (issue 14, item 2): rectangles, in pixels, that an
organization defines per device model (manufacturer + model name) where that device draws the
patient's name or other text into the image. PS3.15 calls removing it the Clean Pixel Data Option
(DCM 113101); an output cleaned here says so in its De-identification Method and Code Sequence.

`blank` works on a de-identified Part 10 file: every frame is decoded (compressed transfer
syntaxes through pydicom's decoders), each rectangle set to black (0, or the top value for
MONOCHROME1) and the pixels written uncompressed (Explicit VR Little Endian). `preview_png` draws
the rectangles on the first frame so a person checks them before anything is shared.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from casebridge.deid.table import CODES

Region = tuple[int, int, int, int]  # x, y, width, height (pixels, from the top-left corner)
MAX_REGIONS = 20
CLEAN_PIXEL = CODES["clean_pixel"]


class MaskError(ValueError):
    """Regions that cannot be used as written; the message says which line and why."""


def parse_regions(text: str) -> list[Region]:
    """One rectangle per line, `x, y, width, height` in pixels (blank lines ignored)."""
    regions: list[Region] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.replace(";", ",").split(",")]
        if len(parts) != 4 or not all(part.isdigit() for part in parts):
            raise MaskError(f"line {number}: write x, y, width, height as four whole numbers")
        x, y, width, height = (int(part) for part in parts)
        if width == 0 or height == 0:
            raise MaskError(f"line {number}: width and height must be at least 1 pixel")
        if max(x, y, width, height) > 65535:
            raise MaskError(f"line {number}: DICOM images are at most 65535 pixels across")
        regions.append((x, y, width, height))
    if not regions:
        raise MaskError("give at least one rectangle")
    if len(regions) > MAX_REGIONS:
        raise MaskError(f"at most {MAX_REGIONS} rectangles per device")
    return regions


def format_regions(regions: list[Any]) -> str:
    return "\n".join(", ".join(str(int(v)) for v in region) for region in regions)


def _blank_value(ds: Any, pixels: np.ndarray) -> int:
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        return int((1 << int(ds.get("BitsStored", 8))) - 1)
    return 0


def blank(data: bytes, regions: list[Region]) -> tuple[bytes, int]:
    """`data` (a Part 10 file) with every frame blanked in `regions`, and how many pixels per frame
    were blanked (0: the rectangles lie outside this image; nothing is changed then)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.multival import MultiValue
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(io.BytesIO(data))
    pixels = ds.pixel_array.copy()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    view = pixels if frames > 1 else pixels[np.newaxis, ...]
    rows, columns = view.shape[1], view.shape[2]
    mask = np.zeros((rows, columns), dtype=bool)
    for x, y, width, height in regions:
        mask[min(y, rows) : min(y + height, rows), min(x, columns) : min(x + width, columns)] = True
    count = int(mask.sum())
    if not count:
        return data, 0
    view[:, mask] = _blank_value(ds, pixels)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds["PixelData"].is_undefined_length = False
    if "PlanarConfiguration" in ds and int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0  # pixel_array is colour-by-pixel
    if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
        ds.PhotometricInterpretation = "RGB"  # pydicom decodes YBR colour to RGB
    ds.BurnedInAnnotation = "NO"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = CLEAN_PIXEL[0], "DCM", CLEAN_PIXEL[1]
    ds.DeidentificationMethodCodeSequence.append(code)
    value = ds.DeidentificationMethod
    methods = list(value) if isinstance(value, MultiValue) else [value]
    ds.DeidentificationMethod = [*methods, CLEAN_PIXEL[1]]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue(), count


def _to_8_bits(pixels: np.ndarray) -> np.ndarray:
    """Values spread over 0..255 between the image's lowest and highest (text is usually the
    brightest thing in the picture, so no percentile clipping)."""
    if pixels.dtype == np.uint8:
        return pixels
    low, high = float(pixels.min()), float(pixels.max())
    return np.interp(pixels, (low, max(high, low + 1)), (0, 255)).astype(np.uint8)


def preview_png(data: bytes, regions: list[Region]) -> bytes:
    """The first frame, as 8-bit grey or colour, with each rectangle outlined and filled in
    translucent red: what the mask will blank."""
    import pydicom
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixel_array(io.BytesIO(data), index=0 if frames > 1 else None)
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        image = Image.fromarray(_to_8_bits(pixels), "RGB")
    else:
        grey = _to_8_bits(pixels)
        if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
            grey = 255 - grey
        image = Image.fromarray(grey, "L").convert("RGB")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for x, y, width, height in regions:
        draw.rectangle((x, y, x + width - 1, y + height - 1), fill=(220, 30, 30, 110), outline=(255, 0, 0, 255))
    picture = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()
