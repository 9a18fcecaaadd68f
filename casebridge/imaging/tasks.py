"""Background work of the imaging app: indexing DICOM files and archives, and thumbnails."""

from __future__ import annotations

from django_tasks import task

from casebridge.imaging import studies, thumbnails
from casebridge.imaging.models import IngestJob, IngestState
from casebridge.vault.models import StoredObject


@task()
def ingest_study(job_id: str) -> None:
    """Idempotent: a job already done is left alone; one a crashed worker left half done is run
    again, and what it had indexed counts as duplicates."""
    job = IngestJob.objects.select_related("case", "source", "organization", "requested_by").filter(pk=job_id).first()
    if job is None or job.state == IngestState.DONE:
        return
    studies.run(job)
    thumbnails.make_after_ingest(job)


@task()
def thumbnail_file(stored_object_id: str) -> None:
    """The thumbnail of a file that joined a case (or got a new version): idempotent."""
    stored = StoredObject.objects.filter(pk=stored_object_id).first()
    if stored is not None:
        thumbnails.make_for_file(stored)
