"""Read-only queries behind the Files page, an organization's inbox of uploads: which files a
person sees there, what each is called and where it is used, and the cases one can go to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Q, QuerySet, Subquery

from casebridge.access import policy
from casebridge.accounts.models import User
from casebridge.cases.actions import attach_candidates, may_attach
from casebridge.cases.models import Attachment, Case
from casebridge.imaging.models import IngestJob
from casebridge.kernel.filetypes import FILE_TYPES_BY_NAME
from casebridge.vault import scanning_gate
from casebridge.vault.models import ObjectVersion, StoredObject

PAGE = 25
PICKER_LIMIT = 100  # cases offered at once; a practice rarely has more drafts open


def inbox_files(access: policy.OrgAccess) -> QuerySet[StoredObject]:
    """The files stored in the access's organization that its person sees on the Files page:

    - their own uploads not yet on a case (`policy.readable_files`);
    - every file of the organization on a case they may see, whoever uploaded it (readable too);
    - for whoever may destroy them (owners, administrators: `policy.destroyable_files`), the
      uploads of colleagues and service accounts not yet on a case, so that nothing uploaded
      and forgotten stays out of sight. They see that such a file exists, never its content.

    Parts of a study (the instances of an archive, a series' metadata document) belong to the
    study, not to anyone's uploads: they carry `attached_at` without being a case's attachment."""
    principal = access.principal
    org = access.organization
    readable = policy.readable_files(principal, org).values("pk")
    destroyable = policy.destroyable_files(principal).filter(organization=org, attached_at__isnull=True).values("pk")
    return StoredObject.objects.filter(
        Q(pk__in=readable) | Q(pk__in=destroyable),
        Q(attachment__isnull=False) | Q(attached_at__isnull=True),
        organization=org,
        destroyed_at__isnull=True,
    )


@dataclass(frozen=True)
class InboxRow:
    """One file as the Files page shows it."""

    stored: StoredObject
    name: str  # the case's name of the file once attached; before, its type and upload time
    type_label: str
    size: int | None
    uploaded_by: str
    scanned_at: datetime | None  # when the malware scanner found the current version clean
    attachment: Attachment | None
    ingest: IngestJob | None  # the latest indexing of an attached DICOM file or archive
    readable: bool  # the person may download it
    may_attach: bool  # their own upload, on no case yet: the case page would take it too
    may_delete: bool  # on no case, and theirs to destroy (policy.destroyable_files)

    @property
    def used_in(self) -> list[Case]:
        # One case at most today (an attachment is one-to-one); a list so the page need not know.
        return [self.attachment.case] if self.attachment is not None else []

    @property
    def scan_state(self) -> str:
        """checked / off (no scanner configured) / unknown (a scanner now, none on record then)."""
        if self.scanned_at is not None:
            return "checked"
        return "unknown" if scanning_gate.enabled() else "off"


def unattached_name(stored: StoredObject) -> str:
    """What a file on no case is called: its type and when it arrived. The name it had on the
    uploader's computer never reaches the server (names like LASTNAME_FIRSTNAME_DOB are PHI)."""
    kind = FILE_TYPES_BY_NAME.get(stored.file_type)
    return f"{kind.label if kind else stored.file_type.upper()} uploaded {stored.created_at:%Y-%m-%d %H:%M}"


def _uploader(stored: StoredObject, access: policy.OrgAccess) -> str:
    person, service = stored.created_by, stored.created_by_service
    if person is not None:
        return "you" if person.pk == access.actor.pk and isinstance(access.actor, User) else person.display_name
    if service is not None:
        return f"{service.name} (service account)"
    return "a removed account"


def inbox_rows(access: policy.OrgAccess, files: QuerySet[StoredObject], limit: int) -> list[InboxRow]:
    """Up to `limit` of `files` (a part of `inbox_files`), newest first, described. A constant
    number of queries whatever the count: the files with their uploader, case and current
    version; the case's attachments (for their names); what the person may do with each; and
    the indexing of attached DICOM."""
    principal = access.principal
    current = ObjectVersion.objects.filter(stored_object=OuterRef("pk"), version=OuterRef("current_version"))
    found = list(
        files.select_related("created_by", "created_by_service", "attachment__case")
        .prefetch_related("attachment__case__attachments")  # each attachment's name counts its case's
        .annotate(
            size=Subquery(current.values("size")[:1]),
            current_scanned_at=Subquery(current.values("scanned_at")[:1]),
        )
        .order_by("-created_at", "-pk")[:limit]
    )
    if not found:
        return []
    ids = [f.pk for f in found]
    readable = set(
        policy.readable_files(principal, access.organization).filter(pk__in=ids).values_list("pk", flat=True)
    )
    destroyable = set(policy.destroyable_files(principal).filter(pk__in=ids).values_list("pk", flat=True))
    ingests: dict[object, IngestJob] = {}
    for job in IngestJob.objects.filter(source__in=ids).order_by("created_at"):
        ingests[job.source_id] = job  # the latest wins
    rows = []
    for f in found:
        attachment: Attachment | None = getattr(f, "attachment", None)
        kind = FILE_TYPES_BY_NAME.get(f.file_type)
        rows.append(
            InboxRow(
                stored=f,
                name=attachment.display_name if attachment is not None else unattached_name(f),
                type_label=kind.label if kind else f.file_type.upper(),
                size=f.size,
                uploaded_by=_uploader(f, access),
                scanned_at=f.current_scanned_at,
                attachment=attachment,
                ingest=ingests.get(f.pk),
                readable=f.pk in readable,
                may_attach=attachment is None and f.pk in readable,
                may_delete=attachment is None and f.pk in destroyable,
            )
        )
    return rows


def inbox_page(
    access: policy.OrgAccess, *, waiting_only: bool = False, before: StoredObject | None = None
) -> tuple[list[InboxRow], StoredObject | None]:
    """One page of the inbox, newest first, after the cursor `before` (a file of the inbox);
    and the next cursor. `waiting_only`: only the files on no case yet."""
    files = inbox_files(access)
    if waiting_only:
        files = files.filter(attached_at__isnull=True)
    if before is not None:
        files = files.filter(Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, pk__lt=before.pk))
    rows = inbox_rows(access, files, PAGE + 1)
    return rows[:PAGE], (rows[PAGE - 1].stored if len(rows) > PAGE else None)


def waiting_count(access: policy.OrgAccess) -> int:
    return inbox_files(access).filter(attached_at__isnull=True).count()


def attachable_cases(access: policy.OrgAccess) -> tuple[list[Case], bool]:
    """The cases this person may add files to now, newest first, for the case picker; and whether
    there were more than the picker shows. The case's own rule decides (`may_attach`, the same
    answer the case page's drop zone and `attach_file` give)."""
    candidates = list(
        attach_candidates(access)
        .select_related("patient", "practice", "lab")
        .order_by("-created_at", "-pk")[: PICKER_LIMIT + 1]
    )
    cases = [c for c in candidates if may_attach(access, c)]
    return cases[:PICKER_LIMIT], len(cases) > PICKER_LIMIT
