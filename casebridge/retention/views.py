"""The backup status page: what owners and compliance officers need to know about the
installation's backups (no patient data: times, counts, durations)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.roles import Perm
from casebridge.retention.models import BackupRun, RunKind
from casebridge.retention.schedule import restore_tests_configured


@require_GET
@org_permission(Perm.COMPLIANCE_MANAGE)
def backups(request: HttpRequest) -> HttpResponse:
    runs = BackupRun.objects.order_by("-started_at")
    last_backup = runs.filter(kind=RunKind.BACKUP, ok=True).first()
    last_test = runs.filter(kind=RunKind.RESTORE_TEST, ok=True).first()
    copies = 1 + (1 if settings.BACKUP_DESTINATION or last_backup else 0)
    return render(
        request,
        "retention/backups.html",
        {
            "nav": "backups",
            "last_backup": last_backup,
            "last_test": last_test,
            "failures": [r for r in runs[:20] if r.finished_at and not r.ok],
            "recent": runs[:10],
            "scheduled": bool(settings.BACKUP_DESTINATION),
            "every_hours": settings.BACKUP_EVERY_HOURS,
            "tests_scheduled": bool(settings.BACKUP_DESTINATION) and restore_tests_configured(),
            "test_every_days": settings.RESTORE_TEST_EVERY_HOURS // 24,
            "copies": copies,
        },
    )
