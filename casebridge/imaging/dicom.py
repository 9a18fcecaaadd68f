"""What CaseBridge indexes of a DICOM instance: enough for a viewer to lay out studies and
series and for a search to find them, and nothing more of the patient than the case already
holds (names, birth dates and record numbers stay inside the encrypted file)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from typing import IO, Any

import pydicom
from pydicom.errors import InvalidDicomError

# DICOM modalities a dental CBCT, a panoramic, an intraoral or a photo arrives as.
MODALITY_LABELS = {
    "CT": "CT / CBCT",
    "PX": "Panoramic X-ray",
    "DX": "Digital X-ray",
    "IO": "Intraoral X-ray",
    "CR": "Computed radiography",
    "XC": "External camera photo",
    "OT": "Other",
}


class DicomError(ValueError):
    """This file is not a DICOM instance CaseBridge can index; the message says why."""


@dataclass(frozen=True)
class InstanceHeader:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax: str
    study_date: date | None
    series_number: int | None
    instance_number: int | None
    rows: int
    columns: int
    frames: int
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    position_z: float | None  # ImagePositionPatient's z: orders a volume's slices
    manufacturer: str
    model: str


def _text(dataset: Any, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _int(dataset: Any, keyword: str) -> int | None:
    value = dataset.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _pair(value: Any) -> tuple[float, float] | None:
    if not value or len(value) != 2:
        return None
    row, column = _float(value[0]), _float(value[1])
    return (row, column) if row is not None and column is not None else None


def _date(dataset: Any, keyword: str) -> date | None:
    value = _text(dataset, keyword)
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])) if len(value) >= 8 else None
    except ValueError:
        return None


def read_header(stream: IO[bytes]) -> InstanceHeader:
    """Index one Part 10 instance from `stream`, reading its header only (never the pixels)."""
    return header_of(parse_header(stream))


def parse_header(stream: IO[bytes]) -> Any:
    """The dataset of one Part 10 instance without its pixels; DicomError when it is none."""
    try:
        with warnings.catch_warnings():
            # pydicom's warnings name the file (see LOGGING in settings): the error below is ours.
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(stream, stop_before_pixels=True)
    except InvalidDicomError:
        raise DicomError("not a DICOM Part 10 file (no 'DICM' marker)") from None
    except Exception as exc:  # pydicom raises many kinds on damaged input; the file is refused alike
        raise DicomError(f"the DICOM header cannot be read ({type(exc).__name__})") from None
    return dataset


def header_of(dataset: Any) -> InstanceHeader:
    """What the index keeps of a dataset read by parse_header."""
    meta = dataset.file_meta
    uids = {
        "study": _text(dataset, "StudyInstanceUID"),
        "series": _text(dataset, "SeriesInstanceUID"),
        "instance": _text(dataset, "SOPInstanceUID") or _text(meta, "MediaStorageSOPInstanceUID"),
    }
    missing = [name for name, uid in uids.items() if not uid]
    if missing:
        raise DicomError(f"the file has no {', '.join(missing)} instance UID")
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    position = dataset.get("ImagePositionPatient")
    return InstanceHeader(
        study_uid=uids["study"],
        series_uid=uids["series"],
        sop_instance_uid=uids["instance"],
        sop_class_uid=_text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID"),
        modality=_text(dataset, "Modality").upper()[:16] or "OT",
        transfer_syntax=_text(meta, "TransferSyntaxUID"),
        study_date=_date(dataset, "StudyDate"),
        series_number=_int(dataset, "SeriesNumber"),
        instance_number=_int(dataset, "InstanceNumber"),
        rows=_int(dataset, "Rows") or 0,
        columns=_int(dataset, "Columns") or 0,
        frames=_int(dataset, "NumberOfFrames") or 1,
        pixel_spacing=_pair(spacing),
        slice_thickness=_float(dataset.get("SliceThickness")),
        position_z=_float(position[2]) if position and len(position) == 3 else None,
        manufacturer=_text(dataset, "Manufacturer")[:64],
        model=_text(dataset, "ManufacturerModelName")[:64],
    )
