"""DICOM files and archives become studies, series and instances, in the background, per case."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.exceptions import ValidationError
from pydicom.data import get_testdata_file

from casebridge.access.policy import resolve
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.core.testing import Personas
from casebridge.imaging import archive, metadata
from casebridge.imaging.actions import start_ingest
from casebridge.imaging.models import IngestJob, IngestState, Instance, Series, Study
from casebridge.imaging.synthetic import CBCT_SPACING_MM, cbct_series
from casebridge.imaging.tests.cases import clinician_access, connect_lab, draft_case, stored, zipped
from casebridge.vault import api as vault
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.reader import VersionReader

pytestmark = pytest.mark.django_db

Ingest = Callable[..., IngestJob]


_access = clinician_access
_zip = zipped


@pytest.fixture
def case(personas: Personas, vault_home: Path) -> Case:
    connect_lab(personas)
    return draft_case(_access(personas), lab=personas.lab)


def _stored(personas: Personas, content: bytes) -> StoredObject:
    return stored(_access(personas), content)


@pytest.fixture
def ingest(personas: Personas, case: Case, django_capture_on_commit_callbacks: Any) -> Callable[..., IngestJob]:
    """Attach `content` to the case as its CBCT: that queues the job, run as the worker would."""

    def run(content: bytes) -> IngestJob:
        stored = _stored(personas, content)
        with django_capture_on_commit_callbacks(execute=True):
            actions.attach_file(_access(personas), case, stored, kind="cbct")  # queues the job
        return IngestJob.objects.get(source=stored)

    return run


def _plaintext(stored: StoredObject) -> bytes:
    return b"".join(bytes(c) for c in vault.read_version(vault.get_version(stored)))


def test_a_zipped_cbct_series_becomes_one_study_with_one_series_of_every_slice(ingest: Ingest, case: Case) -> None:
    slices = cbct_series("jaw", slices=24, size=64)
    job = ingest(_zip({f"SERIES/IM{i:04d}": data for i, data in enumerate(slices)}))

    assert job.state == IngestState.DONE and (job.total, job.imported, job.errors) == (24, 24, [])
    study = Study.objects.get(case=case)
    series = Series.objects.get(study=study)
    assert (series.modality, series.instance_count, series.rows, series.columns) == ("CT", 24, 64, 64)
    assert series.pixel_spacing_row == series.slice_thickness == pytest.approx(CBCT_SPACING_MM)
    assert series.transfer_syntax == pydicom.uid.ExplicitVRLittleEndian and series.manufacturer == "CaseBridge"
    instances = list(series.instances.order_by("instance_number"))
    assert [i.instance_number for i in instances] == list(range(1, 25))
    # Each slice is its own encrypted object holding exactly the bytes that were in the archive.
    assert _plaintext(instances[5].stored_object) == slices[5]
    assert instances[5].stored_object.attached_at is not None
    event = Event.objects.get(action="imaging.ingested")
    assert event.patient_ref == str(case.patient_id) and event.details["imported"] == 24


def _versions_of(case: Case) -> list[ObjectVersion]:
    return list(
        ObjectVersion.objects.filter(stored_object__dicom_instance__series__study__case=case).order_by(
            "stored_object__dicom_instance__instance_number"
        )
    )


def test_the_slices_of_an_uncompressed_archive_are_files_held_in_it_not_copies(ingest: Ingest, case: Case) -> None:
    """A browser sends a dropped folder as a stored ZIP: each slice's bytes already lie in the
    encrypted archive, so each instance is an extent of it (vault.extent_of): a file of its own,
    with its own checksum, that costs no second copy, encryption or sync."""
    slices = cbct_series("jaw", slices=6, size=32)

    job = ingest(_zip({f"IM{i}": data for i, data in enumerate(slices)}, zipfile.ZIP_STORED))

    assert job.state == IngestState.DONE and job.imported == 6
    archive_version = vault.get_version(job.source)
    versions = _versions_of(case)
    assert [v.base_id for v in versions] == [archive_version.pk] * 6
    assert [v.sha256 for v in versions] == [hashlib.sha256(data).hexdigest() for data in slices]
    assert [_plaintext(v.stored_object) for v in versions] == slices
    # One blob file per version that is not an extent (the archive, the series' metadata
    # document, the thumbnail): none for a slice.
    blobs = [path for path in Path(blob_store().root).rglob("*") if path.is_file()]
    assert len(blobs) == ObjectVersion.objects.filter(base__isnull=True).count() and _orphans() == set()


def test_a_member_stored_uncompressed_is_read_in_place_under_no_name_of_its_own() -> None:
    """The header of a stored member is read straight from the archive (zipfile's own stream
    costs more than pydicom's parse); a compressed member cannot be read that way."""
    first, second = cbct_series("place", slices=2, size=16)
    both = io.BytesIO()
    with zipfile.ZipFile(both, "w") as written:
        written.writestr("PATIENT_NAME/IM0", first, zipfile.ZIP_STORED)
        written.writestr("IM1", second, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(both) as opened:
        stored, deflated = archive.members(opened)
        with archive.open_stored(opened, stored) as stream:
            assert stream.read(100) == first[:100]
            stream.seek(-10, io.SEEK_END)
            assert stream.read() == first[-10:] and stream.read(1) == b""
            assert "PATIENT" not in stream.name
            stream.seek(0)
            assert (
                pydicom.dcmread(stream, stop_before_pixels=True).SOPInstanceUID
                == pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID
            )
        with pytest.raises(ValueError):
            archive.open_stored(opened, deflated)


def test_the_slices_of_a_compressed_archive_are_stored_as_copies(ingest: Ingest, case: Case) -> None:
    slices = cbct_series("jaw", slices=3, size=32)
    job = ingest(_zip({f"IM{i}": data for i, data in enumerate(slices)}, zipfile.ZIP_DEFLATED))
    versions = _versions_of(case)
    assert job.imported == 3 and [v.base_id for v in versions] == [None] * 3
    assert [_plaintext(v.stored_object) for v in versions] == slices


def test_a_slice_whose_bytes_fail_the_archives_checksum_is_refused_alone(ingest: Ingest, case: Case) -> None:
    slices = cbct_series("jaw", slices=3, size=256)  # a header read stops well before the end
    content = bytearray(_zip({f"IM{i}": data for i, data in enumerate(slices)}, zipfile.ZIP_STORED))
    at = bytes(content).index(slices[1]) + len(slices[1]) - 7  # in the second slice's pixels
    content[at] ^= 0xFF

    job = ingest(bytes(content))

    assert job.state == IngestState.DONE and (job.imported, len(job.errors)) == (2, 1)
    assert job.errors[0]["entry"] == 2 and "checksum" in job.errors[0]["error"]
    assert [_plaintext(v.stored_object) for v in _versions_of(case)] == [slices[0], slices[2]]


def test_destroying_the_archive_destroys_the_slices_held_in_it_and_their_place_in_the_study(
    ingest: Ingest, case: Case, personas: Personas
) -> None:
    """Destroying a CBCT that was sent for the wrong patient leaves no slice of it readable, and
    nothing made of it: the series' metadata document (every slice's header) is destroyed, and
    the series and study, left without instances, leave the case."""
    from casebridge.access.policy import Principal

    slices = cbct_series("jaw", slices=4, size=32)
    job = ingest(_zip({f"IM{i}": data for i, data in enumerate(slices)}, zipfile.ZIP_STORED))
    series = Series.objects.get(study__case=case)
    document = series.metadata_object
    held = [i.stored_object for i in Instance.objects.filter(series=series).select_related("stored_object")]
    assert document is not None and len(held) == 4
    owner = _access(personas, "owner")

    actions.destroy_file(Principal(owner.actor, None), job.source, reason="sent for the wrong patient")

    for gone in [*held, document]:
        gone.refresh_from_db()
        assert gone.is_destroyed
        with pytest.raises(vault.ObjectUnavailable):
            vault.get_version(gone)
        event = Event.objects.get(action="file.destroyed", target_id=str(gone.pk))
        assert event.patient_ref == str(case.patient_id)
    for gone in held:
        event = Event.objects.get(action="file.destroyed", target_id=str(gone.pk))
        assert event.details["within"] == str(job.source_id)
    assert not Instance.objects.filter(series__study__case=case).exists()
    assert not Study.objects.filter(case=case).exists()


def test_a_series_that_keeps_instances_loses_only_those_destroyed(
    ingest: Ingest, case: Case, personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    from casebridge.access.policy import Principal
    from casebridge.imaging.models import Thumbnail

    slices = cbct_series("jaw", slices=5, size=32)
    first = ingest(_zip({f"IM{i}": data for i, data in enumerate(slices[:3])}, zipfile.ZIP_STORED))
    ingest(_zip({f"IM{i}": data for i, data in enumerate(slices[3:])}, zipfile.ZIP_STORED))
    series = Series.objects.get(study__case=case)
    assert series.instance_count == 5
    owner = _access(personas, "owner")

    with django_capture_on_commit_callbacks(execute=True):  # the series' new picture is queued
        actions.destroy_file(Principal(owner.actor, None), first.source, reason="the first upload was cut short")

    series.refresh_from_db()
    assert (series.instance_count, series.frame_count, series.metadata_object) == (2, 2, None)
    kept = Instance.objects.filter(series=series).select_related("stored_object").order_by("instance_number")
    assert [_plaintext(i.stored_object) for i in kept] == slices[3:]
    assert [entry["sop"] for entry in metadata.entries_for(series)] == [i.sop_instance_uid for i in kept]
    picture = Thumbnail.objects.select_related("image").get(series=series)
    assert picture.made_from == 2 and not picture.image.is_destroyed  # made again from what is left


def test_an_entry_whose_zip_header_straddles_two_encrypted_segments_is_read(ingest: Ingest) -> None:
    """The archive is read from the vault segment by segment; an entry's 30-byte local header
    that begins 10 bytes before a segment ends is still read whole (a short read once made
    zipfile refuse it as truncated: the last slice of a 40-slice 512x512 CBCT was lost)."""
    import zipfile

    from casebridge.kernel.crypto.streaming import DEFAULT_LAYOUT

    first, second = cbct_series("edge", slices=2, size=16)
    dataset = pydicom.dcmread(io.BytesIO(first))
    boundary = DEFAULT_LAYOUT.first_plaintext_size
    name = "IM0"
    # Pad the first slice (Data Set Trailing Padding, an OB element of 12 header bytes) so that
    # the second entry's local header starts 10 bytes before the first segment ends.
    dataset.DataSetTrailingPadding = b""
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    padding = boundary - 10 - (30 + len(name)) - len(out.getvalue())
    if padding % 2:  # DICOM values have even lengths: a longer name takes up the odd byte
        name, padding = name + "0", padding - 1
    dataset.DataSetTrailingPadding = b"\0" * padding
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    archive_bytes = _zip({name: out.getvalue(), "IM1": second}, compression=zipfile.ZIP_STORED)
    assert zipfile.ZipFile(io.BytesIO(archive_bytes)).infolist()[1].header_offset == boundary - 10

    job = ingest(archive_bytes)

    assert job.state == IngestState.DONE and (job.imported, job.errors) == (2, [])


def test_slices_are_durable_before_any_is_recorded_and_each_upload_is_audited(
    ingest: Ingest, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of slices is synced in one barrier, and only then linked and indexed: an instance
    is never reported stored while its content could still be lost."""
    from casebridge.imaging import studies
    from casebridge.kernel.backends.filesystem import FileSystemStore
    from casebridge.vault.models import ObjectVersion

    synced: list[str] = []
    real_sync = FileSystemStore.sync

    def sync(store: FileSystemStore, names: Any) -> None:
        names = list(names)
        assert not ObjectVersion.objects.filter(blob_name__in=names).exists()  # nothing linked yet
        real_sync(store, names)
        synced.extend(names)

    monkeypatch.setattr(FileSystemStore, "sync", sync)
    monkeypatch.setattr(studies, "BATCH_INSTANCES", 4)
    job = ingest(_zip({f"IM{i}": data for i, data in enumerate(cbct_series("jaw", slices=10, size=16))}))

    assert job.state == IngestState.DONE and job.imported == 10
    blobs = set(
        ObjectVersion.objects.filter(stored_object__dicom_instance__series__study__case=case).values_list(
            "blob_name", flat=True
        )
    )
    assert len(blobs) == 10 and blobs <= set(synced)
    uploaded = Event.objects.filter(
        action="file.uploaded", target_id__in=[str(i.stored_object_id) for i in Instance.objects.all()]
    )
    assert uploaded.count() == 10


def test_the_index_holds_no_patient_name(ingest: Ingest, case: Case) -> None:
    ingest(_zip({"a.dcm": cbct_series("jaw", slices=1, size=16, patient_name="CARTER^ROSA")[0]}))
    stored_rows = [str(list(model.objects.values())) for model in (Study, Series, Instance, IngestJob)]
    assert all("CARTER" not in rows for rows in stored_rows)


def test_a_malformed_file_is_reported_by_number_and_the_rest_proceeds(ingest: Ingest) -> None:
    slices = cbct_series("jaw", slices=3, size=16)
    entries = {"1.dcm": slices[0], "2.dcm": b"\0" * 128 + b"DICM" + b"\xff" * 40, "3.dcm": slices[1], "4.txt": b"hi"}

    job = ingest(_zip(entries))

    assert job.state == IngestState.DONE and job.imported == 2
    assert [e["entry"] for e in job.errors] == [2, 4]
    assert "DICOM" in job.errors[1]["error"]
    assert "2.dcm" not in str(job.errors)  # entries are numbered, never named


def test_duplicates_are_recognised_within_an_archive_and_across_uploads(ingest: Ingest, case: Case) -> None:
    slices = cbct_series("jaw", slices=3, size=16)
    first = ingest(_zip({"a": slices[0], "b": slices[1], "again": slices[0]}))
    second = ingest(_zip({"c": slices[1], "d": slices[2]}))

    assert (first.imported, first.duplicates) == (2, 1)
    assert (second.imported, second.duplicates) == (1, 1)
    assert Instance.objects.filter(series__study__case=case).count() == 3


def test_an_instance_another_job_indexed_meanwhile_counts_as_a_duplicate_and_leaves_nothing(
    ingest: Ingest, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    from casebridge.imaging import studies
    from casebridge.vault.config import blob_store
    from casebridge.vault.models import ObjectVersion

    slices = cbct_series("jaw", slices=3, size=16)
    ingest(_zip({"a": slices[0], "b": slices[1]}))
    real = studies._indexed_uids
    # As if the first job committed after the second had looked at what the case holds.
    monkeypatch.setattr(studies, "_indexed_uids", lambda job, among=None: set() if among is None else real(job, among))

    second = ingest(_zip({"c": slices[1], "d": slices[2], "e": slices[0]}))

    assert (second.imported, second.duplicates) == (1, 2)
    assert Instance.objects.filter(series__study__case=case).count() == 3
    # The two slices sealed for nothing were discarded: every blob on disk belongs to a version.
    store = blob_store()
    on_disk = {path.name for path in Path(store.root).rglob("*") if path.is_file()}
    assert on_disk <= {store.path_for(name).name for name in ObjectVersion.objects.values_list("blob_name", flat=True)}


def test_a_single_dicom_file_is_indexed_in_place(ingest: Ingest) -> None:
    content = cbct_series("pano", slices=1, size=16)[0]
    job = ingest(content)

    instance = Instance.objects.get()
    assert job.imported == 1 and instance.stored_object_id == job.source_id


def test_a_header_value_json_cannot_hold_does_not_stop_the_ingest(ingest: Ingest) -> None:
    # pydicom's badVR.dcm has an IS of "1A": read as text, refused only when converted to JSON.
    content = Path(str(get_testdata_file("badVR.dcm"))).read_bytes()
    slices = cbct_series("jaw", slices=2, size=16)

    job = ingest(_zip({"a": slices[0], "bad": content, "b": slices[1]}))

    assert job.state == IngestState.DONE and job.imported == 3 and job.errors == []


@pytest.mark.parametrize(
    ("name", "frames"),
    [
        ("JPEG2000.dcm", 1),  # JPEG 2000
        ("MR_small_RLE.dcm", 1),  # RLE
        ("SC_rgb_jpeg_dcmtk.dcm", 1),  # JPEG baseline
        ("MR_small_jpeg_ls_lossless.dcm", 1),  # JPEG-LS
        ("SC_rgb_rle_2frame.dcm", 2),  # multi-frame
    ],
)
def test_compressed_and_multi_frame_instances_are_indexed_and_decode(ingest: Ingest, name: str, frames: int) -> None:
    content = Path(str(get_testdata_file(name))).read_bytes()
    job = ingest(_zip({"x": content}))

    instance = Instance.objects.select_related("series").get()
    original = pydicom.dcmread(io.BytesIO(content))
    assert job.imported == 1 and instance.frames == frames
    assert instance.series.transfer_syntax == original.file_meta.TransferSyntaxUID
    # The pixels decode from the vault, through pydicom's pylibjpeg plugins, without a copy on disk.
    stored = pydicom.dcmread(io.BufferedReader(VersionReader(vault.get_version(instance.stored_object))))
    assert (stored.pixel_array == original.pixel_array).all()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"../../etc/evil.dcm": b"x"}, "'..'"),
        ({"/abs/evil.dcm": b"x"}, "absolute"),
        ({"bomb.dcm": b"\0" * (64 << 20)}, "zip bomb"),
    ],
)
def test_a_dangerous_archive_is_refused_whole(ingest: Ingest, entries: dict[str, bytes], message: str) -> None:
    job = ingest(_zip(entries))

    assert job.state == IngestState.FAILED and message in job.message
    assert not Instance.objects.exists() and not Study.objects.exists()
    assert Event.objects.filter(action="imaging.ingest_failed").exists()


def test_an_archive_inside_the_archive_is_refused_as_an_entry(ingest: Ingest) -> None:
    inner = _zip({"a.dcm": cbct_series("jaw", slices=1, size=16)[0]})
    job = ingest(_zip({"inner.zip": inner, "b.dcm": cbct_series("jaw2", slices=1, size=16)[0]}))

    assert job.imported == 1 and job.errors == [{"entry": 1, "error": "an archive inside the archive is not accepted"}]


def test_too_many_entries_refuse_the_archive(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive, "MAX_ENTRIES", 3)
    job = ingest(_zip({str(i): b"x" for i in range(4)}))
    assert job.state == IngestState.FAILED and "4 entries" in job.message


def test_running_a_job_again_indexes_nothing_twice(ingest: Ingest) -> None:
    from casebridge.imaging import studies

    job = ingest(_zip({str(i): s for i, s in enumerate(cbct_series("jaw", slices=3, size=16))}))
    again = studies.run(job)

    assert (again.imported, again.duplicates) == (0, 3) and Instance.objects.count() == 3


def test_only_a_file_of_the_case_can_become_its_study(personas: Personas, case: Case, vault_home: Path) -> None:
    loose = _stored(personas, cbct_series("jaw", slices=1, size=16)[0])
    with pytest.raises(ValidationError, match="attached to this case"):
        start_ingest(_access(personas), case, loose)
    assert not IngestJob.objects.exists()


def test_another_organization_cannot_index_the_cases_files(ingest: Ingest, personas: Personas, case: Case) -> None:
    job = ingest(_zip({"a": cbct_series("jaw", slices=1, size=16)[0]}))
    outsider = resolve(personas.outsider, personas.other_practice)
    assert outsider is not None
    with pytest.raises(ValidationError, match="No such case"):
        start_ingest(outsider, case, job.source)
    # The lab before the case was sent to it sees no draft either.
    lab = resolve(personas.lab_manager, personas.lab)
    assert lab is not None
    with pytest.raises(ValidationError, match="No such case"):
        start_ingest(lab, case, job.source)
    assert IngestJob.objects.count() == 1


def test_progress_is_written_after_each_batch_and_at_most_every_quarter_second_between(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each progress write is a commit (fsynced): a 400-slice archive used to write 40."""
    from casebridge.imaging import studies

    written: list[int] = []
    real = studies._progress

    def progress(job: IngestJob, **fields: Any) -> None:
        if "processed" in fields:
            written.append(fields["processed"])
        real(job, **fields)

    monkeypatch.setattr(studies, "_progress", progress)
    monkeypatch.setattr(studies, "BATCH_INSTANCES", 4)
    monkeypatch.setattr(studies, "PROGRESS_SECONDS", 3600)
    slices = cbct_series("jaw", slices=10, size=16)
    assert ingest(_zip({f"IM{i}": data for i, data in enumerate(slices)})).imported == 10
    assert written == [0, 4, 8, 10]  # the job's start, then each batch's flush
    written.clear()
    monkeypatch.setattr(studies, "PROGRESS_SECONDS", 0)
    ingest(_zip({f"IM{i}": data for i, data in enumerate(cbct_series("other", slices=3, size=16))}))
    assert written == [0, 1, 2, 3]


def test_names_inside_an_archive_never_reach_the_log(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    truncated = cbct_series("jaw", slices=1, size=16)[0][:-200]
    with caplog.at_level("DEBUG"):
        job = ingest(_zip({"CARTER_ROSA_1961/IM0001.dcm": truncated + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"}))
    assert job.processed == 1
    assert "CARTER" not in caplog.text


def test_a_zip_of_scans_attached_as_scans_is_not_taken_for_a_study(
    personas: Personas, case: Case, vault_home: Path
) -> None:
    stored = _stored(personas, _zip({"upper.stl": b"solid x\nendsolid x\n"}))
    actions.attach_file(_access(personas), case, stored, kind="other")
    assert not IngestJob.objects.exists()


def _orphans() -> set[str]:
    """Blob files on disk that belong to no version (sealed, then neither linked nor removed)."""
    from casebridge.vault.config import blob_store
    from casebridge.vault.models import ObjectVersion

    store = blob_store()
    on_disk = {path.name for path in Path(store.root).rglob("*") if path.is_file()}
    return on_disk - {store.path_for(name).name for name in ObjectVersion.objects.values_list("blob_name", flat=True)}


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> Path:
    """Archives of 4 files or more are read and sealed by two forked helpers, 3 files a run; the
    file returned collects the process id of each header read."""
    from casebridge.core import forking
    from casebridge.imaging import studies

    settings.IMAGING_INGEST_PROCESSES = 2
    monkeypatch.setattr(studies, "PARALLEL_FROM", 4)
    monkeypatch.setattr(studies, "HELPER_RUN", 3)
    monkeypatch.setattr(forking, "may_fork", lambda: True)  # whatever threads earlier tests left idle
    pids = tmp_path / "pids"
    real = studies._header

    def header(entry: Any, memo: Any) -> Any:
        with pids.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return real(entry, memo)

    monkeypatch.setattr(studies, "_header", header)
    return pids


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED], ids=["deflated", "stored"])
def test_a_big_archive_is_read_and_sealed_by_helper_processes_with_the_same_outcome(
    ingest: Ingest, case: Case, helpers: Path, compression: int
) -> None:
    slices = cbct_series("jaw", slices=7, size=16)
    entries = {f"IM{i}": data for i, data in enumerate(slices[:3])}
    entries |= {"bad.dcm": b"\0" * 128 + b"DICM" + b"\xff" * 40, "again": slices[0], "note.txt": b"hi"}
    entries |= {f"IM{i}": data for i, data in enumerate(slices[3:], start=3)}

    job = ingest(_zip(entries, compression))

    assert job.state == IngestState.DONE and (job.total, job.imported, job.duplicates) == (10, 7, 1)
    assert [e["entry"] for e in job.errors] == [4, 6]  # numbered in the archive's order
    readers = set(helpers.read_text().split())
    assert len(readers) == 2 and str(os.getpid()) not in readers  # two helpers read every header
    instances = Instance.objects.filter(series__study__case=case).order_by("instance_number")
    assert [_plaintext(i.stored_object) for i in instances] == slices
    assert _orphans() == set()  # the duplicate's sealed copy was removed


def test_what_helpers_sealed_is_removed_when_the_job_stops_early(
    personas: Personas,
    case: Case,
    helpers: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from casebridge.imaging import studies

    source = _stored(personas, _zip({f"IM{i}": data for i, data in enumerate(cbct_series("jaw", slices=12, size=16))}))
    with django_capture_on_commit_callbacks(execute=False):  # the job is queued, not run
        actions.attach_file(_access(personas), case, source, kind="cbct")
    job = IngestJob.objects.get(source=source)
    monkeypatch.setattr(studies, "BATCH_INSTANCES", 2)
    real, flushes = studies._flush, []

    def flush(*args: Any) -> Any:
        flushes.append(1)
        if len(flushes) == 3:
            raise OSError("the database went away")
        return real(*args)

    monkeypatch.setattr(studies, "_flush", flush)
    with pytest.raises(OSError, match="went away"):
        studies.run(job)

    assert Instance.objects.filter(series__study__case=case).count() == 4  # two batches were indexed
    assert str(os.getpid()) not in helpers.read_text().split()  # the helpers had read them
    assert _orphans() == set()  # the third batch and what the helpers had sealed ahead are gone
