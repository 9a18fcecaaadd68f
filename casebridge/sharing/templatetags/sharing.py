"""The sharing section of the case page, for members who may share the case's files."""

from __future__ import annotations

from typing import Any

from django import template

from casebridge.cases.models import Case
from casebridge.sharing.forms import ShareForm
from casebridge.sharing.views import can_share, section_context

register = template.Library()


@register.inclusion_tag("sharing/_case_section.html", takes_context=True)
def case_sharing(context: template.Context, case: Case, form: ShareForm | None = None) -> dict[str, Any]:
    request = context["request"]
    access = getattr(request, "org_access", None)
    if access is None or not can_share(access, case):
        return {"allowed": False}
    return {
        "allowed": True,
        "csrf_token": context.get("csrf_token"),
        "current_org": access.organization,
        **section_context(case, form),
    }
