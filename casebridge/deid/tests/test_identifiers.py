"""Which identifier kinds a file carries, read from the reports of the steps that de-identify it
(issue 14: one pipeline, reporting for every file): kinds only, never a value."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom.data import get_testdata_file
from pypdf import PdfWriter

from casebridge.deid import identifiers
from casebridge.deid.tests import photos
from casebridge.imaging import synthetic

PATIENT = "ROE^JANE"


def test_dicom_kinds_come_from_the_engines_report() -> None:
    data = synthetic.dicom_image("kinds", patient_name=PATIENT)
    found = identifiers.examine("dicom", len(data), lambda: data)
    assert found == {"present": ["UIDs", "patient ID", "patient name"]}  # all this synthetic file has
    assert PATIENT not in repr(found) and "ROE" not in repr(found)

    scanner = Path(get_testdata_file("CT_small.dcm")).read_bytes()  # a real scanner's file
    present = identifiers.examine("dicom", len(scanner), lambda: scanner)["present"]
    assert {"birth date", "dates and times", "device identity", "institution", "private attributes"} <= set(present)
    assert present == sorted(present) and "CompressedSamples" not in repr(present)


def test_a_photo_carries_gps_and_maker_notes() -> None:
    for file_type, data in (("tiff", photos.tiff()), ("heic", photos.heic())):
        found = identifiers.examine(file_type, len(data), lambda data=data: data)
        assert {"GPS location", "camera maker notes", "camera make and model"} <= set(found["present"])
        assert photos.MARKER not in repr(found)


def test_a_pdf_names_its_author_and_software() -> None:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.add_metadata({"/Author": "Dr Who", "/Producer": "Scanner 9", "/Title": PATIENT})
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    found = identifiers.examine("pdf", len(data), lambda: data)
    assert {"author", "software", "title and subject"} <= set(found["present"])
    assert PATIENT not in repr(found) and "Dr Who" not in repr(found)


def test_what_cannot_be_de_identified_says_why_and_what_is_not_examined_too() -> None:
    data = synthetic.dicom_image("cut")[:-300]
    assert "refused" in identifiers.examine("dicom", len(data), lambda: data)
    assert "not_examined" in identifiers.examine("zip", 10, lambda: b"")
    big = identifiers.MAX_EXAMINED + 1
    assert identifiers.examine("dicom", big, lambda: b"") == {"not_examined": "larger than 256 MiB"}


def test_sanitizer_counts_map_to_kinds() -> None:
    removed = {"EXIF field GPSLatitude": 1, "EXIF field MakerNote": 1, "STL header": 1, "APP1 XMP": 1, "APP9": 1}
    assert identifiers.of_removed(removed) == [
        "GPS location",
        "STL header text",
        "XMP",
        "camera maker notes",
        "other metadata",
    ]


def test_an_unforeseen_failure_is_recorded_not_raised() -> None:
    def broken() -> bytes:
        raise OSError("the blob store is away")

    assert identifiers.examine("pdf", 10, broken) == {"not_examined": "the file could not be examined (OSError)"}
