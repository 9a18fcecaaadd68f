"""The first-run set-up (issue 16, item 12): takes a small practice or lab from nothing to a
complete compliance baseline in one sitting. Each step is read from live data (never ticked by
hand), says what the law asks and why with its citation, and offers a starting point so nobody
faces a blank page: the usual systems of a dental office to list, a quick BAA status for each, a
ready-written training module. The time from the first visit to the last step is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.compliance import training
from casebridge.compliance.dashboard import officers_of
from casebridge.compliance.models import BaaStatus, ComplianceSetup, RiskAssessment, TrainingModule, Vendor
from casebridge.orgs.models import Organization, OrgKind
from casebridge.orgs.queries import connections_of


@dataclass(frozen=True)
class Starter:
    name: str
    category: str
    data_handled: str


# The systems a dental office usually runs beside CaseBridge; each one that sees patient data
# needs a BAA (45 CFR 164.502(e)). Kinds, not brands: the office types its own vendor's name.
STARTER_VENDORS: dict[str, tuple[Starter, ...]] = {
    OrgKind.PRACTICE: (
        Starter("Practice management software", "practice management", "charts, appointments, billing"),
        Starter("E-mail provider", "e-mail", "messages that may name patients"),
        Starter("Digital impression platform", "impression platform", "intraoral scans"),
        Starter("Imaging software (X-ray / CBCT)", "imaging", "radiographs and CBCT volumes"),
        Starter("Cloud backup", "backups", "copies of all records"),
        Starter("IT support company", "IT services", "access to workstations and servers"),
        Starter("Shipping carrier", "shipping", "names and addresses on labels"),
    ),
    OrgKind.LAB: (
        Starter("Lab management software", "lab software", "case details, patient names"),
        Starter("E-mail provider", "e-mail", "messages that may name patients"),
        Starter("CAD/CAM design software (cloud)", "design software", "scans and designs"),
        Starter("Cloud backup", "backups", "copies of all records"),
        Starter("IT support company", "IT services", "access to workstations and servers"),
        Starter("Shipping carrier", "shipping", "names and addresses on labels"),
    ),
    OrgKind.IMAGING: (
        Starter("PACS / imaging archive", "imaging", "studies and reports"),
        Starter("Radiology reporting service", "reporting", "studies and reports"),
        Starter("E-mail provider", "e-mail", "messages that may name patients"),
        Starter("Cloud backup", "backups", "copies of all records"),
        Starter("IT support company", "IT services", "access to workstations and servers"),
    ),
}

STARTER_MODULE_TITLE = "HIPAA essentials for dental teams"
STARTER_MODULE_BODY = "\n\n".join(
    (
        "Why this matters",
        "Patient records, scans and X-rays are protected health information (PHI). HIPAA asks every member of"
        " the workforce to protect it and to know the office's policies (45 CFR 164.308(a)(5), 164.530(b)).",
        "1. Minimum necessary. Open, send and print only what your task needs. Curiosity is not a reason: "
        "every access is recorded in the audit log.",
        "2. Send files through CaseBridge, never by personal e-mail, USB sticks or consumer file-sharing "
        "apps. Connected labs and imaging centers have signed business associate agreements; others have not.",
        "3. Your login is yours. Never share it; lock your screen when you step away; use your second factor.",
        "4. External links: send them only to the person who needs the files, with the shortest expiry that "
        "works. Revoke a link sent to the wrong address at once.",
        "5. Report at once anything that looks wrong: a lost phone or laptop, a file sent to the wrong place,"
        " a message that asks for your password. Tell the privacy or security officer the same day: the law's"
        " clocks run from the day the office knew or should have known (45 CFR 164.404(a)(2)).",
        "6. Patients' rights. Patients may ask for a copy of their records; pass such requests to the privacy"
        " officer, who answers within 30 days (45 CFR 164.524).",
    )
)
STARTER_MODULE_QUIZ = """How should patient scans be sent to a lab?
By personal e-mail
*Through CaseBridge, to a connected lab
On a USB stick

You sent a link to the wrong address. What do you do?
Wait and see whether it is opened
*Revoke the link and tell the privacy officer today

May a colleague use your login when theirs is locked?
Yes, if it is urgent
*No: every login belongs to one person

A patient asks for a copy of their X-rays. You:
*Pass the request to the privacy officer
Refuse: X-rays belong to the practice"""


@dataclass
class Step:
    key: str
    title: str
    done: bool
    status: str
    law: str
    citation: str


def setup_of(organization: Organization) -> ComplianceSetup:
    setup, _ = ComplianceSetup.objects.get_or_create(organization=organization)
    return setup


def steps(organization: Organization) -> list[Step]:
    """Where the organization stands, read from its data."""
    officers = officers_of(organization)
    vendors = Vendor.objects.filter(organization=organization)
    unsettled = vendors.filter(baa_status__in=[BaaStatus.NONE, BaaStatus.EXPIRED]).count()
    connections = connections_of(organization, active=True)
    uncovered = sum(1 for c in connections if not c.can_carry_phi)
    modules = TrainingModule.objects.filter(organization=organization).count()
    assessment = RiskAssessment.objects.filter(organization=organization).first()
    return [
        Step(
            "officers",
            "Name your privacy and security officers",
            bool(officers.privacy_officer_id and officers.security_officer_id),
            "Both named." if officers.privacy_officer_id and officers.security_officer_id else "Not named yet.",
            "Someone must be responsible for privacy and someone for security; in a small office one person "
            "may be both. They receive incident reports, answer patients' requests and keep this workspace.",
            "45 CFR 164.308(a)(2), 164.530(a)",
        ),
        Step(
            "vendors",
            "List the systems and vendors that touch patient data",
            vendors.exists(),
            f"{vendors.count()} listed." if vendors.exists() else "None listed yet.",
            "You can only protect what you know about: every service that stores, sees or carries patient "
            "data is part of your risk analysis and needs a business associate agreement.",
            "45 CFR 164.308(a)(1)(ii)(A), 164.502(e)",
        ),
        Step(
            "baas",
            "Record a BAA status for each of them",
            vendors.exists() and unsettled == 0 and uncovered == 0,
            (
                f"{unsettled} vendor{'s' if unsettled != 1 else ''} without a BAA status; "
                f"{uncovered} connection{'s' if uncovered != 1 else ''} without an agreement."
                if vendors.exists()
                else "List your vendors first."
            ),
            "A vendor that handles patient data for you may do so only under a written business associate "
            "agreement. Mark each one requested or signed (or not needed if it never sees patient data).",
            "45 CFR 164.502(e), 164.504(e), 164.308(b)",
        ),
        Step(
            "risk",
            "Start your first risk assessment",
            assessment is not None,
            (
                "Not started yet."
                if assessment is None
                else f"Started {assessment.started_at:%Y-%m-%d}"
                + (f", completed {assessment.completed_at:%Y-%m-%d}." if assessment.completed_at else ", in progress.")
            ),
            "Look at where patient data lives and what could go wrong with it, then plan how to reduce each "
            "risk. CaseBridge fills in what it already knows (second factors, encryption, audit log, backups); "
            "you answer the rest, once a year.",
            "45 CFR 164.308(a)(1)(ii)(A)-(B)",
        ),
        Step(
            "training",
            "Assign training to your team",
            modules > 0,
            f"{modules} module{'s' if modules != 1 else ''} assigned." if modules else "No module yet.",
            "Everyone who works with patient data is trained on your policies when they join and again "
            "periodically; the record of who completed what is kept six years.",
            "45 CFR 164.308(a)(5), 164.530(b)",
        ),
    ]


def _require(access: OrgAccess) -> None:
    access.require(Perm.COMPLIANCE_MANAGE)


def visit(access: OrgAccess) -> ComplianceSetup:
    """The page was opened: the set-up's clock starts at the first visit and stops when every step
    is done (recorded once, with the minutes it took)."""
    _require(access)
    setup = setup_of(access.organization)
    if setup.completed_at is None and all(s.done for s in steps(access.organization)):
        with transaction.atomic():
            setup.completed_at = timezone.now()
            setup.save(update_fields=["completed_at"])
            record(
                "compliance.setup.completed",
                actor=access.actor,
                organization=access.organization,
                details={"minutes": round((setup.completed_at - setup.started_at).total_seconds() / 60)},
            )
    return setup


def add_starter_vendors(access: OrgAccess, names: list[str]) -> int:
    """List the starter systems ticked (skipping any already listed under the same name)."""
    _require(access)
    catalogue = {s.name: s for s in STARTER_VENDORS.get(access.organization.kind, ())}
    chosen = [catalogue[n] for n in names if n in catalogue]
    if not chosen:
        raise ValidationError({"vendors": "Tick at least one system, or add your own under Vendors."})
    listed = set(Vendor.objects.filter(organization=access.organization).values_list("name", flat=True))
    added = 0
    with transaction.atomic():
        for starter in chosen:
            if starter.name in listed:
                continue
            vendor = Vendor.objects.create(
                organization=access.organization,
                name=starter.name,
                category=starter.category,
                data_handled=starter.data_handled,
            )
            record(
                "compliance.vendor.saved",
                actor=access.actor,
                organization=access.organization,
                target=vendor,
                details={
                    "vendor": str(vendor.pk),
                    "fields": ["name"],
                    "baa_status": vendor.baa_status,
                    "starter": True,
                },
            )
            added += 1
    return added


QUICK_STATUSES = (BaaStatus.REQUESTED, BaaStatus.SIGNED, BaaStatus.NOT_NEEDED)


def set_baa_status(access: OrgAccess, vendor: Vendor, status: str, signed_on: date | None = None) -> Vendor:
    """The quick BAA answer of the set-up; dates and documents are kept on the Vendors page."""
    _require(access)
    if vendor.organization_id != access.organization.pk:
        raise ValidationError("This vendor belongs to another organization.")
    if status not in QUICK_STATUSES:
        raise ValidationError({"baa_status": "Choose requested, signed or not needed."})
    if status == BaaStatus.SIGNED and signed_on is None:
        raise ValidationError({"baa_signed_on": "Enter the date the BAA was signed."})
    with transaction.atomic():
        vendor.baa_status = status
        vendor.baa_signed_on = signed_on if status == BaaStatus.SIGNED else vendor.baa_signed_on
        vendor.save(update_fields=["baa_status", "baa_signed_on"])
        record(
            "compliance.vendor.saved",
            actor=access.actor,
            organization=access.organization,
            target=vendor,
            details={"vendor": str(vendor.pk), "fields": ["baa_status"], "baa_status": status},
        )
    return vendor


def add_starter_training(access: OrgAccess, *, onboarding: bool) -> TrainingModule:
    """Assign the ready-written module to everyone (due in 30 days, refreshed yearly)."""
    _require(access)
    if TrainingModule.objects.filter(organization=access.organization, title=STARTER_MODULE_TITLE).exists():
        raise ValidationError("The starter module is already assigned; edit or add modules under Training.")
    return training.save_module(
        access,
        title=STARTER_MODULE_TITLE,
        body=STARTER_MODULE_BODY,
        quiz_text=STARTER_MODULE_QUIZ,
        roles=[],
        due_days=30,
        onboarding=onboarding,
    )
