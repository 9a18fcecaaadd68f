"""The backup status page (no patient data: times, counts, durations) and the retention page:
policies, legal holds, the next run's preview, postponement and destruction certificates."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.core.params import uuid_or_none
from casebridge.retention import policies
from casebridge.retention.models import (
    BackupRun,
    DeclaredStateRule,
    DestructionCertificate,
    LegalHold,
    RecordType,
    RetentionPolicy,
    RunKind,
)
from casebridge.retention.schedule import restore_tests_configured


@require_GET
@org_permission(Perm.COMPLIANCE_MANAGE)
def backups(request: HttpRequest) -> HttpResponse:
    runs = BackupRun.objects.order_by("-started_at")
    last_backup = runs.filter(kind=RunKind.BACKUP, ok=True).first()
    last_test = runs.filter(kind=RunKind.RESTORE_TEST, ok=True).first()
    # 3-2-1: the live data plus each destination a backup reached in the last week; off-site is a
    # bucket or a restic repository on another host (sftp:, rest:, s3:, ...), not a local path.
    recent_places = set(
        runs.filter(kind=RunKind.BACKUP, ok=True, started_at__gte=timezone.now() - timedelta(days=8)).values_list(
            "destination", flat=True
        )
    )
    if settings.BACKUP_DESTINATION and not recent_places:
        recent_places.add(settings.BACKUP_DESTINATION)
    copies = 1 + len(recent_places)
    offsite = any(_off_site(place) for place in recent_places)
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
            "offsite": offsite,
        },
    )


def _off_site(destination: str) -> bool:
    if destination.startswith("s3://"):
        return True
    location = destination.removeprefix("restic:")
    return destination.startswith("restic:") and ":" in location.split("/", 1)[0]


# --- retention ----------------------------------------------------------------------------
UNITS = {"days": 1, "years": 365}


def _keep_days(post: Any) -> int | None:
    raw = post.get("keep", "").strip()
    if raw in ("", "forever"):
        return None
    try:
        amount = float(raw)
    except ValueError:
        raise ValidationError("Enter a number of days or years, or leave it empty to keep for ever.") from None
    if amount <= 0 or amount > 100 * 365:
        raise ValidationError("Enter a period between a day and a hundred years.")
    return round(amount * UNITS.get(post.get("unit", "years"), 365))


@org_permission(Perm.COMPLIANCE_MANAGE)
def retention(request: HttpRequest) -> HttpResponse:
    """Policies per type of record, legal holds, the next run's preview and postponement, and the
    destruction certificates of past runs."""
    access = org_access_of(request)
    errors: dict[str, str] = {}
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        try:
            message = _apply(access, operation, request.POST)
        except PermissionDenied:
            raise
        except ValidationError as exc:
            errors[operation] = " ".join(exc.messages)
        else:
            messages.success(request, message)
            return redirect(reverse("retention", args=[access.organization.slug]))
    elif request.method != "GET":
        return HttpResponse(status=405)
    organization = access.organization
    items, kept = policies.due(organization)
    by_case: dict[str, dict[str, int]] = {}
    for item in items:
        counts = by_case.setdefault(item.case.number if item.case is not None else "", {})
        counts[item.kind] = counts.get(item.kind, 0) + 1
    current = {p.record_type: p for p in RetentionPolicy.objects.filter(organization=organization)}
    audit_due, audit_why = policies.audit_segments_due()
    declared_row = DeclaredStateRule.objects.filter(organization=organization).first()
    rows = [
        {
            "type": value,
            "label": label,
            "policy": current.get(value),
            "floor": policies.floor_days(value, current[value].preset if value in current else "", organization),
        }
        for value, label in RecordType.choices
    ]
    response = render(
        request,
        "retention/retention.html",
        {
            "nav": "retention",
            "rows": rows,
            "states": sorted(policies.state_rules().items(), key=lambda kv: kv[1]["state"]),
            "audit_due": audit_due,
            "audit_why": audit_why,
            "declared": policies.declared_rule(declared_row),
            "declared_row": declared_row,
            "unlisted": sorted(policies.unlisted_states().items(), key=lambda kv: kv[1]),
            "may_declare": access.has(Perm.ORG_SETTINGS),
            "holds": LegalHold.objects.filter(organization=organization, lifted_at__isnull=True)
            .select_related("case", "placed_by")
            .order_by("-created_at"),
            "due_cases": sorted((n, _said(c)) for n, c in by_case.items() if n),
            "due_uploads": by_case.get("", {}).get("upload", 0),
            "due_compliance": by_case.get("", {}).get("compliance_record", 0),
            "kept": kept,
            "postponed": policies.postponed_until(organization, timezone.now().date()),
            "may_postpone": access.has(Perm.ORG_SETTINGS),
            "certificates": DestructionCertificate.objects.filter(organization=organization).order_by("-created_at")[
                :20
            ],
            "errors": errors,
            "form": request.POST if errors else {},
        },
        status=400 if errors else 200,
    )
    return response


def _said(counts: dict[str, int]) -> str:
    """'2 files, 3 messages, 1 external link' for one case of the preview."""
    words = (("case_file", "file"), ("message", "message"), ("link", "external link"))
    return ", ".join(
        f"{counts[kind]} {word}{'s' if counts[kind] != 1 else ''}" for kind, word in words if kind in counts
    )


def _whole(raw: str, what: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValidationError(f"Enter {what} as a whole number.") from None


def _apply(access: Any, operation: str, post: Any) -> str:
    from casebridge.access.policy import case_for
    from casebridge.cases.models import Case

    if operation == "policy":
        record_type = post.get("record_type", "")
        keep = _keep_days(post)
        policies.set_policy(access, record_type, keep, post.get("preset", ""))
        return "Retention policy saved."
    if operation == "declare":
        if not access.has(Perm.ORG_SETTINGS):
            raise PermissionDenied("only owners and administrators declare a state's rule")
        if not post.get("confirmed"):
            raise ValidationError("Confirm that you checked the rule with counsel or the state's dental board.")
        declared = policies.declare_state_rule(
            access,
            state=post.get("state", ""),
            years=_whole(post.get("years", ""), "the years after the last treatment"),
            minor_until_age=_whole(post.get("minor_until_age", ""), "the minors' age")
            if post.get("minor_until_age", "").strip()
            else None,
            source=post.get("source", ""),
            url=post.get("url", "").strip(),
        )
        return (
            f"{policies.US_STATES[declared.state]}'s rule is recorded: choose it for the files of closed cases "
            "to apply it."
        )
    if operation == "hold":
        number = post.get("case", "").strip()
        if not number:
            policies.place_hold(access, reason=post.get("reason", ""))
            return "Legal hold placed on all of the organization's records."
        try:
            case = case_for(access, number)
        except Http404:
            raise ValidationError("No case of yours has that number.") from None
        if not isinstance(case, Case) or case.practice_id != access.organization.pk:
            raise ValidationError("Only the practice that keeps the record can hold it.")
        if post.get("whole_patient"):
            policies.place_hold(access, reason=post.get("reason", ""), patient=case.patient)
            return f"Legal hold placed on every case of the patient of {case.number}."
        policies.place_hold(access, reason=post.get("reason", ""), case=case)
        return f"Legal hold placed on {case.number}."
    if operation == "lift":
        hold_id = uuid_or_none(post.get("hold", ""))
        hold = (
            LegalHold.objects.filter(organization=access.organization, pk=hold_id, lifted_at__isnull=True).first()
            if hold_id is not None
            else None
        )
        if hold is None:
            raise ValidationError("That hold is not active.")
        policies.lift_hold(access, hold, reason=post.get("reason", ""))
        return "Legal hold lifted."
    if operation == "postpone":
        if not access.has(Perm.ORG_SETTINGS):
            raise PermissionDenied("only owners and administrators postpone destruction")
        try:
            until = date.fromisoformat(post.get("until", ""))
        except ValueError:
            raise ValidationError("Enter the date until which nothing is destroyed.") from None
        policies.postpone(access, until=until, reason=post.get("reason", ""))
        return f"Nothing will be destroyed before {until:%Y-%m-%d}."
    raise ValidationError("Unknown operation.")


@require_GET
@org_permission(Perm.COMPLIANCE_MANAGE)
def certificate_pdf(request: HttpRequest, certificate_id: UUID) -> HttpResponse:
    access = org_access_of(request)
    certificate = DestructionCertificate.objects.filter(organization=access.organization, pk=certificate_id).first()
    if certificate is None:
        raise Http404("no such certificate")
    from casebridge.retention.certificate_pdf import render_certificate

    pdf = render_certificate(certificate, policies.verify_certificate(certificate))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="destruction-certificate-{certificate.pk}.pdf"'
    response["Cache-Control"] = "no-store"
    return response
