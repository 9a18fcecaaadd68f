"""The Alerts page: open alerts first, acknowledging each with a note, and the organization's
rules (thresholds, on/off) for compliance officers, owners and administrators."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from casebridge.access.guards import org_permission
from casebridge.access.policy import scoped_get
from casebridge.access.requests import org_access_of, user_of
from casebridge.access.roles import Perm
from casebridge.audit import alerts
from casebridge.audit.api import record
from casebridge.audit.models import Alert, AlertKind, AlertRule

PAGE = 100


class RuleForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="On")
    threshold = forms.IntegerField(min_value=1, max_value=100_000, label="Threshold")
    window_minutes = forms.IntegerField(min_value=1, max_value=7 * 24 * 60, label="Within (minutes)")
    start_hour = forms.IntegerField(min_value=0, max_value=23, label="Hours from")
    end_hour = forms.IntegerField(min_value=1, max_value=24, label="to")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("start_hour"), data.get("end_hour")
        if isinstance(start, int) and isinstance(end, int) and start >= end:
            raise forms.ValidationError("The organization's hours must end after they start.")
        return data


def _rule_forms(request: HttpRequest, data: object = None) -> list[tuple[str, str, RuleForm]]:
    access = org_access_of(request)
    rules = alerts.rules_of(access.organization)
    return [
        (
            kind,
            label,
            RuleForm(
                data if isinstance(data, dict) else None,
                prefix=kind,
                initial={
                    "enabled": rules[kind].enabled,
                    "threshold": rules[kind].threshold,
                    "window_minutes": rules[kind].window_minutes,
                    "start_hour": rules[kind].start_hour,
                    "end_hour": rules[kind].end_hour,
                },
            ),
        )
        for kind, label in AlertKind.choices
    ]


@org_permission(Perm.AUDIT_VIEW)
def alerts_page(request: HttpRequest) -> HttpResponse:
    return _render(request)


def _render(request: HttpRequest, forms_with_errors: list[tuple[str, str, RuleForm]] | None = None) -> HttpResponse:
    access = org_access_of(request)
    listed = list(Alert.objects.filter(organization=access.organization).select_related("acknowledged_by")[:PAGE])
    listed.sort(key=lambda a: (a.acknowledged_at is not None, -a.created_at.timestamp()))
    return render(
        request,
        "audit/alerts.html",
        {
            "alerts": listed,
            "open_count": sum(1 for a in listed if a.acknowledged_at is None),
            "rule_forms": forms_with_errors or _rule_forms(request),
            "can_manage": access.has(Perm.COMPLIANCE_MANAGE),
            "nav": "alerts",
        },
        status=400 if forms_with_errors else 200,
    )


@require_POST
@org_permission(Perm.AUDIT_VIEW)
def alert_acknowledge(request: HttpRequest, alert_id: uuid.UUID) -> HttpResponse:
    access = org_access_of(request)
    alert = scoped_get(Alert.objects.filter(organization=access.organization), pk=alert_id)
    try:
        alerts.acknowledge(alert, user_of(request), request.POST.get("note", ""))
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Alert acknowledged; your note is kept with it.")
    return redirect("alerts", access.organization.slug)


@require_POST
@org_permission(Perm.COMPLIANCE_MANAGE)
def alert_rules(request: HttpRequest) -> HttpResponse:
    access = org_access_of(request)
    posted = _rule_forms(request, request.POST.dict() | {k: "on" for k in request.POST if k.endswith("-enabled")})
    if not all(form.is_valid() for _kind, _label, form in posted):
        messages.error(request, "Some rules were not saved: see the messages beside them.")
        return _render(request, posted)
    changed = []
    for kind, _label, form in posted:
        values = form.cleaned_data
        rule, _ = AlertRule.objects.get_or_create(organization=access.organization, kind=kind)
        fields = [name for name, value in values.items() if getattr(rule, name) != value]
        if fields or _ is True:
            for name in fields:
                setattr(rule, name, values[name])
            rule.save()
            if fields:
                changed.append({"kind": kind, "fields": fields})
    record("alert.rules_changed", actor=access.actor, organization=access.organization, details={"changed": changed})
    messages.success(request, "Alert rules saved.")
    return redirect("alerts", access.organization.slug)
