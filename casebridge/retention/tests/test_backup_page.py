"""The backup page: owners and compliance officers see the last backup and restore test (times,
durations, counts; never patient data); nobody else does; the schedule starts what is due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings

from casebridge.core.testing import Personas, signed_in_client
from casebridge.retention import schedule
from casebridge.retention.models import BackupRun, RunKind

pytestmark = pytest.mark.django_db


def _runs() -> None:
    now = timezone.now()
    BackupRun.objects.create(
        kind=RunKind.BACKUP,
        destination="/mnt/b",
        set_id="20261203T010000Z-aaaaaa",
        started_at=now - timedelta(hours=5),
        finished_at=now - timedelta(hours=5),
        ok=True,
        files=48,
    )
    BackupRun.objects.create(
        kind=RunKind.RESTORE_TEST,
        destination="/mnt/b",
        set_id="20261203T010000Z-aaaaaa",
        started_at=now - timedelta(hours=4),
        finished_at=now - timedelta(hours=4),
        ok=True,
        files=48,
        rto_seconds=93.4,
        rpo_seconds=3600,
    )
    BackupRun.objects.create(
        kind=RunKind.RESTORE_TEST,
        destination="/mnt/b",
        started_at=now - timedelta(hours=1),
        finished_at=now - timedelta(hours=1),
        ok=False,
        problem="1 file(s) missing from the backup",
    )


@pytest.mark.parametrize("role", ["owner", "compliance_officer"])
def test_owners_and_compliance_officers_see_the_last_backup_restore_test_and_failures(
    personas: Personas, role: str
) -> None:
    _runs()
    page = signed_in_client(personas.members[role]).get(reverse("backups", args=[personas.practice.slug]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "set 20261203T010000Z-aaaaaa" in html and "in 93 s (RTO)" in html and "3600 s old (RPO)" in html
    assert "1 file(s) missing from the backup" in html and ">Backups</a>" in html


def test_the_3_2_1_status_counts_the_destinations_reached_this_week_and_an_off_site_one(personas: Personas) -> None:
    _runs()  # a folder: two copies, none off-site
    url = reverse("backups", args=[personas.practice.slug])
    client = signed_in_client(personas.members["owner"])
    assert "2 of 3 copies" in client.get(url).content.decode()
    assert "none off-site" in client.get(url).content.decode()
    now = timezone.now()
    for place, ago in (("restic:sftp:backup@offsite:/srv/cb", 2), ("restic:/mnt/usb", 30 * 24)):
        BackupRun.objects.create(
            kind=RunKind.BACKUP, destination=place, started_at=now - timedelta(hours=ago), finished_at=now, ok=True
        )

    html = client.get(url).content.decode()

    assert "3 of 3 copies" in html and "one of them off-site" in html and "met." in html


@pytest.mark.parametrize("role", ["clinician", "staff"])
def test_other_members_get_no_backup_page_nor_its_link(personas: Personas, role: str) -> None:
    client = signed_in_client(personas.members[role])
    assert client.get(reverse("backups", args=[personas.practice.slug])).status_code == 403
    assert ">Backups</a>" not in client.get(reverse("case_list", args=[personas.practice.slug])).content.decode()


def test_a_member_of_another_organization_gets_nothing(personas: Personas) -> None:
    page = signed_in_client(personas.outsider).get(reverse("backups", args=[personas.practice.slug]))
    assert page.status_code == 404


def test_with_no_backup_the_page_says_so_and_what_to_do(personas: Personas) -> None:
    html = signed_in_client(personas.members["owner"]).get(reverse("backups", args=[personas.practice.slug]))
    text = html.content.decode()
    assert "None yet" in text and "casebridge backup create" in text and "casebridge backup verify" in text


def test_a_backup_is_due_when_the_last_good_one_is_older_than_its_interval_and_retried_hourly() -> None:
    now = timezone.now()
    assert schedule.due(RunKind.BACKUP, 24)  # never ran
    good = BackupRun.objects.create(
        kind=RunKind.BACKUP,
        destination="d",
        started_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=2),
        ok=True,
    )
    assert not schedule.due(RunKind.BACKUP, 24)
    BackupRun.objects.filter(pk=good.pk).update(started_at=now - timedelta(hours=25))
    assert schedule.due(RunKind.BACKUP, 24)
    failed = BackupRun.objects.create(
        kind=RunKind.BACKUP,
        destination="d",
        started_at=now - timedelta(minutes=5),
        finished_at=now - timedelta(minutes=4),
        ok=False,
    )
    assert not schedule.due(RunKind.BACKUP, 24)  # a failure is retried after an hour, not every tick
    BackupRun.objects.filter(pk=failed.pk).update(finished_at=now - timedelta(hours=2))
    assert schedule.due(RunKind.BACKUP, 24)
    BackupRun.objects.create(kind=RunKind.BACKUP, destination="d", started_at=now - timedelta(minutes=1))
    assert not schedule.due(RunKind.BACKUP, 24)  # one is running


def test_nothing_is_scheduled_without_a_destination(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(schedule, "_start", started.append)
    settings.BACKUP_DESTINATION = ""
    schedule.run_due()
    assert started == []
    settings.BACKUP_DESTINATION = "/mnt/backups"
    schedule.run_due()
    assert started == [["backup", "create", "/mnt/backups"]]
