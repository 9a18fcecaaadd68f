"""Case pages: the dashboard (due today, this week, overdue; search) and the case itself with the
actions each side may take. Views parse input and call cases.actions; the policy decides."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, case_for, visible_cases
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.cases import actions, teeth
from casebridge.cases.models import Status
from casebridge.cases.templates import TEMPLATES, missing

PAGE = 50
OPEN = ~Q(status__in=[Status.COMPLETED, Status.CANCELLED]) & Q(archived_at__isnull=True)


def _access(request: HttpRequest) -> OrgAccess:
    return request.org_access  # type: ignore[attr-defined]


@org_permission(Perm.CASES_VIEW)
def case_list(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    cases = visible_cases(access).select_related("patient", "practice", "lab", "doctor")
    today = timezone.now().date()
    view = request.GET.get("view", "open")
    if view == "today":
        cases = cases.filter(OPEN, due_date=today)
    elif view == "week":
        cases = cases.filter(OPEN, due_date__gte=today, due_date__lte=today + timedelta(days=7))
    elif view == "overdue":
        cases = cases.filter(OPEN, due_date__lt=today)
    elif view == "archived":
        cases = cases.filter(archived_at__isnull=False)
    elif view != "all":
        cases = cases.filter(OPEN)
    query = request.GET.get("q", "").strip()
    if query:
        cases = cases.filter(
            Q(number__icontains=query) | Q(patient__name__icontains=query) | Q(doctor__full_name__icontains=query)
        )
    status = request.GET.get("status", "")
    if status in Status.values:
        cases = cases.filter(status=status)
    before = request.GET.get("before", "")
    if before:
        cases = cases.filter(number__lt=before)
    page = list(cases.order_by("-number")[: PAGE + 1])
    return render(
        request,
        "cases/list.html",
        {
            "cases": page[:PAGE],
            "next_before": page[PAGE - 1].number if len(page) > PAGE else None,
            "view": view,
            "q": query,
            "status": status,
            "statuses": Status.choices,
            "today": today,
            "nav": "cases",
        },
    )


@org_permission(Perm.CASES_VIEW)
def case_detail(request: HttpRequest, number: str) -> HttpResponse:
    access = _access(request)
    case = case_for(access, number)
    record(
        "case.viewed",
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=str(case.patient_id),
        details={"case": case.number},
    )
    notation = getattr(request.user, "tooth_notation", "universal")
    items = [
        (item, teeth.display(item.tooth, notation) if item.tooth else item.get_arch_display())
        for item in case.items.all()
    ]
    actions.mark_read(request.user, case)  # type: ignore[arg-type]
    lab_side = case.lab_id == access.organization.pk
    return render(
        request,
        "cases/detail.html",
        {
            "case": case,
            "items": items,
            "template": TEMPLATES.get(case.case_type),
            "missing": missing(case) if case.status == Status.DRAFT else [],
            "attachments": case.attachments.select_related("stored_object").all(),
            "events": case.events.all(),
            "messages_list": case.messages.select_related("author", "author_org").all(),
            "lab_side": lab_side,
            "next_statuses": [(s, Status(s).label) for s in sorted(actions.LAB_TRANSITIONS.get(case.status, set()))]
            if lab_side
            else [],
            "nav": "cases",
        },
    )


@require_POST
@org_permission(Perm.CASES_VIEW)
def case_action(request: HttpRequest, number: str) -> HttpResponse:
    access = _access(request)
    case = case_for(access, number)
    operation = request.POST.get("operation", "")
    text = request.POST.get("text", "")
    try:
        if operation == "submit":
            actions.submit_case(access, case)
            messages.success(request, f"{case.number} was sent to {case.lab.name if case.lab else 'the lab'}.")
        elif operation == "receive":
            actions.confirm_receipt(access, case)
            messages.success(request, "Receipt confirmed; the practice can see who and when.")
        elif operation == "status":
            actions.change_status(
                access,
                case,
                request.POST.get("status", ""),
                note=text,
                tracking_number=request.POST.get("tracking_number", ""),
            )
            messages.success(request, "Status updated.")
        elif operation == "request_approval":
            actions.request_design_approval(access, case, note=text)
            messages.success(request, "Design sent to the practice for approval.")
        elif operation in ("approve", "reject"):
            actions.decide_design(access, case, approve=operation == "approve", note=text)
            messages.success(request, "Design approved." if operation == "approve" else "Changes requested.")
        elif operation == "hold":
            actions.put_on_hold(access, case, text)
            messages.success(request, "The case is on hold; the practice was asked.")
        elif operation == "answer":
            actions.answer_hold(access, case, text)
            messages.success(request, "Answer sent; the lab continues.")
        elif operation == "message":
            actions.post_message(access, case, text)
            messages.success(request, "Message sent.")
        elif operation == "complete":
            actions.complete_case(access, case)
            messages.success(request, "Case completed.")
        elif operation == "archive":
            actions.archive_case(access, case)
            messages.success(request, "Case archived.")
        elif operation == "revoke_lab":
            actions.revoke_lab_access(access, case)
            messages.success(request, "The lab can no longer open this case.")
        else:
            messages.error(request, "Unknown action.")
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("case_detail", access.organization.slug, case.number)
