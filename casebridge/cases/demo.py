"""Demo data: a practice, a lab and an imaging center with people in every role that matters,
connections under a BAA and a dozen cases at every step of the workflow, with real files.

Everything is made through the same actions the web pages call (orgs.actions, cases.actions,
vault.api), so the demo also has its audit trail and never holds a state the app could not reach.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from allauth.mfa import signals as mfa_signals
from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess, resolve
from casebridge.access.roles import Role
from casebridge.accounts.models import User
from casebridge.cases import actions, imaging_orders
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import AttachmentKind, Case, Delivery, Status
from casebridge.cases.templates import TEMPLATES
from casebridge.imaging import synthetic
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Organization, OrgKind
from casebridge.vault import api as vault

PRACTICE = "Smile Dental Demo"
LAB = "Precision Dental Lab Demo"
IMAGING = "Clear View Imaging Demo"
DEMO_ORGANIZATIONS = {PRACTICE: OrgKind.PRACTICE, LAB: OrgKind.LAB, IMAGING: OrgKind.IMAGING}

# (organization, role, e-mail, full name). The first person of each organization is its owner.
# ".example" is reserved (RFC 2606): mail to these addresses can never reach a real person.
PEOPLE = (
    (PRACTICE, Role.OWNER, "owner@smile-dental-demo.example", "Dr. Maria Santos"),
    (PRACTICE, Role.CLINICIAN, "dr.chen@smile-dental-demo.example", "Dr. Alan Chen"),
    (PRACTICE, Role.CLINICIAN, "dr.okafor@smile-dental-demo.example", "Dr. Ngozi Okafor"),
    (PRACTICE, Role.STAFF, "frontdesk@smile-dental-demo.example", "Priya Patel"),
    (PRACTICE, Role.COMPLIANCE_OFFICER, "privacy@smile-dental-demo.example", "Tom Becker"),
    (LAB, Role.OWNER, "owner@precision-lab-demo.example", "Hans Weber"),
    (LAB, Role.LAB_MANAGER, "manager@precision-lab-demo.example", "Lucia Romero"),
    (LAB, Role.TECHNICIAN, "tech@precision-lab-demo.example", "Kenji Sato"),
    (IMAGING, Role.OWNER, "owner@clearview-imaging-demo.example", "Grace Kim"),
    (IMAGING, Role.STAFF, "staff@clearview-imaging-demo.example", "Omar Haddad"),
)

PRACTICE_ADDRESS = "100 Market Street, Suite 2\nSpringfield, IL 62701"
# 555-01xx numbers are reserved for fiction: nobody is called from a demo slip.
PRACTICE_PHONE = "(217) 555-0142"
SHIP_TO = f"Smile Dental Demo\n{PRACTICE_ADDRESS}"


@dataclass
class DemoPerson:
    organization: str
    role: str
    email: str
    full_name: str
    password: str
    totp_secret: str
    otpauth_uri: str


@dataclass
class DemoCase:
    """One case to make, and how far along the workflow to take it."""

    target: str
    case_type: str
    patient: str
    items: list[ItemInput]
    due_in_days: int
    doctor: int = 0  # which clinician: 0 Dr. Chen, 1 Dr. Okafor
    notes: str = ""
    delivery: str = Delivery.SHIP
    files_complete: bool = True
    extras: dict[str, str] = field(default_factory=dict)
    # A study ordered from the imaging center: (modality, region, teeth, clinical question).
    imaging: tuple[str, str, str, str] | None = None


CASES = (
    DemoCase(
        Status.COMPLETED,
        "digital_crown",
        "Emily Carter",
        [ItemInput("crown", tooth=36, material="emax", shade="A2", stump_shade="ND2")],
        -12,
        notes="Slightly lighter at the incisal third.",
        extras={"message": "Seated today, perfect fit. Thank you!"},
    ),
    DemoCase(
        Status.SHIPPED,
        "bridge",
        "Robert Nguyen",
        [
            ItemInput("bridge_abutment", tooth=14, material="zirconia_full", shade="A3"),
            ItemInput("bridge_pontic", tooth=15, material="zirconia_full", shade="A3"),
            ItemInput("bridge_abutment", tooth=16, material="zirconia_full", shade="A3"),
        ],
        1,
        notes="Ovate pontic, light contact on the ridge.",
    ),
    DemoCase(
        Status.DESIGN_APPROVAL_REQUESTED,
        "implant_crown",
        "Sofia Alvarez",
        [
            ItemInput("implant_crown", tooth=46, material="zirconia_layered", shade="B1"),
            ItemInput("implant_abutment", tooth=46, material="titanium"),
        ],
        5,
        doctor=1,
        notes="Straumann BLT RC, screw-retained if the axis allows.",
    ),
    DemoCase(
        Status.ON_HOLD,
        "veneers",
        "James O'Brien",
        [ItemInput("veneer", tooth=t, material="emax", shade="0M2") for t in (12, 11, 21, 22)],
        9,
        notes="Follow the approved wax-up; patient wants a natural incisal translucency.",
        extras={
            "question": "The bite scan does not show 21 fully. Should we lengthen 11 and 21 by 1 mm as in the "
            "wax-up, or keep the current length?"
        },
    ),
    DemoCase(
        Status.IN_DESIGN,
        "digital_crown",
        "Linda Park",
        [ItemInput("crown", tooth=26, material="pfm", shade="A3.5")],
        4,
        doctor=1,
    ),
    DemoCase(
        Status.RECEIVED,
        "complete_denture",
        "George Miller",
        [ItemInput("complete_denture", arch="upper", material="acrylic", shade="A3")],
        14,
        notes="Try-in first, please. Medium-sized teeth, class I.",
    ),
    DemoCase(
        Status.SUBMITTED,
        "night_guard",
        "Aisha Rahman",
        [ItemInput("night_guard", arch="upper", material="acrylic")],
        10,
        notes="Hard splint, 2 mm, canine guidance.",
    ),
    DemoCase(
        Status.IN_PRODUCTION,
        "digital_crown",
        "Michael Brown",
        [ItemInput("crown", tooth=11, material="zirconia_layered", shade="B1", stump_shade="ND1")],
        0,
        notes="Match 21; see the shade photos.",
    ),
    DemoCase(
        Status.QUALITY_CHECK,
        "surgical_guide",
        "Hannah Schmidt",
        [ItemInput("surgical_guide", arch="lower")],
        2,
        doctor=1,
        notes="Fully guided, implants at 35 and 36 as planned.",
    ),
    DemoCase(
        Status.DRAFT,
        "partial_denture",
        "David Wilson",
        [ItemInput("partial_denture", arch="lower", material="cocr")],
        21,
        notes="Cast framework, clasps on 34 and 44.",
    ),
    DemoCase(
        Status.DRAFT,
        "digital_crown",
        "Olivia Martin",
        [ItemInput("crown", tooth=47, material="gold")],
        18,
        files_complete=False,
        imaging=("panoramic", "both_arches", "", "Periapical status of 46 and 47 before the crown; bone levels."),
    ),
    DemoCase(
        Status.SUBMITTED,
        "rush_repair",
        "Walter Jones",
        [ItemInput("complete_denture", arch="lower", material="acrylic")],
        -1,
        delivery=Delivery.PICKUP,
        notes="Fractured lower denture, clean break. Patient waits: pickup tomorrow morning.",
    ),
)

_LABELS: dict[str, tuple[str, ...]] = {
    AttachmentKind.SCAN: ("upper", "lower", "bite"),
    AttachmentKind.PHOTO: ("shade", "smile", "retracted"),
    AttachmentKind.CBCT: ("cbct",),
}


class DemoRefused(Exception):
    pass


def present() -> bool:
    return Organization.objects.filter(name__in=DEMO_ORGANIZATIONS).exists()


def other_organizations() -> int:
    return Organization.objects.exclude(name__in=DEMO_ORGANIZATIONS).count()


def _password() -> str:
    # Four groups a newcomer can type from a terminal: 24 random characters, no look-alikes.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(6)) for _ in range(4))


def _enroll_totp(user: User) -> tuple[str, str]:
    """Activate TOTP as the MFA page does (the secret is encrypted by our MFA adapter) and tell
    the same signal, so the enrolment is audited."""
    secret = generate_totp_secret()
    totp = TOTP.activate(user, secret)
    mfa_signals.authenticator_added.send(sender=Authenticator, request=None, user=user, authenticator=totp.instance)
    return secret, get_mfa_adapter().build_totp_url(user, secret)


def _access(user: User, org: Organization) -> OrgAccess:
    access = resolve(user, org)
    assert access is not None, f"{user.email} has no access to {org.name}"
    return access


def _store(access: OrgAccess, content: bytes) -> Any:
    return vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    ).stored_object


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return out.getvalue()


def _content(kind: str, seed: str, index: int) -> bytes:
    if kind == AttachmentKind.SCAN:
        return synthetic.stl_mesh(seed)
    if kind == AttachmentKind.CBCT:
        # A whole small CBCT (48 slices, 0.3 mm voxels) as a ZIP: indexed in the background into
        # a study the CBCT viewer scrolls in three planes, with two markers 30 mm apart to measure.
        return _zip({f"IM{i:04d}": data for i, data in enumerate(synthetic.cbct_series(seed, slices=48))})
    return synthetic.photo(seed, fmt="JPEG" if index % 2 == 0 else "PNG")


def _attach_required_files(access: OrgAccess, case: Case, complete: bool) -> None:
    template = TEMPLATES[case.case_type]
    for requirement in template.requirements:
        count = requirement.count if complete else min(1, requirement.count)
        if not complete and requirement.kind != AttachmentKind.SCAN:
            continue
        for index in range(count):
            labels = _LABELS[requirement.kind]
            label = labels[index % len(labels)]
            content = _content(requirement.kind, f"{case.number}/{requirement.kind}/{index}", index)
            actions.attach_file(access, case, _store(access, content), kind=requirement.kind, label=label)


def _take_through_workflow(spec: DemoCase, case: Case, practice: OrgAccess, lab: OrgAccess, tech: OrgAccess) -> None:
    """Walk ``case`` to ``spec.target`` the way the lab and the practice would."""
    order: list[str] = [
        Status.SUBMITTED,
        Status.RECEIVED,
        Status.IN_DESIGN,
        Status.DESIGN_APPROVAL_REQUESTED,
        Status.IN_PRODUCTION,
        Status.QUALITY_CHECK,
        Status.SHIPPED,
        Status.DELIVERED,
        Status.COMPLETED,
    ]
    target = Status.IN_DESIGN if spec.target == Status.ON_HOLD else spec.target
    steps = order[: order.index(target) + 1]
    for step in steps:
        if step == Status.SUBMITTED:
            actions.submit_case(practice, case)
        elif step == Status.RECEIVED:
            actions.confirm_receipt(lab, case)
        elif step == Status.IN_DESIGN:
            actions.change_status(tech, case, Status.IN_DESIGN)
        elif step == Status.DESIGN_APPROVAL_REQUESTED:
            design = synthetic.stl_mesh(f"{case.number}/design")
            actions.attach_file(tech, case, _store(tech, design), kind=AttachmentKind.DESIGN, label="design")
            actions.request_design_approval(tech, case, note="Design ready: please check contacts and emergence.")
            if spec.target != Status.DESIGN_APPROVAL_REQUESTED:
                actions.decide_design(practice, case, approve=True, note="Looks good.")
        elif step == Status.SHIPPED:
            tracking = f"1Z{secrets.randbelow(10**12):012d}" if case.delivery == Delivery.SHIP else ""
            actions.change_status(tech, case, Status.SHIPPED, tracking_number=tracking)
        elif step == Status.COMPLETED:
            actions.complete_case(lab, case)
        else:
            actions.change_status(tech, case, step)
        case.refresh_from_db()
    if spec.target == Status.ON_HOLD:
        actions.put_on_hold(tech, case, spec.extras["question"])
    if "message" in spec.extras:
        actions.post_message(practice, case, spec.extras["message"])


def build(*, on_progress: Any = None) -> list[DemoPerson]:
    """Create the demo organizations, people, connections and cases. Refuses when they exist."""
    if present():
        raise DemoRefused("demo data already present")
    people: list[DemoPerson] = []
    users: dict[str, User] = {}
    orgs: dict[str, Organization] = {}
    today = timezone.now().date()
    with transaction.atomic():
        for org_name, role, email, full_name in PEOPLE:
            password = _password()
            if org_name not in orgs:
                user = User.objects.create_user(email, password, full_name=full_name)
                orgs[org_name] = org_actions.create_organization(
                    name=org_name, kind=DEMO_ORGANIZATIONS[org_name], owner=user
                )
            else:
                owner = users[next(e for o, _, e, _ in PEOPLE if o == org_name)]
                raw = org_actions.invite_member(_access(owner, orgs[org_name]), email=email, role=role).raw
                membership = org_actions.accept_invitation(raw, user=None, password=password, full_name=full_name)
                user = membership.user
            users[email] = user
            secret, uri = _enroll_totp(user)
            people.append(DemoPerson(org_name, role, email, full_name, password, secret, uri))
        if on_progress:
            on_progress(f"{len(orgs)} organizations and {len(people)} people")

        practice_owner = _access(users[PEOPLE[0][2]], orgs[PRACTICE])
        for other, owner_email in ((LAB, PEOPLE[5][2]), (IMAGING, PEOPLE[8][2])):
            connection = org_actions.request_connection(
                practice_owner,
                other_slug=orgs[other].slug,
                basis=AgreementBasis.BAA,
                baa_signed_on=today - timedelta(days=120),
                note="Demo business associate agreement",
            )
            org_actions.accept_connection(_access(users[owner_email], orgs[other]), connection)

        org_actions.update_profile(practice_owner, address=PRACTICE_ADDRESS, phone=PRACTICE_PHONE)
        # The owner is a dentist too: every doctor of the demo practice is a prescriber.
        for number, (org_name, _role, email, _name) in enumerate(PEOPLE[:3], start=1):
            membership = orgs[org_name].memberships.get(user=users[email])
            org_actions.set_prescriber(
                practice_owner, membership, license_number=f"019-0{number}1234", license_state="IL"
            )

        clinicians = [users[p[2]] for p in PEOPLE if p[1] == Role.CLINICIAN]
        staff = _access(users["frontdesk@smile-dental-demo.example"], orgs[PRACTICE])
        lab = _access(users["manager@precision-lab-demo.example"], orgs[LAB])
        tech = _access(users["tech@precision-lab-demo.example"], orgs[LAB])
        for spec in CASES:
            doctor = clinicians[spec.doctor]
            practice = _access(doctor, orgs[PRACTICE])
            case = actions.create_case(
                practice,
                patient_name=spec.patient,
                case_type=spec.case_type,
                lab=orgs[LAB],
                doctor=doctor,
                due_date=today + timedelta(days=spec.due_in_days),
                delivery=spec.delivery,
                ship_to=SHIP_TO if spec.delivery == Delivery.SHIP else "",
                notes=spec.notes,
                items=[ItemInput(**vars(i)) for i in spec.items],
            )
            # The front desk adds the files, as in most practices; the doctor sends the case.
            _attach_required_files(staff, case, spec.files_complete)
            if spec.imaging is not None:  # waiting in the imaging center's queue
                modality, region, teeth_text, question = spec.imaging
                imaging_orders.order_imaging(
                    practice,
                    case,
                    center=orgs[IMAGING],
                    modality=modality,
                    region=region,
                    teeth_text=teeth_text,
                    clinical_question=question,
                )
            if spec.target != Status.DRAFT:
                _take_through_workflow(spec, case, practice, lab, tech)
            if on_progress:
                on_progress(f"{case.number}: {spec.case_type}, {Status(spec.target).label}")
    return people
