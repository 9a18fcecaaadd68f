"""De-identification of DICOM by PS3.15 Table E.1-1, judged by tests/checker.py (written from the
table, not from the engine) over pydicom's and pydicom-data's test files under every option set."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import warnings
from functools import cache
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from casebridge.core.testing import require
from casebridge.deid import Options, Refused, deidentify, new_uid
from casebridge.deid.corpus import corpus_files
from casebridge.deid.tests.checker import OPTION_COLUMNS, Checker
from casebridge.imaging.synthetic import cbct_series

SECRET = b"case-secret-one-0123456789"
OTHER_SECRET = b"case-secret-two-0123456789"

# option set name -> (engine options, checker's table columns)
OPTION_SETS: dict[str, tuple[Options, set[str]]] = {
    "basic": (Options(), set()),
    "retain_safe_private": (Options(retain_safe_private=True), {"rtnSafePrivOpt"}),
    "retain_uids": (Options(retain_uids=True), {"rtnUIDsOpt"}),
    "retain_device_identity": (Options(retain_device_identity=True), {"rtnDevIdOpt"}),
    "retain_institution_identity": (Options(retain_institution_identity=True), {"rtnInstIdOpt"}),
    "retain_patient_characteristics": (Options(retain_patient_characteristics=True), {"rtnPatCharsOpt"}),
    "full_dates": (Options(dates="full"), {"rtnLongFullDatesOpt"}),
    "modified_dates": (Options(dates="modified"), {"rtnLongModifDatesOpt"}),
    "clean_descriptors": (Options(clean_descriptors=True), {"cleanDescOpt"}),
    "clean_structured_content": (Options(clean_structured_content=True), {"cleanStructContOpt"}),
    "clean_graphics": (Options(clean_graphics=True), {"cleanGraphOpt"}),
    "all_but_private": (
        Options(
            retain_uids=True,
            retain_device_identity=True,
            retain_institution_identity=True,
            retain_patient_characteristics=True,
            dates="modified",
            clean_descriptors=True,
            clean_structured_content=True,
            clean_graphics=True,
        ),
        set(OPTION_COLUMNS.values()) - {"rtnSafePrivOpt", "rtnLongFullDatesOpt"},
    ),
}


@cache
def corpus() -> tuple[tuple[str, bytes], ...]:
    return tuple((str(path.relative_to(path.parents[1])), path.read_bytes()) for path in corpus_files())


@cache
def original(name: str) -> Dataset | None:
    """The file as pydicom reads it on its own (strictly, or with force for a data set without a
    preamble), None if it cannot: the reference the output is compared with."""
    data = dict(corpus())[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for force in (False, True):
            try:
                ds = pydicom.dcmread(io.BytesIO(data), force=force)
                last = ds.get_item(max(ds.keys()))
                if getattr(last, "length", 0) != 0xFFFFFFFF and len(last.value or b"") < getattr(last, "length", 0):
                    return None  # the last element is cut short: a truncated file
                for _ in ds.iterall():
                    pass
                break
            except Exception:  # anything pydicom cannot read is not a reference
                ds = None
    if ds is None or not len(ds) or any("End of file" in str(w.message) for w in caught):
        return None
    if data[128:132] != b"DICM" and min(ds.keys()) >> 16 not in (0x0002, 0x0008):
        return None  # force=True "read" something that is not a data set
    return ds


def test_the_corpus_is_both_test_data_sets() -> None:
    paths = [str(path) for path in corpus_files()]
    assert len(paths) >= 230
    assert sum("/data_store/" in path for path in paths) >= 60  # the pydicom-data package
    assert sum("/pydicom/data/test_files/" in path for path in paths) >= 150


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
def test_every_row_of_the_table_on_every_file(option_set: str) -> None:
    options, columns = OPTION_SETS[option_set]
    checker = Checker(columns, set(options.safe_private) if options.retain_safe_private else None)
    problems: list[str] = []
    done = refused = 0
    for name, data in corpus():
        reference = original(name)
        try:
            result = deidentify(data, options, SECRET)
        except Refused as refusal:
            refused += 1
            assert refusal.reason
            if reference is not None and "DirectoryRecordSequence" in reference:
                assert "DICOMDIR" in refusal.reason  # its byte offsets would no longer hold
            elif reference is not None:
                # pydicom reads it: only the unknown private creator may stop it, and only here
                assert options.retain_safe_private and "unknown private creator" in refusal.reason, (name, refusal)
            continue
        done += 1
        assert reference is not None, f"{name}: de-identified although pydicom cannot read it"
        assert result.data is not None
        output = pydicom.dcmread(io.BytesIO(result.data), force=True)
        for _ in output.iterall():
            pass
        problems += [f"{name}: {problem}" for problem in checker.check(reference, output)]
    assert not problems, "\n".join(problems[:40]) + f"\n... {len(problems)} in all"
    assert done >= (100 if options.retain_safe_private else 220), (done, refused)
    assert len(checker.rows_checked) >= 40  # the corpus exercises many rows, not a handful
    if options.dates == "modified":
        assert len(checker.shifts) == 1, checker.shifts  # one shift for the whole case


def test_modified_dates_shift_differs_between_cases() -> None:
    ds = _patient_dataset()
    a = deidentify(ds, Options(dates="modified"), SECRET).dataset
    b = deidentify(ds, Options(dates="modified"), OTHER_SECRET).dataset
    assert a.StudyDate != ds.StudyDate and b.StudyDate != ds.StudyDate and a.StudyDate != b.StudyDate
    assert a.LongitudinalTemporalInformationModified == "MODIFIED"


def _patient_dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-778899"
    ds.PatientBirthDate = "19700102"
    ds.PatientSex = "F"
    ds.StudyDate = "20240315"
    ds.StudyDescription = "Implant planning for Doe MRN-778899"
    ds.InstitutionName = "Smile Clinic"
    ds.StationName = "CBCT-ROOM-2"
    ds.Modality = "CT"
    return ds


def test_sequences_nested_three_deep_are_de_identified_at_every_depth() -> None:
    ds = _patient_dataset()
    referenced = generate_uid()
    level3 = Dataset()
    level3.PatientName = "Doe^Jane"
    level3.ReferencedSOPInstanceUID = referenced
    level3.ContentDate = "20240315"
    level3.add_new(0x00290010, "LO", "ACME PRIVATE")
    level3.add_new(0x00291001, "LO", "secret note")
    level2 = Dataset()
    level2.ReferencedImageSequence = Sequence([level3])
    level2.InstitutionName = "Smile Clinic"
    level1 = Dataset()
    level1.ReferencedSeriesSequence = Sequence([level2])
    level1.CodeValue = "T-11000"  # not in the table: kept
    ds.add_new(0x00081115, "SQ", Sequence([level1]))  # Referenced Series Sequence
    out = deidentify(ds, Options(), SECRET).dataset
    inner = out[0x00081115][0].ReferencedSeriesSequence[0]
    assert inner.InstitutionName == "DEIDENTIFIED"  # X/Z/D: the dummy
    deepest = inner.ReferencedImageSequence[0]
    assert deepest.PatientName == ""
    assert 0x00291001 not in deepest and 0x00290010 not in deepest
    assert deepest.ReferencedSOPInstanceUID == new_uid(referenced, SECRET)
    assert deepest.ContentDate == "19000101"  # Z/D: the dummy
    assert out[0x00081115][0].CodeValue == "T-11000"
    problems = Checker(set()).check(ds, out)
    assert not problems, problems


def test_uids_stay_together_across_a_series_and_apart_across_cases() -> None:
    series = cbct_series("deid-uids", slices=6, size=16, patient_name="Doe^Jane")
    first = [pydicom.dcmread(io.BytesIO(deidentify(f, Options(), SECRET).data or b"")) for f in series]
    again = [pydicom.dcmread(io.BytesIO(deidentify(f, Options(), SECRET).data or b"")) for f in series]
    other = [pydicom.dcmread(io.BytesIO(deidentify(f, Options(), OTHER_SECRET).data or b"")) for f in series]
    sources = [pydicom.dcmread(io.BytesIO(f)) for f in series]
    assert len({ds.StudyInstanceUID for ds in first}) == 1
    assert len({ds.SeriesInstanceUID for ds in first}) == 1
    assert len({ds.SOPInstanceUID for ds in first}) == 6
    assert [ds.SOPInstanceUID for ds in first] == [ds.SOPInstanceUID for ds in again]
    assert first[0].StudyInstanceUID != sources[0].StudyInstanceUID
    assert first[0].StudyInstanceUID != other[0].StudyInstanceUID
    assert not {ds.SOPInstanceUID for ds in first} & {ds.SOPInstanceUID for ds in other}
    for ds in first:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert "PatientName" not in ds or not str(ds.PatientName)
    for before, after in zip(sources, first, strict=True):
        assert after.PixelData == before.PixelData  # pixel data untouched
        assert after.ImagePositionPatient == before.ImagePositionPatient


def test_identity_removed_and_the_method_lists_profile_and_options() -> None:
    options = Options(dates="modified", clean_descriptors=True, retain_device_identity=True)
    result = deidentify(_patient_dataset(), options, SECRET)
    out = result.dataset
    assert out.PatientIdentityRemoved == "YES"
    codes = [(item.CodeValue, item.CodingSchemeDesignator) for item in out.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113109", "DCM"), ("113107", "DCM"), ("113105", "DCM")]
    assert len(out.DeidentificationMethod) == 4
    # Clean Descriptors kept the description but took the patient's name and ID out of it
    assert out.StudyDescription == "Implant planning for *** ***"
    assert out.StationName == "CBCT-ROOM-2"  # Retain Device Identity
    actions = {change.keyword: (change.action, change.why) for change in result.report.changes}
    assert actions["PatientName"][0] == "emptied" and "Basic Profile" in actions["PatientName"][1]
    assert actions["StudyDescription"][0] == "cleaned"
    assert actions["StationName"] == ("kept", "Retain Device Identity Option")
    assert actions["InstitutionName"][0] == "replaced"  # X/Z/D: the dummy
    assert result.report.options == ["retain_device_identity", "dates=modified", "clean_descriptors"]
    shared = result.report.as_dict()
    assert "date_shift_days" not in shared  # it would undo Modified Dates
    assert result.report.as_dict(include_date_shift=True)["date_shift_days"] == result.report.date_shift_days
    assert {"path": "(0010,0010)", "attribute": "PatientName", "action": "emptied", "why": "Basic Profile Z"} in (
        shared["changes"]
    )
    assert "Doe" not in json.dumps(shared)  # the report holds no value of the original


def test_a_short_case_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 random bytes"):
        deidentify(_patient_dataset(), Options(), b"short")


def test_dates_option_is_remove_full_or_modified_one_at_a_time() -> None:
    with pytest.raises(ValueError):
        Options(dates="shifted")  # type-checked callers cannot, a form value could


def _dataset_with_private(creator: str) -> Dataset:
    ds = _patient_dataset()
    ds.add_new(0x00190010, "LO", creator)
    ds.add_new(0x0019100C, "IS", "1000")  # SIEMENS MR HEADER B_value: safe
    ds.add_new(0x00191099, "LO", "Doe^Jane")  # not on the safe list
    return ds


def test_retain_safe_private_keeps_only_listed_private_attributes() -> None:
    out = deidentify(_dataset_with_private("SIEMENS MR HEADER"), Options(retain_safe_private=True), SECRET).dataset
    assert out[0x0019100C].value == "1000"
    assert out[0x00190010].value == "SIEMENS MR HEADER"
    assert 0x00191099 not in out
    basic = deidentify(_dataset_with_private("SIEMENS MR HEADER"), Options(), SECRET).dataset
    assert not [tag for tag in list(basic.keys()) if tag.group & 1]


def test_unknown_private_creator_with_retain_safe_private_is_refused() -> None:
    with pytest.raises(Refused, match="unknown private creator 'ACME CT 7'"):
        deidentify(_dataset_with_private("ACME CT 7"), Options(retain_safe_private=True), SECRET)
    # named as known, its block is removed instead
    known = Options(retain_safe_private=True, known_private_creators=frozenset({"ACME CT 7"}))
    out = deidentify(_dataset_with_private("ACME CT 7"), known, SECRET).dataset
    assert not [tag for tag in list(out.keys()) if tag.group & 1]


def _part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda data: b"%PDF-1.7 not dicom at all" * 10, "not a DICOM file"),
        (lambda data: b"", "fewer than 8 bytes"),
        (lambda data: data[:128] + b"DICM" + b"\xff" * 64, "not a readable DICOM file|corrupt"),
        (lambda data: data[: len(data) - 40], "truncated"),
    ],
    ids=["not-dicom", "empty", "garbage-after-prefix", "truncated"],
)
def test_corrupt_files_are_refused_with_a_reason(make, reason: str) -> None:
    ds = _patient_dataset()
    ds.PixelData = b"\0" * 4096
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated = 8
    ds.add_new(0x7FE00010, "OB", b"\0" * 4096)
    with pytest.raises(Refused, match=reason) as refused:
        deidentify(make(_part10(ds)), Options(), SECRET)
    assert "Doe" not in refused.value.reason


def test_round_trip_through_pydicom_keeps_everything_else() -> None:
    ds = _patient_dataset()
    ds.add_new(0x7FE00010, "OB", bytes(range(256)) * 16)
    data = deidentify(_part10(ds), Options(), SECRET).data
    assert data is not None
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.PixelData == bytes(range(256)) * 16
    assert back.Modality == "CT" and back.SOPClassUID == ds.SOPClassUID
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.PatientName == ""  # Z: present, empty
    assert back.PatientID == "DEIDENTIFIED"  # Z/D: this engine gives the dummy (D)


def _dcmdump() -> str:
    found = shutil.which("dcmdump")
    require(found is not None, "dcmdump (Debian package dcmtk)", "apt-get install dcmtk")
    assert found is not None
    return found


def test_round_trip_through_dcmdump(tmp_path: Path) -> None:
    dcmdump = _dcmdump()
    written = []
    for index, (name, data) in enumerate(corpus()):
        if original(name) is None:
            continue
        try:
            result = deidentify(data, Options(), SECRET)
        except Refused:
            continue
        path = tmp_path / f"{index}.dcm"
        path.write_bytes(result.data or b"")
        written.append(path)
    assert len(written) >= 220
    for start in range(0, len(written), 60):
        batch = written[start : start + 60]
        proc = subprocess.run([dcmdump, "-q", "+P", "0012,0062", *map(str, batch)], capture_output=True, timeout=120)
        unreadable = [line for line in proc.stderr.decode(errors="replace").splitlines() if "E: " in line]
        assert not unreadable, unreadable[:10]
        assert proc.stdout.decode(errors="replace").count("[YES]") == len(batch)


def _structured_report() -> Dataset:
    ds = _patient_dataset()
    text = Dataset()
    text.ValueType = "TEXT"
    text.TextValue = "Jane Doe (MRN-778899) reports pain at 36"
    text.ObservationDateTime = "20240315101500"
    observer = Dataset()
    observer.ValueType = "PNAME"
    observer.PersonName = "Smith^John"
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence([text, observer])
    ds.ContentSequence = Sequence([container])
    annotation = Dataset()
    label = Dataset()
    label.UnformattedTextValue = "Doe left canine"
    annotation.TextObjectSequence = Sequence([label])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows
    ds.add_new(0x60000011, "US", 8)  # Overlay Columns
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 32)  # Overlay Data
    ds.add_new(0x60004000, "LT", "drawn for Doe")  # Overlay Comments
    ds.Allergies = "Penicillin (told by Doe^Jane)"
    ds.PatientWeight = "61"
    ds.StationAETitle = "CBCT_ROOM2"
    return ds


def test_basic_profile_replaces_structured_content_and_graphics() -> None:
    out = deidentify(_structured_report(), Options(), SECRET).dataset
    assert len(out.ContentSequence) == 1 and len(out.ContentSequence[0]) == 0  # D: one empty item
    assert len(out.GraphicAnnotationSequence) == 1 and len(out.GraphicAnnotationSequence[0]) == 0
    assert 0x60003000 not in out and 0x60004000 not in out  # X
    assert not [tag for tag in list(out.keys()) if tag.group == 0x6000]  # the plane goes with its data
    assert "Allergies" not in out and "PatientWeight" not in out and "StationAETitle" not in out


def test_clean_structured_content_keeps_the_tree_without_identity() -> None:
    out = deidentify(_structured_report(), Options(clean_structured_content=True), SECRET).dataset
    text, observer = out.ContentSequence[0].ContentSequence
    assert text.ValueType == "TEXT"  # not in the table: kept
    assert text.TextValue == "*** *** (***) reports pain at 36"  # not in the table: cleaned
    assert text.ObservationDateTime == "19000101000000"  # its own row, X/D: the dummy
    assert observer.PersonName == "DEIDENTIFIED"  # its own row, D


def test_clean_graphics_keeps_overlays_and_cleans_their_text() -> None:
    out = deidentify(_structured_report(), Options(clean_graphics=True), SECRET).dataset
    assert out[0x60003000].value == b"\x01\x00" * 32
    assert out[0x60000010].value == 8
    assert out[0x60004000].value == "drawn for ***"
    assert out.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "*** left canine"


def test_patient_characteristics_and_device_identity_options() -> None:
    options = Options(retain_patient_characteristics=True, retain_device_identity=True)
    out = deidentify(_structured_report(), options, SECRET).dataset
    assert out.PatientWeight == "61" and out.PatientSex == "F"
    assert out.Allergies == "Penicillin (told by ***^***)"
    station = out.StationAETitle
    assert station != "CBCT_ROOM2" and station.startswith("AE") and len(station) <= 16
    again = deidentify(_structured_report(), options, SECRET).dataset.StationAETitle
    other = deidentify(_structured_report(), options, OTHER_SECRET).dataset.StationAETitle
    assert again == station != other  # a pseudonym per case
