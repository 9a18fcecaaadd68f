"""Destruction certificates state until when copies may remain in backup sets, from the settings
that drive the sets' own retention (folder pruning, restic forget, the bucket's expiry), and say
plainly when there is no end."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from casebridge.cases.models import Case, Patient, Status
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging.tests.cases import attach, clinician_access, draft_case
from casebridge.retention import backup_window, policies
from casebridge.retention.certificate_pdf import render_certificate
from casebridge.retention.models import RecordType
from casebridge.vault.tests.samples import binary_stl

RUN = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@override_settings(BACKUP_DESTINATION="/mnt/backup", BACKUP_FOLDER_KEEP_DAYS=30, BACKUP_EVERY_HOURS=24)
def test_a_pruned_folder_holds_a_shredded_file_for_its_keep_days_plus_one_interval() -> None:
    window = backup_window.current()
    assert (window.destination, window.days) == ("folder", 30)
    assert window.until(RUN) == RUN + timedelta(days=31)


@override_settings(BACKUP_DESTINATION="restic:/srv/repo", BACKUP_EVERY_HOURS=24)
@override_settings(BACKUP_RESTIC_KEEP_DAILY=7, BACKUP_RESTIC_KEEP_WEEKLY=5)
def test_restic_keeps_it_until_the_weekly_snapshot_holding_it_is_forgotten() -> None:
    window = backup_window.current()
    assert (window.destination, window.days) == ("restic", 42)  # 7 x (5 + 1): the week it was in, then 5 more
    assert "--keep-daily 7 --keep-weekly 5" in window.rule
    assert window.until(RUN) == RUN + timedelta(days=43)
    with override_settings(BACKUP_RESTIC_KEEP_WEEKLY=0, BACKUP_RESTIC_KEEP_DAILY=10):
        assert backup_window.current().days == 10


@override_settings(BACKUP_DESTINATION="s3://bucket/site", BACKUP_S3_EXPIRE_DAYS=90, BACKUP_S3_LOCK_DAYS=35)
def test_a_bucket_holds_it_until_its_lifecycle_expiry_and_never_before_the_lock() -> None:
    assert backup_window.current().days == 90
    with override_settings(BACKUP_S3_EXPIRE_DAYS=20):
        assert backup_window.current().days == 35  # locked objects cannot expire earlier
    with override_settings(BACKUP_S3_EXPIRE_DAYS=0):
        window = backup_window.current()
        assert window.days is None and window.until(RUN) is None and "EXPIRE_DAYS" in window.rule


@pytest.mark.parametrize(
    "overrides",
    [
        {"BACKUP_DESTINATION": ""},
        {"BACKUP_DESTINATION": "/mnt/backup", "BACKUP_FOLDER_KEEP_DAYS": 0},
        {"BACKUP_DESTINATION": "restic:/srv/repo", "BACKUP_RESTIC_KEEP_DAILY": 0, "BACKUP_RESTIC_KEEP_WEEKLY": 0},
    ],
)
def test_without_a_pruning_rule_no_end_date_is_promised(overrides: dict[str, object]) -> None:
    with override_settings(**overrides):
        window = backup_window.current()
    assert window.days is None and window.until(RUN) is None and window.rule


def _shred_one(personas: Personas) -> Case:
    access = clinician_access(personas, "owner")
    policies.set_policy(access, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    case = draft_case(access)
    attach(access, case, binary_stl(700), kind="scan", label="upper")
    closed = timezone.now() - timedelta(days=9 * 365)
    Case.objects.filter(pk=case.pk).update(status=Status.COMPLETED, completed_at=closed)
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=date(1970, 1, 1))  # an adult: no minors' rule
    return case


@pytest.mark.django_db
@override_settings(BACKUP_DESTINATION="/mnt/backup", BACKUP_FOLDER_KEEP_DAYS=30, BACKUP_EVERY_HOURS=24)
def test_the_signed_certificate_and_its_pdf_state_the_backup_window(personas: Personas, vault_home: Path) -> None:
    _shred_one(personas)
    certificate = policies.enforce(personas.practice, now=RUN)
    assert certificate is not None

    backups = json.loads(certificate.body)["backups"]
    assert backups["copies_may_remain_until"] == (RUN + timedelta(days=31)).isoformat()
    assert backups["destination"] == "folder" and backups["window_days"] == 30
    assert policies.verify_certificate(certificate)  # the statement is signed with the rest
    url = reverse("retention_certificate", args=[personas.practice.slug, certificate.pk])
    pdf = signed_in_client(personas.members["compliance_officer"]).get(url)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Copies may remain in backup sets until: 2027-01-04 12:00 UTC" in text
    assert "Unrecoverable from backups too after: 2027-01-04 12:00 UTC" in text
    assert "older than 30 days are pruned" in text


@pytest.mark.django_db
@override_settings(BACKUP_DESTINATION="")
def test_a_certificate_says_when_no_end_can_be_stated_and_an_older_one_says_it_predates(
    personas: Personas, vault_home: Path
) -> None:
    _shred_one(personas)
    certificate = policies.enforce(personas.practice, now=RUN)
    assert certificate is not None
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(render_certificate(certificate, True))).pages)
    assert "without an end date" in text and "No scheduled backup destination" in text
    body = json.loads(certificate.body)
    del body["backups"]
    certificate.body = json.dumps(body)
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(render_certificate(certificate, True))).pages)
    assert "predates the statement of the backup window" in text
