"""Indexing DICOM into studies, series and instances: one file or a ZIP archive of hundreds,
outside any request and outside any long transaction. Each instance is stored as its own vault
object (so a viewer can fetch one slice), a malformed file is reported by its number while the
rest goes on, and an instance already indexed in the case is counted as a duplicate."""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any, cast

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from casebridge.audit.api import record
from casebridge.imaging import archive, metadata
from casebridge.imaging.dicom import DicomError, InstanceHeader, read_header
from casebridge.imaging.models import IngestJob, IngestState, Instance, Series, Study
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject
from casebridge.vault.reader import VersionReader

logger = logging.getLogger(__name__)
INGESTIBLE = frozenset({"dicom", "zip"})
PROGRESS_EVERY = 10  # entries between progress writes: the case page polls them


class _Entry:
    """One file to index: how to open it for its header and how to stream it whole."""

    def __init__(self, number: int, size: int, opener: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        self.number = number
        self.size = size
        self.open = opener


def _entries(source: StoredObject, reader: VersionReader) -> tuple[list[_Entry], zipfile.ZipFile | None]:
    if source.file_type == "dicom":
        stream = cast(IO[bytes], io.BufferedReader(reader, 1 << 16))
        return [_Entry(1, reader.seek(0, 2), lambda: nullcontext(stream))], None
    try:
        zipped = zipfile.ZipFile(reader)
    except zipfile.BadZipFile:
        raise archive.ArchiveRefused("The archive is damaged and cannot be read.") from None
    found = archive.members(zipped)

    def opener(member: archive.Member) -> Callable[[], AbstractContextManager[IO[bytes]]]:
        return lambda: zipped.open(member.info)

    return [_Entry(i, m.size, opener(m)) for i, m in enumerate(found, start=1)], zipped


def _header(entry: _Entry) -> InstanceHeader:
    with entry.open() as stream:
        head = stream.read(8)
        if archive.is_nested_archive(head):
            raise DicomError("an archive inside the archive is not accepted")
        stream.seek(0)
        return read_header(stream)


def _chunks(entry: _Entry, zipped: zipfile.ZipFile | None) -> Iterator[bytes]:
    with entry.open() as stream:
        stream.seek(0)
        left = entry.size
        while left > 0 and (block := stream.read(min(1 << 20, left))):
            left -= len(block)
            yield block
        if left or stream.read(1):
            raise archive.ArchiveRefused("An archive member's size differs from what the archive declares.")


def _index(job: IngestJob, header: InstanceHeader, stored: StoredObject) -> Any:
    """Index one instance; returns its series' id."""
    with transaction.atomic():
        study, _ = Study.objects.get_or_create(
            case=job.case,
            study_uid=header.study_uid,
            defaults={"organization": job.organization, "study_date": header.study_date},
        )
        spacing = header.pixel_spacing or (None, None)
        series, _ = Series.objects.get_or_create(
            study=study,
            series_uid=header.series_uid,
            defaults={
                "modality": header.modality,
                "series_number": header.series_number,
                "rows": header.rows,
                "columns": header.columns,
                "pixel_spacing_row": spacing[0],
                "pixel_spacing_column": spacing[1],
                "slice_thickness": header.slice_thickness,
                "manufacturer": header.manufacturer,
                "model": header.model,
                "transfer_syntax": header.transfer_syntax,
            },
        )
        Instance.objects.create(
            series=series,
            sop_instance_uid=header.sop_instance_uid,
            sop_class_uid=header.sop_class_uid,
            instance_number=header.instance_number,
            position_z=header.position_z,
            frames=header.frames,
            stored_object=stored,
        )
        Series.objects.filter(pk=series.pk).update(
            instance_count=F("instance_count") + 1, frame_count=F("frame_count") + header.frames
        )
    return series.pk


def already_indexed(case: Any, organization: Any, sop_instance_uid: str) -> bool:
    """Whether the case's studies (those `organization` added) hold this instance: indexing it
    again would be a duplicate. The ingest and STOW-RS (imaging/stow.py) ask the same question."""
    return Instance.objects.filter(
        series__study__case=case,
        series__study__organization=organization,
        sop_instance_uid=sop_instance_uid,
    ).exists()


def _is_duplicate(job: IngestJob, header: InstanceHeader) -> bool:
    return already_indexed(job.case, job.organization, header.sop_instance_uid)


def _store(job: IngestJob, entry: _Entry, zipped: zipfile.ZipFile | None) -> StoredObject:
    """The instance's own vault object: the source itself when it is a single DICOM file."""
    if zipped is None:
        return job.source
    version = vault.put_stream(
        organization=job.organization, actor=job.requested_by, chunks=_chunks(entry, zipped), length=entry.size
    )
    stored = version.stored_object
    # Part of the case's study, not a loose upload of the person who sent the archive.
    StoredObject.objects.filter(pk=stored.pk).update(attached_at=timezone.now())
    return stored


def _to_refresh(job: IngestJob, touched: set[Any]) -> list[Any]:
    """The series whose metadata documents this job writes. A scanner's STOW-RS of a CBCT, or a
    dropped folder, is one job per slice: each rewriting the document (every header of the
    series) would cost the square of the slices. While more jobs of the case wait, none is
    written; the last one writes every document of the case that covers fewer instances than
    its series holds. (Two jobs finishing at once may both leave it: a stale document is built
    on its first request instead, metadata.entries_for.)"""
    if job.case_id is None:
        return list(touched)
    waiting = IngestJob.objects.filter(
        case_id=job.case_id, state__in=[IngestState.QUEUED, IngestState.PROCESSING]
    ).exclude(pk=job.pk)
    if waiting.exists():
        return []
    stale = Series.objects.filter(study__case_id=job.case_id).exclude(metadata_instances=F("instance_count"))
    return list(touched | set(stale.values_list("pk", flat=True)))


def _progress(job: IngestJob, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    IngestJob.objects.filter(pk=job.pk).update(**fields)


def run(job: IngestJob) -> IngestJob:
    """Index the job's source. Safe to run again: what is already indexed counts as duplicate."""
    _progress(job, state=IngestState.PROCESSING, processed=0, imported=0, duplicates=0, errors=[], message="")
    try:
        reader = VersionReader(vault.get_version(job.source))
        entries, zipped = _entries(job.source, reader)
    except (archive.ArchiveRefused, vault.ObjectUnavailable) as exc:
        _progress(job, state=IngestState.FAILED, message=str(exc)[:200], finished_at=timezone.now())
        _audit(job)
        return job
    _progress(job, total=len(entries))
    errors: list[dict[str, Any]] = []
    imported = duplicates = 0
    touched: set[Any] = set()
    try:
        for entry in entries:
            try:
                header = _header(entry)
                if _is_duplicate(job, header):
                    duplicates += 1
                else:
                    touched.add(_index(job, header, _store(job, entry, zipped)))
                    imported += 1
            except DicomError as exc:
                errors.append({"entry": entry.number, "error": str(exc)})
            except (zipfile.BadZipFile, archive.ArchiveRefused) as exc:
                errors.append({"entry": entry.number, "error": str(exc) or "the archive entry is damaged"})
            if entry.number % PROGRESS_EVERY == 0 or entry.number == len(entries):
                _progress(job, processed=entry.number, imported=imported, duplicates=duplicates, errors=errors)
    finally:
        if zipped is not None:
            zipped.close()
    failed = imported == 0 and duplicates == 0
    metadata.refresh_after_ingest(_to_refresh(job, touched))  # before "done": a viewer opened then finds it
    _progress(
        job,
        state=IngestState.FAILED if failed else IngestState.DONE,
        message="No DICOM image could be read from this file." if failed else "",
        finished_at=timezone.now(),
    )
    _audit(job)
    return job


def _audit(job: IngestJob) -> None:
    case = job.case
    record(
        "imaging.ingested" if job.state == IngestState.DONE else "imaging.ingest_failed",
        actor=job.requested_by,
        organization=job.organization,
        target=job.source,
        patient_ref=str(case.patient_id) if case is not None else "",
        details={
            **({"case": case.number} if case is not None else {}),
            "entries": job.total,
            "imported": job.imported,
            "duplicates": job.duplicates,
            "errors": len(job.errors),
        },
    )
