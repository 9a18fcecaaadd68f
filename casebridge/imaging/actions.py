"""Writes of the imaging app, each checking the caller's access itself."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from casebridge.access.policy import OrgAccess, visible_cases
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.cases.models import Attachment, Case
from casebridge.imaging.models import IngestJob
from casebridge.imaging.studies import INGESTIBLE
from casebridge.vault.models import StoredObject


def start_ingest(access: OrgAccess, case: Case, stored: StoredObject) -> IngestJob:
    """Queue the indexing of a DICOM file or archive attached to `case`; the worker does the work.

    The caller must see the case, and the file must be one of its attachments: a study inherits
    the case's access, so it can only come from the case."""
    access.require(Perm.CASES_VIEW)
    if not visible_cases(access).filter(pk=case.pk).exists():
        raise ValidationError("No such case.")
    if not Attachment.objects.filter(case=case, stored_object=stored).exists():
        raise ValidationError("Only a file attached to this case can be indexed as its study.")
    if stored.file_type not in INGESTIBLE:
        raise ValidationError("Only DICOM files and ZIP archives of them hold studies.")
    actor = access.actor
    with transaction.atomic():
        job = IngestJob.objects.create(
            organization_id=stored.organization_id,
            case=case,
            source=stored,
            requested_by=actor if isinstance(actor, User) else None,
        )
        record(
            "imaging.ingest_queued",
            actor=actor,
            organization=access.organization,
            target=stored,
            patient_ref=str(case.patient_id),
            details={"case": case.number, "job": str(job.pk)},
        )
        transaction.on_commit(lambda: _enqueue(job))
    return job


def _enqueue(job: IngestJob) -> None:
    from casebridge.imaging.tasks import ingest_study

    ingest_study.enqueue(str(job.pk))
