"""Read-only queries behind the vault's pages: what a person sees of their own files."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from casebridge.access import policy
from casebridge.vault.models import ObjectVersion, StoredObject

RECENT_FILES = 20


def recent_files(access: policy.OrgAccess, limit: int = RECENT_FILES) -> QuerySet[StoredObject]:
    """Files the actor uploaded in the access's organization (and may still read), newest first, each with
    `size` (bytes of its current version). One query, on the (organization, -created_at) index.
    Files others attached to shared cases are readable too, but belong to those cases' pages."""
    principal = access.principal
    current_size = ObjectVersion.objects.filter(
        stored_object=OuterRef("pk"), version=OuterRef("current_version")
    ).values("size")[:1]
    return (
        policy.readable_files(principal, access.organization)
        .filter(principal.owns())
        .annotate(size=Subquery(current_size))
        .order_by("-created_at", "-pk")[:limit]
    )
