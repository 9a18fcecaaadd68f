"""A series' metadata document: written encrypted when an ingest finishes, served to viewers in
place of every instance's header, refreshed when the series grows, part of the case's record."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.test import Client

from casebridge.accounts.actions import create_api_token
from casebridge.core.testing import Personas
from casebridge.imaging import metadata, studies
from casebridge.imaging.models import IngestJob, IngestState, Series
from casebridge.imaging.synthetic import cbct_series
from casebridge.imaging.tests.cases import attach, clinician_access, draft_case, zipped
from casebridge.vault import api as vault

pytestmark = pytest.mark.django_db


def test_the_document_is_written_at_ingest_refreshed_as_the_series_grows_and_served(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    access = clinician_access(personas)
    case = draft_case(access)
    slices = cbct_series("metadoc", slices=6, size=8)
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, zipped({f"{i}.dcm": s for i, s in enumerate(slices[:4])}), kind="cbct")
    series = Series.objects.get(study__case=case)
    assert series.metadata_object is not None and series.metadata_instances == 4
    first = series.metadata_object
    stored = metadata.load(series)
    assert stored is not None and stored == metadata.build(series)
    # Encrypted like any file: no header value of the instances is readable in the blob.
    blob = vault.get_version(first).blob_name
    from casebridge.vault.config import blob_store

    assert b"DEMO^PATIENT" not in blob_store().read_range(blob, 0, vault.get_version(first).ciphertext_size)

    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, zipped({f"{i}.dcm": s for i, s in enumerate(slices[4:])}), kind="cbct")
    series.refresh_from_db()
    assert series.metadata_instances == 6 and series.metadata_object != first
    first.refresh_from_db()
    assert first.destroyed_at is not None  # the replaced document is shredded, not left behind

    user = personas.members["clinician"]
    _token, raw = create_api_token(
        organization=personas.practice, name="viewer", scopes=["cases:read"], days=1, actor=user, user=user
    )
    ds = pydicom.dcmread(io.BytesIO(slices[0]))
    answer = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata",
        HTTP_ACCEPT="application/dicom+json",
    )
    served = answer.json()
    assert sorted(m["00080018"]["Value"][0] for m in served) == sorted(
        pydicom.dcmread(io.BytesIO(s)).SOPInstanceUID for s in slices
    )
    uri = served[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith("http://testserver/dicomweb/studies/") and uri.endswith("/frames/1")


def test_a_document_that_does_not_cover_every_instance_is_not_used(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    access = clinician_access(personas)
    case = draft_case(access)
    with django_capture_on_commit_callbacks(execute=True):
        attach(access, case, zipped({f"{i}.dcm": s for i, s in enumerate(cbct_series("m2", slices=3, size=8))}), "cbct")
    series = Series.objects.get(study__case=case)
    Series.objects.filter(pk=series.pk).update(metadata_instances=2)
    series.refresh_from_db()
    assert metadata.load(series) is None
    assert len(metadata.entries_for(series)) == 3  # built from the instances instead


def test_one_job_per_slice_writes_the_document_once_when_the_last_one_ends(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # A folder dropped, or a series sent over STOW-RS: each slice is its own file and ingest job.
    access = clinician_access(personas)
    case = draft_case(access)
    with django_capture_on_commit_callbacks(execute=False):  # queued, as the worker finds them
        for data in cbct_series("one per slice", slices=3, size=8):
            attach(access, case, data, kind="cbct", label="cbct")
    jobs = list(IngestJob.objects.filter(case=case).order_by("created_at"))
    assert [j.state for j in jobs] == [IngestState.QUEUED] * 3
    written = []
    for job in jobs:
        studies.run(job)
        series = Series.objects.get(study__case=case)
        written.append((series.instance_count, series.metadata_instances))
    # No document while more slices wait; the last job writes one covering all of them.
    assert written == [(1, 0), (2, 0), (3, 3)]
    assert metadata.load(series) is not None


def _every_test_file() -> list[bytes]:
    """pydicom's own test files under 1 MB (those in its package: get_testdata_files() also
    looks for the ones it can download, which takes seconds)."""
    import pydicom.data

    root = Path(pydicom.data.__file__).parent
    names = sorted((root / "test_files").glob("*.dcm")) + sorted((root / "charset_files").glob("*.dcm"))
    return [name.read_bytes() for name in names if name.stat().st_size < 1 << 20]


def _converted(content: bytes, memo: metadata.Memo | None = None) -> dict[str, Any] | None:
    """The file's DICOM JSON, or None when pydicom cannot convert it (with or without a memo)."""
    try:
        return metadata.dataset_json(pydicom.dcmread(io.BytesIO(content), stop_before_pixels=True, force=True), memo)
    except Exception:
        return None


def test_remembering_converted_elements_across_datasets_gives_the_same_json() -> None:
    """An ingest converts each distinct element of a series once (metadata.dataset_json's memo):
    across pydicom's test files (character sets, implicit VR, big endian, private tags, sequences)
    read in turn with one memo, every result equals the conversion without it."""
    memo: metadata.Memo = {}
    files = _every_test_file()
    plain = [_converted(content) for content in files]
    for _ in range(2):  # the second pass is served from the memo
        assert [_converted(content, memo) for content in files] == plain
    assert sum(p is not None for p in plain) > 80 and len(memo) > 100


def test_an_element_read_under_another_character_set_is_not_taken_from_the_memo() -> None:
    """The same bytes of a name mean other letters under another Specific Character Set."""
    from pydicom.data import get_charset_files

    utf8 = Path(get_charset_files("chrX1.dcm")[0]).read_bytes()
    assert utf8.count(b"ISO_IR 192") == 1
    latin1 = utf8.replace(b"ISO_IR 192", b"ISO_IR 100")  # same length: every offset stays
    memo: metadata.Memo = {}
    first = metadata.dataset_json(pydicom.dcmread(io.BytesIO(utf8), stop_before_pixels=True), memo)["00100010"]
    second = metadata.dataset_json(pydicom.dcmread(io.BytesIO(latin1), stop_before_pixels=True), memo)["00100010"]
    assert second == metadata.dataset_json(pydicom.dcmread(io.BytesIO(latin1), stop_before_pixels=True))["00100010"]
    assert first != second
