"""Pages of the written policies (every member reads and acknowledges; compliance managers edit
and approve), of the checklist's attestations and its one-page auditor report, and of the GDPR
records."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from casebridge.access.guards import org_permission
from casebridge.access.policy import scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.compliance import dashboard, gdpr, policies
from casebridge.compliance.models import ImpactAssessment, Incident, Policy, PolicyKind, PolicyVersion
from casebridge.core.params import uuid_or_none


def _kind(kind: str) -> str:
    if kind not in PolicyKind.values:
        raise Http404("no such policy")
    return kind


@org_permission(Perm.ORG_VIEW)
def policy_list(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    viewer = access.membership.user_id if access.membership else None
    return render(
        request,
        "compliance/policies.html",
        {
            "statuses": policies.statuses(access.organization, viewer),
            "can_manage": access.has(Perm.COMPLIANCE_MANAGE),
            "nav": "policies",
        },
    )


@org_permission(Perm.ORG_VIEW)
def policy_detail(request: HttpRequest, kind: str) -> HttpResponse:
    """Read the version in effect and acknowledge it; managers also save a new version (from the
    starting text the first time), approve the newest, and see every version kept."""
    access = org_access_of(request)
    org = access.organization
    kind = _kind(kind)
    can_manage = access.has(Perm.COMPLIANCE_MANAGE)
    errors: list[str] = []
    body = None
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        try:
            if operation == "acknowledge":
                existing = Policy.objects.filter(organization=org, kind=kind).first()
                if existing is None:
                    raise ValidationError("This policy has no approved version to acknowledge yet.")
                policies.acknowledge(access, existing)
                messages.success(request, "Acknowledged: recorded with today's date.")
            elif operation == "approve":
                access.require(Perm.COMPLIANCE_MANAGE)
                version = scoped_get(
                    PolicyVersion.objects.filter(policy__organization=org, policy__kind=kind),
                    pk=uuid_or_none(request.POST.get("version", "")),
                )
                policies.approve(access, version)
                messages.success(request, f"Version {version.number} approved: it is in effect now.")
            elif operation == "save":
                access.require(Perm.COMPLIANCE_MANAGE)
                body = request.POST.get("body", "")
                saved = policies.save(access, kind, body)
                messages.success(request, f"Saved as version {saved.number}. Approve it to put it in effect.")
            else:
                raise ValidationError("Unknown operation.")
        except ValidationError as exc:
            errors = exc.messages
        else:
            return redirect("policy", org.slug, kind)
    viewer = access.membership.user_id if access.membership else None
    status = next(s for s in policies.statuses(org, viewer) if s.kind == kind)
    versions = list(status.policy.versions.select_related("saved_by", "approved_by")) if status.policy else []
    until = policies.kept_until(versions)
    draft = body if body is not None else (status.latest.body if status.latest else policies.template(kind, org))
    return render(
        request,
        "compliance/policy.html",
        {
            "status": status,
            "versions": [{"v": v, "until": until[v.pk]} for v in versions] if can_manage else [],
            "missing": policies.missing(org, status.current) if can_manage and status.current else [],
            "draft": draft,
            "errors": errors,
            "can_manage": can_manage,
            "nav": "policies",
        },
        status=400 if errors else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def compliance_attest(request: HttpRequest) -> HttpResponse:
    """Attest one checklist item CaseBridge cannot see (POST only): a note, today's date."""
    access = org_access_of(request)
    if request.method != "POST":
        return redirect("compliance", access.organization.slug)
    try:
        dashboard.attest(access, request.POST.get("item", ""), request.POST.get("note", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Attested: valid for a year.")
    return redirect(f"{reverse('compliance', args=[access.organization.slug])}#checklist")


@org_permission(Perm.COMPLIANCE_MANAGE)
def compliance_report(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    return _pdf(dashboard.report_pdf(access), "compliance-checklist")


@org_permission(Perm.COMPLIANCE_MANAGE)
def gdpr_page(request: HttpRequest) -> HttpResponse:
    """Declare whether the GDPR applies; then the record of processing activities and the impact
    assessments."""
    access = org_access_of(request)
    org = access.organization
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        try:
            if operation == "profile":
                gdpr.save_profile(
                    access,
                    applies=request.POST.get("applies") == "on",
                    contact=request.POST.get("contact", ""),
                    transfers=request.POST.get("transfers", ""),
                )
                messages.success(request, "Saved.")
            elif operation == "dpia":
                assessment = gdpr.record_dpia(access, **{name: request.POST.get(name, "") for name in gdpr.DPIA_FIELDS})
                messages.success(request, f"Impact assessment recorded ({assessment.recorded_at:%Y-%m-%d}).")
            else:
                raise ValidationError("Unknown operation.")
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            return redirect("gdpr", org.slug)
    profile = gdpr.profile_of(org)
    under = profile is not None and profile.applies
    return render(
        request,
        "compliance/gdpr.html",
        {
            "profile": profile,
            "applies": under,
            "record": gdpr.processing_record(org) if under else None,
            "assessments": ImpactAssessment.objects.filter(organization=org) if under else [],
            "posted": request.POST if errors else {},
            "errors": errors,
            "general_errors": errors.get("__all__", []),
            "gdpr_incidents": Incident.objects.filter(organization=org, under_gdpr=True).exists(),
            "nav": "compliance",
        },
        status=400 if errors else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def gdpr_record_pdf(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    try:
        content = gdpr.record_pdf(access)
    except ValidationError as exc:  # not declared: say what to do on the page that does it
        messages.error(request, " ".join(exc.messages))
        return redirect("gdpr", access.organization.slug)
    return _pdf(content, "record-of-processing")


def _pdf(content: bytes, name: str) -> HttpResponse:
    """A PDF download, dated, never cached."""
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.localdate():%Y-%m-%d}.pdf"'
    response["Cache-Control"] = "no-store"
    return response
