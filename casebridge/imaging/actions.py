"""Writes of the imaging app, each checking the caller's access itself."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from casebridge.access.policy import OrgAccess, visible_cases
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.cases.models import Attachment, Case
from casebridge.deid.pixels import MaskError, Region, parse_regions
from casebridge.imaging.models import IngestJob, Instance, PixelMask
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


def save_pixel_mask(access: OrgAccess, *, manufacturer: str, model: str, regions_text: str) -> PixelMask:
    """Create or replace the organization's mask for one device model; audited with the device
    and the rectangles (neither is about a patient)."""
    access.require(Perm.ORG_SETTINGS)
    manufacturer, model = manufacturer.strip(), model.strip()
    if not manufacturer or not model:
        raise ValidationError({"manufacturer": "Give the manufacturer and the model name as the device writes them."})
    if len(manufacturer) > 64 or len(model) > 64:
        raise ValidationError({"manufacturer": "DICOM keeps at most 64 characters of each."})
    try:
        regions = [list(region) for region in parse_regions(regions_text)]
    except MaskError as error:
        raise ValidationError({"regions": str(error)}) from error
    actor = access.actor if isinstance(access.actor, User) else None
    with transaction.atomic():
        mask, created = PixelMask.objects.update_or_create(
            organization=access.organization,
            manufacturer=manufacturer,
            model=model,
            defaults={"regions": regions, "updated_by": actor},
        )
        record(
            "deid.pixel_mask.saved",
            actor=access.actor,
            organization=access.organization,
            target=mask,
            details={"manufacturer": manufacturer, "model": model, "regions": regions, "created": created},
        )
    return mask


def delete_pixel_mask(access: OrgAccess, mask_id: Any) -> None:
    access.require(Perm.ORG_SETTINGS)
    with transaction.atomic():
        mask = PixelMask.objects.select_for_update().filter(organization=access.organization, pk=mask_id).first()
        if mask is None:
            raise ValidationError("No such mask.")
        record(
            "deid.pixel_mask.deleted",
            actor=access.actor,
            organization=access.organization,
            target=mask,
            details={"manufacturer": mask.manufacturer, "model": mask.model},
        )
        mask.delete()


def masks_for_files(organization: Any, file_ids: list[Any]) -> dict[Any, list[Region]]:
    """The organization's mask regions for each DICOM file whose series (as ingest recorded its
    manufacturer and model) has one."""
    masks: dict[tuple[str, str], list[Region]] = {
        (m.manufacturer, m.model): [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in m.regions]
        for m in PixelMask.objects.filter(organization=organization)
    }
    if not masks:
        return {}
    devices = Instance.objects.filter(stored_object_id__in=file_ids).values_list(
        "stored_object_id", "series__manufacturer", "series__model"
    )
    return {file_id: masks[(maker, model)] for file_id, maker, model in devices if (maker, model) in masks}
