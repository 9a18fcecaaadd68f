"""Read-only queries behind the vault's pages: what a person sees of their own files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from casebridge.access import policy
from casebridge.vault.models import ObjectVersion, StoredObject

RECENT_FILES = 20


def recent_files(access: policy.OrgAccess, limit: int = RECENT_FILES) -> QuerySet[StoredObject]:
    """Files the actor uploaded in the access's organization (and may still read), newest first, each with
    `size` (bytes of its current version). One query, on the (organization, -created_at) index.
    Files others attached to shared cases are readable too, but belong to those cases' pages; DICOM
    instances indexed from an archive are parts of their study, not uploads of their own."""
    principal = access.principal
    current_size = ObjectVersion.objects.filter(
        stored_object=OuterRef("pk"), version=OuterRef("current_version")
    ).values("size")[:1]
    return (
        policy.readable_files(principal, access.organization)
        .filter(principal.owns(), dicom_instance__isnull=True)
        .annotate(size=Subquery(current_size))
        .order_by("-created_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class InboxRow:
    stored: StoredObject
    name: str  # the case's name of the file once attached; otherwise its type and upload time
    used_in: list[Any]  # the cases it is attached to (one at most today)


def inbox_rows(access: policy.OrgAccess, limit: int = RECENT_FILES) -> list[InboxRow]:
    """The person's uploads with where each is used."""
    from casebridge.cases.models import Attachment

    files = list(recent_files(access, limit))
    attached = {
        a.stored_object_id: a
        for a in Attachment.objects.filter(stored_object__in=[f.pk for f in files]).select_related(
            "case", "stored_object"
        )
    }
    rows = []
    for f in files:
        attachment = attached.get(f.pk)
        if attachment is not None:
            rows.append(InboxRow(f, attachment.display_name, [attachment.case]))
        else:
            rows.append(InboxRow(f, f"{f.file_type.upper()} upload of {f.created_at:%Y-%m-%d %H:%M}", []))
    return rows


def attachable_cases(access: policy.OrgAccess, limit: int = 50) -> list[Any]:
    """Open cases this person may add files to, newest first (the same rule as the case page)."""
    from casebridge.cases.actions import may_attach
    from casebridge.cases.models import Status

    candidates = (
        policy.visible_cases(access)
        .exclude(status__in=[Status.COMPLETED, Status.CANCELLED])
        .filter(archived_at__isnull=True)
        .select_related("patient", "practice", "lab")
        .order_by("-created_at")[: limit * 2]
    )
    return [c for c in candidates if may_attach(access, c)][:limit]
