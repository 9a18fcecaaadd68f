"""GDPR records (issue 16, item 9), for an organization that declares it processes personal data
under the GDPR (as an incident is declared under the GDPR, compliance/incidents.py): the record of
processing activities (Art. 30(1)) generated from what CaseBridge knows (the organization, its
vendor inventory, its connections, its retention policy), and data-protection impact assessments
(Art. 35) recorded with the data protection officer's advice."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance import policies
from casebridge.compliance.models import BaaStatus, GdprProfile, ImpactAssessment, Policy, PolicyKind, Vendor
from casebridge.core.pdf import document, latin
from casebridge.orgs.models import Organization, OrgKind
from casebridge.orgs.queries import connections_of

MAX_TEXT = 10_000

PURPOSES = {
    OrgKind.PRACTICE: "Dental treatment: examining patients, planning treatment, and ordering appliances and "
    "restorations from dental laboratories and imaging from imaging centers (Art. 6(1)(b), (c); Art. 9(2)(h)).",
    OrgKind.LAB: "Making dental appliances and restorations prescribed by dental practices, as their "
    "processor or as a health professional under Art. 9(2)(h) and (3).",
    OrgKind.IMAGING: "Dental imaging (CBCT, radiographs) ordered by dental practices (Art. 9(2)(h)).",
}
SUBJECTS = "Patients of the practices; workforce members who use CaseBridge."
CATEGORIES = (
    "Patient identification (name, date of birth, practice reference); health data (prescriptions, scans, "
    "impressions, photographs, radiographs, CBCT); workforce account data (name, e-mail, activity log)."
)
MEASURES = (
    "Encryption in transit (HTTPS) and at rest (a key per file); individual accounts with a second factor; "
    "role-based access to the minimum necessary; tamper-evident audit log of every access and disclosure; "
    "tested backups; access reviews; breach procedure with the 72-hour clock of Art. 33 (Art. 32)."
)


@dataclass
class Recipient:
    name: str
    role: str  # what they do with the data
    basis: str  # the agreement that covers it


@dataclass
class ProcessingRecord:
    controller: str
    contact: str
    purposes: str
    subjects: str
    categories: str
    recipients: list[Recipient] = field(default_factory=list)
    transfers: str = ""
    retention: str = ""
    measures: str = MEASURES
    generated_at: object = None


def profile_of(organization: Organization) -> GdprProfile | None:
    return GdprProfile.objects.filter(organization=organization).first()


def applies(organization: Organization) -> bool:
    profile = profile_of(organization)
    return profile is not None and profile.applies


def save_profile(access: OrgAccess, *, applies: bool, contact: str, transfers: str) -> GdprProfile:
    access.require(Perm.COMPLIANCE_MANAGE)
    contact, transfers = contact.strip(), transfers.strip()
    errors = {}
    if applies and not contact:
        errors["contact"] = "Name the controller's contact or data protection officer (Art. 30(1)(a))."
    if len(contact) > 300:
        errors["contact"] = "Keep the contact under 300 characters."
    if len(transfers) > MAX_TEXT:
        errors["transfers"] = f"Keep this under {MAX_TEXT} characters."
    if errors:
        raise ValidationError(errors)
    profile, _ = GdprProfile.objects.get_or_create(organization=access.organization)
    profile.applies, profile.contact, profile.transfers, profile.updated_at = (
        applies,
        contact,
        transfers,
        timezone.now(),
    )
    profile.save()
    record(
        "compliance.gdpr.profile_saved",
        actor=access.actor,
        organization=access.organization,
        details={"applies": applies},
    )
    return profile


def processing_record(organization: Organization) -> ProcessingRecord:
    """Art. 30(1)(a)-(g), from the live inventory and connections."""
    profile = profile_of(organization)
    recipients = []
    for connection in connections_of(organization, active=True):
        other = connection.recipient if connection.requester_id == organization.pk else connection.requester
        recipients.append(Recipient(other.name, other.get_kind_display(), connection.get_basis_display()))
    for vendor in Vendor.objects.filter(organization=organization).exclude(baa_status=BaaStatus.NOT_NEEDED):
        role = ", ".join(part for part in (vendor.category, vendor.data_handled) if part) or "processor"
        recipients.append(Recipient(vendor.name, f"processor: {role}", vendor.get_baa_status_display()))
    retention_policy = Policy.objects.filter(organization=organization, kind=PolicyKind.RETENTION).first()
    in_effect = policies.in_effect(retention_policy) if retention_policy else None
    return ProcessingRecord(
        controller=organization.name,
        contact=profile.contact if profile else "",
        purposes=PURPOSES[OrgKind(organization.kind)],
        subjects=SUBJECTS,
        categories=CATEGORIES,
        recipients=recipients,
        transfers=(profile.transfers if profile and profile.transfers else "None recorded."),
        retention=(
            f"As set in the retention policy, version {in_effect.number} approved {in_effect.approved_at:%Y-%m-%d}."
            if in_effect and in_effect.approved_at
            else "No retention policy approved yet: approve one under Policies."
        ),
        generated_at=timezone.now(),
    )


def record_pdf(access: OrgAccess) -> bytes:
    access.require(Perm.COMPLIANCE_MANAGE)
    if not applies(access.organization):
        raise ValidationError("The organization has not declared that it processes data under the GDPR.")
    found = processing_record(access.organization)
    doc = document("Record of processing activities")
    doc.set_font("Helvetica", "B", 14)
    doc.multi_cell(0, 8, "Record of processing activities (GDPR Art. 30(1))", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 9)
    doc.multi_cell(0, 5, latin(f"Generated {found.generated_at:%Y-%m-%d} by CaseBridge"), new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    rows = [
        ("Controller and contact (a)", f"{found.controller}. {found.contact}"),
        ("Purposes (b)", found.purposes),
        ("Categories of data subjects (c)", found.subjects),
        ("Categories of personal data (c)", found.categories),
        (
            "Recipients (d)",
            "\n".join(f"{r.name} - {r.role} - {r.basis}" for r in found.recipients) or "None recorded.",
        ),
        ("Transfers to third countries (e)", found.transfers),
        ("Time limits for erasure (f)", found.retention),
        ("Security measures (g)", found.measures),
    ]
    for label, text in rows:
        doc.set_font("Helvetica", "B", 10)
        doc.multi_cell(0, 6, latin(label), new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 10)
        doc.multi_cell(0, 5, latin(text), new_x="LMARGIN", new_y="NEXT")
        doc.ln(2)
    record(
        "compliance.gdpr.record_printed",
        actor=access.actor,
        organization=access.organization,
        details={"recipients": len(found.recipients)},
    )
    return bytes(doc.output())


DPIA_FIELDS = ("title", "description", "necessity", "risks", "measures", "dpo_opinion")


def record_dpia(access: OrgAccess, **values: str) -> ImpactAssessment:
    """Art. 35(7): the processing, its necessity and proportionality, the risks, the measures; and
    the data protection officer's advice (Art. 35(2)), when there is one."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if not applies(access.organization):
        raise ValidationError("The organization has not declared that it processes data under the GDPR.")
    cleaned = {name: (values.get(name) or "").strip() for name in DPIA_FIELDS}
    errors = {
        name: "Required (GDPR Art. 35(7))."
        for name in ("title", "description", "necessity", "risks", "measures")
        if not cleaned[name]
    }
    if len(cleaned["title"]) > 200:
        errors["title"] = "Keep the title under 200 characters."
    errors.update(
        {name: f"Keep this under {MAX_TEXT} characters." for name in DPIA_FIELDS if len(cleaned[name]) > MAX_TEXT}
    )
    if errors:
        raise ValidationError(errors)
    assessment = ImpactAssessment.objects.create(
        organization=access.organization,
        recorded_by=access.actor if isinstance(access.actor, User) else None,
        **cleaned,
    )
    record(
        "compliance.gdpr.dpia_recorded",
        actor=access.actor,
        organization=access.organization,
        details={"dpia": str(assessment.pk), "dpo_opinion": bool(cleaned["dpo_opinion"])},
    )
    return assessment
