"""Case pages: the dashboard (due today, this week, overdue; search) and the case itself with the
actions each side may take. Views parse input and call cases.actions; the policy decides."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case as SqlCase
from django.db.models import CharField, Count, F, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from casebridge.access.guards import org_permission
from casebridge.access.policy import (
    OrgAccess,
    acts_for_practice,
    case_for,
    case_side,
    readable_files,
    receives_deidentified,
    scoped_get,
    visible_cases,
)
from casebridge.access.principal import Principal
from casebridge.access.requests import org_access_of, principal_of, user_of
from casebridge.access.roles import Perm
from casebridge.accounts.models import Notation
from casebridge.audit.exposure import record_case_opened, record_patients_shown
from casebridge.cases import actions, imaging_orders, live, queries, queue, shades, teeth
from casebridge.cases.forms import DraftForm, ImagingOrderForm, NewCaseForm
from casebridge.cases.models import (
    Arch,
    AttachmentKind,
    Case,
    Delivery,
    ImagingOrder,
    ImagingOrderStatus,
    Material,
    Message,
    Restoration,
    Status,
)
from casebridge.cases.slip import prescriber_line, signature_line
from casebridge.cases.templates import TEMPLATES, missing
from casebridge.core import searches
from casebridge.core.params import uuid_or_none
from casebridge.imaging.actions import masks_for_files
from casebridge.imaging.ingest import metadata_warning
from casebridge.imaging.models import IngestJob
from casebridge.imaging.views import MESH_TYPES, case_pictures, case_series, list_thumbnails
from casebridge.kernel import filetypes
from casebridge.notifications import actions as notifications
from casebridge.orgs.models import Organization, OrgKind
from casebridge.vault.views import UPLOAD_CHUNK_BYTES

PAGE = 50
OPEN = queue.OPEN
LIST_VIEWS = frozenset({*queue.COUNTED_VIEWS, "archived", "all"})
IMAGING_OPERATIONS = frozenset({"imaging_receive", "imaging_deliver", "imaging_cancel", "imaging_revoke"})


def _access(request: HttpRequest) -> OrgAccess:
    return org_access_of(request)


@org_permission(Perm.CASES_VIEW)
def case_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":  # a search: see core/searches.py
        return searches.redirect_to_results(request, "q", keep=("view", "status"))
    access = _access(request)
    cases = visible_cases(access).select_related("patient", "practice", "lab", "doctor")
    today = timezone.now().date()
    view = request.GET.get("view", "open")
    search_id, query = searches.recall(request)
    counted = queue.view_filter(view, access, request.user.pk, today)
    if query:
        # A search looks through every case, whatever tab it was typed on: "Carter" typed on Open
        # must find her completed crown too. Each row says where the case stands.
        cases = cases.filter(queries.case_search(query))
    elif counted is not None:
        cases = cases.filter(counted)
    elif view == "archived":
        cases = cases.filter(archived_at__isnull=False)
    elif view != "all":
        cases = cases.filter(OPEN)
    status = request.GET.get("status", "")
    if status in Status.values:
        cases = cases.filter(status=status)
    before = request.GET.get("before", "")
    if before:
        cases = cases.filter(number__lt=before)
    # Messages the signed-in person has not opened yet, per case: one subquery, no N+1.
    unread = (
        Message.objects.filter(case=OuterRef("pk"))
        .exclude(reads__user=request.user.pk)
        .order_by()
        .values("case")
        .annotate(n=Count("pk"))
        .values("n")
    )
    cases = cases.annotate(unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0))
    imaging_center = access.organization.kind == OrgKind.IMAGING
    if imaging_center:  # an imaging center follows its orders, not the lab's workflow
        latest = ImagingOrder.objects.filter(case=OuterRef("pk"), center=access.organization).order_by("-created_at")
        order_status = Subquery(latest.values("status")[:1])
        labels = [When(order_status=value, then=Value(label)) for value, label in ImagingOrderStatus.choices]
        cases = cases.annotate(order_status=order_status).annotate(
            order_status_label=SqlCase(*labels, output_field=CharField())
        )
    page = list(cases.order_by("-number")[: PAGE + 1])
    # The rows show patient names: one event naming every patient on this page.
    record_patients_shown(
        actor=access.actor,
        organization=access.organization,
        cases=page[:PAGE],
        via="web.case_list",
        view=view if view in LIST_VIEWS else "open",  # the raw parameter is the caller's text
        searched=bool(query),
        status=status if status in Status.values else "",
    )
    return render(
        request,
        "cases/list.html",
        {
            "cases": list_thumbnails(page[:PAGE], access.organization.slug),
            "next_before": page[PAGE - 1].number if len(page) > PAGE else None,
            "view": view,
            "q": query,
            "search_id": search_id,
            "status": status,
            "statuses": Status.choices,
            "today": today,
            "counts": queue.counts(access, request.user.pk, today),
            "nav": "cases",
        },
    )


@org_permission(Perm.CASES_VIEW)
def case_detail(request: HttpRequest, number: str) -> HttpResponse:
    access = _access(request)
    return render_case_page(request, access, case_for(access, number))


def render_case_page(
    request: HttpRequest,
    access: OrgAccess,
    case: Case,
    *,
    share_form: Any = None,
    order_form: ImagingOrderForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The case page (viewing it is audited). ``share_form`` / ``order_form``: a refused sharing
    or imaging-order form, shown again in its section with its errors instead of a fresh one."""
    record_case_opened(access, case)
    notation = getattr(request.user, "tooth_notation", "universal")
    items = [
        (item, teeth.display(item.tooth, notation) if item.tooth else item.get_arch_display())
        for item in case.items.all()
    ]
    # What was new to this person is shown as such once, then it counts as read.
    unread_ids = set(case.messages.exclude(reads__user=request.user.pk).values_list("pk", flat=True))
    actions.mark_read(user_of(request), case)
    notifications.mark_read(access, case=case)
    side = case_side(access, case)
    lab_side = side == "lab"
    files = _files_context(access, case)
    names = {r["attachment"].pk: r["name"] for r in files["attachment_rows"]}
    conversation = [
        {
            "message": m,
            "new": m.pk in unread_ids,
            "files": [(a.stored_object_id, names.get(a.pk, "")) for a in m.attachments.all()],
        }
        for m in case.messages.select_related("author", "author_org").prefetch_related("attachments")
    ]
    return render(
        request,
        "cases/detail.html",
        {
            "case": case,
            "items": items,
            "template": TEMPLATES.get(case.case_type),
            "missing": missing(case) if case.status == Status.DRAFT else [],
            "attachments": case.attachments.select_related("stored_object").all(),
            "has_scans": any(r["attachment"].stored_object.file_type in MESH_TYPES for r in files["attachment_rows"]),
            "imaging": case_series(case),
            **case_pictures(case, access.organization.slug),
            "ingests": IngestJob.objects.filter(case=case).order_by("-created_at")[:5],
            "events": case.events.all(),
            "conversation": conversation,
            **live.context(case),
            "lab_side": lab_side,
            "practice_side": side == "practice",
            "imaging_side": side == "imaging",
            **_imaging_orders_context(access, case, order_form),
            "next_statuses": [(s, Status(s).label) for s in sorted(actions.LAB_TRANSITIONS.get(case.status, set()))]
            if lab_side
            else [],
            "nav": "cases",
            "share_form": share_form,
            "prescriber": prescriber_line(case),
            "signature": signature_line(case),
            **files,
        },
        status=status,
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
            actions.post_message(access, case, text, attachments=request.POST.getlist("attachments"))
            messages.success(request, "Message sent.")
        elif operation == "complete":
            actions.complete_case(access, case)
            messages.success(request, "Case completed.")
        elif operation == "archive":
            actions.archive_case(access, case)
            messages.success(request, "Case archived.")
        elif operation == "cancel":
            actions.cancel_case(access, case, reason=text)
            messages.success(request, f"{case.number} was cancelled.")
        elif operation == "revoke_lab":
            actions.revoke_lab_access(access, case)
            messages.success(request, "The lab can no longer open this case.")
        elif operation in IMAGING_OPERATIONS:
            messages.success(
                request, _imaging_order_action(access, case, operation, request.POST.get("order", ""), text)
            )
            if not visible_cases(access).filter(pk=case.pk).exists():
                return redirect("case_list", access.organization.slug)
        elif operation == "remake":
            remake = actions.create_remake(access, case, reason=text)
            messages.success(request, f"{remake.number} is a draft remake of {case.number}: check it and send it.")
            return redirect("case_detail", access.organization.slug, remake.number)
        else:
            messages.error(request, "Unknown action.")
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("case_detail", access.organization.slug, case.number)


# --- New case -------------------------------------------------------------------------------
def _notation(request: HttpRequest) -> str:
    """The numbering of the tooth labels: on a POST the one the form was showing (the person may
    have switched it on the page, which rewrote the labels, before the preference was saved);
    otherwise their preference."""
    posted = request.POST.get("tooth_notation", "") if request.method == "POST" else ""
    if posted in Notation.values:
        return posted
    return getattr(request.user, "tooth_notation", Notation.UNIVERSAL)


def _chart(notation: str, selected: set[int]) -> dict[str, list[list[dict[str, Any]]]]:
    """Both dentitions, row by row as a chart shows them, each tooth labelled in ``notation``."""

    def row(codes: Iterable[int]) -> list[dict[str, Any]]:
        return [
            {
                "fdi": code,
                "label": teeth.display(code, notation),
                # Every numbering, so the switch on the form relabels the chart in the page.
                "universal": teeth.display(code, Notation.UNIVERSAL),
                "palmer": teeth.display(code, Notation.PALMER),
                "name": teeth.name(code),
                "position": code % 10,
                "pressed": code in selected,
                "midline": code % 10 == 1 and code // 10 in (1, 4, 5, 8),
            }
            for code in codes
        ]

    return {
        "permanent": [row(r) for r in teeth.chart_rows()],
        "primary": [row(r) for r in teeth.chart_rows(primary=True)],
    }


def _items_from_post(
    data: QueryDict, notation: str, case_type: str
) -> tuple[list[actions.ItemInput], list[dict[str, Any]], list[str]]:
    """The restorations posted by the tooth chart (labels in the user's notation) or the arch
    choice: what to pass to create_case, the rows to show again, and problems reading them."""
    template = TEMPLATES.get(case_type)
    items: list[actions.ItemInput] = []
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    if template is not None and not template.needs_teeth:
        arch = data.get("arch", "")
        if arch:
            items.append(
                actions.ItemInput(
                    data.get("arch_restoration", ""),
                    arch=arch,
                    material=data.get("arch_material", ""),
                    shade=data.get("arch_shade", ""),
                )
            )
        return items, rows, problems
    columns = ("item_tooth", "item_restoration", "item_material", "item_shade", "item_stump_shade")
    values = [data.getlist(c) for c in columns]
    for label, restoration, material, shade, stump in zip(*values, strict=False):
        try:
            fdi = teeth.parse(label, notation)
        except teeth.ToothError as exc:
            problems.append(str(exc))
            continue
        items.append(actions.ItemInput(restoration, tooth=fdi, material=material, shade=shade, stump_shade=stump))
        rows.append(
            {
                "fdi": fdi,
                "label": label,
                "name": teeth.name(fdi),
                "restoration": restoration,
                "material": material,
                "shade": shade,
                "stump_shade": stump,
            }
        )
    return items, rows, problems


def _choices_context() -> dict[str, Any]:
    return {
        "restorations": Restoration.choices,
        "materials": Material.choices,
        "arches": Arch.choices,
        "vita_classical": shades.VITA_CLASSICAL,
        "vita_3d": shades.VITA_3D_MASTER,
        "stump_shades": shades.STUMP,
        "templates": [
            {
                "key": t.key,
                "label": t.label,
                "needs_teeth": t.needs_teeth,
                "restorations": sorted(t.restorations),
                "due_within_days": t.due_within_days,
                "requirements": [(r.count, AttachmentKind(r.kind).label, r.description) for r in t.requirements],
            }
            for t in TEMPLATES.values()
        ],
    }


def _form_page_context(
    form: Any, labs: Any, rows: Any, item_errors: Any, arch_values: Any, notation: str
) -> dict[str, Any]:
    """What the case form page needs besides the form: shared by new case and edit draft."""
    selected = {row["fdi"] for row in rows}
    return {
        "labs": labs,
        "rows": rows,
        "item_errors": item_errors,
        "arch_values": arch_values,
        "chart": _chart(notation, selected),
        "show_primary": any(code >= 50 for code in selected),
        "notation": notation,
        "notations": Notation.choices,
        "case_type": form["case_type"].value() or "",
        "delivery": form["delivery"].value() or Delivery.SHIP,
        "today": timezone.now().date(),
        "nav": "cases",
        **_choices_context(),
    }


@org_permission(Perm.CASES_EDIT)
def case_new(request: HttpRequest) -> HttpResponse:
    """Draft a case: patient, case type, lab, doctor, dates and the restorations per tooth."""
    access = _access(request)
    if not acts_for_practice(access):
        raise PermissionDenied("cases are created by dental practices")
    notation = _notation(request)
    labs = queries.connected_labs(access.organization)
    doctors = queries.prescribers(access.organization)
    rows: list[dict[str, Any]] = []
    item_errors: list[str] = []
    arch_values = {"arch": "", "arch_restoration": "", "arch_material": "", "arch_shade": ""}
    if request.method == "POST":
        form = NewCaseForm(request.POST, labs=labs, doctors=doctors)
        case_type = request.POST.get("case_type", "")
        items, rows, item_errors = _items_from_post(request.POST, notation, case_type)
        arch_values = {key: request.POST.get(key, "") for key in arch_values}
        if form.is_valid() and not item_errors:
            data = form.cleaned_data
            try:
                case = actions.create_case(
                    access,
                    patient_name=data["patient_name"],
                    patient_dob=data["patient_dob"],
                    chart_number=data["chart_number"],
                    case_type=data["case_type"],
                    lab=data["lab"].lab,
                    doctor=data["doctor"],
                    due_date=data["due_date"],
                    delivery=data["delivery"],
                    ship_to=data["ship_to"],
                    notes=data["notes"],
                    items=items,
                    notation=notation,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items() if hasattr(exc, "error_dict") else [("", exc.messages)]:
                    if field in form.fields:
                        for error in errors:
                            form.add_error(field, error)
                    else:
                        item_errors.extend(errors)
            else:
                messages.success(request, f"{case.number} was created. Add the files, then send it to the lab.")
                return redirect("case_detail", access.organization.slug, case.number)
    else:
        me = request.user if any(d.pk == request.user.pk for d in doctors) else None
        # Ship to the practice's own address (Settings); before it is entered, the last one used.
        ship_to = access.organization.address
        if not ship_to:
            last = access.organization.cases_sent.exclude(ship_to="").order_by("-created_at").first()
            ship_to = last.ship_to if last else ""
        form = NewCaseForm(
            labs=labs,
            doctors=doctors,
            initial={
                "doctor": str(me.pk) if me else "",
                "ship_to": ship_to,
                "lab": str(labs[0].lab.pk) if len(labs) == 1 and labs[0].can_receive else "",
            },
        )
    return render(
        request,
        "cases/new.html",
        {
            "form": form,
            **_form_page_context(form, labs, rows, item_errors, arch_values, notation),
        },
    )


# --- Editing a draft ------------------------------------------------------------------------
ARCH_FIELDS = ("arch", "arch_restoration", "arch_material", "arch_shade")


def _draft_initial(case: Case) -> dict[str, Any]:
    return {
        "patient_name": case.patient.name,
        "patient_dob": case.patient.date_of_birth,
        "chart_number": case.patient.chart_number,
        "case_type": case.case_type,
        "lab": str(case.lab_id) if case.lab_id else "",
        "doctor": str(case.doctor_id) if case.doctor_id else "",
        "due_date": case.due_date,
        "delivery": case.delivery,
        "ship_to": case.ship_to,
        "notes": case.notes,
    }


def _draft_items(case: Case, notation: str) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """The draft's restorations as the form shows them: tooth rows in chart order, or the arch
    choice for arch case types; and how many restorations the form cannot show (made through the
    API, e.g. two arch restorations), which saving the form would replace."""
    template = TEMPLATES.get(case.case_type)
    by_arch = template is not None and not template.needs_teeth
    order = {code: i for i, code in enumerate(c for r in (*teeth.chart_rows(), *teeth.chart_rows(True)) for c in r)}
    rows: list[dict[str, Any]] = []
    arch_values = dict.fromkeys(ARCH_FIELDS, "")
    hidden = 0
    for item in case.items.all():
        if by_arch and item.tooth is None and not arch_values["arch"]:
            arch_values = dict(zip(ARCH_FIELDS, (item.arch, item.restoration, item.material, item.shade), strict=True))
        elif not by_arch and item.tooth is not None:
            rows.append(
                {
                    "fdi": item.tooth,
                    "label": teeth.display(item.tooth, notation),
                    "name": teeth.name(item.tooth),
                    "restoration": item.restoration,
                    "material": item.material,
                    "shade": item.shade,
                    "stump_shade": item.stump_shade,
                }
            )
        else:
            hidden += 1
    rows.sort(key=lambda row: order.get(row["fdi"], len(order)))
    return rows, arch_values, hidden


@org_permission(Perm.CASES_EDIT)
def case_edit(request: HttpRequest, number: str) -> HttpResponse:
    """Change a draft of the practice: the new-case form filled in from the case, saved through
    cases.actions.update_draft. The patient is shown read-only (a draft keeps its patient)."""
    access = _access(request)
    if not acts_for_practice(access):
        raise PermissionDenied("drafts are edited by the practice that made them")
    case = case_for(access, number)
    ours = acts_for_practice(access, case)
    if not ours or case.status != Status.DRAFT:
        messages.error(
            request,
            f"{case.number} was already sent to the lab ({case.get_status_display()}), so it can no longer be edited."
            if ours
            else "Only drafts of your practice can be edited.",
        )
        return redirect("case_detail", access.organization.slug, case.number)
    notation = _notation(request)
    labs = queries.connected_labs(access.organization)
    doctors = queries.prescribers(access.organization)
    initial = _draft_initial(case)
    item_errors: list[str] = []
    if request.method == "POST":
        form = DraftForm(request.POST, labs=labs, doctors=doctors, initial=initial)
        items, rows, item_errors = _items_from_post(request.POST, notation, request.POST.get("case_type", ""))
        arch_values = {key: request.POST.get(key, "") for key in ARCH_FIELDS}
        if form.is_valid() and not item_errors:
            data = form.cleaned_data
            try:
                changed = actions.update_draft(
                    access,
                    case,
                    items=items,
                    notation=notation,
                    case_type=data["case_type"],
                    lab=data["lab"].lab,
                    doctor=data["doctor"],
                    due_date=data["due_date"],
                    delivery=data["delivery"],
                    ship_to=data["ship_to"],
                    notes=data["notes"],
                )
            except ValidationError as exc:
                if not hasattr(exc, "error_dict"):  # not a draft any more (sent meanwhile)
                    for message in exc.messages:
                        messages.error(request, message)
                    return redirect("case_detail", access.organization.slug, case.number)
                for field, errors in exc.message_dict.items():
                    if field in form.fields:
                        for error in errors:
                            form.add_error(field, error)
                    else:
                        item_errors.extend(errors)
            else:
                messages.success(request, f"{case.number} was saved." if changed else "Nothing was changed.")
                return redirect("case_detail", access.organization.slug, case.number)
    else:
        form = DraftForm(labs=labs, doctors=doctors, initial=initial)
        rows, arch_values, hidden = _draft_items(case, notation)
        if hidden:
            messages.warning(
                request,
                f"{hidden} restoration(s) of this draft cannot be shown on this form; saving it replaces them "
                "with the restorations shown here.",
            )
    detail_url = reverse("case_detail", args=[access.organization.slug, case.number])
    # The form shows the patient (read-only): an opened case like the case page.
    record_case_opened(access, case, via="web.edit")
    return render(
        request,
        "cases/new.html",
        {
            "form": form,
            "case": case,
            "editing": True,
            "page_title": f"Edit draft {case.number}",
            "submit_label": "Save draft",
            "form_action": reverse("case_edit", args=[access.organization.slug, case.number]),
            "cancel_url": detail_url,
            **_form_page_context(form, labs, rows, item_errors, arch_values, notation),
        },
    )


# --- Files on the case page ---------------------------------------------------------------
def _attachment_rows(case: Case) -> list[dict[str, Any]]:
    """Each attachment with its neutral name, size, any metadata warning and what de-identification
    would remove (identifier kinds recorded on attach), in two queries."""
    attachments = list(case.attachments.select_related("stored_object").order_by("kind", "added_at", "pk"))
    current = {
        pk: (size, found)
        for pk, size, found in case.attachments.filter(
            stored_object__versions__version=F("stored_object__current_version")
        ).values_list("pk", "stored_object__versions__size", "stored_object__versions__identifiers")
    }
    seen: dict[tuple[str, str], int] = {}
    rows: list[dict[str, Any]] = []
    for a in sorted(attachments, key=lambda a: (a.added_at, a.pk)):
        key = (a.kind, a.label)
        seen[key] = seen.get(key, 0) + 1
        rows.append(
            {
                "attachment": a,
                "name": f"{case.number}_{a.label or a.kind}_{seen[key]}.{a.stored_object.extension}",
                "size": current.get(a.pk, (None, None))[0],
                "warning": metadata_warning(a.stored_object.file_type),
                "identifiers": current.get(a.pk, (None, None))[1] or {},
            }
        )
    rows.sort(key=lambda r: (r["attachment"].kind, r["attachment"].added_at))
    return rows


def _imaging_orders_context(access: OrgAccess, case: Case, form: ImagingOrderForm | None) -> dict[str, Any]:
    orders = list(imaging_orders.orders_for(access, case))
    context: dict[str, Any] = {"imaging_orders": orders, "order_form": None}
    practice = acts_for_practice(access, case) and access.has(Perm.CASES_EDIT)
    if practice and case.status not in actions.CLOSED and not case.archived_at:
        centers = imaging_orders.imaging_centers(case.practice)
        context["order_form"] = form or ImagingOrderForm(centers=centers)
        context["order_form_open"] = form is not None
    return context


@require_POST
@org_permission(Perm.CASES_EDIT)
def case_imaging_order(request: HttpRequest, number: str) -> HttpResponse:
    """The practice orders a study for the case from a connected imaging center."""
    access = _access(request)
    case = case_for(access, number)
    form = ImagingOrderForm(request.POST, centers=imaging_orders.imaging_centers(case.practice))
    if form.is_valid():
        data = form.cleaned_data
        center = Organization.objects.filter(slug=data["center"]).first()
        try:
            order = imaging_orders.order_imaging(
                access,
                case,
                center=center,
                modality=data["modality"],
                region=data["region"],
                teeth_text=data["teeth"],
                clinical_question=data["clinical_question"],
            )
        except ValidationError as exc:
            if not hasattr(exc, "error_dict"):
                for message in exc.messages:
                    messages.error(request, message)
                return redirect("case_detail", access.organization.slug, case.number)
            form.add_error(None, exc)  # each error beside its field
        else:
            messages.success(request, f"{order.get_modality_display()} ordered from {order.center.name}.")
            return redirect("case_detail", access.organization.slug, case.number)
    return render_case_page(request, access, case, order_form=form, status=400)


def _imaging_order_action(access: OrgAccess, case: Case, operation: str, order_id: str, text: str) -> str:
    order = scoped_get(imaging_orders.orders_for(access, case), pk=uuid_or_none(order_id))
    if operation == "imaging_receive":
        imaging_orders.receive_order(access, order)
        return "Order confirmed: add the study to the case (drop the folder or ZIP under Files), then deliver."
    if operation == "imaging_deliver":
        imaging_orders.deliver_order(access, order)
        return "Delivered: the practice was told."
    if operation == "imaging_cancel":
        imaging_orders.cancel_order(access, order, reason=text)
        return "The imaging order was cancelled; the center can no longer open this case."
    imaging_orders.revoke_center_access(access, order)
    return "The imaging center can no longer open this case."


def _files_context(access: OrgAccess, case: Case) -> dict[str, Any]:
    side = case_side(access, case)
    can_upload = actions.may_attach(access, case)  # the action enforces the same answer
    draft = case.status == Status.DRAFT and side == "practice"
    rows = _attachment_rows(case)
    masked = masks_for_files(access.organization, [r["attachment"].stored_object_id for r in rows])
    for row in rows:
        row["masked"] = row["attachment"].stored_object_id in masked
    return {
        "attachment_rows": rows,
        "has_masks": bool(masked),
        "received_deidentified": receives_deidentified(access.organization, case),
        "can_upload": can_upload,
        "upload_kinds": actions.upload_kinds(side),
        "upload_labels": actions.ATTACHMENT_LABELS,
        "accepted_types": filetypes.ACCEPTED_TYPES_MESSAGE,
        "refusals": json.dumps(filetypes.browser_refusals()),
        "chunk_size": UPLOAD_CHUNK_BYTES,
        "max_size": settings.VAULT_MAX_UPLOAD_BYTES,
        # Parallel tus uploads per page; tests on in-memory SQLite (one shared connection) use 1.
        "upload_parallel": getattr(settings, "VAULT_BROWSER_PARALLEL_UPLOADS", 2),
        "show_readiness": draft,
        # Not a blocker (cases made through the API name no doctor yet), but the lab should not
        # receive an unsigned prescription without the practice having seen it coming.
        "unsigned": draft and case.doctor_id is None,
        "problems": actions.submission_problems(case) if draft else [],
        "can_submit": draft and access.has(Perm.CASES_EDIT),
    }


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_files(request: HttpRequest, number: str) -> HttpResponse:
    """The files table, and (out of band) what is still missing: swapped in by htmx after an attach."""
    access = _access(request)
    case = case_for(access, number)
    return render(request, "cases/_files.html", {"case": case, "oob": True, **_files_context(access, case)})


def _principal(request: HttpRequest) -> Principal:
    principal = principal_of(request)
    assert principal is not None  # org_permission: someone signed in
    return principal


@require_POST
@org_permission(Perm.CASES_VIEW)
def case_attach(request: HttpRequest, number: str) -> HttpResponse:
    """Attach one finished upload (by its CaseBridge-File-Id) to the case, with kind and label."""
    access = _access(request)
    case = case_for(access, number)
    stored = scoped_get(
        readable_files(_principal(request), access.organization), pk=uuid_or_none(request.POST.get("file", ""))
    )
    try:
        attachment = actions.attach_file(
            access, case, stored, kind=request.POST.get("kind", ""), label=request.POST.get("label", "")
        )
    except ValidationError as exc:
        return JsonResponse({"detail": " ".join(exc.messages)}, status=400)
    name = next(r["name"] for r in _attachment_rows(case) if r["attachment"].pk == attachment.pk)
    return JsonResponse(
        {"name": name, "kind": attachment.get_kind_display(), "warning": metadata_warning(stored.file_type)}
    )
