"""How the audit log names the cases and case files its events point at: by case number, which
carries no PHI (a year and a counter), never by patient."""

from __future__ import annotations

from collections.abc import Collection

from casebridge.audit.targets import register_labeller, uuids


def case_labels(ids: Collection[str]) -> dict[str, str]:
    from casebridge.cases.models import Case

    return {
        str(pk): f"Case {number}" for pk, number in Case.objects.filter(pk__in=uuids(ids)).values_list("pk", "number")
    }


def file_labels(ids: Collection[str]) -> dict[str, str]:
    """A file attached to a case is named by its case; one never attached keeps its stored type."""
    from casebridge.cases.models import Attachment

    rows = Attachment.objects.filter(stored_object_id__in=uuids(ids)).values_list("stored_object_id", "case__number")
    return {str(pk): f"File of case {number}" for pk, number in rows}


def register() -> None:
    register_labeller("cases.case", case_labels)
    register_labeller("vault.storedobject", file_labels)
