"""THE authorization policy: may this actor do this action in this organization / on this object?

Deny by default. Every view, API handler and (later) SFTP path asks here. An actor outside the
organization learns nothing: callers turn "no access" into 404, the same answer as "no such
thing". A member lacking a permission gets 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.db.models import Exists, Model, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from casebridge.access.principal import Principal
from casebridge.access.roles import (
    EMERGENCY_PERMISSIONS,
    PATIENT_DATA_PERMISSIONS,
    SCOPE_FOR_PERM,
    Perm,
    permissions_for,
)
from casebridge.accounts.models import ApiToken, ServiceAccount, User
from casebridge.cases.models import Case, ImagingOrder, ImagingOrderStatus
from casebridge.cases.models import Status as CaseStatus
from casebridge.compliance.models import RequestKind, RequestStatus, SubjectRequest, TrainingCompletion, TrainingModule
from casebridge.imaging.models import Study
from casebridge.orgs.models import Connection, ConnectionStatus, EmergencyAccess, Membership, Organization, OrgKind
from casebridge.vault.models import StoredObject, Upload

if TYPE_CHECKING:
    from casebridge.access.operator import Operator

M = TypeVar("M", bound=Model)


class Forbidden(Exception):
    """A member of the organization asked for something their role does not allow (or, with a
    `reason`, something their side of a case does not do)."""

    def __init__(self, perm: Perm, reason: str = "") -> None:
        super().__init__(reason or f"your role does not allow: {perm.label}")
        self.perm = perm
        self.reason = reason


class OnboardingRequired(Forbidden):
    """A new member asked for patient data before passing the organization's onboarding training."""

    def __init__(self, perm: Perm) -> None:
        super().__init__(perm, "finish your onboarding training before you open patient data")


@dataclass
class OrgAccess:
    """What one actor may do in one organization, resolved once per request."""

    organization: Organization
    actor: User | ServiceAccount | Operator  # Operator: a server command (access/operator.py)
    role: str
    permissions: frozenset[Perm]
    membership: Membership | None = None
    emergency: EmergencyAccess | None = None
    token: ApiToken | None = None
    emergency_only: frozenset[Perm] = field(default_factory=frozenset)
    onboarding_pending: bool = False  # patient data withheld until onboarding training is passed

    @property
    def principal(self) -> Principal:
        """The person or service account behind this access, with its credential."""
        if not isinstance(self.actor, User | ServiceAccount):
            raise TypeError("an operator acts through its access alone, never as a principal")
        return Principal(self.actor, self.token)

    def has(self, perm: Perm) -> bool:
        return perm in self.permissions

    def require(self, perm: Perm) -> None:
        if perm not in self.permissions:
            if self.onboarding_pending and perm in PATIENT_DATA_PERMISSIONS:
                raise OnboardingRequired(perm)
            raise Forbidden(perm)

    def uses_emergency(self, perm: Perm) -> bool:
        return perm in self.emergency_only


def active_emergency_grant(user: User, organization: Organization) -> EmergencyAccess | None:
    return (
        EmergencyAccess.objects.filter(
            organization=organization,
            user=user,
            ended_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .order_by("-expires_at")
        .first()
    )


def onboarding_pending(membership: Membership) -> list[TrainingModule]:
    """The onboarding modules this member must still pass: those assigned to their role that were
    made onboarding before they joined (members already at work are not locked out by a new one)."""
    # One completion must be both this member's and a pass: exclude() with the two conditions
    # would let a member who failed pass on a colleague's pass (Django does not hold them to one row).
    passed = TrainingCompletion.objects.filter(module=OuterRef("pk"), user_id=membership.user_id, passed=True)
    modules = TrainingModule.objects.filter(
        ~Exists(passed),
        organization_id=membership.organization_id,
        onboarding_since__isnull=False,
        onboarding_since__lte=membership.created_at,
    )
    return [m for m in modules if not m.roles or membership.role in m.roles]


def resolve(actor: Any, organization: Organization, token: ApiToken | None = None) -> OrgAccess | None:
    """None means: this actor has nothing to do with this organization."""
    if isinstance(actor, ServiceAccount):
        if not actor.is_active or actor.organization_id != organization.pk:
            return None
        perms = permissions_for(actor.role)
        access = OrgAccess(organization, actor, actor.role, perms)
    elif isinstance(actor, User):
        if not actor.is_active:
            return None
        membership = Membership.objects.filter(organization=organization, user=actor, is_active=True).first()
        if membership is None:
            return None
        perms = permissions_for(membership.role)
        pending = bool(perms & PATIENT_DATA_PERMISSIONS) and bool(onboarding_pending(membership))
        if pending:
            perms = perms - PATIENT_DATA_PERMISSIONS
        # Break-glass overrides the training gate as it overrides roles: each use is recorded.
        grant = active_emergency_grant(actor, organization)
        extra: frozenset[Perm] = frozenset()
        if grant is not None:
            extra = EMERGENCY_PERMISSIONS - perms
            perms = perms | EMERGENCY_PERMISSIONS
        access = OrgAccess(organization, actor, membership.role, perms, membership, grant, emergency_only=extra)
        access.onboarding_pending = pending
    else:
        return None
    if token is not None:
        if token.organization_id != organization.pk or not token.is_usable:
            return None
        scopes = set(token.scopes)
        access.permissions = frozenset(p for p in access.permissions if SCOPE_FOR_PERM.get(p) in scopes)
        access.token = token
    return access


def scoped_get(queryset: QuerySet[M], **lookup: Any) -> M:
    """Fetch one object from a queryset already limited to what the actor may see, or 404."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404("not found")
    return obj


def organizations_of(user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user, memberships__is_active=True).order_by("name")


def organization_connection(a: Organization, b: Organization) -> Connection | None:
    """The live connection between two organizations, whichever side asked for it."""
    return (
        Connection.objects.filter(Q(requester=a, recipient=b) | Q(requester=b, recipient=a))
        .exclude(status=ConnectionStatus.ENDED)
        .first()
    )


def acts_for_practice(access: OrgAccess, case: Case | None = None) -> bool:
    """Whether `access` acts for a dental practice and, given a case, for the practice that owns
    it. Creating cases, editing drafts and sharing a case's files with outsiders are the
    practice's alone: every page, API handler and action asks here instead of comparing kinds
    and ids itself."""
    org = access.organization
    return org.kind == OrgKind.PRACTICE and (case is None or case.practice_id == org.pk)


def require_practice(access: OrgAccess, case: Case | None = None, perm: Perm = Perm.CASES_EDIT) -> None:
    """Forbidden unless `access` has `perm` and acts for the practice (of `case`, when given)."""
    access.require(perm)
    if not acts_for_practice(access, case):
        reason = "Only the practice that owns the case may do this." if case is not None else ""
        raise Forbidden(perm, reason or "Cases are created by dental practices.")


def sharing_refusal(case: Case) -> str:
    """Why no new sharing of this case's patient data is allowed ("" when it is): the patient
    asked for a restriction and the practice agreed (HIPAA 164.522(a), GDPR Art. 18;
    compliance/subject_requests.py). External links, sending to a lab and imaging orders ask here."""
    restricted = SubjectRequest.objects.filter(
        patient_id=case.patient_id,
        kind=RequestKind.RESTRICTION,
        status=RequestStatus.COMPLETED,
        lifted_at__isnull=True,
    ).exists()
    if restricted:
        return (
            "The patient asked to restrict the sharing of their records and the practice agreed "
            "(45 CFR 164.522(a); GDPR Art. 18): nothing of this case can be shared until the restriction "
            "is lifted on the Compliance > Patients' requests page."
        )
    return ""


def require_sharing(access: OrgAccess, case: Case, perm: Perm = Perm.CASES_EDIT) -> None:
    """require_practice, then Forbidden with the reason when the patient's records may not be
    shared (sharing_refusal)."""
    require_practice(access, case, perm)
    reason = sharing_refusal(case)
    if reason:
        raise Forbidden(perm, reason)


def open_imaging_orders(organization: Organization) -> QuerySet[ImagingOrder]:
    """The imaging orders through which a center sees a case: sent to it and not cancelled, until
    the practice revokes its access or the grace period after delivery ends."""
    now = timezone.now()
    return (
        ImagingOrder.objects.filter(center=organization, access_revoked_at__isnull=True)
        .exclude(status=ImagingOrderStatus.CANCELLED)
        .filter(Q(access_until__isnull=True) | Q(access_until__gt=now))
    )


def visible_cases(access: OrgAccess) -> QuerySet[Case]:
    """Cases this organization's actor may see: the practice's own cases; for a lab, the cases
    sent to it, until the practice revokes access or the grace period after completion ends; for
    an imaging center, the cases with an order to it, on the same terms (open_imaging_orders)."""
    if not access.has(Perm.CASES_VIEW):
        return Case.objects.none()
    org = access.organization
    if org.kind == OrgKind.IMAGING:
        return Case.objects.filter(pk__in=open_imaging_orders(org).values("case_id"))
    lab_side = (
        Q(lab=org)
        & ~Q(status=CaseStatus.DRAFT)
        & Q(lab_access_revoked_at__isnull=True)
        & (Q(lab_access_until__isnull=True) | Q(lab_access_until__gt=timezone.now()))
    )
    return Case.objects.filter(Q(practice=org) | lab_side)


def organization_side(access: OrgAccess) -> str:
    """The side an organization takes on the cases it works on: "practice", "lab" or "imaging"."""
    kind = access.organization.kind
    return "imaging" if kind == OrgKind.IMAGING else "practice" if kind == OrgKind.PRACTICE else "lab"


def case_side(access: OrgAccess, case: Case) -> str:
    """Which party of ``case`` ``access`` acts for: "practice", "lab" or "imaging" (an imaging
    center with an order on it). Callers have already found the case through visible_cases; the
    side decides what they may do with it."""
    org = access.organization
    if org.kind == OrgKind.IMAGING:
        return "imaging"
    if case.practice_id == org.pk:
        return "practice"
    return "lab"


def case_for(access: OrgAccess, number: str) -> Case:
    """One case by its number for this actor, or 404 (the same answer as "no such case")."""
    return scoped_get(visible_cases(access).select_related("patient", "practice", "lab"), number=number)


def receives_deidentified(organization: Organization, case: Case) -> bool:
    """Whether `organization` gets this case's files de-identified: it received the case from
    another organization (lab, imaging center) and has De-identification on receipt on. The
    practice that owns the case always gets the originals."""
    return case.practice_id != organization.pk and organization.deidentify_on_receipt


def originals_withheld(principal: Principal, case: Case) -> bool:
    """True when every organization through which `principal` sees `case` receives it
    de-identified: its downloads of the case's files are then de-identified copies. A principal
    that also sees the case through an organization that gets originals (the practice, or a
    receiver with the setting off) gets the originals, as it could ask for them there."""
    seeing = [a for a in principal.accesses(Perm.CASES_VIEW) if visible_cases(a).filter(pk=case.pk).exists()]
    return bool(seeing) and all(receives_deidentified(a.organization, case) for a in seeing)


def _case_file_filter(accesses: list[OrgAccess]) -> Q:
    condition = Q(pk__in=[])
    for access in accesses:
        case_ids = visible_cases(access).values("pk")
        condition |= Q(attachment__case__in=case_ids)
    return condition


def readable_files(principal: Principal, organization: Organization | None = None) -> QuerySet[StoredObject]:
    """Files a principal may read (in `organization`, or in any it acts for): its own uploads not
    yet attached to a case, and every file of the cases it may see (the parties of the case,
    within its access window). A credential that may neither see cases nor upload reads none."""
    accesses = [
        a
        for a in principal.accesses()
        if (organization is None or a.organization.pk == organization.pk)
        and (a.has(Perm.CASES_VIEW) or a.has(Perm.FILES_UPLOAD))
    ]
    own = principal.owns() & Q(organization__in=[a.organization for a in accesses], attached_at__isnull=True)
    return StoredObject.objects.filter(destroyed_at__isnull=True).filter(own | _case_file_filter(accesses)).distinct()


def destroyable_files(principal: Principal) -> QuerySet[StoredObject]:
    """Files a principal may crypto-shred.

    - An upload not yet attached to a case: its uploader, while they may upload in its
      organization (a token needs `cases:write`), or an owner/admin of that organization.
    - A file attached to a case is part of the patient's record, which the practice keeps: only
      an owner/admin of the practice that owns the case (in person: destroying needs a permission
      no token scope grants), and only while the case is theirs to see. Retention rules and legal
      holds will add when it must or must not go.
    """
    condition = Q(pk__in=[])
    for access in principal.accesses():
        org = access.organization
        unattached = Q(organization=org, attached_at__isnull=True)
        if access.has(Perm.FILES_UPLOAD):
            condition |= principal.owns() & unattached
        if access.has(Perm.FILES_DESTROY):
            condition |= unattached
            condition |= Q(attachment__case__in=visible_cases(access).filter(practice=org).values("pk"))
    return StoredObject.objects.filter(destroyed_at__isnull=True).filter(condition)


def owned_uploads(principal: Principal) -> QuerySet[Upload]:
    """Uploads in progress a principal may go on with (HEAD, PATCH, lease, DELETE): the ones it
    started, in an organization where its credential may still upload. A token of another
    organization, a missing scope or an ended membership leaves nothing."""
    organizations = [a.organization for a in principal.accesses(Perm.FILES_UPLOAD)]
    return Upload.objects.filter(principal.owns(), organization__in=organizations)


def _study_conditions(principal: Principal) -> tuple[Q, Q]:
    """(studies seen as stored, studies seen de-identified) for every organization the principal
    acts for: a study inherits its case's access, revocation and grace period included; the cases
    an organization received with De-identification on receipt on (receives_deidentified) are seen
    de-identified through it."""
    originals, received = Q(pk__in=[]), Q(pk__in=[])
    for access in principal.accesses(Perm.CASES_VIEW):
        cases = visible_cases(access)
        if access.organization.deidentify_on_receipt:
            received |= Q(case__in=cases.exclude(practice=access.organization).values("pk"))
            cases = cases.filter(practice=access.organization)
        originals |= Q(case__in=cases.values("pk"))
    return originals, received


def visible_studies(principal: Principal) -> QuerySet[Study]:
    """Imaging studies a principal may see: those of the cases it may see, in every organization
    it acts for. Those in deidentified_studies are handed out de-identified only."""
    originals, received = _study_conditions(principal)
    return Study.objects.filter(originals | received)


def stored_studies(principal: Principal) -> QuerySet[Study]:
    """The visible studies a principal gets as stored (original attributes and UIDs)."""
    return Study.objects.filter(_study_conditions(principal)[0])


def deidentified_studies(principal: Principal) -> QuerySet[Study]:
    """The visible studies a principal gets only de-identified (DICOMweb serves them with the
    attributes of the on-receipt profile and the case's de-identified UIDs, never by their original
    UIDs): those seen only through organizations that received their case with De-identification
    on receipt; as originals_withheld decides for files, a principal that also sees the case
    through an organization that gets originals gets the originals."""
    originals, received = _study_conditions(principal)
    return Study.objects.filter(received).exclude(originals)
