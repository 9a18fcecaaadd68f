"""Background work of the imaging app: indexing DICOM files and archives, and thumbnails."""

from __future__ import annotations

from django_tasks import task

from casebridge.imaging import studies, thumbnails
from casebridge.imaging.models import IngestJob, IngestState, Series
from casebridge.vault.models import StoredObject

# Pictures wait for indexing: the worker takes tasks by priority, so a study dropped next is
# indexed before the pictures of the one before are made (each picture is a task of its own, so
# an ingest waits for one picture at most, not for a whole set of series).
THUMBNAIL_PRIORITY = -10


@task()
def ingest_study(job_id: str) -> None:
    """Idempotent: a job already done is left alone; one a crashed worker left half done is run
    again, and what it had indexed counts as duplicates."""
    job = IngestJob.objects.select_related("case", "source", "organization", "requested_by").filter(pk=job_id).first()
    if job is None or job.state == IngestState.DONE:
        return
    studies.run(job)
    for series_id in thumbnails.series_to_picture(job):
        thumbnail_series.enqueue(str(series_id))


@task(priority=THUMBNAIL_PRIORITY)
def thumbnail_series(series_id: str) -> None:
    """The picture of a series after its ingest (and of each image, for an X-ray set): idempotent."""
    series = Series.objects.select_related("study").filter(pk=series_id).first()
    if series is not None:
        thumbnails.make_for_series_after_ingest(series)


@task(priority=THUMBNAIL_PRIORITY)
def thumbnail_file(stored_object_id: str) -> None:
    """The thumbnail of a file that joined a case (or got a new version): idempotent."""
    stored = StoredObject.objects.filter(pk=stored_object_id).first()
    if stored is not None:
        thumbnails.make_for_file(stored)
