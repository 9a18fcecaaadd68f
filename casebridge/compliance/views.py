"""Incident pages (compliance officers, owners, administrators): the register with the next
deadline of each, recording one, and an incident with its assessment, decision and clocks."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, onboarding_pending, scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.compliance import access_reviews, dashboard, incidents, letters, risk, training, vendors, wizard
from casebridge.compliance.clocks import days_left
from casebridge.compliance.forms import AssessmentForm, IncidentForm, RiskEntryForm, VendorForm
from casebridge.compliance.models import (
    AccessReview,
    AccessReviewItem,
    BaaStatus,
    Incident,
    RiskAssessment,
    RiskEntry,
    RiskStatus,
    TrainingCompletion,
    TrainingModule,
    Vendor,
)
from casebridge.core.params import uuid_or_none
from casebridge.kernel.filetypes import FILE_TYPES_BY_NAME
from casebridge.orgs.models import Membership
from casebridge.vault import api as vault
from casebridge.vault.http import ByteRange, version_response


def _clock_rows(incident: Incident) -> list[dict[str, Any]]:
    today = timezone.localdate()
    drafted = {letter.key: letter for letter in incident.letters.all()}
    return [
        {
            "deadline": d,
            "sent": incident.notices.get(d.key),
            "days_left": days_left(d, today),
            "letter": drafted.get(d.key),
        }
        for d in incidents.clocks(incident)
    ]


@org_permission(Perm.COMPLIANCE_MANAGE)
def incident_list(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    form = IncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            incident = incidents.record_incident(access, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # field errors beside their fields
        else:
            messages.success(request, "Incident recorded. Assess it now: the clocks run from discovery.")
            return redirect("incident_detail", access.organization.slug, incident.pk)
    rows = []
    for incident in Incident.objects.filter(organization=access.organization)[:200]:
        pending = [r for r in _clock_rows(incident) if not r["sent"]]
        rows.append({"incident": incident, "next": pending[0] if pending else None})
    return render(
        request,
        "compliance/incidents.html",
        {"rows": rows, "form": form, "nav": "incidents"},
        status=400 if request.method == "POST" else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def incident_detail(request: HttpRequest, incident_id: uuid.UUID) -> HttpResponse:
    access = org_access_of(request)
    incident = scoped_get(Incident.objects.filter(organization=access.organization), pk=incident_id)
    initial = {name: getattr(incident, name) for name in AssessmentForm.base_fields}
    form = AssessmentForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and request.POST.get("operation") == "notice":
        try:
            incidents.mark_notice_sent(access, incident, request.POST.get("notice", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Notice marked sent.")
        return redirect("incident_detail", access.organization.slug, incident.pk)
    if request.method == "POST":
        if form.is_valid():
            try:
                incidents.assess(access, incident, **form.cleaned_data)
            except ValidationError as exc:
                form.add_error(None, exc)  # field errors beside their fields
            else:
                messages.success(request, "Assessment saved.")
                return redirect("incident_detail", access.organization.slug, incident.pk)
        status = 400
    return render(
        request,
        "compliance/incident.html",
        {"incident": incident, "form": form, "clocks": _clock_rows(incident), "nav": "incidents"},
        status=status,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def incident_letter(request: HttpRequest, incident_id: uuid.UUID, key: str) -> HttpResponse:
    """Draft, edit and finalize the letter for one notice the incident's clocks require."""
    access = org_access_of(request)
    incident = scoped_get(Incident.objects.filter(organization=access.organization), pk=incident_id)
    try:
        letter = letters.letter_for(incident, key)
    except ValidationError as exc:
        raise Http404("no such notice") from exc
    errors: dict[str, list[str]] = {}
    sections = letter.sections
    if request.method == "POST":
        sections = {e.key: request.POST.get(e.key, "") for e in letters.ELEMENTS[key]}
        finalize = request.POST.get("operation") == "finalize"
        try:
            letters.save(access, incident, key, sections, finalize=finalize)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            messages.success(request, "Letter made final." if finalize else "Draft saved.")
            return redirect("incident_letter", access.organization.slug, incident.pk, key)
    rows = [
        {"element": e, "text": sections.get(e.key, ""), "errors": errors.get(e.key, [])} for e in letters.ELEMENTS[key]
    ]
    return render(
        request,
        "compliance/incident_letter.html",
        {
            "incident": incident,
            "letter": letter,
            "title": letters.TITLES[key],
            "rows": rows,
            "general_errors": errors.get("__all__", []),
            "open_problems": len(letters.problems(key, sections)),
            "nav": "incidents",
        },
        status=400 if errors else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def incident_letter_pdf(request: HttpRequest, incident_id: uuid.UUID, key: str) -> HttpResponse:
    access = org_access_of(request)
    incident = scoped_get(Incident.objects.filter(organization=access.organization), pk=incident_id)
    try:
        letter = letters.letter_for(incident, key)
    except ValidationError as exc:
        raise Http404("no such notice") from exc
    response = HttpResponse(letters.pdf(access, letter), content_type="application/pdf")
    state = "final" if letter.finalized_at else "draft"
    response["Content-Disposition"] = f'attachment; filename="breach-notice-{key}-{state}.pdf"'
    response["Cache-Control"] = "no-store"
    return response


@org_permission(Perm.COMPLIANCE_MANAGE)
def vendor_list(request: HttpRequest) -> HttpResponse:
    """The inventory: add a vendor (or change one, `vendor` posted), see what needs attention,
    and the BAA chain through the organization's connections."""
    access = org_access_of(request)
    editing = None
    if request.method == "POST" and request.POST.get("vendor"):
        editing = scoped_get(
            Vendor.objects.filter(organization=access.organization), pk=uuid_or_none(request.POST["vendor"])
        )
    form = VendorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            vendors.save_vendor(access, editing, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # field errors beside their fields
        else:
            messages.success(request, "Inventory saved.")
            return redirect("vendors", access.organization.slug)
    listed = [(v, vendors.needs_attention(v)) for v in Vendor.objects.filter(organization=access.organization)]
    return render(
        request,
        "compliance/vendors.html",
        {
            "vendors": listed,
            "form": form,
            "chain": vendors.baa_chain(access.organization),
            "nav": "vendors",
        },
        status=400 if request.method == "POST" else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def compliance_dashboard(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    people = _active_people(access.organization)
    if request.method == "POST":
        _name_officers(request, access, people)
        return redirect("compliance", access.organization.slug)
    found = dashboard.checks(access.organization)
    return render(
        request,
        "compliance/dashboard.html",
        {
            "checks": found,
            "attention": sum(1 for c in found if c.state == dashboard.ATTENTION),
            "officers": dashboard.officers_of(access.organization),
            "people": sorted(people.values(), key=lambda u: u.display_name),
            "setup_done": wizard.setup_of(access.organization).completed_at is not None,
            "nav": "compliance",
        },
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def compliance_setup(request: HttpRequest) -> HttpResponse:
    """The first-run set-up: every step on one page, each with its progress read from live data,
    the law in plain words, and a starting point (officers, usual vendors, BAA status, training)."""
    access = org_access_of(request)
    org = access.organization
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        try:
            if operation == "officers":
                _name_officers(request, access, _active_people(org))
            elif operation == "vendors":
                added = wizard.add_starter_vendors(access, request.POST.getlist("vendors"))
                messages.success(request, f"{added} system{'s' if added != 1 else ''} added to your inventory.")
            elif operation == "baa":
                vendor = scoped_get(
                    Vendor.objects.filter(organization=org), pk=uuid_or_none(request.POST.get("vendor", ""))
                )
                signed = request.POST.get("baa_signed_on") or None
                wizard.set_baa_status(
                    access,
                    vendor,
                    request.POST.get("baa_status", ""),
                    datetime.date.fromisoformat(signed) if signed else None,
                )
                messages.success(request, "BAA status recorded.")
            elif operation == "training":
                wizard.add_starter_training(access, onboarding=request.POST.get("onboarding") == "on")
                messages.success(request, "Starter module assigned to everyone, due in 30 days.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except ValueError:
            messages.error(request, "Enter the signing date as a date.")
        return redirect(f"{reverse('compliance_setup', args=[org.slug])}#step-{operation}")
    setup = wizard.visit(access)
    found = wizard.steps(org)
    listed = set(Vendor.objects.filter(organization=org).values_list("name", flat=True))
    modules = TrainingModule.objects.filter(organization=org)
    return render(
        request,
        "compliance/setup.html",
        {
            "setup": setup,
            "steps": found,
            "done": sum(1 for s in found if s.done),
            "officers": dashboard.officers_of(org),
            "people": sorted(_active_people(org).values(), key=lambda u: u.display_name),
            "starters": [(s, s.name in listed) for s in wizard.STARTER_VENDORS.get(org.kind, ())],
            "unsettled": Vendor.objects.filter(organization=org, baa_status__in=[BaaStatus.NONE, BaaStatus.EXPIRED]),
            "quick_statuses": [(s.value, s.label) for s in wizard.QUICK_STATUSES],
            "starter_title": wizard.STARTER_MODULE_TITLE,
            "starter_assigned": modules.filter(title=wizard.STARTER_MODULE_TITLE).exists(),
            "risk_current": risk.current(org),
            "minutes": round(((setup.completed_at or timezone.now()) - setup.started_at).total_seconds() / 60),
            "nav": "compliance",
        },
    )


def _active_people(org: Any) -> dict[str, Any]:
    return {
        str(m.user_id): m.user
        for m in Membership.objects.filter(organization=org, is_active=True, user__is_active=True).select_related(
            "user"
        )
    }


def _name_officers(request: HttpRequest, access: OrgAccess, people: dict[str, Any]) -> None:
    """The officers form of the checklist and of the set-up: active members only."""
    posted = [request.POST.get(field, "") for field in ("privacy", "security")]
    if any(value and value not in people for value in posted):
        messages.error(request, "Choose officers among the organization's active members.")
        return
    try:
        dashboard.name_officers(access, privacy=people.get(posted[0]), security=people.get(posted[1]))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Officers named.")


@org_permission(Perm.MEMBERS_MANAGE)
def access_reviews_page(request: HttpRequest) -> HttpResponse:
    """Start an access review, decide each item (keep or revoke), see past campaigns."""
    access = org_access_of(request)
    org = access.organization
    if request.method == "POST":
        try:
            if request.POST.get("operation") == "start":
                access_reviews.start(access)
                messages.success(request, "Access review started: keep or revoke each line.")
            else:
                item = scoped_get(
                    AccessReviewItem.objects.filter(review__organization=org).select_related("review"),
                    pk=request.POST.get("item") if str(request.POST.get("item", "")).isdigit() else None,
                )
                access_reviews.decide(access, item, request.POST.get("decision", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("access_reviews", org.slug)
    reviews_list = list(AccessReview.objects.filter(organization=org).prefetch_related("items")[:12])
    current = next((r for r in reviews_list if r.completed_at is None), None)
    return render(
        request,
        "compliance/access_reviews.html",
        {"current": current, "reviews": reviews_list, "next_due": access_reviews.next_due(org), "nav": "members"},
    )


@org_permission(Perm.ORG_VIEW)
def training_page(request: HttpRequest) -> HttpResponse:
    """Everyone's assigned modules with their state; compliance managers also write modules and
    see the organization's coverage."""
    access = org_access_of(request)
    org = access.organization
    if request.method == "POST":
        roles = [r for r in request.POST.getlist("roles") if r]
        try:
            days = int(request.POST.get("due_days", "30") or 30)
            training.save_module(
                access,
                title=request.POST.get("title", ""),
                body=request.POST.get("body", ""),
                quiz_text=request.POST.get("quiz", ""),
                roles=roles,
                due_days=max(1, min(days, 365)),
                onboarding=request.POST.get("onboarding") == "on",
            )
        except (ValidationError, ValueError) as exc:
            messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        else:
            messages.success(request, "Training module saved and assigned.")
        return redirect("training", org.slug)
    now = timezone.now()
    mine = []
    if access.membership is not None:
        for module in TrainingModule.objects.filter(organization=org):
            if training.assigned(module, access.membership):
                last = module.completions.filter(user_id=access.membership.user_id, passed=True).first()
                due = training.due_at(module, access.membership, last)
                mine.append({"module": module, "last": last, "due": due, "overdue": due is not None and due <= now})
    return render(
        request,
        "compliance/training.html",
        {
            "mine": mine,
            "can_manage": access.has(Perm.COMPLIANCE_MANAGE),
            "coverage": training.coverage(org) if access.has(Perm.COMPLIANCE_MANAGE) else None,
            "modules": TrainingModule.objects.filter(organization=org) if access.has(Perm.COMPLIANCE_MANAGE) else [],
            "pending": {m.pk for m in onboarding_pending(access.membership)} if access.membership else set(),
            "roles": Membership._meta.get_field("role").choices,
            "nav": "training",
        },
    )


@org_permission(Perm.ORG_VIEW)
def training_module(request: HttpRequest, module_id: uuid.UUID) -> HttpResponse:
    access = org_access_of(request)
    module = scoped_get(TrainingModule.objects.filter(organization=access.organization), pk=module_id)
    if request.method == "POST" and request.POST.get("operation") in ("onboarding", "attach"):
        return _manage_module(request, access, module)
    if request.method == "POST":
        answers = []
        for index in range(len(module.quiz)):
            value = request.POST.get(f"q{index}", "")
            answers.append(int(value) if value.isdigit() else -1)
        try:
            completion = training.take(access, module, answers)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if completion.passed:
                messages.success(request, f"Passed with {completion.score}%. Recorded; your certificate is below.")
                return redirect("training_module", access.organization.slug, module.pk)
            messages.error(request, f"{completion.score}%: below {module.pass_mark}%. Read it again and retry.")
        return redirect("training", access.organization.slug)
    passed = None
    if access.membership is not None:
        passed = module.completions.filter(user_id=access.membership.user_id, passed=True).first()
    return render(
        request,
        "compliance/training_module.html",
        {
            "module": module,
            "attachments": module.attachments.all() if training.may_read(access, module) else [],
            "passed": passed,
            "can_manage": access.has(Perm.COMPLIANCE_MANAGE),
            "nav": "training",
        },
    )


def _manage_module(request: HttpRequest, access: OrgAccess, module: TrainingModule) -> HttpResponse:
    """A compliance manager makes the module onboarding (or not), or attaches a document."""
    try:
        access.require(Perm.COMPLIANCE_MANAGE)
        if request.POST["operation"] == "onboarding":
            required = request.POST.get("required") == "on"
            training.set_onboarding(access, module, required)
            messages.success(
                request,
                "New members must pass this module before they open patient data."
                if required
                else "This module is no longer required before patient data.",
            )
        else:
            upload = request.FILES.get("document")
            training.attach(
                access,
                module,
                title=request.POST.get("title", ""),
                chunks=upload.chunks() if upload is not None else [],
                length=(upload.size or 0) if upload is not None else 0,
            )
            messages.success(request, "Document attached, stored encrypted.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("training_module", access.organization.slug, module.pk)


@org_permission(Perm.ORG_VIEW)
def training_attachment(request: HttpRequest, module_id: uuid.UUID, attachment_id: uuid.UUID) -> HttpResponseBase:
    """One document of a module, for the members it is assigned to and its managers; audited."""
    access = org_access_of(request)
    module = scoped_get(TrainingModule.objects.filter(organization=access.organization), pk=module_id)
    if not training.may_read(access, module):
        raise Http404("not assigned")
    attachment = scoped_get(module.attachments.select_related("stored_object"), pk=attachment_id)
    return _document(
        request,
        access,
        attachment.stored_object,
        "compliance.training.attachment_read",
        {"module": str(module.pk), "attachment": str(attachment.pk)},
        f"training-{str(attachment.pk)[:8]}",
    )


def _document(
    request: HttpRequest,
    access: OrgAccess,
    stored: Any,
    action: str,
    details: dict[str, str],
    name: str,
) -> HttpResponseBase:
    """A compliance document from the vault under a neutral name, its reading audited."""
    try:
        version = vault.get_version(stored)
    except vault.ObjectUnavailable as exc:
        raise Http404("gone") from exc

    def audit(byte_range: ByteRange) -> None:
        record(action, actor=access.actor, organization=access.organization, target=stored, details=details)

    filename = f"{name}.{FILE_TYPES_BY_NAME[stored.file_type].extension}"
    return version_response(request, stored, version, before_body=audit, refuse=_refused, filename=filename)


def _refused(status: int, title: str, detail: str) -> HttpResponse:
    return HttpResponse(detail, status=status, content_type="text/plain")


@org_permission(Perm.ORG_VIEW)
def training_certificate(request: HttpRequest, completion_id: int) -> HttpResponse:
    """The certificate of a passed completion, for the person or a compliance manager (PDF)."""
    access = org_access_of(request)
    completion = scoped_get(
        TrainingCompletion.objects.filter(module__organization=access.organization).select_related("module", "user"),
        pk=completion_id,
    )
    try:
        content = training.certificate_pdf(access, completion)
    except ValidationError as exc:
        raise Http404("not yours") from exc
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="training-certificate-{completion.pk}.pdf"'
    response["Cache-Control"] = "no-store"
    return response


@org_permission(Perm.COMPLIANCE_MANAGE)
def risk_assessments(request: HttpRequest) -> HttpResponse:
    """The organization's risk assessments, the yearly schedule, and starting the next one."""
    access = org_access_of(request)
    org = access.organization
    if request.method == "POST":
        try:
            assessment = risk.start(access)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("risk_assessments", org.slug)
        messages.success(request, "Assessment started: answers CaseBridge can know are filled in from live data.")
        return redirect("risk_assessment", org.slug, assessment.pk)
    return render(
        request,
        "compliance/risk_list.html",
        {
            "assessments": RiskAssessment.objects.filter(organization=org).prefetch_related("entries")[:20],
            "current": risk.current(org),
            "last": risk.last_completed(org),
            "next_due": risk.next_due(org),
            "overdue": risk.overdue_days(org),
            "nav": "compliance",
        },
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def risk_assessment(request: HttpRequest, assessment_id: uuid.UUID) -> HttpResponse:
    """One assessment: its questions by standard with answers, live data and evidence; its risk
    register; completing it."""
    access = org_access_of(request)
    org = access.organization
    assessment = scoped_get(RiskAssessment.objects.filter(organization=org), pk=assessment_id)
    people = _active_people(org)
    entry_form = RiskEntryForm(request.POST if request.POST.get("operation") == "entry" else None)
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        try:
            if operation == "answer":
                risk.answer(
                    access,
                    assessment,
                    request.POST.get("question", ""),
                    request.POST.get("answer", ""),
                    request.POST.get("note", ""),
                )
                messages.success(request, "Answer saved.")
            elif operation == "evidence":
                upload = request.FILES.get("document")
                risk.attach(
                    access,
                    assessment,
                    request.POST.get("question", ""),
                    title=request.POST.get("title", ""),
                    chunks=upload.chunks() if upload is not None else [],
                    length=(upload.size or 0) if upload is not None else 0,
                )
                messages.success(request, "Evidence attached, stored encrypted.")
            elif operation == "entry":
                entry = None
                if request.POST.get("entry"):
                    entry = scoped_get(
                        RiskEntry.objects.filter(assessment=assessment), pk=uuid_or_none(request.POST["entry"])
                    )
                if not entry_form.is_valid():
                    raise ValidationError(
                        [
                            f"{entry_form.fields[name].label}: {' '.join(str(e) for e in errors)}"
                            for name, errors in entry_form.errors.items()
                        ]
                    )
                data = entry_form.cleaned_data
                owner = data["owner"]
                if owner and owner not in people:
                    raise ValidationError({"owner": "Choose an active member of the organization."})
                risk.save_entry(
                    access,
                    assessment,
                    entry,
                    threat=data["threat"],
                    vulnerability=data["vulnerability"],
                    likelihood=data["likelihood"],
                    impact=data["impact"],
                    owner=people.get(owner) if owner else None,
                    remediation=data["remediation"],
                    due_on=data["due_on"],
                    status=data["status"],
                )
                messages.success(request, "Risk register saved.")
            elif operation == "complete":
                risk.complete(access, assessment)
                messages.success(request, "Assessment completed. The next one is due in a year.")
            else:
                messages.error(request, "Nothing to do: choose an action on the page.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return _back_to(request, org.slug, assessment)
    found = risk.rows(assessment)
    sections = [
        {"key": key, "heading": heading, "citation": citation, "rows": [r for r in found if r.question.standard == key]}
        for key, heading, citation in risk.STANDARDS
    ]
    entries = sorted(assessment.entries.select_related("owner"), key=lambda e: -e.score)
    return render(
        request,
        "compliance/risk_assessment.html",
        {
            "assessment": assessment,
            "sections": sections,
            "answered": sum(1 for r in found if r.value),
            "total": len(found),
            "entries": [(e, risk.level(e.score)) for e in entries],
            "entry_form": RiskEntryForm(),
            "answers": list(risk.ANSWERS.items()),
            "people": sorted(people.values(), key=lambda u: u.display_name),
            "statuses": RiskStatus.choices,
            "editable": assessment.completed_at is None,
            "next_due": risk.next_due(org) if assessment.completed_at else None,
            "nav": "compliance",
        },
    )


def _back_to(request: HttpRequest, slug: str, assessment: RiskAssessment) -> HttpResponse:
    """Back to the part of the assessment page the form was on."""
    operation = request.POST.get("operation", "")
    question = request.POST.get("question", "")
    anchor = f"q-{question}" if question in risk.BY_KEY else "register" if operation == "entry" else "complete"
    return redirect(f"{reverse('risk_assessment', args=[slug, assessment.pk])}#{anchor}")


@org_permission(Perm.COMPLIANCE_MANAGE)
def risk_evidence(request: HttpRequest, assessment_id: uuid.UUID, evidence_id: uuid.UUID) -> HttpResponseBase:
    """One evidence document, for the organization's compliance managers; audited."""
    access = org_access_of(request)
    assessment = scoped_get(RiskAssessment.objects.filter(organization=access.organization), pk=assessment_id)
    evidence = scoped_get(assessment.evidence.select_related("stored_object"), pk=evidence_id)
    return _document(
        request,
        access,
        evidence.stored_object,
        "compliance.risk.evidence_read",
        {"assessment": str(assessment.pk), "evidence": str(evidence.pk), "question": evidence.question},
        f"evidence-{str(evidence.pk)[:8]}",
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def risk_report(request: HttpRequest, assessment_id: uuid.UUID) -> HttpResponse:
    """The assessment's report (PDF): a draft while in progress, the record once completed."""
    access = org_access_of(request)
    assessment = scoped_get(RiskAssessment.objects.filter(organization=access.organization), pk=assessment_id)
    response = HttpResponse(risk.report_pdf(access, assessment), content_type="application/pdf")
    stamp = f"{assessment.completed_at:%Y-%m-%d}" if assessment.completed_at else "draft"
    response["Content-Disposition"] = f'attachment; filename="risk-assessment-{stamp}.pdf"'
    response["Cache-Control"] = "no-store"
    return response
