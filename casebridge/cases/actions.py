"""Case actions: every change to a case happens here, in one transaction with its audit event,
whichever door it came through (web page, REST API, SFTP). Notifications carry no PHI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import (
    Forbidden,
    OrgAccess,
    acts_for_practice,
    case_side,
    destroyable_files,
    organization_connection,
    require_practice,
    sharing_refusal,
    visible_cases,
)
from casebridge.access.principal import Principal
from casebridge.access.roles import Perm, Role
from casebridge.accounts.models import NotifyTopic, ServiceAccount, User
from casebridge.audit.api import record
from casebridge.cases import shades, teeth
from casebridge.cases.models import (
    Arch,
    Attachment,
    AttachmentKind,
    Case,
    CaseCounter,
    CaseEvent,
    CaseItem,
    Delivery,
    ImagingOrderStatus,
    Material,
    Message,
    MessageRead,
    Patient,
    Restoration,
    Status,
)
from casebridge.cases.queries import prescriber_membership, prescribers
from casebridge.cases.templates import TEMPLATES, missing
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.deid import identifiers
from casebridge.imaging.actions import start_ingest
from casebridge.imaging.ingest import SHRED_REASON, clean_content, read_content
from casebridge.imaging.sanitize import SanitizeError, SanitizeResult
from casebridge.imaging.studies import forget_destroyed
from casebridge.imaging.thumbnails import queue_for_file as queue_thumbnail
from casebridge.kernel.filetypes import version_type_refusal
from casebridge.notifications.actions import notify_members
from casebridge.orgs.models import ConnectionStatus, Membership, Organization, OrgKind
from casebridge.vault import api as vault
from casebridge.vault.api import PendingVersion
from casebridge.vault.models import ObjectVersion, StoredObject

# Which statuses a lab may move a case to, from which.
LAB_TRANSITIONS: dict[str, set[str]] = {
    Status.RECEIVED: {Status.IN_DESIGN, Status.IN_PRODUCTION},
    Status.IN_DESIGN: {Status.IN_PRODUCTION},
    Status.DESIGN_APPROVED: {Status.IN_PRODUCTION},
    Status.DESIGN_REJECTED: {Status.IN_DESIGN},
    Status.IN_PRODUCTION: {Status.QUALITY_CHECK},
    Status.QUALITY_CHECK: {Status.IN_PRODUCTION, Status.SHIPPED},
    Status.SHIPPED: {Status.DELIVERED},
}
# While the lab works on a case it adds files to it (designs, photos of the work in progress);
# before receipt the case is the practice's, after the quality check the work is done.
LAB_UPLOAD_STATUSES = frozenset(
    {Status.RECEIVED, Status.IN_DESIGN, Status.DESIGN_REJECTED, Status.IN_PRODUCTION, Status.QUALITY_CHECK}
)
HOLDABLE = {Status.RECEIVED, Status.IN_DESIGN, Status.DESIGN_REJECTED, Status.IN_PRODUCTION, Status.QUALITY_CHECK}
CLOSED = {Status.COMPLETED, Status.CANCELLED}
T = TypeVar("T")


@dataclass
class ItemInput:
    restoration: str
    tooth: int | None = None
    arch: str = ""
    material: str = ""
    shade: str = ""
    stump_shade: str = ""


def _patient_ref(case: Case) -> str:
    return str(case.patient_id)


def _audit(action: str, access: OrgAccess, case: Case, **details: Any) -> None:
    record(
        action,
        actor=access.actor,
        organization=access.organization,
        target=case,
        patient_ref=_patient_ref(case),
        details={"case": case.number, **details},
    )


def _history(case: Case, access: OrgAccess, note: str = "") -> None:
    actor = access.actor if isinstance(access.actor, User) else None
    CaseEvent.objects.create(
        case=case,
        status=case.status,
        actor=actor,
        actor_label=getattr(access.actor, "display_name", "") or getattr(access.actor, "audit_label", ""),
        note=note,
    )


def _notify(
    case: Case,
    org: Organization,
    event: str,
    topic: NotifyTopic,
    *,
    template: str = "case_event",
    sender: Organization | None = None,
) -> None:
    """E-mail the other side: the case number, what happened and a link. Never a patient name.
    Only to the members who chose to be told about this kind of event (accounts.NotifyTopic).
    Every member who may see cases also finds it under the bell (notifications app)."""
    recipients = list(
        Membership.objects.filter(organization=org, is_active=True, user__is_active=True, **{f"user__{topic}": True})
        .exclude(role__in=[Role.AUDITOR, Role.COMPLIANCE_OFFICER])
        .values_list("user__email", flat=True)
    )
    notify_members(case, org, event, topic)
    queue_mail(
        recipients,
        template,
        {
            "number": case.number,
            "event": event,
            # The other organization's name (not PHI): who the news is from, at a glance.
            "sender": sender.name if sender is not None else _other_side_name(case, org),
            "link": absolute_url(reverse("case_detail", args=[org.slug, case.number])),
            "preferences_link": absolute_url(reverse("security")),
        },
    )


def _other_side_name(case: Case, org: Organization) -> str:
    """The organization on the other side of ``case`` from ``org``: who news for ``org`` is from."""
    if org.pk != case.practice_id:
        return case.practice.name
    return case.lab.name if case.lab is not None else ""


def _next_number() -> str:
    year = timezone.now().year
    counter, _ = CaseCounter.objects.select_for_update().get_or_create(year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    return f"CB-{year}-{counter.last:06d}"


def _clean_items(items: list[ItemInput], case_type: str, notation: str = "fdi") -> list[ItemInput]:
    """Check each restoration against the case type; errors are keyed "items" for the form."""
    template = TEMPLATES.get(case_type)
    if template is None:
        raise ValidationError({"case_type": "Choose a case type."})
    problems: list[str] = []
    seen: set[tuple[int | None, str, str]] = set()
    for item in items:
        if item.tooth is None:
            where = f"the {item.arch or 'unnamed'} arch"
        elif item.tooth in teeth.ALL_TEETH:
            where = f"tooth {teeth.display(item.tooth, notation)}"
        else:
            where = f"tooth {item.tooth}"
        if item.restoration not in template.restorations:
            known = item.restoration in Restoration.values
            label = Restoration(item.restoration).label if known else "That restoration"
            problems.append(f"{label} is not part of a {template.label.lower()} case ({where}).")
        if item.tooth is not None:
            try:
                teeth.check(item.tooth)
            except teeth.ToothError as exc:
                problems.append(str(exc))
        elif item.arch not in Arch.values:
            problems.append("Each restoration needs a tooth or an arch (upper, lower or both).")
        if item.material and item.material not in Material.values:
            problems.append(f"Choose a material from the list for {where}.")
        item.shade = shades.normalize(item.shade)
        item.stump_shade = shades.normalize(item.stump_shade)
        if item.shade and item.shade not in shades.TOOTH_SHADES:
            problems.append(f"{item.shade} is not a VITA classical or 3D-Master shade ({where}).")
        if item.stump_shade and item.stump_shade not in shades.STUMP_SHADES:
            problems.append(f"{item.stump_shade} is not a stump shade (ND1-ND9) ({where}).")
        key = (item.tooth, item.arch, item.restoration)
        if key in seen:
            problems.append(f"{where[0].upper()}{where[1:]} is listed twice.")
        seen.add(key)
    if problems:
        raise ValidationError({"items": problems})
    return items


def _check_parties(access: OrgAccess, lab: Organization | None, doctor: User | None) -> dict[str, str]:
    """Only a connected lab and one of the practice's prescribers can be named on a case."""
    errors: dict[str, str] = {}
    if lab is not None:
        connection = organization_connection(access.organization, lab)
        if lab.kind != OrgKind.LAB or connection is None or connection.status != ConnectionStatus.ACTIVE:
            errors["lab"] = "Choose one of your connected labs."
    if doctor is not None and doctor.pk not in {u.pk for u in prescribers(access.organization)}:
        errors["doctor"] = "Choose one of the practice's prescribers (marked on the Members page, with a license)."
    return errors


def _save_items(case: Case, items: list[ItemInput]) -> None:
    CaseItem.objects.bulk_create(
        CaseItem(
            case=case,
            tooth=i.tooth,
            arch=i.arch,
            restoration=i.restoration,
            material=i.material,
            shade=i.shade,
            stump_shade=i.stump_shade,
        )
        for i in items
    )


# --- drafting -----------------------------------------------------------------------------
def create_case(
    access: OrgAccess,
    *,
    patient_name: str,
    case_type: str,
    patient_dob: date | None = None,
    chart_number: str = "",
    lab: Organization | None = None,
    doctor: User | None = None,
    due_date: date | None = None,
    delivery: str = Delivery.SHIP,
    ship_to: str = "",
    notes: str = "",
    items: list[ItemInput] | None = None,
    remake_of: Case | None = None,
    notation: str = "fdi",
) -> Case:
    """Draft a case. ``notation`` is only how error messages name teeth (items are always FDI)."""
    require_practice(access)
    # Every field is checked before anything is written, so the form can show all problems at once.
    errors: dict[str, Any] = {}
    if not patient_name.strip():
        errors["patient_name"] = "Enter the patient's name (the lab uses it to match the work)."
    if patient_dob is not None and patient_dob > timezone.now().date():
        errors["patient_dob"] = "The date of birth cannot be in the future."
    if delivery not in Delivery.values:
        errors["delivery"] = "Choose shipping or local pickup."
    errors.update(_check_parties(access, lab, doctor))
    cleaned: list[ItemInput] = []
    try:
        cleaned = _clean_items(items or [], case_type, notation)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        patient = Patient.objects.filter(
            practice=access.organization,
            name=patient_name.strip(),
            date_of_birth=patient_dob,
            chart_number=chart_number.strip(),
        ).first() or Patient.objects.create(
            practice=access.organization,
            name=patient_name.strip(),
            date_of_birth=patient_dob,
            chart_number=chart_number.strip(),
        )
        case = Case.objects.create(
            number=_next_number(),
            practice=access.organization,
            lab=lab,
            patient=patient,
            doctor=doctor,
            case_type=case_type,
            due_date=due_date,
            delivery=delivery,
            # Shipping with no address given goes to the practice (its profile, under Settings).
            ship_to=ship_to.strip() or (access.organization.address if delivery == Delivery.SHIP else ""),
            notes=notes.strip(),
            created_by=access.actor if isinstance(access.actor, User) else None,
            remake_of=remake_of,
        )
        _save_items(case, cleaned)
        _history(case, access)
        _audit(
            "case.remake_created" if remake_of else "case.created",
            access,
            case,
            **({"original": remake_of.number} if remake_of else {}),
        )
    return case


# Neutral words for what a file shows; an optional "_2"-style suffix numbers repeats. Free text
# is not accepted: it is where a patient's name would end up.
ATTACHMENT_LABELS = (
    "upper",
    "lower",
    "bite",
    "prep",
    "opposing",
    "scanbody",
    "shade",
    "smile",
    "retracted",
    "face",
    "xray",
    "cbct",
    "rx",
    "design",
    "model",
    "other",
)


def _neutral_label(label: str) -> str:
    text = label.strip().lower()
    base, _, number = text.replace("-", "_").partition("_")
    if text and (base not in ATTACHMENT_LABELS or (number and not number.isdigit()) or len(text) > 40):
        raise ValidationError({"label": f"Choose a label from the list ({', '.join(ATTACHMENT_LABELS)})."})
    return text.replace("-", "_")


def attach_refusal(access: OrgAccess, case: Case) -> Forbidden | ValidationError | None:
    """Why ``access`` may not add files to ``case`` now, or None when it may: the one answer for
    attaching an upload, adding a version of an attached file, STOW-RS and showing the drop zone.

    The practice adds files while the case is its draft; the lab while it works on the case
    (LAB_UPLOAD_STATUSES) and until the practice revokes its access; an imaging center while it
    works on an order of the case (received, not yet delivered, access not revoked). Each needs
    its side's case permission (the lab's to work on cases; the practice's and the imaging
    center's, whose radiologists and technologists hold a practice's roles, to edit them) and
    the upload permission (a token: ``cases:write``)."""
    org = access.organization.pk
    side = case_side(access, case)
    lab_side = side == "lab" and case.lab_id == org and case.status != Status.DRAFT
    if (side == "practice" and case.practice_id != org) or (side == "lab" and not lab_side):
        return ValidationError("That case is not one of yours.")
    for perm in (Perm.CASES_WORK if side == "lab" else Perm.CASES_EDIT, Perm.FILES_UPLOAD):
        if not access.has(perm):
            return Forbidden(perm)
    if case.status in CLOSED or case.archived_at:
        return ValidationError("Files cannot be added to a closed case.")
    if side == "imaging":
        if not case.imaging_orders.filter(
            center_id=org, status=ImagingOrderStatus.RECEIVED, access_revoked_at__isnull=True
        ).exists():
            return ValidationError(
                "The imaging center adds the study and its report while it works on the order "
                "(from receipt until the images are delivered)."
            )
    elif lab_side:
        if case.lab_access_revoked_at is not None or case.status not in LAB_UPLOAD_STATUSES:
            return ValidationError(
                "The lab adds files while it works on the case (from receipt until the quality check)."
            )
    elif case.status != Status.DRAFT:
        return ValidationError("Files are added to a case while it is a draft; this one was already sent to the lab.")
    return None


def may_attach(access: OrgAccess, case: Case) -> bool:
    return attach_refusal(access, case) is None


def require_attach(access: OrgAccess, case: Case) -> None:
    refusal = attach_refusal(access, case)
    if refusal is not None:
        raise refusal


def attach_candidates(access: OrgAccess) -> QuerySet[Case]:
    """The cases `access` might add files to, for offering them (the Files page's case picker):
    the organization's drafts and the open cases its lab works on. It narrows the query only;
    `attach_refusal` has the last word on each, so keep this a superset of what it allows."""
    org = access.organization
    return (
        visible_cases(access)
        .filter(
            Q(practice=org, status=Status.DRAFT)
            | Q(lab=org, status__in=LAB_UPLOAD_STATUSES, lab_access_revoked_at=None)
            | Q(imaging_orders__center=org, imaging_orders__status=ImagingOrderStatus.RECEIVED),
            archived_at__isnull=True,
        )
        .distinct()
    )


# What each side of a case is offered to add: a lab designs (and other files), an imaging center
# the study and its report, a practice everything else. `attach_file` keeps designs to the lab
# and reports to the imaging center (a lab's STOW-RS still adds a study, as a CBCT).
SIDE_KINDS: dict[str, tuple[str, ...]] = {
    "lab": (AttachmentKind.DESIGN, AttachmentKind.OTHER),
    "imaging": (AttachmentKind.CBCT, AttachmentKind.REPORT, AttachmentKind.PHOTO, AttachmentKind.OTHER),
    "practice": tuple(k for k in AttachmentKind.values if k not in (AttachmentKind.DESIGN, AttachmentKind.REPORT)),
}


def upload_kinds(side: str) -> list[tuple[str, str]]:
    """What a file added to a case by ``side`` can be said to be (SIDE_KINDS)."""
    return [(k, AttachmentKind(k).label) for k in SIDE_KINDS[side]]


def attach_file(
    access: OrgAccess, case: Case, stored_object: StoredObject, *, kind: str, label: str = ""
) -> Attachment:
    """Attach an uploaded file: from then on the case's parties see it, and only they.

    Identifying metadata is removed first (imaging.ingest): the cleaned content becomes the
    current version and every earlier version (the uploader's, never cleaned) is crypto-shredded.
    What was removed (names and counts, never values) goes into the audit event."""
    if kind not in AttachmentKind.values:
        raise ValidationError({"kind": "Choose what kind of file this is."})
    require_attach(access, case)
    side = case_side(access, case)
    if kind == AttachmentKind.DESIGN and side != "lab":
        raise ValidationError({"kind": "Designs are added by the lab."})
    if kind == AttachmentKind.REPORT and side != "imaging":
        raise ValidationError({"kind": "Radiology reports are added by the imaging center."})
    label = _neutral_label(label)
    if not _attachable(access, stored_object):
        raise ValidationError("That file cannot be attached here.")
    current = vault.get_version(stored_object)

    def link(cleaned: PendingVersion | None, cleaning: SanitizeResult) -> Attachment:
        # Locked, so that two requests cannot attach the same upload twice; and re-checked,
        # because the file and the case may have changed while the content was being cleaned.
        locked = StoredObject.objects.select_for_update().filter(pk=stored_object.pk).first()
        if locked is None or not _attachable(access, locked) or locked.current_version != current.version:
            raise ValidationError("That file cannot be attached here.")
        if cleaned is not None:
            vault.link_version(cleaned, actor=access.actor)
        kept = cleaned.version if cleaned else current.version
        vault.destroy_versions_before(
            locked,
            kept,
            actor=access.actor,
            reason=SHRED_REASON,
            # Routine, not a deliberate destruction: the log says so (issue 11, item 16).
            audit_action="file.original_replaced_by_cleaned_copy",
            details={"cleaned_version": kept, "cleaned_sha256": cleaned.sha256 if cleaned else current.sha256},
        )
        attachment = Attachment.objects.create(
            case=case,
            stored_object=locked,
            kind=kind,
            label=label,
            added_by=access.actor if isinstance(access.actor, User) else None,
            added_by_org=access.organization,
        )
        StoredObject.objects.filter(pk=locked.pk).update(attached_at=timezone.now())
        _audit(
            "case.attachment.added",
            access,
            case,
            kind=kind,
            file=str(locked.pk),
            version=cleaned.version if cleaned else current.version,
            metadata=cleaning.audit_details(),
        )
        return attachment

    attachment = _ingest(access, case, current, stored_object.file_type, current.version + 1, link)
    stored_object.refresh_from_db()
    queue_thumbnail(stored_object)
    if stored_object.file_type == "dicom" or (stored_object.file_type == "zip" and kind == AttachmentKind.CBCT):
        # DICOM (and a ZIP sent as the CBCT) becomes the case's studies, indexed in the background.
        start_ingest(access, case, stored_object)
    return attachment


def _attachable(access: OrgAccess, stored: StoredObject) -> bool:
    return stored.organization_id == access.organization.pk and stored.attached_at is None and not stored.is_destroyed


def _ingest(
    access: OrgAccess,
    case: Case,
    source: ObjectVersion | PendingVersion,
    file_type: str,
    version: int,
    link: Callable[[PendingVersion | None, SanitizeResult], T],
) -> T:
    """The one pipeline content takes into a case, for attaching an upload and for a new version
    of an attached file alike. The heavy part runs outside any transaction and holds no lock
    (a 2 GB file is read twice and written once): metadata removal into a pending version, which
    is scanned. Then one short transaction re-checks that this access may still add files to
    the case and `link`s the result. If anything refuses, nothing is left behind."""
    try:
        cleaning, cleaned = clean_content(source, file_type=file_type, version=version)
    except SanitizeError as exc:
        raise ValidationError(
            f"The file could not be checked for hidden patient data ({exc}); it was not added."
        ) from exc
    try:
        # What de-identification would still remove (kinds only), shown on the case page before
        # sharing; and what the attach itself removed.
        kept = cleaned or source
        found = identifiers.examine(file_type, kept.size, lambda: read_content(kept))
        found["removed_on_attach"] = identifiers.of_removed(cleaning.removed)
        with transaction.atomic():
            locked_case = Case.objects.select_for_update().get(pk=case.pk)
            require_attach(access, locked_case)
            linked = link(cleaned, cleaning)
            object_id = kept.stored_object_id if isinstance(kept, ObjectVersion) else kept.object_id
            ObjectVersion.objects.filter(stored_object_id=object_id, version=kept.version).update(identifiers=found)
            return linked
    except BaseException:
        if cleaned is not None:
            vault.discard(cleaned)
        raise


def version_refusal(access: OrgAccess, stored: StoredObject) -> Forbidden | ValidationError | None:
    """Why `access` may not add a new version to `stored` now (None: it may). Asked when the
    upload is created, before any byte flows, and again when its content is linked.

    A file of a case takes new versions from the organization that added it, under the rule for
    adding files to that case (attach_refusal); a file not yet on a case, from its uploader."""
    if stored.is_destroyed:
        return ValidationError("This file was destroyed; upload a new one.")
    if stored.organization_id != access.organization.pk:
        return ValidationError("Only the organization that added a file adds versions of it.")
    attachment = Attachment.objects.filter(stored_object=stored).select_related("case").first()
    if attachment is not None:
        return attach_refusal(access, attachment.case)
    if not access.has(Perm.FILES_UPLOAD):
        return Forbidden(Perm.FILES_UPLOAD)
    actor = access.actor
    uploader = stored.created_by_service_id if isinstance(actor, ServiceAccount) else stored.created_by_id
    if uploader != actor.pk:
        return ValidationError("Until a file is on a case, only its uploader adds versions of it.")
    return None


def require_version(access: OrgAccess, stored: StoredObject) -> None:
    refusal = version_refusal(access, stored)
    if refusal is not None:
        raise refusal


def add_version(access: OrgAccess, stored: StoredObject, content: PendingVersion) -> ObjectVersion:
    """Make `content` (an upload's, sealed and scanned) the next version of `stored`, or refuse.

    A file of a case takes exactly the attach pipeline (_ingest): who may add files to the case
    now, the file's type, metadata removal before anyone sees the version, and an audit event
    with the patient reference. A file not yet on a case is its uploader's own: its versions are
    linked as they come and cleaned when it is attached. `content` is this action's: whatever
    the outcome, nothing of it is left that is not a version."""
    try:
        require_version(access, stored)
        refusal = version_type_refusal(stored.file_type, content.file_type)
        if refusal:
            raise ValidationError(refusal, code="file_type")
        attachment = Attachment.objects.filter(stored_object=stored).select_related("case").first()
        if attachment is None:
            with transaction.atomic():
                # Locked and re-read: attached meanwhile, it must take the case's pipeline instead.
                if StoredObject.objects.select_for_update().get(pk=stored.pk).attached_at is not None:
                    raise ValidationError("The file was attached to a case meanwhile; upload the version again.")
                return vault.link_version(content, actor=access.actor)
        case = attachment.case

        def link(cleaned: PendingVersion | None, cleaning: SanitizeResult) -> ObjectVersion:
            # Only the cleaned content ever becomes the version: the uncleaned never does.
            version = vault.link_version(cleaned or content, actor=access.actor)
            _audit(
                "case.attachment.version_added",
                access,
                case,
                kind=attachment.kind,
                file=str(stored.pk),
                version=version.version,
                metadata=cleaning.audit_details(),
            )
            return version

        version = _ingest(access, case, content, stored.file_type, content.version, link)
        queue_thumbnail(stored)
    finally:
        # The uploaded content stays only as the version it became (when nothing was removed).
        if not ObjectVersion.objects.filter(blob_name=content.blob_name).exists():
            vault.discard(content)
    stored.refresh_from_db()
    return version


_DRAFT_FIELDS = frozenset({"case_type", "lab", "doctor", "due_date", "delivery", "ship_to", "notes"})


def _item_key(item: ItemInput | CaseItem) -> tuple[Any, ...]:
    return (item.tooth, item.arch, item.restoration, item.material, item.shade, item.stump_shade)


def update_draft(
    access: OrgAccess,
    case: Case,
    *,
    items: list[ItemInput] | None = None,
    notation: str = "fdi",
    **changes: Any,
) -> list[str]:
    """Change a draft's details (and replace its restorations when `items` is given).

    Every field is checked before anything is written (errors keyed by field, like create_case).
    Only what actually differs is saved and named in the audit event: field names, never values.
    Returns those names (empty when nothing changed: then nothing is written or audited)."""
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case) or case.status != Status.DRAFT:
        raise ValidationError("Only a draft of your practice can be changed.")
    unknown = set(changes) - _DRAFT_FIELDS
    if unknown:
        raise ValueError(f"not draft fields: {sorted(unknown)}")
    errors: dict[str, Any] = {}
    if "delivery" in changes and changes["delivery"] not in Delivery.values:
        errors["delivery"] = "Choose shipping or local pickup."
    errors.update(_check_parties(access, changes.get("lab"), changes.get("doctor")))
    case_type = changes.get("case_type", case.case_type)
    current = list(case.items.all())
    cleaned: list[ItemInput] | None = None
    if items is not None or case_type != case.case_type:
        # A new case type must fit the restorations, the new ones or those already on the draft.
        to_check = items
        if to_check is None:
            to_check = [ItemInput(i.restoration, i.tooth, i.arch, i.material, i.shade, i.stump_shade) for i in current]
        try:
            cleaned = _clean_items(to_check, case_type, notation)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    for name in ("ship_to", "notes"):
        if name in changes:
            changes[name] = changes[name].strip()
    changed = sorted(name for name, value in changes.items() if getattr(case, name) != value)
    items_changed = (
        items is not None
        and cleaned is not None
        and Counter(map(_item_key, cleaned)) != Counter(map(_item_key, current))
    )
    fields = changed + (["items"] if items_changed else [])
    if not fields:
        return []
    with transaction.atomic():
        for name in changed:
            setattr(case, name, changes[name])
        if changed:
            case.save(update_fields=changed)
        if items_changed and cleaned is not None:
            case.items.all().delete()
            _save_items(case, cleaned)
        _audit("case.updated", access, case, fields=fields)
    return fields


# --- the workflow -------------------------------------------------------------------------
def submission_problems(case: Case) -> list[str]:
    """Everything that stops ``case`` from being sent, in plain words: what is missing from it
    (cases.templates.missing), then whether its lab may receive patient data at all."""
    problems = missing(case)
    restricted = sharing_refusal(case)  # the patient restricted sharing (access/policy.py)
    if restricted:
        problems.append(restricted)
    if case.doctor is not None and prescriber_membership(case.practice, case.doctor) is None:
        # The case is signed in the doctor's name when sent: only someone who may prescribe now.
        problems.append(
            f"{case.doctor.display_name} is no longer a prescriber here: choose another doctor (Edit draft)."
        )
    if case.lab is None:
        return problems
    connection = organization_connection(case.practice, case.lab)
    if connection is None:
        problems.append(f"You are not connected with {case.lab.name}. Connect first on the Connections page.")
    elif not connection.can_carry_phi:
        problems.append(connection.phi_refusal(case.lab.name))
    return problems


def submit_case(access: OrgAccess, case: Case) -> None:
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case) or case.status != Status.DRAFT:
        raise ValidationError("Only a draft of your practice can be sent.")
    problems = submission_problems(case)
    if problems:
        raise ValidationError(problems)
    assert case.lab is not None
    connection = organization_connection(case.practice, case.lab)
    assert connection is not None
    prescriber = prescriber_membership(case.practice, case.doctor) if case.doctor else None
    with transaction.atomic():
        case.status = Status.SUBMITTED
        case.submitted_at = timezone.now()
        fields = ["status", "submitted_at"]
        if prescriber is not None:
            # The electronic signature of the prescription, as of now (see Case.signed_*).
            case.signed_name = prescriber.user.display_name
            case.signed_license = prescriber.license
            case.signed_at = case.submitted_at
            fields += ["signed_name", "signed_license", "signed_at"]
        case.save(update_fields=fields)
        _history(case, access)
        _audit(
            "case.submitted",
            access,
            case,
            lab=str(case.lab_id),
            basis=connection.basis,
            # Who signed (the doctor) can differ from who sent (the actor, e.g. an assistant).
            signed_by=str(case.doctor_id) if prescriber else None,
            license=case.signed_license or None,
        )
        _notify(case, case.lab, "New case for your lab", NotifyTopic.NEW_CASE)


def confirm_receipt(access: OrgAccess, case: Case) -> None:
    access.require(Perm.CASES_WORK)
    if case.lab_id != access.organization.pk or case.status != Status.SUBMITTED:
        raise ValidationError("Only a newly submitted case can be confirmed.")
    with transaction.atomic():
        # The practice may cancel a submitted case at the same moment: whoever locks first wins.
        if Case.objects.select_for_update().filter(pk=case.pk).values_list("status", flat=True).get() != case.status:
            raise ValidationError("The case changed meanwhile (the practice may have cancelled it); reload it.")
        case.status = Status.RECEIVED
        case.received_at = timezone.now()
        case.received_by = access.actor if isinstance(access.actor, User) else None
        case.save(update_fields=["status", "received_at", "received_by"])
        _history(case, access)
        _audit("case.received", access, case)
        _notify(case, case.practice, "The lab confirmed receipt", NotifyTopic.STATUS)


def change_status(access: OrgAccess, case: Case, status: str, *, note: str = "", tracking_number: str = "") -> None:
    access.require(Perm.CASES_WORK)
    if case.lab_id != access.organization.pk:
        raise ValidationError("Only the lab moves a case through production.")
    allowed = LAB_TRANSITIONS.get(case.status, set())
    if status not in allowed:
        names = ", ".join(Status(s).label for s in sorted(allowed)) or "nothing"
        raise ValidationError(f"From {Status(case.status).label} the case can move to: {names}.")
    if status == Status.SHIPPED and case.delivery == Delivery.SHIP and not tracking_number.strip():
        raise ValidationError("Enter the tracking number.")
    with transaction.atomic():
        previous = case.status
        case.status = status
        case.tracking_number = tracking_number.strip() or case.tracking_number
        case.save(update_fields=["status", "tracking_number"])
        _history(case, access, note)
        _audit("case.status_changed", access, case, **{"from": previous, "to": status})
        if status in (Status.SHIPPED, Status.DELIVERED):
            _notify(case, case.practice, f"The lab marked the case {Status(status).label.lower()}", NotifyTopic.STATUS)


def request_design_approval(access: OrgAccess, case: Case, *, note: str = "") -> None:
    access.require(Perm.CASES_WORK)
    if case.lab_id != access.organization.pk or case.status not in (Status.IN_DESIGN, Status.DESIGN_REJECTED):
        raise ValidationError("A design can be sent for approval while the case is in design.")
    if not case.attachments.filter(kind=AttachmentKind.DESIGN).exists():
        raise ValidationError("Attach the design file first.")
    with transaction.atomic():
        case.status = Status.DESIGN_APPROVAL_REQUESTED
        case.save(update_fields=["status"])
        _history(case, access, note)
        _audit("case.design.approval_requested", access, case)
        _notify(case, case.practice, "A design is waiting for your approval", NotifyTopic.DESIGNS)


def decide_design(access: OrgAccess, case: Case, *, approve: bool, note: str = "") -> None:
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case) or case.status != Status.DESIGN_APPROVAL_REQUESTED:
        raise ValidationError("There is no design waiting for approval.")
    if not approve and not note.strip():
        raise ValidationError("Say what should change in the design.")
    with transaction.atomic():
        case.status = Status.DESIGN_APPROVED if approve else Status.DESIGN_REJECTED
        case.save(update_fields=["status"])
        _history(case, access, note)
        _audit("case.design.approved" if approve else "case.design.rejected", access, case)
        if case.lab is not None:
            _notify(case, case.lab, "Design approved" if approve else "Design changes requested", NotifyTopic.DESIGNS)


def post_message(
    access: OrgAccess,
    case: Case,
    body: str,
    *,
    question: bool = False,
    attachments: Iterable[Attachment | int | str] = (),
) -> Message:
    """A message on the case thread, optionally pointing at files already attached to the case
    (upload into the case first): a message never carries a file of its own."""
    side = case_side(access, case)
    access.require(Perm.CASES_WORK if side == "lab" else Perm.CASES_EDIT)
    if not body.strip():
        raise ValidationError("Write a message.")
    if case.archived_at:
        raise ValidationError("This case is archived.")
    wanted = {str(a.pk) if isinstance(a, Attachment) else str(a) for a in attachments}
    referenced = [a for a in case.attachments.all() if str(a.pk) in wanted]
    if len(referenced) != len(wanted):
        raise ValidationError({"attachments": "A message can only refer to files of this case."})
    with transaction.atomic():
        message = Message.objects.create(
            case=case,
            author=access.actor if isinstance(access.actor, User) else None,
            author_org=access.organization,
            body=body.strip(),
            is_question=question,
        )
        if referenced:
            message.attachments.set(referenced)
        if isinstance(access.actor, User):
            MessageRead.objects.create(message=message, user=access.actor)
        _audit(
            "case.message.posted",
            access,
            case,
            question=question,
            files=[str(a.stored_object_id) for a in referenced],
        )
        event = "New question" if question else "New message"
        if side != "practice":
            _notify(case, case.practice, event, NotifyTopic.MESSAGES, sender=access.organization)
            return message
        if case.lab is not None and case.status != Status.DRAFT:
            _notify(case, case.lab, event, NotifyTopic.MESSAGES)
        for order in case.imaging_orders.filter(
            status__in=[ImagingOrderStatus.SENT, ImagingOrderStatus.RECEIVED], access_revoked_at__isnull=True
        ).select_related("center"):
            _notify(case, order.center, event, NotifyTopic.MESSAGES)
    return message


def put_on_hold(access: OrgAccess, case: Case, question: str) -> Message:
    access.require(Perm.CASES_WORK)
    if case.lab_id != access.organization.pk or case.status not in HOLDABLE:
        raise ValidationError("This case cannot be put on hold now.")
    with transaction.atomic():
        case.status_before_hold = case.status
        case.status = Status.ON_HOLD
        case.save(update_fields=["status", "status_before_hold"])
        _history(case, access, "question to the practice")
        _audit("case.on_hold", access, case)
        return post_message(access, case, question, question=True)


def answer_hold(access: OrgAccess, case: Case, answer: str) -> Message:
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case) or case.status != Status.ON_HOLD:
        raise ValidationError("This case is not waiting for an answer.")
    with transaction.atomic():
        message = post_message(access, case, answer)
        case.status = case.status_before_hold or Status.RECEIVED
        case.status_before_hold = ""
        case.save(update_fields=["status", "status_before_hold"])
        _history(case, access, "answered")
        _audit("case.status_changed", access, case, **{"from": Status.ON_HOLD, "to": case.status})
    return message


def complete_case(access: OrgAccess, case: Case) -> None:
    access.require(Perm.CASES_WORK)
    if case.lab_id != access.organization.pk or case.status != Status.DELIVERED:
        raise ValidationError("A case is completed once it was delivered.")
    with transaction.atomic():
        case.status = Status.COMPLETED
        case.completed_at = timezone.now()
        case.lab_access_until = case.completed_at + timedelta(days=case.practice.lab_access_grace_days)
        case.save(update_fields=["status", "completed_at", "lab_access_until"])
        _history(case, access)
        _audit("case.completed", access, case, lab_access_until=case.lab_access_until.isoformat())
        _notify(case, case.practice, "Case completed", NotifyTopic.STATUS)


def archive_case(access: OrgAccess, case: Case) -> None:
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case) or case.status not in CLOSED:
        raise ValidationError("Only completed or cancelled cases can be archived.")
    with transaction.atomic():
        case.archived_at = timezone.now()
        case.save(update_fields=["archived_at"])
        _audit("case.archived", access, case)


CANCELLABLE = {Status.DRAFT, Status.SUBMITTED}


def cancel_case(access: OrgAccess, case: Case, *, reason: str) -> None:
    """The practice withdraws a case the lab has not started on: a draft, or a submitted case
    before the lab confirmed receipt. Once received, the lab has work in hand; the practice then
    talks to the lab (messages, hold) and can still revoke its access. The lab's access ends at
    once and its members who follow status changes are told, with the case number only."""
    access.require(Perm.CASES_EDIT)
    if case.practice_id != access.organization.pk:
        raise ValidationError("Only the practice that owns the case can cancel it.")
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the case is cancelled; the reason is kept in the case history.")
    if len(reason) > 2000:
        raise ValidationError("Keep the reason under 2,000 characters.")
    with transaction.atomic():
        # Locked and read again: the lab may be confirming receipt at this very moment.
        current = Case.objects.select_for_update().filter(pk=case.pk).values_list("status", flat=True).get()
        if current not in CANCELLABLE:
            raise ValidationError("Only a draft, or a case the lab has not yet received, can be cancelled.")
        was_sent = current == Status.SUBMITTED
        case.status = Status.CANCELLED
        fields = ["status"]
        if was_sent:
            case.lab_access_revoked_at = timezone.now()
            fields.append("lab_access_revoked_at")
        case.save(update_fields=fields)
        _history(case, access, note=reason)
        # The reason is free text that may name the patient: it stays in the case, not in the log.
        _audit("case.cancelled", access, case, previous_status=current, lab_access_ended=was_sent)
        if was_sent and case.lab is not None:
            _notify(case, case.lab, "The practice cancelled this case", NotifyTopic.STATUS, template="case_cancelled")


def revoke_lab_access(access: OrgAccess, case: Case) -> None:
    access.require(Perm.CASES_EDIT)
    if not acts_for_practice(access, case):
        raise ValidationError("Only the practice can revoke the lab's access.")
    with transaction.atomic():
        case.lab_access_revoked_at = timezone.now()
        case.save(update_fields=["lab_access_revoked_at"])
        _audit("case.lab_access_revoked", access, case)


def create_remake(access: OrgAccess, original: Case, *, reason: str) -> Case:
    access.require(Perm.CASES_EDIT)  # before any check that would tell a read-only caller more
    if not acts_for_practice(access, original) or original.status not in (Status.DELIVERED, Status.COMPLETED):
        raise ValidationError("A remake is made from a delivered or completed case of your practice.")
    if not reason.strip():
        raise ValidationError("Say why the case is remade.")
    items = [
        ItemInput(i.restoration, i.tooth, i.arch, i.material, i.shade, i.stump_shade) for i in original.items.all()
    ]
    remake = create_case(
        access,
        patient_name=original.patient.name,
        patient_dob=original.patient.date_of_birth,
        chart_number=original.patient.chart_number,
        case_type=original.case_type,
        lab=original.lab,
        doctor=original.doctor,
        delivery=original.delivery,
        ship_to=original.ship_to,
        notes=f"Remake of {original.number}: {reason.strip()}\n\n{original.notes}".strip(),
        items=items,
        remake_of=original,
    )
    return remake


def mark_read(user: User, case: Case) -> int:
    unread = case.messages.exclude(reads__user=user)
    created = MessageRead.objects.bulk_create(
        [MessageRead(message=m, user=user) for m in unread], ignore_conflicts=True
    )
    return len(created)


def destroy_file(principal: Principal, stored: StoredObject, *, reason: str) -> None:
    """Crypto-shred a file the principal may destroy (`policy.destroyable_files`: the uploader or
    an administrator for an upload not yet attached; the practice's owners and admins for a file
    of a case). A file of a case is part of the patient's record: the destruction is recorded in
    the practice's log with the patient reference, whichever side uploaded it."""
    if not destroyable_files(principal).filter(pk=stored.pk).exists():
        raise Forbidden(Perm.FILES_DESTROY)
    if len(reason.strip()) < 5:
        raise ValidationError("Give a reason of a few words; it is kept in the audit log.")
    from casebridge.retention.policies import UnderLegalHold, case_is_held, organization_is_held

    attachment = Attachment.objects.filter(stored_object=stored).select_related("case").first()
    if attachment is None:
        if organization_is_held(stored.organization_id):
            raise UnderLegalHold("The organization's records are under a legal hold: nothing can be destroyed.")
        forget_destroyed([stored, *vault.destroy_object(stored, actor=principal.actor, reason=reason)], reason=reason)
        return
    case = attachment.case
    if case_is_held(case):
        raise UnderLegalHold("This case is under a legal hold: its files cannot be destroyed until it is lifted.")
    # The DICOM instances stored inside it (a CBCT's archive) go with it: vault.destroy_object.
    held = vault.destroy_object(
        stored,
        actor=principal.actor,
        reason=reason,
        record_in=case.practice_id,
        patient_ref=_patient_ref(case),
        details={"case": case.number, "uploaded_in": str(stored.organization_id)},
    )
    forget_destroyed([stored, *held], reason=reason)
