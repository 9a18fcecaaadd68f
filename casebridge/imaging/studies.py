"""Indexing DICOM into studies, series and instances: one file or a ZIP archive of hundreds,
outside any request and outside any long transaction. Each instance is a vault object of its own
(so a viewer can fetch one slice), a malformed file is reported by its number while the rest goes
on, and an instance already indexed in the case is counted as a duplicate.

A slice stored uncompressed in the archive (a browser's dropped folder, most scanners' exports)
is an extent of the archive (vault.extent_of): its bytes stay where they are, encrypted once,
and the instance costs rows, not a second copy, encryption, file and sync. A compressed member
is sealed anew. A big archive's files are read (and sealed) by forked helper processes, one per
CPU, while the worker indexes what they hand back in the archive's order (docs/performance.md)."""

from __future__ import annotations

import io
import logging
import time
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from typing import IO, Any, cast
from uuid import uuid4

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from casebridge.audit.api import record
from casebridge.core import forking
from casebridge.imaging import archive, metadata
from casebridge.imaging.dicom import DicomError, InstanceHeader, header_of, parse_header
from casebridge.imaging.models import IngestJob, IngestState, Instance, Series, Study
from casebridge.vault import api as vault
from casebridge.vault import keystore
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.reader import VersionReader

logger = logging.getLogger(__name__)
INGESTIBLE = frozenset({"dicom", "zip"})
# Between progress writes (each a commit, fsynced): the case page polls them every second or so.
# A batch's flush writes progress too, and so does the last entry.
PROGRESS_SECONDS = 0.25
# Instances sealed before they are made durable together (one barrier, not one fsync each) and
# indexed in one transaction; bounded so a crash redoes little and progress keeps moving.
BATCH_INSTANCES = 64
BATCH_BYTES = 64 << 20
# An archive of this many files or more is read and sealed by forked helpers, one per CPU
# (IMAGING_INGEST_PROCESSES), each given runs of HELPER_RUN neighbouring files (they share the
# archive's encrypted segments); the worker indexes what they hand back, in the archive's order.
PARALLEL_FROM = 64
HELPER_RUN = 16


Opener = Callable[[], AbstractContextManager[IO[bytes]]]


class _Entry:
    """One file to index: how to stream it whole, how to open it for its header when that is
    cheaper (a member stored uncompressed is read in place), and, for an archive's member, which."""

    def __init__(
        self, number: int, size: int, opener: Opener, member: archive.Member | None = None, header: Opener | None = None
    ) -> None:
        self.number = number
        self.size = size
        self.open = opener
        self.open_header = header or opener
        self.member = member


def _entries(source: StoredObject, reader: VersionReader) -> tuple[list[_Entry], zipfile.ZipFile | None]:
    if source.file_type == "dicom":
        stream = cast(IO[bytes], io.BufferedReader(reader, 1 << 16))
        return [_Entry(1, reader.seek(0, 2), lambda: nullcontext(stream))], None
    try:
        zipped = zipfile.ZipFile(reader)
    except zipfile.BadZipFile:
        raise archive.ArchiveRefused("The archive is damaged and cannot be read.") from None
    found = archive.members(zipped)

    def opener(member: archive.Member) -> Opener:
        return lambda: zipped.open(member.info)  # checks the member's CRC-32 when read to its end

    def in_place(member: archive.Member) -> Opener | None:
        if member.info.compress_type != zipfile.ZIP_STORED:
            return None
        return lambda: archive.open_stored(zipped, member)

    return [_Entry(i, m.size, opener(m), m, in_place(m)) for i, m in enumerate(found, start=1)], zipped


def _header(entry: _Entry, memo: metadata.Memo) -> tuple[InstanceHeader, dict[str, Any] | None]:
    """What the index needs, and the DICOM JSON the series' metadata document holds, from one
    parse of the header (None when a value cannot be put in JSON: the document then reads that
    instance from the vault, as for instances indexed before)."""
    with entry.open_header() as stream:
        head = stream.read(8)
        if archive.is_nested_archive(head):
            raise DicomError("an archive inside the archive is not accepted")
        stream.seek(0)
        dataset = parse_header(stream)
    header = header_of(dataset)
    try:
        return header, metadata.dataset_json(dataset, memo)
    except Exception:  # pydicom refuses malformed values (an IS of "1A") only when converting them
        return header, None


def _chunks(entry: _Entry, zipped: zipfile.ZipFile | None) -> Iterator[bytes]:
    with entry.open() as stream:
        stream.seek(0)
        left = entry.size
        while left > 0 and (block := stream.read(min(1 << 20, left))):
            left -= len(block)
            yield block
        if left or stream.read(1):
            raise archive.ArchiveRefused("An archive member's size differs from what the archive declares.")


class _Batch:
    """Instances of one job sealed but not yet recorded: made durable together, then indexed in
    one transaction. Nothing in it is visible, nor counted as imported, until flush() commits."""

    def __init__(self) -> None:
        self.items: list[tuple[InstanceHeader, vault.PendingVersion | None, dict[str, Any] | None]] = []
        self.sop_uids: set[str] = set()
        self.bytes = 0
        self._org_key: tuple[int, bytes] | None = None

    def org_key(self, organization_id: Any) -> tuple[int, bytes]:
        """The organization's current key, looked up once per batch rather than once a slice."""
        if self._org_key is None:
            self._org_key = keystore.current_org_key(organization_id)
        return self._org_key

    def full(self) -> bool:
        return len(self.items) >= BATCH_INSTANCES or self.bytes >= BATCH_BYTES

    def discard(self) -> None:
        for _, pending, _ in self.items:
            if pending is not None:
                vault.discard(pending)
        self.clear()

    def clear(self) -> None:
        self.items.clear()
        self.sop_uids.clear()
        self.bytes = 0
        self._org_key = None


class _Index:
    """The job's studies and series by UID, made once each, and what its instances add to them."""

    def __init__(self, job: IngestJob) -> None:
        self.job = job
        self.studies: dict[str, Study] = {}
        self.series: dict[tuple[str, str], Series] = {}

    def series_for(self, header: InstanceHeader) -> Series:
        key = (header.study_uid, header.series_uid)
        if key in self.series:
            return self.series[key]
        study = self.studies.get(header.study_uid)
        if study is None:
            study, _ = Study.objects.get_or_create(
                case=self.job.case,
                study_uid=header.study_uid,
                defaults={"organization": self.job.organization, "study_date": header.study_date},
            )
            self.studies[header.study_uid] = study
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
        self.series[key] = series
        return series


def _flush(
    job: IngestJob, batch: _Batch, index: _Index, known: dict[str, dict[str, Any]], indexed: set[str]
) -> tuple[set[Any], int]:
    """Make the batch's content durable, then link and index all of it in one transaction; the
    ids of the series it added to, and how many of its instances another job of the case had
    indexed meanwhile (duplicates after all). An instance counts as stored only once this returns."""
    if not batch.items:
        return set(), 0
    added: dict[Any, list[int]] = {}
    try:
        vault.sync(pending for _, pending, _ in batch.items if pending is not None)
        with transaction.atomic():
            late = _indexed_uids(job, among=batch.sop_uids)
            fresh = [item for item in batch.items if item[0].sop_instance_uid not in late]
            pendings = [pending for _, pending, _ in fresh if pending is not None]
            # Part of the case's study, not loose uploads of the person who sent the archive.
            versions = iter(vault.link_new_versions(pendings, actor=job.requested_by, attached_at=timezone.now()))
            rows = []
            for header, pending, _ in fresh:
                stored_id = job.source_id if pending is None else next(versions).stored_object_id
                series = index.series_for(header)
                rows.append(
                    Instance(
                        series=series,
                        sop_instance_uid=header.sop_instance_uid,
                        sop_class_uid=header.sop_class_uid,
                        instance_number=header.instance_number,
                        position_z=header.position_z,
                        frames=header.frames,
                        stored_object_id=stored_id,
                    )
                )
                counts = added.setdefault(series.pk, [0, 0])
                counts[0] += 1
                counts[1] += header.frames
            Instance.objects.bulk_create(rows)
            for series_id, (instances, frames) in added.items():
                Series.objects.filter(pk=series_id).update(
                    instance_count=F("instance_count") + instances, frame_count=F("frame_count") + frames
                )
    except BaseException:
        batch.discard()
        raise
    for header, pending, meta in batch.items:
        if header.sop_instance_uid in late:
            if pending is not None:
                vault.discard(pending)
        elif meta is not None:
            known[header.sop_instance_uid] = meta
        indexed.add(header.sop_instance_uid)
    duplicates = len(batch.items) - len(fresh)
    batch.clear()
    return set(added), duplicates


def forget_destroyed(destroyed: list[StoredObject], *, reason: str) -> None:
    """What was made of files just destroyed (each file, and those vault.destroy_object returned
    as held in it): their thumbnails, and their DICOM instances' place in the studies. Every
    destruction of a file (cases.actions.destroy_file, retention) ends here."""
    from casebridge.imaging import thumbnails

    for stored in destroyed:
        thumbnails.destroy_for(stored, reason=reason)
    unindex_destroyed(destroyed, reason=reason)


def unindex_destroyed(destroyed: list[StoredObject], *, reason: str) -> int:
    """Take instances whose content was just destroyed (a single DICOM file, or the slices held
    in a destroyed archive: vault.destroy_object returns them) out of the index, with what was
    made of them: their series' metadata documents, which hold their headers, and the series'
    pictures are crypto-shredded (a series that keeps instances gets its document rebuilt on first
    use); a series or study left without instances goes. How many instances were taken out."""
    ids = [stored.pk for stored in destroyed]
    series_ids = set(Instance.objects.filter(stored_object_id__in=ids).values_list("series_id", flat=True))
    if not series_ids:
        return 0
    from casebridge.imaging import thumbnails

    why = f"instances of its series were destroyed: {reason}"[:200]
    for series in Series.objects.filter(pk__in=series_ids).select_related("metadata_object", "study__case"):
        document, case = series.metadata_object, series.study.case
        if document is not None:
            thumbnails.destroy_for(document, reason=why)  # the series' picture
            vault.destroy_object(
                document,
                actor=None,
                reason=why,
                record_in=case.practice_id if case is not None else None,
                patient_ref=str(case.patient_id) if case is not None else "",
            )
    taken = 0
    with transaction.atomic():
        for series in Series.objects.select_for_update().filter(pk__in=series_ids):
            gone = Instance.objects.filter(series=series, stored_object_id__in=ids)
            totals = gone.aggregate(count=Count("pk"), frames=Sum("frames"))
            gone.delete()
            taken += totals["count"]
            Series.objects.filter(pk=series.pk).update(
                instance_count=F("instance_count") - totals["count"],
                frame_count=F("frame_count") - (totals["frames"] or 0),
                metadata_object=None,
                metadata_instances=0,
            )
        empty = Series.objects.filter(pk__in=series_ids, instances__isnull=True)
        studies = set(empty.values_list("study_id", flat=True))
        empty.delete()
        Study.objects.filter(pk__in=studies, series__isnull=True).delete()
        kept = [str(pk) for pk in Series.objects.filter(pk__in=series_ids).values_list("pk", flat=True)]
        transaction.on_commit(lambda: _picture_again(kept))
    return taken


def _picture_again(series_ids: list[str]) -> None:
    """A new picture for each series that kept instances (its old one showed a destroyed slice)."""
    from casebridge.imaging.tasks import thumbnail_series

    for series_id in series_ids:
        thumbnail_series.enqueue(series_id)


def already_indexed(case: Any, organization: Any, sop_instance_uid: str) -> bool:
    """Whether the case's studies (those `organization` added) hold this instance: indexing it
    again would be a duplicate. The ingest and STOW-RS (imaging/stow.py) ask the same question."""
    return Instance.objects.filter(
        series__study__case=case,
        series__study__organization=organization,
        sop_instance_uid=sop_instance_uid,
    ).exists()


def _indexed_uids(job: IngestJob, among: set[str] | None = None) -> set[str]:
    """already_indexed() for many instances in one query: the SOP Instance UIDs the case's
    studies (those the job's organization added) hold, all of them or those `among`."""
    found = Instance.objects.filter(series__study__case=job.case, series__study__organization=job.organization)
    if among is not None:
        found = found.filter(sop_instance_uid__in=among)
    return set(found.values_list("sop_instance_uid", flat=True))


def _seal(
    job: IngestJob, entry: _Entry, zipped: zipfile.ZipFile | None, org_key: tuple[int, bytes], source: ObjectVersion
) -> vault.PendingVersion | None:
    """The instance's own vault content, not yet durable nor linked (None: a single DICOM file
    is its own instance, already stored). A member stored uncompressed in an archive of the
    job's organization is an extent of the archive (vault.extent_of): a file of its own whose
    bytes are the archive's, neither copied nor encrypted again. Any other is sealed anew."""
    if zipped is None:
        return None
    member = entry.member
    if (
        member is not None
        and member.info.compress_type == zipfile.ZIP_STORED
        and source.stored_object.organization_id == job.organization_id
    ):
        return _extent(zipped, member, source)
    return vault.seal_version(
        organization_id=job.organization_id,
        object_id=uuid4(),
        version=1,
        chunks=_chunks(entry, zipped),
        length=entry.size,
        durable=False,
        org_key=org_key,
    )


def _extent(zipped: zipfile.ZipFile, member: archive.Member, source: ObjectVersion) -> vault.PendingVersion:
    """The member as an extent of the archive, once its bytes (read for the new file's SHA-256)
    match the CRC-32 the archive declares for them."""
    crc = 0

    def check(piece: memoryview) -> None:
        nonlocal crc
        crc = zlib.crc32(piece, crc)

    try:
        extent = vault.extent_of(
            source,
            offset=archive.data_offset(zipped, member),
            length=member.size,
            observe=check,
            reader=zipped.fp if isinstance(zipped.fp, VersionReader) else None,  # its segment, decrypted already
        )
    except ValueError:  # the member's range runs past the archive's end
        raise archive.ArchiveRefused("An archive member's size differs from what the archive declares.") from None
    if crc != member.info.CRC:
        raise zipfile.BadZipFile("the file's checksum does not match the archive's (damaged in transit?)")
    return extent


# What one file gave: its header, or why it cannot be indexed (the error is that file's alone).
_ENTRY_ERRORS = (DicomError, zipfile.BadZipFile, archive.ArchiveRefused)


@dataclass(frozen=True)
class _Read:
    header: InstanceHeader
    meta: dict[str, Any] | None
    pending: vault.PendingVersion | None = None  # sealed ahead by a helper (an archive's files only)


_Outcome = _Read | DicomError | zipfile.BadZipFile | archive.ArchiveRefused


def _read_here(entries: list[_Entry]) -> Generator[tuple[_Entry, _Outcome]]:
    """Each file's header, read in this process; the worker seals only what is not a duplicate."""
    memo: metadata.Memo = {}
    for entry in entries:
        try:
            header, meta = _header(entry, memo)
        except _ENTRY_ERRORS as exc:
            yield entry, exc
        else:
            yield entry, _Read(header, meta)


_FORKED: dict[str, Any] = {}  # what the helpers inherit: the job, its archive and the key to seal with


def _read_and_seal(numbers: range) -> list[_Outcome]:
    """In a forked helper: read and seal the files numbered `numbers`. Content sealed before an
    unexpected error (not a file's own) is removed: the worker never hears of it."""
    job, entries, zipped, org_key = _FORKED["job"], _FORKED["entries"], _FORKED["zipped"], _FORKED["org_key"]
    source, memo = _FORKED["source"], _FORKED["memo"]
    outcomes: list[_Outcome] = []
    try:
        for number in numbers:
            entry = entries[number - 1]
            try:
                header, meta = _header(entry, memo)
                outcomes.append(_Read(header, meta, pending=_seal(job, entry, zipped, org_key, source)))
            except _ENTRY_ERRORS as exc:
                outcomes.append(exc)
    except BaseException:
        _discard(outcomes)
        raise
    return outcomes


def _discard(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, _Read) and outcome.pending is not None:
            vault.discard(outcome.pending)


def _helpers(entries: list[_Entry], zipped: zipfile.ZipFile | None) -> int:
    """How many helper processes read and seal this job's files: none (0) for a single file, a
    small archive, one CPU, or a process whose other threads may not stop for a fork."""
    configured = settings.IMAGING_INGEST_PROCESSES
    wanted = configured if configured > 0 else forking.cpus()
    if zipped is None or len(entries) < PARALLEL_FROM or wanted < 2 or not forking.may_fork():
        return 0
    return wanted


def _read_in_helpers(
    job: IngestJob, entries: list[_Entry], zipped: zipfile.ZipFile, source: ObjectVersion, helpers: int
) -> Generator[tuple[_Entry, _Outcome]]:
    """Each file's header and sealed content from `helpers` forked processes, in the archive's
    order while they work ahead. Whatever they sealed that the caller did not take (it stopped
    early) is removed when this generator is closed."""
    runs = [range(lo, min(lo + HELPER_RUN, len(entries) + 1)) for lo in range(1, len(entries) + 1, HELPER_RUN)]
    # The key for the whole job, as a batch uses one for its 64 files: a rotation meanwhile
    # leaves these sealed under the previous key version, which stays readable.
    _FORKED.update(
        job=job,
        entries=entries,
        zipped=zipped,
        source=source,
        org_key=keystore.current_org_key(job.organization_id),
        memo={},  # each helper fills its own copy
    )
    futures: list[Future[list[_Outcome]]] = []
    position, taken = 0, 0  # the run being handed out, and how many of its files were
    try:
        with forking.quiet():
            pool = ProcessPoolExecutor(
                helpers, mp_context=forking.context(), initializer=forking.leave_inherited_connections
            )
            futures.append(pool.submit(_read_and_seal, runs[0]))  # forks the helpers
        with pool:
            futures.extend(pool.submit(_read_and_seal, numbers) for numbers in runs[1:])
            try:
                while position < len(runs):
                    outcomes = futures[position].result()
                    while taken < len(outcomes):
                        taken += 1  # the caller owns this file's content from here
                        yield entries[runs[position][taken - 1] - 1], outcomes[taken - 1]
                    position, taken = position + 1, 0
            finally:
                _discard_untaken(futures[position:], taken)
    finally:
        _FORKED.clear()


def _discard_untaken(futures: list[Future[list[_Outcome]]], taken: int) -> None:
    """Remove what the helpers sealed past the files handed out: the first run from `taken` on,
    the later runs whole (those not started are cancelled)."""
    for index, future in enumerate(futures):
        if future.cancel() or future.exception() is not None:
            continue
        _discard(future.result()[taken if index == 0 else 0 :])


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
        source = vault.get_version(job.source)
        entries, zipped = _entries(job.source, VersionReader(source))
    except (archive.ArchiveRefused, vault.ObjectUnavailable) as exc:
        _progress(job, state=IngestState.FAILED, message=str(exc)[:200], finished_at=timezone.now())
        _audit(job)
        return job
    _progress(job, total=len(entries))
    errors: list[dict[str, Any]] = []
    imported = duplicates = 0
    touched: set[Any] = set()
    batch, index = _Batch(), _Index(job)
    indexed = _indexed_uids(job)
    known: dict[str, dict[str, Any]] = {}  # DICOM JSON headers of what this job indexed, by SOP UID
    next_progress = time.monotonic() + PROGRESS_SECONDS
    helpers = _helpers(entries, zipped)
    reads = (
        _read_in_helpers(job, entries, zipped, source, helpers)
        if helpers and zipped is not None
        else _read_here(entries)
    )
    try:
        with closing(reads):
            for entry, outcome in reads:
                try:
                    if not isinstance(outcome, _Read):
                        raise outcome
                    header = outcome.header
                    if header.sop_instance_uid in batch.sop_uids or header.sop_instance_uid in indexed:
                        duplicates += 1
                        if outcome.pending is not None:
                            vault.discard(outcome.pending)
                    else:
                        pending = outcome.pending or _seal(
                            job, entry, zipped, batch.org_key(job.organization_id), source
                        )
                        batch.items.append((header, pending, outcome.meta))
                        batch.sop_uids.add(header.sop_instance_uid)
                        batch.bytes += entry.size
                except DicomError as exc:
                    errors.append({"entry": entry.number, "error": str(exc)})
                except (zipfile.BadZipFile, archive.ArchiveRefused) as exc:
                    errors.append({"entry": entry.number, "error": str(exc) or "the archive entry is damaged"})
                flushed = batch.full() or entry.number == len(entries)
                if flushed:
                    count = len(batch.items)
                    series_ids, late = _flush(job, batch, index, known, indexed)
                    touched |= series_ids
                    imported, duplicates = imported + count - late, duplicates + late
                if flushed or time.monotonic() >= next_progress:
                    _progress(job, processed=entry.number, imported=imported, duplicates=duplicates, errors=errors)
                    next_progress = time.monotonic() + PROGRESS_SECONDS
    finally:
        batch.discard()  # what an error left unlinked
        if zipped is not None:
            zipped.close()
    failed = imported == 0 and duplicates == 0
    # Before "done": a viewer opened then finds it.
    metadata.refresh_after_ingest(_to_refresh(job, touched), known)
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
