"""Studies, series and instances indexed from DICOM files, and the background jobs that index
them. The pixels stay in the vault (one encrypted object per instance); these rows hold what a
viewer and a search need, never the patient's name, birth date or record numbers."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from casebridge.core.models import BaseModel


class Study(BaseModel):
    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="studies")
    study_uid = models.CharField(max_length=64)
    study_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "study_uid"], name="imaging_study_once_per_case")]

    def __str__(self) -> str:
        return f"study {self.pk}"


class Series(BaseModel):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16)
    series_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    columns = models.PositiveIntegerField(default=0)
    pixel_spacing_row = models.FloatField(null=True, blank=True)  # mm between rows
    pixel_spacing_column = models.FloatField(null=True, blank=True)
    slice_thickness = models.FloatField(null=True, blank=True)
    manufacturer = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=64, blank=True)
    transfer_syntax = models.CharField(max_length=64, blank=True)
    instance_count = models.PositiveIntegerField(default=0)
    frame_count = models.PositiveIntegerField(default=0)
    # Every instance's DICOM JSON header in one encrypted object (imaging/metadata.py), so that a
    # viewer opening the series reads one object instead of hundreds; with how many it covers.
    metadata_object = models.ForeignKey(
        "vault.StoredObject", null=True, blank=True, on_delete=models.SET_NULL, related_name="metadata_of_series"
    )
    metadata_instances = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["series_number", "created_at"]
        constraints = [models.UniqueConstraint(fields=["study", "series_uid"], name="imaging_series_once_per_study")]

    def __str__(self) -> str:
        return f"series {self.pk}"


class Instance(BaseModel):
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64)
    sop_class_uid = models.CharField(max_length=64, blank=True)
    instance_number = models.IntegerField(null=True, blank=True)
    position_z = models.FloatField(null=True, blank=True)
    frames = models.PositiveIntegerField(default=1)
    stored_object = models.OneToOneField("vault.StoredObject", on_delete=models.PROTECT, related_name="dicom_instance")

    class Meta:
        ordering = ["instance_number", "position_z", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["series", "sop_instance_uid"], name="imaging_instance_once_per_series")
        ]

    def __str__(self) -> str:
        return f"instance {self.pk}"


class IngestState(models.TextChoices):
    QUEUED = "queued", "Waiting to be processed"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class IngestJob(BaseModel):
    """Indexing one uploaded DICOM file or ZIP archive of a case, in the background."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="ingests")
    source = models.ForeignKey("vault.StoredObject", on_delete=models.PROTECT, related_name="ingests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=12, choices=IngestState.choices, default=IngestState.QUEUED)
    total = models.PositiveIntegerField(default=0)  # entries to look at (1 for a single file)
    processed = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    # One {"entry": n, "error": "..."} per file that could not be indexed. Entries are numbered,
    # never named: names inside an archive often carry the patient's name.
    errors = models.JSONField(default=list)
    message = models.CharField(max_length=200, blank=True)  # why the whole job failed
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["case", "-created_at"], name="imaging_ingest_case_recent")]

    def __str__(self) -> str:
        return f"ingest {self.pk}"

    @property
    def percent(self) -> int:
        return (
            100 if self.total == 0 and self.state == IngestState.DONE else (100 * self.processed) // max(1, self.total)
        )


class Thumbnail(BaseModel):
    """A small picture of a case's file (photo, X-ray, DICOM file, 3D scan) or of a DICOM series,
    made in the background at ingest (imaging/thumbnails.py). The picture is itself an encrypted
    vault object, like every other byte of a case; this row only says whose picture it is."""

    source = models.OneToOneField(
        "vault.StoredObject", null=True, blank=True, on_delete=models.CASCADE, related_name="thumbnail"
    )
    series = models.OneToOneField(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="thumbnail")
    # The source's version, or how many instances the series held, when the picture was made.
    made_from = models.PositiveIntegerField(default=0)
    image = models.OneToOneField("vault.StoredObject", on_delete=models.PROTECT, related_name="thumbnail_image")
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(source__isnull=False, series__isnull=True)
                | models.Q(source__isnull=True, series__isnull=False),
                name="imaging_thumbnail_of_one_thing",
            )
        ]

    def __str__(self) -> str:
        return f"thumbnail {self.pk}"


class PixelMask(BaseModel):
    """Rectangles an organization blanks in the images of one device model (issue 14, item 2),
    where that device burns text (often the patient's name) into the pixels. Applied by a
    de-identified export when Clean Pixel Data is chosen (deid/pixels.py)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    # As ingest recorded them on the series (DICOM Manufacturer, Manufacturer's Model Name).
    manufacturer = models.CharField(max_length=64)
    model = models.CharField(max_length=64)
    regions = models.JSONField(default=list)  # [[x, y, width, height], ...] in pixels
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["manufacturer", "model"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "manufacturer", "model"], name="imaging_mask_per_device")
        ]

    def __str__(self) -> str:
        return f"pixel mask {self.pk}"
