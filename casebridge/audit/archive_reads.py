"""The review screen's "include the archive", read in the background with its progress shown.

Reading archived events means decrypting and scanning their segments one by one (audit/archive.py):
seconds for a year of a busy site, too long to hold a request. So the screen asks the task worker
(`read`) and shows a progress bar that follows `segments_done` of `segments_total`; when the read
is done the page shows the events it found below the recent ones, as before.

A read remembers the question (the page's filters and archive cursor, in the form `key` gives)
and the numbers of the newest matches (at most one page and one more, to know whether an older
page exists), never their content: the page reads those events from their segments again, so no
decrypted copy of the archive stays in the database. A read belongs to the person who asked in
the organization they asked for; anyone else gets nothing from its number. Reads are deleted a
day later (`purge`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils import timezone

from casebridge.audit import archive, history
from casebridge.audit.models import ArchiveRead, ArchiveReadState, ArchiveSegment
from casebridge.audit.queries import BadFilter, EventFilters, filters_from_query, for_archive

logger = logging.getLogger(__name__)

KEEP_FOR = timedelta(days=1)
PROGRESS_EVERY = 0.25  # seconds between two progress writes


def cursor_of(value: str) -> int | None:
    """The archive cursor of a page's `archived_before` (None: from the archive's newest event)."""
    return int(value) if value.isdigit() and int(value) > 0 else None


def key(filters: EventFilters, archived_before: int | None) -> str:
    """The question a read answers: the filters (normalised) and the archive cursor."""
    values = dict(filters.as_details())
    if archived_before:
        values["archived_before"] = str(archived_before)
    return urlencode(sorted(values.items()))


def start(organization: Any, user: Any, question: str, *, limit: int) -> ArchiveRead:
    """A new read of the archive (keeping the newest `limit` matches), queued for the worker."""
    from casebridge.audit.tasks import read_archive

    job = ArchiveRead.objects.create(organization=organization, user=user, query=question)
    read_archive.enqueue(str(job.pk), limit)
    return job


def find(read_id: str, organization: Any, user: Any, question: str | None = None) -> ArchiveRead | None:
    """The caller's own read by its number (and for this question, when given); None for
    anyone else's, a malformed number or one that has been purged."""
    try:
        number = uuid.UUID(read_id)
    except ValueError:  # a malformed number in the query string
        return None
    job = ArchiveRead.objects.filter(pk=number, organization=organization, user=user).first()
    if job is None or (question is not None and job.query != question):
        return None
    return job


def read(read_id: str, *, limit: int) -> None:
    """The task: scan the segments for the read's question, recording progress as it goes and
    the newest `limit` matches at the end. Idempotent: a finished read is left alone, one a
    crashed worker left half done starts again."""
    job = ArchiveRead.objects.filter(pk=read_id).first()
    if job is None or job.state in (ArchiveReadState.DONE, ArchiveReadState.FAILED):
        return
    query = QueryDict(job.query)
    try:
        filters = filters_from_query(query)
    except BadFilter:  # cannot happen for a key() the page made; refuse rather than guess
        _finish(job, ArchiveReadState.FAILED)
        return
    wanted = for_archive(job.organization_id, filters, cursor_of(query.get("archived_before", "")))
    ArchiveRead.objects.filter(pk=job.pk).update(state=ArchiveReadState.READING, segments_done=0)
    last_write = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last_write
        now = time.monotonic()
        if done in (0, total) or now - last_write >= PROGRESS_EVERY:
            ArchiveRead.objects.filter(pk=job.pk).update(segments_done=done, segments_total=total)
            last_write = now

    newest: deque[tuple[int, int]] = deque(maxlen=limit)
    try:
        for values in archive.search(wanted, progress=progress):
            newest.append((int(values["id"]), int(values["seq"])))
    except archive.ArchiveError:
        logger.exception("the archive read %s could not read a segment", job.pk)
        _finish(job, ArchiveReadState.FAILED)
        return
    job.found = [list(pair) for pair in newest]
    _finish(job, ArchiveReadState.DONE)


def _finish(job: ArchiveRead, state: str) -> None:
    job.state = state
    job.finished_at = timezone.now()
    job.save(update_fields=["state", "found", "finished_at"])  # segments_done: progress() wrote it


def reading_of(job: ArchiveRead) -> history.Reading:
    """What a finished read found, as a Reading (events oldest first), the events read again
    from the segments that hold them (in sequence order, as the read found them)."""
    reading = history.Reading([], segments=job.segments_done)
    wanted = {int(seq) for _pk, seq in job.found}
    if not wanted:
        return reading
    holding = ArchiveSegment.objects.filter(
        first_seq__lte=max(wanted), last_seq__gte=min(wanted), destroyed_at__isnull=True
    )
    reading.only(
        [
            history.as_event(event.values)
            for segment in holding.order_by("first_seq")
            for event in archive.events(segment)
            if event.seq in wanted
        ]
    )
    return reading


def purge(now: datetime | None = None) -> int:
    """Delete reads older than KEEP_FOR (housekeeping)."""
    cutoff = (now or timezone.now()) - KEEP_FOR
    deleted, _ = ArchiveRead.objects.filter(created_at__lt=cutoff).delete()
    return deleted
