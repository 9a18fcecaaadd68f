"""Patients' requests pages (compliance officers, owners, administrators): the register with each
request's deadline, registering one, and a request with what the law asks and the actions it
allows (a copy of everything held, erasure, restriction, amendment)."""

from __future__ import annotations

import uuid

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone

from casebridge.access.guards import org_permission
from casebridge.access.policy import scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.compliance import subject_requests as requests
from casebridge.compliance.forms import SubjectRequestForm
from casebridge.compliance.models import RequestKind, SubjectRequest
from casebridge.vault import zipstream

OPERATIONS = {
    "extend": lambda access, req, text: requests.extend(access, req, text),
    "refuse": lambda access, req, text: requests.refuse(access, req, text),
    "provided": lambda access, req, text: requests.complete_access(access, req, text),
    "restrict": lambda access, req, text: requests.restrict(access, req, text),
    "lift": lambda access, req, text: requests.lift(access, req, text),
    "erase": lambda access, req, text: requests.erase(access, req),
    "amend": lambda access, req, text: requests.amend(access, req, text),
    "disagree": lambda access, req, text: requests.disagree(access, req, text),
}
DONE = {
    "extend": "Deadline extended. Tell the patient in writing why, and when they will have the answer.",
    "refuse": "Request refused; the reason is recorded. Tell the patient, with how to complain.",
    "provided": "Recorded as provided.",
    "restrict": "Restriction in effect: the patient's cases can no longer be shared.",
    "lift": "Restriction lifted.",
    "amend": "Amendment appended to the patient's cases. Tell the patient, and the holders listed below.",
    "disagree": "Statement of disagreement appended to the patient's cases with the refusal.",
}


@org_permission(Perm.COMPLIANCE_MANAGE)
def request_list(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    patients = {str(p.pk): p for p in requests.patients_of(access)}
    choices = [
        (key, f"{p.name}{f' ({p.date_of_birth:%Y-%m-%d})' if p.date_of_birth else ''}") for key, p in patients.items()
    ]
    form = SubjectRequestForm(request.POST or None, patients=choices)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = requests.register(
                access,
                patient=patients.get(data["patient"]),
                kind=data["kind"],
                received_on=data["received_on"],
                under_gdpr=data["under_gdpr"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # field errors beside their fields
        else:
            messages.success(request, "Request registered. Its deadline is below.")
            return redirect("subject_request", access.organization.slug, created.pk)
    today = timezone.localdate()
    rows = []
    for item in SubjectRequest.objects.filter(organization=access.organization).select_related("patient")[:300]:
        due = requests.due_of(item)
        rows.append({"request": item, "due": due, "days_left": (due - today).days if due else None})
    return render(
        request,
        "compliance/requests.html",
        {"rows": rows, "form": form, "has_patients": bool(patients), "nav": "compliance"},
        status=400 if request.method == "POST" else 200,
    )


def _request_of(request: HttpRequest, request_id: uuid.UUID) -> SubjectRequest:
    access = org_access_of(request)
    return scoped_get(
        SubjectRequest.objects.filter(organization=access.organization).select_related("patient"), pk=request_id
    )


def _erasing(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("operation") == "erase"


@org_permission(Perm.COMPLIANCE_MANAGE)
# Erasure crypto-shreds a patient's files: whoever asks confirms who they are first (as for
# signing a BAA or changing roles); the page's other actions only record a decision.
@reauthentication_required(enabled=_erasing)
def request_detail(request: HttpRequest, request_id: uuid.UUID) -> HttpResponse:
    access = org_access_of(request)
    item = _request_of(request, request_id)
    if request.method == "POST":
        operation = request.POST.get("operation", "")
        if operation not in OPERATIONS:
            messages.error(request, "Choose an action on the page.")
        else:
            try:
                OPERATIONS[operation](access, item, request.POST.get("text", ""))
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                if operation == "erase":
                    if item.status == "refused":
                        messages.error(request, "Erasure refused: the reasons are recorded below.")
                    else:
                        messages.success(request, "The patient's files were crypto-shredded.")
                else:
                    messages.success(request, DONE[operation])
        return redirect("subject_request", access.organization.slug, item.pk)
    due = requests.due_of(item)
    first_due = requests.due_on(item.kind, item.received_on, under_gdpr=item.under_gdpr, extended=False)
    is_open = item.status in ("open", "extended")
    return render(
        request,
        "compliance/request.html",
        {
            "item": item,
            "due": due,
            "days_left": (due - timezone.localdate()).days if due else None,
            "can_extend": is_open and item.extended_at is None and first_due is not None,
            "is_open": is_open,
            "in_effect": requests.in_effect(item),
            "laws": requests.laws(item.kind, item.under_gdpr),
            "erasure_refusals": requests.erasure_refusals(item) if is_open and item.kind == RequestKind.ERASURE else [],
            "cases": item.patient.cases.order_by("created_at"),
            "holders": requests.holders(item) if item.kind == RequestKind.AMENDMENT else [],
            "nav": "compliance",
        },
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def request_export(request: HttpRequest, request_id: uuid.UUID) -> HttpResponseBase:
    """Everything the organization holds about the patient of an access request, as one ZIP
    streamed as it is decrypted (vault/zipstream.py), with an index; the download is audited."""
    access = org_access_of(request)
    item = _request_of(request, request_id)
    if item.kind != RequestKind.ACCESS:
        raise Http404("not an access request")
    entries, documents = requests.access_archive(access, item)
    # The file name carries the request's reference, never the patient's name.
    return zipstream.streamed_response(entries, f"patient-records-{str(item.pk)[:8]}.zip", documents)
