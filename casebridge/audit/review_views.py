"""The Reviews page: sign off a period of the audit log, the history of reviews (evidence), the
cadence, and the accountability metrics."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from casebridge.access.guards import org_permission
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit import reviews
from casebridge.audit.api import record
from casebridge.audit.models import AuditReview, ReviewSchedule


class DateInput(forms.DateInput):
    input_type = "date"


class ReviewForm(forms.Form):
    period_start = forms.DateField(label="From", widget=DateInput())
    period_end = forms.DateField(label="To", widget=DateInput())
    notes = forms.CharField(
        label="What you reviewed",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="e.g. sign-ins, refused requests, emergency access, external links, alerts of the period.",
    )
    findings = forms.CharField(label="Findings", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    follow_up = forms.CharField(label="Follow-up actions", required=False, widget=forms.Textarea(attrs={"rows": 2}))


class CadenceForm(forms.Form):
    cadence_days = forms.IntegerField(label="Review every (days)", min_value=7, max_value=366)


def _render(request: HttpRequest, form: ReviewForm | None = None, status: int = 200) -> HttpResponse:
    access = org_access_of(request)
    org = access.organization
    last = AuditReview.objects.filter(organization=org).order_by("-period_end").first()
    today = timezone.localdate()
    start = last.period_end + timedelta(days=1) if last else timezone.localdate(org.created_at)
    schedule = reviews.schedule_of(org)
    return render(
        request,
        "audit/reviews.html",
        {
            "reviews": AuditReview.objects.filter(organization=org).select_related("reviewed_by")[:50],
            "form": form or ReviewForm(initial={"period_start": min(start, today), "period_end": today}),
            "cadence_form": CadenceForm(initial={"cadence_days": schedule.cadence_days}),
            "next_due": reviews.next_due(org),
            "overdue": reviews.overdue_days(org),
            "metrics": reviews.metrics(org),
            "can_sign": access.has(Perm.COMPLIANCE_MANAGE),
            "nav": "audit",
        },
        status=status,
    )


@org_permission(Perm.AUDIT_VIEW)
def audit_reviews(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(request)
    access = org_access_of(request)
    access.require(Perm.COMPLIANCE_MANAGE)
    if request.POST.get("operation") == "cadence":
        cadence = CadenceForm(request.POST)
        if cadence.is_valid():
            ReviewSchedule.objects.filter(pk=reviews.schedule_of(access.organization).pk).update(
                cadence_days=cadence.cleaned_data["cadence_days"]
            )
            record(
                "audit.review.cadence_changed",
                actor=access.actor,
                organization=access.organization,
                details={"review_cadence_days": cadence.cleaned_data["cadence_days"]},
            )
            messages.success(request, "Review cadence saved.")
        else:
            messages.error(request, "Choose a cadence between 7 and 366 days.")
        return redirect("audit_reviews", access.organization.slug)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            reviews.sign_review(access, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # each error beside its field
        else:
            messages.success(request, "Review signed; it is kept as evidence and in the audit log.")
            return redirect("audit_reviews", access.organization.slug)
    return _render(request, form, status=400)
