"""Background work of the imaging app: indexing DICOM files and archives."""

from __future__ import annotations

from django_tasks import task

from casebridge.imaging import studies
from casebridge.imaging.models import IngestJob, IngestState


@task()
def ingest_study(job_id: str) -> None:
    """Idempotent: a job already done is left alone; one a crashed worker left half done is run
    again, and what it had indexed counts as duplicates."""
    job = IngestJob.objects.select_related("case", "source", "organization", "requested_by").filter(pk=job_id).first()
    if job is None or job.state == IngestState.DONE:
        return
    studies.run(job)
